/*
 * t/unit/test_interop.c — the store against the programs users migrate
 * from and to, all under one temp dir, no daemon running:
 *   - dovecot-uidlist parsing (store/uidlist.c), always;
 *   - a Maildir Dovecot wrote (doveadm save/flags/expunge with -c of a temp
 *     config) read by hato's store: UIDVALIDITY and UIDs kept from
 *     dovecot-uidlist, flags, sizes, usage counted once over the folders;
 *     then hato's flag change and expunge seen by Dovecot;
 *   - a Maildir hato wrote (maildir_begin/finish, the index, the layout)
 *     read by Dovecot: flags, sizes, search, subscriptions; Dovecot's flag
 *     change, expunge and a message it saves picked up by hato's sync;
 *   - the same Maildir read by mutt in batch mode (a pty from script(1)):
 *     it copies the flagged message out and flags another, which hato sees.
 * Dovecot refuses to touch mail as root: as root the tools run as nobody
 * (runuser) on files handed to nobody.  A missing tool skips its part.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/index.h"
#include "store/layout.h"
#include "store/maildir.h"
#include "store/uidlist.h"
#include "t/unit/tap.h"

static char root[PATH_MAX];         /* the temp dir */
static char conf[PATH_MAX + 32];    /* its dovecot.conf */
static int as_nobody;               /* we are root: tools run as nobody */

static void skip(const char *why)
{
    ok(1, "# SKIP %s", why);
}

static int have(const char *prog)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* Run a shell command (printf-style); its exit status, or -1. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= sizeof(cmd))
        return -1;
    if (getenv("INTEROP_DEBUG"))
        fprintf(stderr, "# %s\n", cmd);
    r = system(cmd);
    return r == -1 || !WIFEXITED(r) ? -1 : WEXITSTATUS(r);
}

/* The prefix that runs a mail tool as the mail user. */
static const char *who(void)
{
    static char buf[PATH_MAX + 96];

    snprintf(buf, sizeof(buf), "%s env HOME=%s USER=%s", as_nobody ? "runuser -u nobody --" : "",
             root, as_nobody ? "nobody" : "hato");
    return buf;
}

static int give_away(const char *path)
{
    return as_nobody ? run("chown -R nobody %s", path) : 0;
}

/* doveadm ARGS on mail_location maildir:DIR, stdout into root/out. */
static int doveadm(const char *dir, const char *args)
{
    return run("%s doveadm -c %s -o mail_location=maildir:%s %s >%s/out 2>>%s/doveadm.err",
               who(), conf, dir, args, root, root);
}

