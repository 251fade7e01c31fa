/* signals.h — SIGINT and SIGTERM end a run cleanly: a thread of ours only
 * records the signal; the training loop checks once per step (finishes
 * it, writes last/, says how to resume), the encoding loop once per batch
 * (stops before writing any output); the runner then exits 128 + signal
 * (130, 143), as a shell reports a process killed by it. */
#ifndef SIGNALS_H
#define SIGNALS_H

/* First thing in main, before any thread exists: SIGINT and SIGTERM
 * blocked in every thread and taken by a waiting thread (see signals.c).
 * Until signals_install, a signal ends the process at once (128 + signal).
 * -1 when the waiting thread cannot start (the default actions stay). */
int signals_block(void);
/* From here on a signal is recorded, not fatal. */
void signals_install(void);
/* Record sig as if received (a rank told by another that the job stops). */
void signals_note(int sig);
/* The first signal received (SIGINT or SIGTERM), or 0. */
int signals_caught(void);
/* "SIGINT" / "SIGTERM". */
const char *signal_label(int sig);

#endif
