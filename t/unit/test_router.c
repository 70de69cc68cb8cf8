/*
 * t/unit/test_router.c — mta/router.c: local/remote, plus addressing,
 * bare and domain-specific aliases, nesting, loops, self-aliases, dedup,
 * limits, unknown users and local parts that try to leave mail/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/users.h"
#include "mta/aliases.h"
#include "mta/router.h"
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

static const char *const users_text =
    "bob@example.com x quota=10M\n"
    "alice@example.com x\n"
    "root@example.com x\n"
    "root@example.org x\n"
    "postmaster@example.org x\n"
    "carol@example.org x quota=1K\n"
    "dave@example.com x\n"
    "frank@example.com x\n"
    "bob+special@example.com x\n"
    ".hidden@example.com x\n"
    "a/b@example.com x\n"
    "..@example.com x\n";

static const char *const aliases_text =
    "postmaster: root\n"
    "info@example.com: alice\n"
    "info: carol\n"
    "team@example.com: alice, bob, friend@Remote.NET\n"
    "nest1: nest2\n"
    "nest2: nest3@example.com\n"
    "nest3: alice\n"
    "loop1: loop2\n"
    "loop2: loop3\n"
    "loop3: loop1\n"
    "selfloop: selfloop2\n"
    "selfloop2: selfloop\n"
    "dave: dave, archive@backup.net\n"
    "dup@example.com: alice, ALICE@example.com, alice@EXAMPLE.COM, team, friend@remote.net\n"
    "diamond@example.com: left, right\n"
    "left: bottom\n"
    "right: bottom\n"
    "bottom: alice\n"
    "frank: frank, frank+copy\n"
    "crossdomain@example.com: carol@example.org\n"
    "broken@example.com: alice, nosuchuser\n"
    "escape@example.com: ../root\n"
    "upper@example.com: Alice\n";

/* Expand and describe: "L:addr:mailbox:quota" / "R:addr" joined by ' ',
 * or the result name. */
static const char *route(const struct router_config *rc, const char *address)
{
    static char buf[8192];
    static const char *const names[] = { "OK", "UNKNOWN", "LOOP", "TOO_MANY", "ERROR" };
    struct route_target *t;
    size_t n, i, o = 0;
    enum route_result r = router_expand(rc, address, &t, &n);

    if (r != ROUTE_OK) {
        ok(t == NULL && n == 0, "%s: no targets on failure", address);
        return names[r];
    }
    buf[0] = '\0';
    for (i = 0; i < n && o < sizeof(buf) - 600; i++) {
        if (t[i].kind == ROUTE_LOCAL)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%sL:%s:%s:%lld", i ? " " : "",
                                  t[i].addr, t[i].mailbox, t[i].quota);
        else
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%sR:%s", i ? " " : "",
                                  t[i].addr);
    }
    router_free_targets(t, n);
    return buf;
}

static struct usertab *users;
static struct aliastab *aliases;

static void setup(void)
{
    char path[512], err[512];

    snprintf(path, sizeof(path), "%s/users", root);
    write_str(path, users_text);
    users = users_load(path, err, sizeof(err));
    snprintf(path, sizeof(path), "%s/aliases", root);
    write_str(path, aliases_text);
    aliases = aliases_load(path, err, sizeof(err));
    if (users == NULL || aliases == NULL) {
        fprintf(stderr, "setup: %s\n", err);
        exit(2);
    }
}

static void test_basic(const struct router_config *rc)
{
    ok(router_is_local(rc, "example.com"), "example.com is local");
    ok(router_is_local(rc, "EXAMPLE.Org"), "local domains compare in any case");
    ok(!router_is_local(rc, "example.net"), "example.net is not local");
    ok(!router_is_local(rc, ""), "empty domain is not local");
    ok(!router_is_local(rc, NULL), "NULL domain is not local");

    is_str(route(rc, "Friend@Remote.NET"), "R:Friend@Remote.NET", "remote: address as given");
    is_str(route(rc, "a@b@remote.net"), "R:a@b@remote.net", "split at the last '@'");
    is_str(route(rc, "bob@example.com"), "L:bob@example.com:example.com/bob:10485760",
           "user: mailbox and quota");
    is_str(route(rc, "Alice@EXAMPLE.com"), "L:Alice@example.com:example.com/alice:0",
           "case: local kept in addr, domain and mailbox lower-cased");
    is_str(route(rc, "alice"), "L:alice@example.com:example.com/alice:0",
           "no domain: the default (first) local domain");
    is_str(route(rc, "carol@example.org"), "L:carol@example.org:example.org/carol:1024",
           "second local domain");
    is_str(route(rc, "nobody@example.com"), "UNKNOWN", "unknown user");
    is_str(route(rc, "carol@example.com"), "UNKNOWN", "user of another domain is unknown");
    is_str(route(rc, "nobody+x@example.com"), "UNKNOWN", "unknown user with extension");
    is_str(route(rc, ""), "UNKNOWN", "empty address");
    is_str(route(rc, "bob@"), "UNKNOWN", "empty domain");
    is_str(route(rc, "@remote.net"), "UNKNOWN", "empty remote local part");
}

