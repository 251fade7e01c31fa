/* check.h — tensor comparison for the gradient tests: the relative error
 * max|got - want| / max(max|want|, FLOOR) (NaN counts as infinite), and a
 * TAP check of it against a tolerance. The including test defines FLOOR. */
#ifndef CHECK_H
#define CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "tap.h"

static inline double rel_err(const float *got, const float *want, int64_t n)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = fabs((double)got[i] - (double)want[i]);
        if (!(x <= d))
            d = isnan(x) ? INFINITY : x;
        m = fmax(m, fabs((double)want[i]));
    }
    return d / fmax(m, FLOOR);
}

/* ok() when the relative error is within tol; returns the error. */
static inline double check(const float *got, const float *want, int64_t n, double tol, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static inline double check(const float *got, const float *want, int64_t n, double tol, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    double e = got && want ? rel_err(got, want, n) : INFINITY;
    ok(e <= tol, "%s: relative error %.1e (<= %.0e)", what, e, tol);
    return e;
}

#endif
