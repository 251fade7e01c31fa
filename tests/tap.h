/* tap.h — a small Test Anything Protocol library for the tests: plan, ok,
 * is/is_str, cmp_ok, diag, skip (a failed setup: fails), skip_unsupported,
 * done_testing. The process exits non-zero
 * when any test failed or the plan was not met. Header-only. */
#ifndef TAP_H
#define TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_run, tap_failed, tap_planned = -1;

static inline void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
}

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

static inline int tap_report(int pass, const char *fmt, va_list ap)
{
    tap_run++;
    if (!pass)
        tap_failed++;
    printf("%s %d - ", pass ? "ok" : "not ok", tap_run);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    return pass;
}

static inline int ok(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int ok(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_report(pass, fmt, ap);
    va_end(ap);
    return pass;
}

#define is(got, want, ...)                                                              \
    do {                                                                                \
        long long g_ = (long long)(got), w_ = (long long)(want);                        \
        if (!ok(g_ == w_, __VA_ARGS__))                                                 \
            diag("  got %lld, expected %lld (%s:%d)", g_, w_, __FILE__, __LINE__);      \
    } while (0)

#define is_str(got, want, ...)                                                          \
    do {                                                                                \
        const char *g_ = (got), *w_ = (want);                                           \
        if (!ok(g_ && w_ ? strcmp(g_, w_) == 0 : g_ == w_, __VA_ARGS__))                \
            diag("  got '%s', expected '%s' (%s:%d)", g_ ? g_ : "(null)",               \
                 w_ ? w_ : "(null)", __FILE__, __LINE__);                               \
    } while (0)

/* like(): got contains the substring want */
#define like(got, want, ...)                                                            \
    do {                                                                                \
        const char *g_ = (got), *w_ = (want);                                           \
        if (!ok(g_ && w_ && strstr(g_, w_) != NULL, __VA_ARGS__))                       \
            diag("  '%s' does not contain '%s' (%s:%d)", g_ ? g_ : "(null)", w_,        \
                 __FILE__, __LINE__);                                                   \
    } while (0)

#define cmp_ok(got, op, want, ...)                                                      \
    do {                                                                                \
        double g_ = (double)(got), w_ = (double)(want);                                 \
        if (!ok(g_ op w_, __VA_ARGS__))                                                 \
            diag("  %.9g %s %.9g is false (%s:%d)", g_, #op, w_, __FILE__, __LINE__);   \
    } while (0)

/* A setup that failed (no stage, no file, no model): the n tests it
 * guarded FAIL — a broken setup never passes as a skip. */
static inline void skip(int n, const char *why)
{
    for (int i = 0; i < n; i++) {
        tap_run++;
        tap_failed++;
        printf("not ok %d - setup failed: %s\n", tap_run, why);
    }
    fflush(stdout);
}

/* Tests that cannot run on this machine for a reason outside the project
 * (a CPU feature it lacks): the only real skip. */
static inline void skip_unsupported(int n, const char *why)
{
    for (int i = 0; i < n; i++) {
        tap_run++;
        printf("ok %d # skip %s\n", tap_run, why);
    }
}

/* The end of a program that declared no plan() up front: `expected` is
 * the number of tests it must have run — a program that returns early or
 * loses a test fails, it never passes with fewer checks. */
static inline int done_testing(int expected)
{
    if (tap_planned < 0) {
        printf("1..%d\n", tap_run);
        if (tap_run != expected) {
            diag("expected %d tests but ran %d", expected, tap_run);
            return 1;
        }
    } else if (tap_planned != tap_run) {
        diag("planned %d tests but ran %d", tap_planned, tap_run);
        return 1;
    }
    if (tap_failed)
        diag("failed %d of %d tests", tap_failed, tap_run);
    return tap_failed ? 1 : 0;
}

#endif
