/* signals.h — SIGINT and SIGTERM end a run cleanly: the handler only
 * records the signal; the training loop checks once per step (finishes
 * it, writes last/, says how to resume), the encoding loop once per batch
 * (stops before writing any output); the runner then exits 128 + signal
 * (130, 143), as a shell reports a process killed by it. */
#ifndef SIGNALS_H
#define SIGNALS_H

void signals_install(void);
/* The first signal received (SIGINT or SIGTERM), or 0. */
int signals_caught(void);
/* "SIGINT" / "SIGTERM". */
const char *signal_label(int sig);

#endif
