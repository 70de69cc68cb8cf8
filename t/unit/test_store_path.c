/*
 * t/unit/test_store_path.c — store/path.c against hostile local parts and
 * domains (what address syntax allows must not become a path out of mail/),
 * and store_quota_check (store/maildir.c): fits, over, unlimited, usage
 * kept incrementally in maildirsize and recomputed when it is missing or
 * corrupt, a message moved between folders counted once; the quota warning
 * (store_quota_warn: once per crossing, re-armed below the mark); the
 * mailbox layout (store/layout.c: special folders, subscriptions).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/index.h"
#include "store/layout.h"
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

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void rm_rf(const char *dir)
{
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        exit(2);
}

/* The one file in dir/sub (a message just delivered), into name. */
static int only_file(const char *dir, const char *sub, char *name, size_t len)
{
    char path[600];
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') {
            snprintf(name, len, "%s", de->d_name);
            n++;
        }
    closedir(d);
    return n == 1 ? 0 : -1;
}

/* Usage after deletes and moves: a Maildir client moving a message into a
 * folder (a rename) leaves usage alone, and a recount finds it once; a
 * corrupt maildirsize is recounted. */
static void test_moves(void)
{
    char tmpl[] = "/tmp/test_store_path.XXXXXX", dir[512], p[600], from[1200], to[1200];
    char name[300];

    if (mkdtemp(tmpl) == NULL)
        exit(2);
    snprintf(dir, sizeof(dir), "%s/example.test/bob", tmpl);
    ok(store_layout_ensure(dir) == 0, "layout");
    is_int(store_quota_check(dir, 1, 10000), 0, "maildirsize made with a quota");
    ok(deliver(dir, 300) == 0, "deliver 300");
    ok(only_file(dir, "new", name, sizeof(name)) == 0, "one file in new/");
    ok(deliver(dir, 200) == 0, "deliver 200");
    is_int(maildir_usage(dir), 500, "usage 500");
    snprintf(from, sizeof(from), "%s/new/%s", dir, name);
    snprintf(to, sizeof(to), "%s/.Trash/cur/%s:2,S", dir, name);
    ok(rename(from, to) == 0, "a client moves the 300 into .Trash");
    struct store_index *ix;
    ok(store_index_open(dir, &ix) == 0 && store_index_sync(ix) == 0 && ix->n == 1,
       "INBOX's index: the moved message is gone from it");
    store_index_close(ix);
    is_int(maildir_usage(dir), 500, "usage still 500: moved, not deleted");
    snprintf(p, sizeof(p), "%s/maildirsize", dir);
    ok(unlink(p) == 0, "maildirsize lost");
    is_int(maildir_usage(dir), 500, "recounted: the moved message counted once");
    snprintf(p, sizeof(p), "%s/.Trash", dir);
    ok(store_index_open(p, &ix) == 0 && store_index_sync(ix) == 0 && ix->n == 1, ".Trash index");
    is_int(store_index_expunge(ix, ix->msgs[0].uid), 0, "expunge it from .Trash");
    store_index_close(ix);
    is_int(maildir_usage(dir), 200, "deleted from a folder: released at the root");
    snprintf(p, sizeof(p), "%s/maildirsize", dir);
    FILE *f = fopen(p, "w");
    ok(f && fputs("10000S\n200 1\ngarbage\n", f) >= 0 && fclose(f) == 0, "maildirsize corrupted");
    is_int(store_quota_check(dir, 9800, 10000), 0, "corrupt: recounted, 200 + 9800 fits");
    is_int(store_quota_check(dir, 9801, 10000), 1, "and 9801 does not");
    ok(strcmp(slurp(p), "10000S\n200 1\n") == 0, "maildirsize rewritten whole");
    rm_rf(tmpl);
}

/* store_quota_warn: due once when usage crosses the mark, again only
 * after it went below. */