static void test_plus(const struct router_config *rc)
{
    is_str(route(rc, "alice+tag@Example.COM"), "L:alice+tag@example.com:example.com/alice:0",
           "plus: mailbox without extension, addr with it");
    is_str(route(rc, "alice+a+b@example.com"), "L:alice+a+b@example.com:example.com/alice:0",
           "plus: first delimiter splits");
    is_str(route(rc, "bob+special@example.com"),
           "L:bob+special@example.com:example.com/bob+special:0",
           "a user whose name has the delimiter wins over stripping");
    is_str(route(rc, "+alice@example.com"), "UNKNOWN", "empty base is not stripped");
    is_str(route(rc, "team+x@example.com"),
           "L:alice@example.com:example.com/alice:0 L:bob@example.com:example.com/bob:10485760 "
           "R:friend@Remote.NET",
           "alias on the stripped name: targets without extension");
}

static void test_aliases(const struct router_config *rc)
{
    is_str(route(rc, "postmaster@example.com"), "L:root@example.com:example.com/root:0",
           "bare alias in first domain, bare target in that domain");
    is_str(route(rc, "PostMaster@Example.ORG"), "L:root@example.org:example.org/root:0",
           "bare alias applies to every local domain");
    is_str(route(rc, "info@example.com"), "L:alice@example.com:example.com/alice:0",
           "domain-specific alias beats the bare one");
    is_str(route(rc, "info@example.org"), "L:carol@example.org:example.org/carol:1024",
           "bare alias elsewhere");
    is_str(route(rc, "team@example.com"),
           "L:alice@example.com:example.com/alice:0 L:bob@example.com:example.com/bob:10485760 "
           "R:friend@Remote.NET",
           "list with local and remote targets");
    is_str(route(rc, "team@example.org"), "UNKNOWN", "domain-specific alias is not bare");
    is_str(route(rc, "nest1@example.com"), "L:alice@example.com:example.com/alice:0", "nested aliases");
    is_str(route(rc, "loop1@example.com"), "LOOP", "three-step alias loop");
    is_str(route(rc, "selfloop@example.com"), "LOOP", "two-step alias loop");
    is_str(route(rc, "dave@example.com"),
           "L:dave@example.com:example.com/dave:0 R:archive@backup.net",
           "self alias (dave: dave, ...) delivers to the user");
    is_str(route(rc, "frank+x@example.com"),
           "L:frank@example.com:example.com/frank:0 L:frank+copy@example.com:example.com/frank:0",
           "self alias with extension target (frank: frank, frank+copy)");
    is_str(route(rc, "dup@example.com"),
           "L:alice@example.com:example.com/alice:0 L:bob@example.com:example.com/bob:10485760 "
           "R:friend@Remote.NET",
           "duplicates removed (case, nested list, remote domain case)");
    is_str(route(rc, "diamond@example.com"), "L:alice@example.com:example.com/alice:0",
           "the same alias reached twice is not a loop");
    is_str(route(rc, "crossdomain@example.com"), "L:carol@example.org:example.org/carol:1024",
           "alias into another local domain");
    is_str(route(rc, "broken@example.com"), "UNKNOWN", "an unknown target makes the recipient unknown");
    is_str(route(rc, "upper@example.com"), "L:Alice@example.com:example.com/alice:0",
           "target case kept in addr, lower in mailbox");
}

static void test_escape(const struct router_config *rc)
{
    is_str(route(rc, ".hidden@example.com"), "UNKNOWN", "leading dot refused even if a user exists");
    is_str(route(rc, "a/b@example.com"), "UNKNOWN", "slash refused even if a user exists");
    is_str(route(rc, "..@example.com"), "UNKNOWN", "'..' refused even if a user exists");
    is_str(route(rc, "../root@example.com"), "UNKNOWN", "../ refused");
    is_str(route(rc, "@example.com"), "UNKNOWN", "empty local part refused");
    is_str(route(rc, "escape@example.com"), "UNKNOWN", "alias target ../root refused");
    is_str(route(rc, "alice+/x@example.com"), "UNKNOWN", "slash in the extension refused");
}

