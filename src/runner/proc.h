/* proc.h — child processes without a shell: posix_spawnp with an argument
 * vector (the program is looked up in PATH, nothing is ever parsed by
 * /bin/sh), a script fed on stdin, output captured or sent to a log. */
#ifndef PROC_H
#define PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Is `program` an executable file in a folder of PATH? */
int proc_in_path(const char *program);
/* Run argv with `input` on its stdin, stdout and stderr discarded; wait.
 * *status is the exit status (-1 killed). -1 with err_set if it could not
 * start. SIGPIPE is ignored while writing (a child that dies early is an
 * exit status, not a dead runner). */
int proc_feed(const char *const *argv, const char *input, size_t len, int *status);
/* Start argv with its stdout into a pipe (*fd, close-on-exec, the read end),
 * stderr discarded; proc_close_read later captures up to cap-1 bytes of it
 * into buf (NUL terminated), closes fd and waits. */
int proc_open_read(const char *const *argv, pid_t *pid, int *fd);
int proc_close_read(pid_t pid, int fd, char *buf, size_t cap, int *status);
/* Start argv with stdout and stderr appended to log (stdin /dev/null);
 * do not wait. */
int proc_start(const char *const *argv, const char *log, pid_t *pid);
/* This executable's path into buf (NUL terminated): 0, or -1 when it
 * cannot be read. When the file was replaced while we run (a rebuild), the
 * kernel names it "PATH (deleted)": then PATH, the file that now stands
 * there, with its plugins beside it. */
int proc_self_exe(char *buf, size_t size);
/* Wait for any started child: its pid and exit status (-1 killed). */
int proc_wait_any(pid_t *pid, int *status);

#endif
