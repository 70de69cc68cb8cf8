/*
 * t/fuzz/fuzz_envelope.c — env_parse and maildrop_parse on arbitrary
 * input.  An envelope that parses must format, parse again, and format to
 * the same bytes; a maildrop header that parses must have a sane offset.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"
#include "queue/maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_env(const char *buf, size_t size)
{
    struct envelope e, e2, c;
    char err[128];
    char *f1 = NULL, *f2 = NULL;
    size_t l1 = 0, l2 = 0;

    env_init(&e);
    env_init(&e2);
    env_init(&c);
    if (env_parse(buf, size, &e, err, sizeof(err)) < 0) {
        if (e.rcpts != NULL || e.sender != NULL)
            abort();            /* must be cleared on error */
        return;
    }
    if (env_format(&e, &f1, &l1) < 0)
        abort();
    if (env_parse(f1, l1, &e2, err, sizeof(err)) < 0)
        abort();
    if (env_format(&e2, &f2, &l2) < 0 || l1 != l2 || memcmp(f1, f2, l1) != 0)
        abort();
    if (env_copy(&c, &e2) < 0)
        abort();
    (void)env_pending(&c);
    free(f1);
    free(f2);
    env_clear(&e);
    env_clear(&e2);
    env_clear(&c);
}

static void fuzz_maildrop(const char *buf, size_t size)
{
    struct maildrop_hdr h;
    char err[128];

    if (maildrop_parse(buf, size, &h, err, sizeof(err)) == 0) {
        if (h.sender == NULL || h.nrcpt == 0 || h.body_offset > size)
            abort();
        maildrop_hdr_free(&h);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy so reads past the end are caught */
    char *buf = malloc(size ? size : 1);

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    fuzz_env(buf, size);
    fuzz_maildrop(buf, size);
    free(buf);
    return 0;
}
