/*
 * t/fuzz/fuzz_pop3_cmd.c — the POP3 command parser and the message as
 * RETR/TOP send it.  Any octets as a command line through pop3_cmd_parse:
 * arguments inside the line and NUL-terminated, numbers in range, counts
 * as the verb allows.  The same octets as a message through pop3_msg_out
 * (whole and with a TOP count taken from the first octet): no bare LF in
 * the output, it ends with CRLF "." CRLF, and for RETR its length less the
 * dot-stuffing equals the size store/pop3drop.c announces in LIST.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/pop3_cmd.h"
#include "proto/pop3_msg.h"
#include "store/pop3drop.h"

static void check_cmd(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    struct pop3_cmd c;
    if (!line)
        abort();
    memcpy(line, data, size);
    enum pop3_parse r = pop3_cmd_parse(line, size, &c);
    if (r != POP3_OK && r != POP3_E_UNKNOWN && r != POP3_E_SYNTAX)
        abort();
    if (c.nargs > 2)
        abort();
    for (size_t i = 0; r == POP3_OK && i < c.nargs; i++) {
        if (c.arg[i] < line || c.arg[i] > line + size || !memchr(c.arg[i], '\0', size + 1))
            abort();
        if (c.num[i] > POP3_NUM_MAX)
            abort();
    }
    if (r == POP3_OK && c.verb == POP3_V_UNKNOWN)
        abort();
    free(line);
}

static void check_msg(const uint8_t *data, size_t size, long top)
{
    struct evbuffer *out = evbuffer_new();
    struct pop3_msg_out m;
    if (!out)
        abort();
    pop3_msg_out_init(&m, top);
    /* two chunks, split where the first octet says */
    size_t cut = size ? data[0] % (size + 1) : 0;
    if (pop3_msg_out_feed(&m, (const char *)data, cut, out) < 0 ||
        pop3_msg_out_feed(&m, (const char *)data + cut, size - cut, out) < 0 ||
        pop3_msg_out_end(&m, out) < 0)
        abort();
    size_t n = evbuffer_get_length(out);
    unsigned char *p = evbuffer_pullup(out, -1);
    if (n < 3 || memcmp(p + n - 3, ".\r\n", 3) != 0 || (n > 3 && memcmp(p + n - 5, "\r\n", 2)))
        abort();
    size_t stuffed = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            abort();                               /* a bare LF went out */
        if (i + 3 < n && p[i] == '.' && (i == 0 || p[i - 1] == '\n')) {
            if (p[i + 1] != '.')
                abort();                           /* a dot line not stuffed */
            stuffed++;
        }
    }
    if (top < 0) {
        int64_t bare = 0;
        int last = 0;
        pop3drop_count(data, size, &bare, &last);
        if ((int64_t)(n - 3 - stuffed) != pop3drop_wire_size((int64_t)size, bare, last))
            abort();
    }
    evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_cmd(data, size);
    check_msg(data, size, -1);
    check_msg(data, size, size ? data[size - 1] % 8 : 0);
    return 0;
}
