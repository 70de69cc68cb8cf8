/*
 * t/fuzz/fuzz_smtp_cmd.c — the SMTP command parser: any octets as a command
 * line through smtp_cmd_parse, then (as a NUL-terminated string) through
 * smtp_parse_mail, smtp_parse_rcpt and smtp_check_helo.  Checks the
 * invariants: arg inside the line, errors carry a 5xx code and texts,
 * accepted paths are NUL-terminated within their fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_cmd.h"

static void check_err(int rc, const struct smtp_err *e)
{
    if (rc == 0)
        return;
    if (rc != -1 || e->code < 500 || e->code > 599 || e->enh == NULL || e->text == NULL)
        abort();
}

static void check_addr(const struct addr *a)
{
    if (memchr(a->local, '\0', sizeof(a->local)) == NULL ||
        memchr(a->domain, '\0', sizeof(a->domain)) == NULL ||
        memchr(a->full, '\0', sizeof(a->full)) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    struct smtp_cmd cmd;
    struct smtp_mail_args m;
    struct smtp_rcpt_args r;
    struct smtp_err e;
    int rc;

    if (line == NULL)
        abort();
    memcpy(line, data, size);
    line[size] = '\0';
    rc = smtp_cmd_parse(line, size, &cmd);
    if (cmd.arg == NULL || (rc != 0 && rc != -1))
        abort();
    if (cmd.arg[0] != '\0' && (cmd.arg < line || cmd.arg > line + size))
        abort();
    if (rc == 0 && cmd.verb != SMTP_V_UNKNOWN && memchr(line, '\0', size) != NULL)
        abort();
    /* The arguments parsers see the whole input as an argument string. */
    rc = smtp_parse_mail(line, &m, &e);
    check_err(rc, &e);
    if (rc == 0) {
        check_addr(&m.path);
        if (m.size < -1)
            abort();
    }
    rc = smtp_parse_rcpt(line, &r, &e);
    check_err(rc, &e);
    if (rc == 0) {
        check_addr(&r.path);
        if (r.path.is_null || (r.path.domain[0] == '\0' && strcmp(r.path.full, "postmaster")))
            abort();
    }
    (void)smtp_check_helo(line);
    if (cmd.verb == SMTP_V_MAIL)
        check_err(smtp_parse_mail(cmd.arg, &m, &e), &e);
    if (cmd.verb == SMTP_V_RCPT)
        check_err(smtp_parse_rcpt(cmd.arg, &r, &e), &e);
    free(line);
    return 0;
}
