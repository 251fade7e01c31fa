/* signals.c — see signals.h.
 *
 * SIGINT and SIGTERM are blocked in every thread (the mask is set first
 * thing in main, so the threads of OpenMP, Open MPI and oneDNN inherit it)
 * and taken by one thread of ours that waits for them with sigwait(). No
 * signal is ever delivered while a compute thread runs: oneDNN 2.6's
 * generated GEMM kernels point the stack register into the heap while they
 * run, and a signal frame pushed there corrupts the heap (oneDNN issue
 * #4845, fixed upstream in 2026; seen here as a glibc abort in about 1 in
 * 300 trainings stopped by SIGTERM). */
#include "signals.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t caught, armed;
static int waiting; /* the waiter thread runs */

void signals_note(int sig)
{
    if (!caught)
        caught = sig;
}

static void *waiter(void *arg)
{
    const sigset_t *set = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (!armed) /* before a run begins: end at once, as the default action would */
            _exit(128 + sig);
        signals_note(sig);
    }
    return NULL;
}

int signals_block(void)
{
    static sigset_t set;
    pthread_t tid;
    pthread_attr_t attr;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int rc = pthread_create(&tid, &attr, waiter, &set);
    pthread_attr_destroy(&attr);
    if (rc != 0) { /* no waiter: signals_install falls back to a handler */
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return -1;
    }
    waiting = 1;
    return 0;
}

static void on_signal(int sig) { signals_note(sig); }

void signals_install(void)
{
    armed = 1;
    if (waiting)
        return;
    /* no waiter thread: a handler records the signal (the oneDNN hazard
     * above returns, but a signal still ends the run cleanly) */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int signals_caught(void)
{
    return caught;
}

const char *signal_label(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}
