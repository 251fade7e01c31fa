/* gslerr.c — GSL's error handler: record, never abort (see gslerr.h). */
#include "gslerr.h"

#include <gsl/gsl_errno.h>

#include "runner/kit/util.h"

static void on_gsl_error(const char *reason, const char *file, int line, int gsl_errno)
{
    err_set("GSL: %s (%s:%d, %s)", reason, file, line, gsl_strerror(gsl_errno));
}

void gsl_errors_return(void)
{
    gsl_set_error_handler(on_gsl_error);
}