static void test_warn(void)
{
    char tmpl[] = "/tmp/test_store_path.XXXXXX", dir[512], p[600];
    long long used = -1;

    if (mkdtemp(tmpl) == NULL)
        exit(2);
    snprintf(dir, sizeof(dir), "%s/example.test/bob", tmpl);
    ok(maildir_create(dir) == 0, "maildir");
    is_int(store_quota_warn(dir, 1000, 0, &used), 0, "percent 0: off");
    is_int(store_quota_warn(dir, 0, 90, &used), 0, "no quota: off");
    ok(deliver(dir, 800) == 0, "deliver 800");
    is_int(store_quota_warn(dir, 1000, 90, &used), 0, "800 of 1000: below 90 %");
    is_int(used, 800, "usage given back");
    ok(deliver(dir, 100) == 0, "deliver 100");
    is_int(store_quota_warn(dir, 1000, 90, &used), 1, "900 of 1000: the mark is crossed");
    ok(deliver(dir, 50) == 0, "deliver 50");
    is_int(store_quota_warn(dir, 1000, 90, &used), 0, "950: warned already");
    is_int(store_quota_warn(dir, 1000, 90, &used), 0, "still once");
    struct store_index *ix;
    ok(store_index_open(dir, &ix) == 0 && ix->n == 3, "index: 3 messages");
    uint32_t big = 0;
    for (size_t i = 0; i < ix->n; i++)
        if (ix->msgs[i].size == 800)
            big = ix->msgs[i].uid;
    is_int(store_index_expunge(ix, big), 0, "the user deletes the 800");
    store_index_close(ix);
    is_int(store_quota_warn(dir, 1000, 90, &used), 0, "150: below again (re-armed)");
    snprintf(p, sizeof(p), "%s/hato.quotawarn", dir);
    ok(access(p, F_OK) != 0 && errno == ENOENT, "marker removed below the mark");
    ok(deliver(dir, 800) == 0, "deliver 800 again");
    is_int(store_quota_warn(dir, 1000, 90, &used), 1, "950: crossed again, warned again");
    rm_rf(tmpl);
}

/* store_layout_ensure: special folders (Maildir++ with maildirfolder) and
 * a subscriptions file Dovecot and Courier read; idempotent; the user's
 * subscriptions kept; a folder is not a mailbox. */
static void test_layout(void)
{
    char tmpl[] = "/tmp/test_store_path.XXXXXX", dir[512], p[700];
    struct stat st;

    if (mkdtemp(tmpl) == NULL)
        exit(2);
    snprintf(dir, sizeof(dir), "%s/example.test/bob", tmpl);
    is_int(store_layout_ensure(dir), 0, "layout of a new mailbox");
    for (size_t i = 0; i < STORE_NSPECIAL; i++) {
        int all = 1;
        static const char *const subs[] = { "cur", "new", "tmp" };
        for (size_t k = 0; k < 3; k++) {
            snprintf(p, sizeof(p), "%s/.%s/%s", dir, store_special_folders[i], subs[k]);
            all &= stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        }
        snprintf(p, sizeof(p), "%s/.%s/maildirfolder", dir, store_special_folders[i]);
        all &= stat(p, &st) == 0 && S_ISREG(st.st_mode);
        ok(all, ".%s: cur new tmp maildirfolder", store_special_folders[i]);
    }
    snprintf(p, sizeof(p), "%s/new", dir);
    ok(stat(p, &st) == 0 && S_ISDIR(st.st_mode), "INBOX made too");
    snprintf(p, sizeof(p), "%s/subscriptions", dir);
    is_str(slurp(p), "Sent\nDrafts\nTrash\nJunk\n", "subscriptions: one name per line");
    FILE *f = fopen(p, "w");
    ok(f && fputs("Sent\nArchive\n", f) >= 0 && fclose(f) == 0, "the user changes them");
    snprintf(p, sizeof(p), "rm -rf %s/.Junk", dir);
    ok(system(p) == 0, "and removes .Junk");
    is_int(store_layout_ensure(dir), 0, "again (a login)");
    snprintf(p, sizeof(p), "%s/subscriptions", dir);
    is_str(slurp(p), "Sent\nArchive\n", "the user's subscriptions kept");
    snprintf(p, sizeof(p), "%s/.Junk/maildirfolder", dir);
    ok(stat(p, &st) == 0, ".Junk made again");
    snprintf(p, sizeof(p), "%s/tmp", dir);
    DIR *d = opendir(p);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    is_int(n, 0, "no tmp debris");
    snprintf(p, sizeof(p), "%s/.Sent", dir);
    is_int(store_layout_ensure(p), 0, "a folder given as root: left alone");
    snprintf(p, sizeof(p), "%s/.Sent/.Sent", dir);
    ok(stat(p, &st) != 0, "no folders inside a folder");
    snprintf(dir, sizeof(dir), "%s/example.test/eve", tmpl);
    ok(maildir_create(dir) == 0, "eve's mailbox");
    snprintf(p, sizeof(p), "%s/.Drafts", dir);
    f = fopen(p, "w");
    ok(f && fclose(f) == 0, "a file where .Drafts should be");
    errno = 0;
    is_int(store_layout_ensure(dir), -1, "refused");
    is_int(errno, ENOTDIR, "ENOTDIR");
    rm_rf(tmpl);
}

int main(void)
{
    test_names();
    test_quota();
    test_moves();
    test_warn();
    test_layout();
    return tap_done();
}
