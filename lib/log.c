/*
 * lib/log.c — process-wide logging behind lib/log.h.  Owns the one log
 * destination of the process (stderr, syslog with LOG_MAIL, or an appended
 * file), its re-opening after rotation, and the debug switch.  This is the
 * one module whose state is global by contract (the header says
 * "process-wide"); a mutex guards it, so workers may log.
 *
 * Every event is one line, written with one write() (file, stderr) or one
 * syslog() call, prefixed "TIMESTAMP hatod[PID]: " for file and stderr.
 * Control characters in messages become '?', so text from the network can
 * never forge a second log line.  Logging keeps errno as it found it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

#define LOG_LINE_MAX   4096    /* octets of one line, longer text is cut */
#define LOG_STAMP_MAX  64
#define LOG_IDENT_MAX  64
#define LOG_PROGRAM    "hatod"
#define LOG_FILE_MODE  0640

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static enum log_dest log_where = LOG_DEST_STDERR;
static int log_fd = STDERR_FILENO;            /* stderr or the file */
static int log_tee;                           /* a file log also goes to stderr */
static long log_pid;                          /* cached: one getpid() per process */
static char log_path[PATH_MAX];               /* LOG_DEST_FILE: for log_reopen */
static char log_ident[LOG_IDENT_MAX] = LOG_PROGRAM;
static atomic_int log_debug_on;

static int log_open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, LOG_FILE_MODE);
}

/* Leave the current destination (caller holds log_mu). */
static void log_close_locked(void)
{
    if (log_where == LOG_DEST_SYSLOG)
        closelog();
    if (log_where == LOG_DEST_FILE && log_fd >= 0)
        (void)close(log_fd);
    log_where = LOG_DEST_STDERR;
    log_fd = STDERR_FILENO;
}

int log_open(enum log_dest dest, const char *arg)
{
    int fd = -1;

    if (dest == LOG_DEST_FILE) {
        if (arg == NULL || strlen(arg) >= sizeof(log_path)) {
            errno = arg ? ENAMETOOLONG : EINVAL;
            return -1;
        }
        fd = log_open_file(arg);
        if (fd < 0)
            return -1;
    } else if (dest != LOG_DEST_STDERR && dest != LOG_DEST_SYSLOG) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&log_mu);
    log_close_locked();
    log_where = dest;
    if (dest == LOG_DEST_FILE) {
        log_fd = fd;
        snprintf(log_path, sizeof(log_path), "%s", arg);
    } else if (dest == LOG_DEST_SYSLOG) {
        snprintf(log_ident, sizeof(log_ident), "%s", arg && *arg ? arg : LOG_PROGRAM);
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
    pthread_mutex_unlock(&log_mu);
    return 0;
}

void log_reopen(void)
{
    int fd, err = 0;

    pthread_mutex_lock(&log_mu);
    if (log_where == LOG_DEST_FILE) {
        fd = log_open_file(log_path);
        if (fd < 0) {
            err = errno;
        } else {
            if (dup2(fd, log_fd) < 0)   /* same fd number: no window without a log */
                err = errno;
            (void)close(fd);
        }
    }
    pthread_mutex_unlock(&log_mu);
    if (err)
        log_warn("cannot reopen log file %s: %s", log_path, strerror(err));
}

void log_tee_stderr(int on)
{
    pthread_mutex_lock(&log_mu);
    log_tee = on;
    pthread_mutex_unlock(&log_mu);
}

/* After fork(): the child logs with its own pid. */
void log_forget_pid(void)
{
    log_pid = 0;
}

void log_set_debug(int on)
{
    atomic_store(&log_debug_on, on ? 1 : 0);
}

/* "2026-11-23T14:09:14.123+0000" */
static void log_stamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char zone[8];

    if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || localtime_r(&ts.tv_sec, &tm) == NULL) {
        snprintf(buf, len, "-");
        return;
    }
    if (strftime(zone, sizeof(zone), "%z", &tm) == 0)
        zone[0] = '\0';
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000L, zone);
}

/* Control characters (CR, LF, ESC, ...) become '?'. */
static void log_sanitize(char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            *s = c == '\t' ? ' ' : '?';
    }
}

static void log_emit(int prio, const char *level, const char *fmt, va_list ap)
{
    char msg[LOG_LINE_MAX], line[LOG_LINE_MAX + LOG_STAMP_MAX + 64], stamp[LOG_STAMP_MAX];
    int saved = errno, n;

    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    log_sanitize(msg);
    pthread_mutex_lock(&log_mu);
    if (log_where == LOG_DEST_SYSLOG) {
        syslog(prio, "%s%s", level, msg);
    } else {
        log_stamp(stamp, sizeof(stamp));
        if (!log_pid)
            log_pid = (long)getpid();
        n = snprintf(line, sizeof(line), "%s %s[%ld]: %s%s\n", stamp, LOG_PROGRAM,
                     log_pid, level, msg);
        if (n > 0 && (size_t)n >= sizeof(line)) {
            n = (int)sizeof(line) - 1;
            line[n - 1] = '\n';
        }
        if (n > 0 && write(log_fd, line, (size_t)n) < 0) {
            /* Nowhere left to report it. */
        }
        if (n > 0 && log_tee && log_fd != STDERR_FILENO &&
            write(STDERR_FILENO, line, (size_t)n) < 0) {
            /* likewise */
        }
    }
    pthread_mutex_unlock(&log_mu);
    errno = saved;
}

void log_debug(const char *fmt, ...)
{
    va_list ap;

    if (!atomic_load(&log_debug_on))
        return;
    va_start(ap, fmt);
    log_emit(LOG_DEBUG, "debug: ", fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(LOG_INFO, "", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(LOG_WARNING, "warning: ", fmt, ap);
    va_end(ap);
}

void log_err(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(LOG_ERR, "error: ", fmt, ap);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(LOG_CRIT, "fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}