/* Aliases generated into a file: depth and fan-out limits. */
static void test_limits(const struct router_config *base)
{
    struct router_config rc = *base;
    struct aliastab *t;
    char path[512], err[512];
    FILE *f;
    int i, j;

    snprintf(path, sizeof(path), "%s/aliases-limits", root);
    f = fopen(path, "w");
    /* ROUTER_MAX_DEPTH + 1 nested aliases, then exactly ROUTER_MAX_DEPTH */
    for (i = 0; i < ROUTER_MAX_DEPTH; i++)
        fprintf(f, "deep%d: deep%d\n", i, i + 1);
    fprintf(f, "deep%d: alice\n", ROUTER_MAX_DEPTH);
    for (i = 0; i < ROUTER_MAX_DEPTH - 1; i++)
        fprintf(f, "ok%d: ok%d\n", i, i + 1);
    fprintf(f, "ok%d: alice\n", ROUTER_MAX_DEPTH - 1);
    fprintf(f, "big:");
    for (i = 0; i <= ROUTER_MAX_TARGETS; i++)
        fprintf(f, "%s r%d@remote.net", i ? "," : "", i);
    fprintf(f, "\nexact:");
    for (i = 0; i < ROUTER_MAX_TARGETS; i++)
        fprintf(f, "%s r%d@remote.net", i ? "," : "", i);
    /* fan-out bomb: each level lists the next level 10 times */
    for (i = 0; i < 15; i++) {
        fprintf(f, "\nbomb%d:", i);
        for (j = 0; j < 10; j++)
            fprintf(f, "%s bomb%d", j ? "," : "", i + 1);
    }
    fprintf(f, "\nbomb15: alice\n");
    fclose(f);
    t = aliases_load(path, err, sizeof(err));
    ok(t != NULL, "limits aliases load (%s)", t ? "" : err);
    if (t == NULL)
        return;
    rc.aliases = t;
    is_str(route(&rc, "deep0@example.com"), "LOOP", "nesting deeper than ROUTER_MAX_DEPTH");
    is_str(route(&rc, "ok0@example.com"), "L:alice@example.com:example.com/alice:0",
           "nesting just under the limit");
    is_str(route(&rc, "big@example.com"), "TOO_MANY", "more than ROUTER_MAX_TARGETS");
    ok(strncmp(route(&rc, "exact@example.com"), "R:r0@remote.net R:r1@", 21) == 0,
       "exactly ROUTER_MAX_TARGETS is fine");
    is_str(route(&rc, "bomb0@example.com"), "L:alice@example.com:example.com/alice:0",
           "exponential fan-out collapses (each alias expanded once)");
    aliases_free(t);
}

/* postmaster without an alias: its user, else postmaster_recipient, once;
 * abuse has no fallback. */
