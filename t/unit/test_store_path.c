/*
 * t/unit/test_store_path.c — store/path.c against hostile local parts and
 * domains (what address syntax allows must not become a path out of mail/),
 * and store_quota_check (store/maildir.c): fits, over, unlimited, usage
 * kept incrementally in maildirsize and recomputed when it is missing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/index.h"
#include "store/maildir.h"
#include "store/path.h"
#include "t/unit/tap.h"

static void test_names(void)
{
    static const char *const bad[] = {
        "", ".", "..", ".hidden", "../etc", "a/b", "/", "a/../b", "..\x01",
        "bo\nb", "bo\rb", "bo\tb", "\x7f", "x\x1b[2J", ".Sent",
    };
    static const char *const good[] = {
        "bob", "bob.smith", "b..b", "o'neil", "a+b", "ü", "x-y_z", "a.",
    };
    char longname[300], buf[600];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(!store_name_ok(bad[i]), "refused: %zu", i);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ok(store_name_ok(good[i]), "allowed: %s", good[i]);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ok(!store_name_ok(longname), "longer than a file name: refused");
    longname[255] = '\0';
    ok(store_name_ok(longname), "255 octets: allowed");
    ok(!store_name_ok(NULL), "NULL refused");

    ok(store_mailbox_rel(buf, sizeof(buf), "example.test", "bob") == 0
       && strcmp(buf, "example.test/bob") == 0, "domain/local");
    ok(store_mailbox_rel(buf, sizeof(buf), "..", "bob") != 0, "domain ..");
    ok(store_mailbox_rel(buf, sizeof(buf), "example.test", "../../etc") != 0, "local ../../etc");
    ok(store_mailbox_rel(buf, sizeof(buf), "example.test/x", "bob") != 0, "domain with /");
    ok(store_mailbox_rel(buf, 8, "example.test", "bob") != 0, "too long for the buffer");

    ok(store_mailbox_rel_ok("example.test/bob"), "rel ok");
    ok(!store_mailbox_rel_ok("example.test/bob/x"), "three components");
    ok(!store_mailbox_rel_ok("example.test"), "one component");
    ok(!store_mailbox_rel_ok("../bob"), "rel ..");
    ok(!store_mailbox_rel_ok("example.test/.."), "rel /..");
    ok(!store_mailbox_rel_ok("/bob"), "absolute");
    ok(!store_mailbox_rel_ok("example.test/bo\nb"), "control character");
}

static int deliver(const char *dir, size_t len)
{
    char *body = malloc(len + 1);
    struct maildir_tmp t;
    struct maildir_err e;
    FILE *f = tmpfile();
    int r;

    memset(body, 'x', len);
    if (f == NULL || fwrite(body, 1, len, f) != len || fflush(f) != 0)
        exit(2);
    r = maildir_begin(dir, "", 0, fileno(f), (long long)len, 0, &t, &e);
    if (r == 0)
        r = maildir_finish(&t, &e);
    fclose(f);
    free(body);
    return r;
}

static void test_quota(void)
{
    char tmpl[] = "/tmp/test_store_path.XXXXXX", dir[512], p[600];

    if (mkdtemp(tmpl) == NULL)
        exit(2);
    snprintf(dir, sizeof(dir), "%s/example.test/bob", tmpl);
    is_int(store_quota_check(dir, 10, 0), 0, "unlimited (0)");
    is_int(store_quota_check(dir, 1LL << 40, -1), 0, "unlimited (<0)");
    ok(maildir_create(dir) == 0, "maildir");
    is_int(store_quota_check(dir, 1000, 1000), 0, "empty: 1000 of 1000 fits");
    is_int(store_quota_check(dir, 1001, 1000), 1, "1001 of 1000 does not");
    ok(deliver(dir, 600) == 0, "deliver 600");
    is_int(store_quota_check(dir, 400, 1000), 0, "600 + 400 fits");
    is_int(store_quota_check(dir, 401, 1000), 1, "600 + 401 does not");
    is_int(maildir_usage(dir), 600, "usage 600");
    /* incremental: the file's lines grow, nothing is rescanned */
    snprintf(p, sizeof(p), "%s/maildirsize", dir);
    ok(deliver(dir, 100) == 0, "deliver 100");
    is_int(maildir_usage(dir), 700, "usage 700 (appended)");
    FILE *f = fopen(p, "a");
    ok(f && fputs("50 1\n", f) >= 0 && fclose(f) == 0, "a line another writer appended");
    is_int(store_quota_check(dir, 250, 1000), 0, "750 + 250 fits: the file is trusted");
    is_int(store_quota_check(dir, 251, 1000), 1, "750 + 251 does not");
    /* an expunge through the index gives its size back */
    struct store_index *ix;
    ok(store_index_open(dir, &ix) == 0 && ix->n == 2, "index: 2 messages");
    uint32_t big = ix->msgs[0].size == 600 ? ix->msgs[0].uid : ix->msgs[1].uid;
    is_int(store_index_expunge(ix, big), 0, "expunge the 600-octet message");
    store_index_close(ix);
    is_int(maildir_usage(dir), 150, "usage 150 after the expunge (no rescan)");
    is_int(store_quota_check(dir, 850, 1000), 0, "150 + 850 fits again");
    ok(deliver(dir, 600) == 0, "deliver 600 again");
    ok(unlink(p) == 0, "maildirsize lost");
    is_int(store_quota_check(dir, 300, 1000), 0, "recomputed from the files: 700 + 300 fits");
    is_int(store_quota_check(dir, 301, 1000), 1, "700 + 301 does not");
    snprintf(p, sizeof(p), "rm -rf %s", tmpl);
    if (system(p) != 0)
        exit(2);
}

int main(void)
{
    test_names();
    test_quota();
    return tap_done();
}
