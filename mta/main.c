/*
 * mta/main.c — hatod's command line: -f CONF, -d (foreground, log to
 * stderr), -n (check the configuration, the tables, the TLS certificates
 * and keys and the resolver settings, then exit; a postmaster that reaches
 * nobody and a private key others can read are warnings).
 * Without -d it detaches, and the parent exits only
 * when the daemon is serving (0) or has failed to start (1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/dns.h"
#include "lib/tls.h"
#include "mta/config.h"
#include "mta/daemon.h"
#include "mta/generation.h"
#include "mta/transport.h"
#include "mta/tables.h"

static void usage(void)
{
    fprintf(stderr, "usage: hatod [-f CONF] [-d] [-n]\n");
    exit(2);
}

/* -n: everything that can be checked without binding or writing. */
static int check_only(struct hatod *d)
{
    char err[1024];
    struct tables *t = tables_load(&d->cfg, err, sizeof err);
    if (!t) {
        fprintf(stderr, "hatod: %s\n", err);
        return 1;
    }
    if (tables_check_postmaster(t, err, sizeof err) < 0)
        fprintf(stderr, "hatod: warning: %s\n", err);
    tables_free(t);
    struct tls_conf *tls;
    if (generation_load_tls(&d->cfg, &tls, err, sizeof err) < 0) {
        fprintf(stderr, "hatod: %s\n", err);
        return 1;
    }
    for (size_t i = 0; tls && i < tls_conf_nwarnings(tls); i++)
        fprintf(stderr, "hatod: warning: TLS: %s\n", tls_conf_warning(tls, i));
    tls_conf_unref(&tls);
    struct transport *tr = transport_load(&d->cfg, err, sizeof err);
    if (!tr) {
        fprintf(stderr, "hatod: %s\n", err);
        return 1;
    }
    transport_free(tr);
    struct event_base *base = event_base_new();
    struct dns *dns = base ? dns_new(base, d->cfg.resolver_config, err, sizeof err) : NULL;
    if (!dns) {
        fprintf(stderr, "hatod: %s\n", base ? err : "cannot create an event base");
        if (base)
            event_base_free(base);
        return 1;
    }
    dns_free(dns);
    event_base_free(base);
    printf("hatod: %s: configuration OK\n", d->cfg.path);
    return 0;
}

/* Fork; the parent waits for one status byte from the child. */
static int detach(int *notify_fd)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        char ok = 1;
        close(p[1]);
        if (read(p[0], &ok, 1) != 1)
            ok = 1;
        _exit(ok == 0 ? 0 : 1);
    }
    close(p[0]);
    if (setsid() < 0)
        return -1;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    if (chdir("/") < 0)
        return -1;
    *notify_fd = p[1];
    return 0;
}

static void notify(int fd, char status)
{
    if (fd < 0)
        return;
    if (write(fd, &status, 1) != 1)
        status = 1;
    close(fd);
}

static void write_pidfile(const struct hatod *d)
{
    char path[4096];
    config_path(&d->cfg, "hatod.pid", path, sizeof path);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    struct hatod d;
    const char *conf = NULL;
    int check = 0, opt, notify_fd = -1;
    char err[1024];

    memset(&d, 0, sizeof d);
    while ((opt = getopt(argc, argv, "f:dnh")) != -1) {
        switch (opt) {
        case 'f': conf = optarg; break;
        case 'd': d.foreground = 1; break;
        case 'n': check = 1; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    conf = config_default_path(conf);
    if (config_load(conf, &d.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "hatod: %s\n", err);
        return 1;
    }
    d.config_path = strdup(conf);
    if (!d.config_path)
        return 1;
    if (check) {
        int rc = check_only(&d);
        config_free(&d.cfg);
        free(d.config_path);
        return rc;
    }
    if (!d.foreground && detach(&notify_fd) < 0) {
        fprintf(stderr, "hatod: cannot detach: %s\n", strerror(errno));
        return 1;
    }
    if (daemon_start(&d) < 0) {
        notify(notify_fd, 1);
        if (d.foreground)
            fprintf(stderr, "hatod: start-up failed (see the log above)\n");
        daemon_free(&d);
        free(d.config_path);
        return 1;
    }
    write_pidfile(&d);
    notify(notify_fd, 0);
    int rc = daemon_run(&d);
    daemon_free(&d);
    free(d.config_path);
    return rc;
}