static char *slurp(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = 0;

    if (f) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

static char *out(void)
{
    char p[PATH_MAX + 8];

    snprintf(p, sizeof(p), "%s/out", root);
    return slurp(p);
}

/* One row of `doveadm -f tab fetch 'uid guid flags size.physical'`. */
struct drow {
    unsigned uid;
    char guid[256], flags[128];
    long long size;
};

static size_t fetch_rows(const char *dir, const char *mailbox, struct drow *v, size_t max)
{
    char args[512], *save = NULL, *line;
    size_t n = 0;

    snprintf(args, sizeof(args), "-f tab fetch 'uid guid flags size.physical' mailbox %s all",
             mailbox);
    if (doveadm(dir, args) != 0)
        return 0;
    line = strtok_r(out(), "\n", &save);          /* the header row */
    while ((line = strtok_r(NULL, "\n", &save)) != NULL && n < max) {
        if (sscanf(line, "%u\t%255[^\t]\t%127[^\t]\t%lld", &v[n].uid, v[n].guid, v[n].flags,
                   &v[n].size) == 4)
            n++;
        else if (sscanf(line, "%u\t%255[^\t]\t\t%lld", &v[n].uid, v[n].guid, &v[n].size) == 3) {
            v[n].flags[0] = '\0';
            n++;
        }
    }
    return n;
}

/* Dovecot's IMAP flags as our Maildir letters. */
static uint32_t imap_flags(const char *s)
{
    uint32_t f = 0;

    f |= strstr(s, "\\Seen") ? STORE_F_SEEN : 0;
    f |= strstr(s, "\\Flagged") ? STORE_F_FLAGGED : 0;
    f |= strstr(s, "\\Answered") ? STORE_F_REPLIED : 0;
    f |= strstr(s, "\\Draft") ? STORE_F_DRAFT : 0;
    f |= strstr(s, "\\Deleted") ? STORE_F_TRASHED : 0;
    return f;
}

static const struct store_msg *by_name(const struct store_index *ix, const char *base)
{
    for (size_t i = 0; i < ix->n; i++)
        if (strcmp(ix->msgs[i].name, base) == 0)
            return &ix->msgs[i];
    return NULL;
}

static const struct store_msg *by_uid(const struct store_index *ix, uint32_t uid)
{
    return store_index_find(ix, uid);
}

/* A message file root/NAME.eml with this subject and body. */
static void write_msg(const char *name, const char *subject, size_t body)
{
    char p[PATH_MAX + 64];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s.eml", root, name);
    f = fopen(p, "w");
    if (f == NULL)
        exit(2);
    fprintf(f, "From: <a@example.test>\r\nTo: <bob@example.test>\r\nSubject: %s\r\n\r\n", subject);
    for (size_t i = 0; i < body; i++)
        fputc(i % 64 == 63 ? '\n' : 'x', f);
    fputs("\r\n", f);
    if (fclose(f) != 0 || chmod(p, 0644) != 0)
        exit(2);
}

/* ---- dovecot-uidlist ---------------------------------------------------- */

static void test_uidlist_parse(void)
{
    static const char v3[] =
        "3 V1700000000 N9 G3e6715240a5f0f6bbb6e000083ecc375\n"
        "1 :1700000001.M1P1.host,S=28,W=32\n"
        "4 W40 GX :1700000002.M2P1.host,S=30:2,FS\n"
        "7 :1700000003.M3P1.host\n";
    struct store_uidlist u;

    is_int(store_uidlist_parse(v3, sizeof(v3) - 1, &u), 0, "v3 parses");
    is_int(u.validity, 1700000000, "v3 UIDVALIDITY");
    is_int(u.next, 9, "v3 next UID");
    is_int(u.n, 3, "three entries");
    is_int(store_uidlist_find(&u, "1700000002.M2P1.host,S=30", 25), 4, "ext fields skipped, :2, cut");
    is_int(store_uidlist_find(&u, "1700000003.M3P1.host,S=9", 20), 7, "base compared by length");
    is_int(store_uidlist_find(&u, "1700000003.M3P1.hos", 19), 0, "a prefix is not a match");
    is_int(store_uidlist_find(&u, "nope", 4), 0, "unknown: 0");
    store_uidlist_free(&u);
    static const char v1[] = "1 1234 5\n2 1700000001.M1P1.host,S=28\n3 b:2,S\n";
    is_int(store_uidlist_parse(v1, sizeof(v1) - 1, &u), 0, "v1 parses");
    ok(u.validity == 1234 && u.next == 5 && store_uidlist_find(&u, "b", 1) == 3, "v1 facts");
    store_uidlist_free(&u);
    static const char *const bad[] = {
        "", "2 V1 N2\n", "3 N5\n1 :a\n", "3 V1\n", "3 V1 N3\n3 :a\n",    /* uid >= next */
        "3 V1 N9\n2 :a\n2 :b\n", "3 V1 N9\n5 :a\n4 :b\n",                /* not rising */
        "3 V1 N9\n1 :a\n2 :a:2,S\n", "3 V1 N9\n1 a\n", "3 V1 N9\nx :a\n",
        "3 V1 N9\n1 :\n", "3 V1 N9\n1 :a/b\n", "3 V1 N99999999999\n", "3 V0 N5\n",
        "1 1234\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = store_uidlist_parse(bad[i], strlen(bad[i]), &u);
        ok(r == -1 && u.n == 0 && u.v == NULL, "refused: bad uidlist %zu", i);
    }
}

/* ---- Dovecot writes, hato reads ------------------------------------------ */

static void dovecot_to_hato(void)
{
    char dir[PATH_MAX + 16], sent[PATH_MAX + 32], args[PATH_MAX + 64];
    struct drow d[8], s1[2];
    struct store_index *ix;

    snprintf(dir, sizeof(dir), "%s/dv", root);
    snprintf(sent, sizeof(sent), "%s/.Sent", dir);
    static const char *const subj[] = { "dv one", "dv two", "dv three", "dv four" };
    int saved = 1;
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof(name), "d%d", i);
        write_msg(name, subj[i], 200 + 300 * (size_t)i);
        snprintf(args, sizeof(args), "save -m INBOX <%s/d%d.eml", root, i);
        saved &= doveadm(dir, args) == 0;
    }
    ok(saved, "doveadm save: four messages");
    ok(doveadm(dir, "flags add '\\Seen' mailbox INBOX uid 1") == 0
       && doveadm(dir, "flags add '\\Flagged \\Answered' mailbox INBOX uid 2") == 0
       && doveadm(dir, "flags add '\\Draft' mailbox INBOX uid 3") == 0, "doveadm flags");
    ok(doveadm(dir, "expunge mailbox INBOX uid 4") == 0, "doveadm expunge uid 4 (next UID 5)");
    snprintf(args, sizeof(args), "mailbox create Sent && %s doveadm -c %s -o mail_location="
             "maildir:%s save -m Sent <%s/d0.eml", who(), conf, dir, root);
    ok(doveadm(dir, args) == 0, "a message in Sent");
    size_t n = fetch_rows(dir, "INBOX", d, 8);
    is_int(n, 3, "Dovecot lists three");
    is_int(fetch_rows(dir, "Sent", s1, 2), 1, "and one in Sent");
    struct store_uidlist u;
    snprintf(args, sizeof(args), "%s", dir);
    ok(store_uidlist_read(args, &u) == 0, "its dovecot-uidlist reads");

    ok(store_index_open(dir, &ix) == 0, "hato indexes Dovecot's Maildir");
    if (ix == NULL)
        return;
    is_int(ix->n, 3, "three messages");
    is_int(ix->uidvalidity, u.validity, "UIDVALIDITY kept from dovecot-uidlist");
    ok(ix->uidnext >= 5, "UIDNEXT %u: never a UID Dovecot gave (4 was expunged)", ix->uidnext);
    long long total = s1[0].size;
    for (size_t i = 0; i < n; i++) {
        const struct store_msg *m = by_name(ix, d[i].guid);
        ok(m != NULL, "Dovecot's uid %u (%s) is indexed", d[i].uid, d[i].guid);
        if (m == NULL)
            continue;
        is_int(m->uid, d[i].uid, "its UID kept");
        ok(m->flags == imap_flags(d[i].flags), "its flags (%s)", d[i].flags);
        is_int(m->size, d[i].size, "its size (the ,S= size Dovecot wrote)");
        ok(m->hdr_end > 0 && m->hdr_end < m->size, "header end found");
        total += m->size;
    }
    store_uidlist_free(&u);
    is_int(maildir_usage(dir), total, "usage: INBOX and Sent, each message once");
    /* hato changes a flag and expunges: Dovecot sees both */
    is_int(store_index_set_flags(ix, 1, STORE_F_SEEN | STORE_F_FLAGGED, 0), 0, "hato flags uid 1");
    is_int(store_index_expunge(ix, 2), 0, "hato expunges uid 2");
    store_index_close(ix);
    ok(give_away(dir) == 0, "files to the mail user");
    n = fetch_rows(dir, "INBOX", d, 8);
    is_int(n, 2, "Dovecot: two left");
    ok(n == 2 && d[0].uid == 1 && d[1].uid == 3, "uids 1 and 3, unchanged");
    ok(n >= 1 && imap_flags(d[0].flags) == (STORE_F_SEEN | STORE_F_FLAGGED),
       "Dovecot sees hato's flags on uid 1 (%s)", n ? d[0].flags : "");
}

