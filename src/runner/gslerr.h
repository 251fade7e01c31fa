/* gslerr.h — GSL reports errors instead of aborting the process. */
#ifndef GSLERR_H
#define GSLERR_H

/* Replace GSL's default error handler (print and abort()) with one that
 * records the error (err_get) and lets the GSL call return its error
 * code. Idempotent; called at start-up and by pipeline_open. */
void gsl_errors_return(void);

#endif
