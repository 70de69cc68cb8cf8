/*
 * lib/log.h — process-wide logging: one line per event, to stderr (-d),
 * syslog (default) or a file (log_file).  Knows nothing of mail.
 * Thread-safe: workers may log.
 */
#ifndef HATO_LOG_H
#define HATO_LOG_H

#include <stdarg.h>

enum log_dest { LOG_DEST_STDERR, LOG_DEST_SYSLOG, LOG_DEST_FILE };

/* Open the log.  For LOG_DEST_FILE `arg` is the path (appended to), for
 * syslog the ident; ignored for stderr.  Returns 0 or -1 (errno set). */
int log_open(enum log_dest dest, const char *arg);
/* Re-open a log file (after SIGHUP / rotation).  No-op for other dests. */
void log_reopen(void);
void log_set_debug(int on);
/* With a file log, also copy every line to stderr (hatod -d with log_file). */
void log_tee_stderr(int on);
/* Call in a child after fork() so lines carry the child's pid. */
void log_forget_pid(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Start-up errors and broken invariants only: logs and exits(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
