/*
 * t/unit/test_sender_login.c — sender_login_maps (mta/sender_login.h):
 * parsing (comments, continuation lines, commas and spaces, case), the
 * errors (key without '@', no login, a key twice, a stray continuation),
 * the lookup order (address, without extension, @domain; the first key
 * decides), and the ownership rule over a real router config: the login,
 * plus-addresses, single-recipient aliases, shared aliases, remote copies,
 * grants, other people's addresses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/users.h"
#include "mta/aliases.h"
#include "mta/router.h"
#include "mta/sender_login.h"
#include "t/unit/tap.h"

static char root[256];

static void write_str(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(s, f) == EOF || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static struct sender_logins *load_text(const char *text, char *err, size_t len)
{
    char path[300];
    snprintf(path, sizeof path, "%s/map", root);
    write_str(path, text);
    return sender_logins_load(path, err, len);
}

static void test_parse(void)
{
    char err[512];
    struct sender_logins *t = load_text(
        "# comment\n"
        "\n"
        "Info@Example.COM  Bob@example.com, carol@example.com\n"
        "sales@example.com alice@example.com,\n"
        "   dave@example.com\teve@example.com\n"
        "  # a comment does not continue\n"
        "@partner.test bob@example.com\n"
        "boss@example.com alice@example.com\n"
        "@example.com alice@example.com\n", err, sizeof err);
    ok(t != NULL, "map loads: %s", t ? "" : err);
    is_int(sender_logins_count(t), 5, "five keys");
    ok(sender_logins_granted(t, "bob@example.com", "info@example.com", "+"), "exact key, any case");
    ok(sender_logins_granted(t, "CAROL@example.com", "INFO@example.com", "+"), "second login");
    ok(sender_logins_granted(t, "eve@example.com", "sales@example.com", "+"),
       "a continuation line adds logins");
    ok(sender_logins_granted(t, "bob@example.com", "info+x@example.com", "+"),
       "extension stripped");
    ok(!sender_logins_granted(t, "bob@example.com", "info+x@example.com", ""),
       "no delimiter: no stripping");
    ok(sender_logins_granted(t, "bob@example.com", "anyone@partner.test", "+"), "@domain key");
    ok(!sender_logins_granted(t, "bob@example.com", "boss@example.com", "+"),
       "the first key found decides (@example.com is not tried)");
    ok(sender_logins_granted(t, "alice@example.com", "other@example.com", "+"),
       "@domain after a missing address key");
    ok(!sender_logins_granted(t, "mallory@example.com", "info@example.com", "+"), "not listed");
    ok(!sender_logins_granted(NULL, "bob@example.com", "info@example.com", "+"), "no map");
    sender_logins_free(t);

    static const struct { const char *text, *why; } bad[] = {
        { "info bob@example.com\n", "map:1: key must be local@domain or @domain" },
        { "# c\ninfo@example.com\n", "map:2: no login" },
        { "a@example.com x@y\nA@Example.com z@y\n", "a@example.com: key given twice" },
        { "  x@y z@y\n", "map:1: continuation line without an entry" },
        { "info@ bob@example.com\n", "map:1: key must be local@domain or @domain" },
        { "a@b@c bob@example.com\n", "map:1: key must be local@domain or @domain" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = load_text(bad[i].text, err, sizeof err);
        ok(t == NULL && strstr(err, bad[i].why), "refused: %s (%s)", bad[i].why, t ? "loaded" : err);
        sender_logins_free(t);
    }
    char path[300];
    snprintf(path, sizeof path, "%s/missing", root);
    t = sender_logins_load(path, err, sizeof err);
    ok(t && sender_logins_count(t) == 0, "a missing file is an empty map");
    sender_logins_free(t);
}

static void test_owned(void)
{
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/users", root);
    write_str(path, "bob@example.com *\nalice@example.com *\n");
    struct usertab *u = users_load(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/aliases", root);
    write_str(path, "b.smith: bob\nteam: bob, alice\nfwd: bob, x@remote.test\n"
                    "away: x@remote.test\nchain: b.smith\n");
    struct aliastab *a = aliases_load(path, err, sizeof err);
    struct sender_logins *t = load_text("team@example.com bob@example.com\n", err, sizeof err);
    ok(u && a && t, "tables load");
    char *domains[] = { "example.com" };
    struct router_config rc = { domains, 1, "+", u, a, NULL, 0 };
    static const struct { const char *sender; int want; const char *what; } c[] = {
        { "bob@example.com", 1, "the login" },
        { "Bob@EXAMPLE.com", 1, "the login in another case" },
        { "bob+tag@example.com", 1, "plus-address" },
        { "b.smith@example.com", 1, "alias to the login" },
        { "chain@example.com", 1, "alias of an alias" },
        { "fwd@example.com", 1, "alias with a remote copy" },
        { "team@example.com", 1, "shared alias granted by the map" },
        { "alice@example.com", 0, "someone else" },
        { "away@example.com", 0, "alias that only forwards elsewhere" },
        { "nobody@example.com", 0, "unknown local address" },
        { "bob@remote.test", 0, "remote address" },
        { "", 0, "empty" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        is_int(sender_owned(&rc, t, "bob@example.com", c[i].sender), c[i].want, c[i].what);
    is_int(sender_owned(&rc, NULL, "bob@example.com", "team@example.com"), 0,
           "shared alias without a grant: owned by none");
    is_int(sender_owned(&rc, NULL, "alice@example.com", "team@example.com"), 0,
           "... not by its other recipient either");
    sender_logins_free(t);
    aliases_free(a);
    users_free(u);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/test_sender_login.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    test_parse();
    test_owned();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return tap_done();
}