static void test_postmaster(const struct router_config *base)
{
    struct router_config rc = *base;
    struct aliastab *noalias;
    char path[512], err[512];

    snprintf(path, sizeof(path), "%s/aliases-pm", root);
    write_str(path, "abuse@example.org: carol\n");
    noalias = aliases_load(path, err, sizeof(err));
    ok(noalias != NULL, "alias table without postmaster loads");
    rc.aliases = noalias;
    rc.postmaster = NULL;
    is_str(route(&rc, "postmaster@example.com"), "UNKNOWN",
           "no alias, no user, no postmaster_recipient: unknown");
    rc.postmaster = "alice@example.com";
    is_str(route(&rc, "postmaster@example.com"), "L:alice@example.com:example.com/alice:0",
           "no alias: postmaster_recipient");
    is_str(route(&rc, "POSTMASTER@EXAMPLE.COM"), "L:alice@example.com:example.com/alice:0",
           "any case");
    is_str(route(&rc, "PostMaster@example.org"),
           "L:PostMaster@example.org:example.org/postmaster:0",
           "a user postmaster@ beats postmaster_recipient");
    is_str(route(&rc, "postmaster"), "L:alice@example.com:example.com/alice:0",
           "no domain: the default domain");
    is_str(route(&rc, "postmaster+x@example.com"), "UNKNOWN", "an extension is not postmaster");
    rc.postmaster = "";
    is_str(route(&rc, "postmaster@example.com"), "UNKNOWN", "empty postmaster_recipient: none");
    rc.postmaster = "Postmaster@example.com";
    is_str(route(&rc, "postmaster@example.com"), "UNKNOWN",
           "postmaster_recipient back to postmaster: unknown, no recursion");
    rc.postmaster = "info";
    is_str(route(&rc, "postmaster@example.com"), "UNKNOWN",
           "postmaster_recipient that does not route: unknown");
    rc.postmaster = "boss@remote.net";
    is_str(route(&rc, "postmaster@example.com"), "R:boss@remote.net",
           "postmaster_recipient may be remote");
    rc.postmaster = "root@example.org";
    is_str(route(&rc, "postmaster@example.com"), "L:root@example.org:example.org/root:0",
           "postmaster_recipient in another local domain");
    rc.aliases = base->aliases;
    is_str(route(&rc, "postmaster@example.com"), "L:root@example.com:example.com/root:0",
           "an alias beats postmaster_recipient");
    snprintf(path, sizeof(path), "%s/aliases-pm2", root);
    write_str(path, "postmaster: alice, nobody\npostmaster@example.org: frank\n");
    rc.aliases = aliases_load(path, err, sizeof(err));
    ok(rc.aliases != NULL, "alias table with a broken postmaster loads");
    rc.postmaster = "bob@example.com";
    is_str(route(&rc, "postmaster@example.com"), "L:bob@example.com:example.com/bob:10485760",
           "an alias naming someone unknown: postmaster_recipient, none of the alias's targets");
    is_str(route(&rc, "postmaster@example.org"),
           "L:postmaster@example.org:example.org/postmaster:0",
           "an alias naming someone unknown in its domain: the postmaster user");
    aliases_free((struct aliastab *)rc.aliases);
    rc.aliases = noalias;
    is_str(route(&rc, "abuse@example.org"), "L:carol@example.org:example.org/carol:1024",
           "abuse with an alias");
    is_str(route(&rc, "abuse@example.com"), "UNKNOWN", "abuse without an alias: no default");
    aliases_free(noalias);
}

static void test_config(const struct router_config *base)
{
    struct router_config rc = *base;
    char *none[1];

    rc.recipient_delimiter = "";
    is_str(route(&rc, "alice+tag@example.com"), "UNKNOWN", "no delimiter: no stripping");
    rc.recipient_delimiter = NULL;
    is_str(route(&rc, "alice+tag@example.com"), "UNKNOWN", "NULL delimiter: no stripping");
    rc.recipient_delimiter = "-+";
    is_str(route(&rc, "alice-tag@example.com"), "L:alice-tag@example.com:example.com/alice:0",
           "any of several delimiter characters");
    rc.aliases = NULL;
    is_str(route(&rc, "postmaster@example.com"), "UNKNOWN", "no alias table");
    is_str(route(&rc, "alice@example.com"), "L:alice@example.com:example.com/alice:0",
           "users without an alias table");
    rc.users = NULL;
    is_str(route(&rc, "alice@example.com"), "UNKNOWN", "no user table");
    rc.local_domains = none;
    rc.nlocal_domains = 0;
    is_str(route(&rc, "alice@example.com"), "R:alice@example.com", "no local domains: all remote");
    is_str(route(&rc, "alice"), "UNKNOWN", "no domain and no default domain");
}

int main(void)
{
    char *domains[] = { "example.com", "example.org" };
    struct router_config rc = { 0 };
    char cmd[300];

    snprintf(root, sizeof(root), "/tmp/hato-test-router-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    setup();
    rc.local_domains = domains;
    rc.nlocal_domains = 2;
    rc.recipient_delimiter = "+";
    rc.users = users;
    rc.aliases = aliases;
    rc.postmaster = NULL;
    test_basic(&rc);
    test_plus(&rc);
    test_aliases(&rc);
    test_escape(&rc);
    test_limits(&rc);
    test_postmaster(&rc);
    test_config(&rc);
    /* default_quota: users without quota= only */
    rc.default_quota = 5000;
    is_str(route(&rc, "alice@example.com"), "L:alice@example.com:example.com/alice:5000",
           "default_quota for a user without quota=");
    is_str(route(&rc, "bob@example.com"), "L:bob@example.com:example.com/bob:10485760",
           "a user's quota= wins over default_quota");
    rc.default_quota = 0;
    users_free(users);
    aliases_free(aliases);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return tap_done();
}