/* ---- hato writes, Dovecot and mutt read ---------------------------------- */

static int deliver(const char *dir, const char *name)
{
    char p[PATH_MAX + 64];
    struct maildir_tmp t;
    struct maildir_err e;

    snprintf(p, sizeof(p), "%s/%s.eml", root, name);
    int fd = open(p, O_RDONLY);
    off_t len = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    int r = fd >= 0 && len > 0
            && maildir_begin(dir, "Return-Path: <a@example.test>\r\n", 31, fd, len, 0, &t, &e) == 0
            && maildir_finish(&t, &e) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    return r;
}

static void hato_to_dovecot(int with_dovecot, int with_mutt)
{
    char dir[PATH_MAX + 16], args[PATH_MAX + 64];
    struct drow d[8];
    struct store_index *ix;

    snprintf(dir, sizeof(dir), "%s/hb", root);
    ok(store_layout_ensure(dir) == 0, "hato's mailbox layout");
    static const char *const subj[] = { "hb one", "hb two", "hb three" };
    int all = 1;
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "h%d", i);
        write_msg(name, subj[i], 100 + 500 * (size_t)i);
        all &= deliver(dir, name) == 0;
    }
    ok(all, "three delivered by hato");
    ok(store_index_open(dir, &ix) == 0 && ix->n == 3, "hato's index: three");
    if (ix == NULL)
        return;
    is_int(store_index_set_flags(ix, 1, STORE_F_SEEN, 0), 0, "uid 1 seen");
    is_int(store_index_set_flags(ix, 2, STORE_F_FLAGGED | STORE_F_REPLIED, 0), 0,
           "uid 2 flagged, answered");
    uint32_t validity = ix->uidvalidity, next = ix->uidnext;
    char names[3][NAME_MAX + 1];
    int64_t sizes[3];
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof(names[i]), "%s", ix->msgs[i].name);
        sizes[i] = ix->msgs[i].size;
    }
    store_index_close(ix);
    ok(give_away(dir) == 0, "files to the mail user");

    if (!with_dovecot) {
        skip("doveadm not installed: hato's Maildir not read by Dovecot");
    } else {
        size_t n = fetch_rows(dir, "INBOX", d, 8);
        is_int(n, 3, "Dovecot lists hato's three");
        for (size_t i = 0; i < n && i < 3; i++) {
            ok(strcmp(d[i].guid, names[i]) == 0, "Dovecot's order is hato's (%zu)", i);
            ok(d[i].size == sizes[i], "size %zu: %lld", i, d[i].size);
        }
        ok(n == 3 && imap_flags(d[0].flags) == STORE_F_SEEN
           && imap_flags(d[1].flags) == (STORE_F_FLAGGED | STORE_F_REPLIED)
           && imap_flags(d[2].flags) == 0, "Dovecot reads hato's flags");
        ok(doveadm(dir, "search mailbox INBOX FLAGGED") == 0 && strstr(out(), "\n") != NULL
           && strchr(strchr(out(), '\n') + 1, '\n') == NULL, "doveadm search FLAGGED: one");
        ok(doveadm(dir, "mailbox list -s") == 0, "doveadm mailbox list -s");
        const char *o = out();
        ok(strstr(o, "Sent\n") && strstr(o, "Drafts\n") && strstr(o, "Trash\n")
           && strstr(o, "Junk\n"), "our subscriptions file read by Dovecot (list -s)");
        /* Dovecot changes things: hato's sync follows, UIDs unchanged */
        ok(doveadm(dir, "flags add '\\Seen' mailbox INBOX FLAGGED") == 0, "Dovecot: flagged → seen");
        ok(doveadm(dir, "expunge mailbox INBOX SUBJECT three") == 0, "Dovecot expunges 'three'");
        snprintf(args, sizeof(args), "save -m INBOX <%s/h0.eml", root);
        ok(doveadm(dir, args) == 0, "Dovecot saves one");
        ok(store_index_open(dir, &ix) == 0 && store_index_sync(ix) == 0, "hato syncs");
        if (ix) {
            is_int(ix->uidvalidity, validity, "UIDVALIDITY unchanged");
            is_int(ix->n, 3, "two of ours and Dovecot's new one");
            const struct store_msg *m2 = by_uid(ix, 2), *mnew = by_uid(ix, next);
            ok(by_uid(ix, 1) && by_uid(ix, 3) == NULL, "uid 1 kept, uid 3 expunged");
            ok(m2 && m2->flags == (STORE_F_FLAGGED | STORE_F_REPLIED | STORE_F_SEEN),
               "uid 2: Dovecot's \\Seen picked up");
            ok(mnew != NULL, "Dovecot's message got UID %u, the next", next);
            store_index_close(ix);
        }
        ok(give_away(dir) == 0, "files to the mail user");
    }

    if (!with_mutt) {
        skip("mutt not installed");
        return;
    }
    char mbox[PATH_MAX + 16];
    snprintf(mbox, sizeof(mbox), "%s/flagged.mbox", root);
    /* mutt needs a screen to tag on: a pty from script(1), sized; an
     * existing $folder, or its "Create ~/Mail?" prompt eats the keys */
    int r = run("cd %s && TERM=vt100 timeout 60 script -qec \"stty rows 50 cols 132; "
                "%s mutt -n -F /dev/null -f %s "
                "-e 'set folder=%s mbox_type=mbox confirmappend=no confirmcreate=no quit=yes "
                "move=no mark_old=no wait_key=no' -e 'push \\\"<tag-pattern>~F<enter><tag-prefix>"
                "<copy-message>%s<enter><untag-pattern>.<enter><tag-pattern>~s one<enter>"
                "<tag-prefix><flag-message><sync-mailbox><quit>\\\"'\" /dev/null "
                ">%s/mutt.out 2>&1 </dev/null", root, who(), dir, root, mbox, root);
    is_int(r, 0, "mutt ran in batch mode");
    const char *box = slurp(mbox);
    ok(strstr(box, "Subject: hb two") && !strstr(box, "Subject: hb one"),
       "mutt found the flagged message by hato's flags and read it");
    ok(store_index_open(dir, &ix) == 0 && store_index_sync(ix) == 0, "hato syncs after mutt");
    if (ix) {
        const struct store_msg *m1 = by_uid(ix, 1);
        ok(m1 && (m1->flags & STORE_F_FLAGGED), "mutt's flag on 'one' seen by hato, same UID");
        is_int(ix->uidvalidity, validity, "UIDVALIDITY unchanged after mutt");
        store_index_close(ix);
    }
}

int main(void)
{
    int dv = have("doveadm"), mutt = have("mutt") && have("script");

    test_uidlist_parse();
    snprintf(root, sizeof(root), "/tmp/test_interop.XXXXXX");
    if (mkdtemp(root) == NULL || chmod(root, 0755) != 0)
        return 2;
    as_nobody = geteuid() == 0;
    if (as_nobody && getpwnam("nobody") == NULL) {
        skip("running as root without a 'nobody' user");
        dv = mutt = 0;
    }
    snprintf(conf, sizeof(conf), "%s/dovecot.conf", root);
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return 2;
    fprintf(f, "protocols =\nbase_dir = %s/run\nstate_dir = %s/state\nlog_path = %s/dovecot.log\n"
            "ssl = no\nmail_location = maildir:%s/dv\n", root, root, root, root);
    if (fclose(f) != 0 || chmod(conf, 0644) != 0 || give_away(root) != 0)
        return 2;
    if (dv)
        dovecot_to_hato();
    else
        skip("doveadm not installed (Debian dovecot-core): Dovecot's Maildir not read");
    hato_to_dovecot(dv, mutt);
    if (tap_fail == 0)
        (void)run("rm -rf %s", root);
    else
        printf("# kept %s\n", root);
    return tap_done();
}
