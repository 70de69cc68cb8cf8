/*
 * t/unit/test_conf.c — lib/conf.c: every type, defaults (also expanded),
 * continuation lines, comments, last-wins, `$name` / `${name}` expansion
 * in any order, `$$`, cycles and the depth limit, unknown keys, and the
 * exact FILE:LINE error texts; plus the standalone typed parsers.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/conf.h"
#include "tap.h"

static char dir[] = "/tmp/test_conf.XXXXXX";
static char path[PATH_MAX];
static char err[512];

static const struct conf_def defs[] = {
    { "myhostname", CT_STR, "host.example", NULL },
    { "mydomain", CT_STR, "example", NULL },
    { "smtpd_banner", CT_STR, "$myhostname ESMTP", NULL },
    { "local_domains", CT_LIST, "$mydomain, localhost.$mydomain", NULL },
    { "message_size_limit", CT_SIZE, "10M", NULL },
    { "maximal_queue_lifetime", CT_TIME, "5d", NULL },
    { "smtpd_recipient_limit", CT_INT, "1000", NULL },
    { "queue_group_commit", CT_BOOL, "yes", NULL },
    { "smtp_tls", CT_CHOICE, "may", "none,may,encrypt" },
    { "run_user", CT_STR, NULL, NULL },
    { "relay_clients", CT_LIST, NULL, NULL },
    { "delay_warning_time", CT_TIME, NULL, NULL },
    { "a", CT_STR, NULL, NULL },
    { "b", CT_STR, NULL, NULL },
    { "c", CT_STR, NULL, NULL },
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* Load `text`; returns the conf or NULL (err holds the message). */
static struct conf *load(const char *text)
{
    write_file(text);
    err[0] = '\0';
    return conf_load(path, defs, NDEFS, err, sizeof(err));
}

/* Expect failure with exactly "PATH" + suffix. */
static void load_fails(const char *text, const char *suffix, const char *name)
{
    char want[PATH_MAX + 512];
    struct conf *c = load(text);

    ok(c == NULL, "%s: fails", name);
    conf_free(c);
    snprintf(want, sizeof(want), "%s%s", path, suffix);
    is_str(err, want, name);
}

static const char *str(const struct conf *c, const char *name)
{
    const struct conf_value *v = conf_get(c, name);
    return v ? v->str : NULL;
}

static long long num(const struct conf *c, const char *name)
{
    const struct conf_value *v = conf_get(c, name);
    return v ? v->num : -1;
}

static void test_defaults(void)
{
    struct conf *c = conf_load(NULL, defs, NDEFS, err, sizeof(err));
    const struct conf_value *v;

    ok(c != NULL, "defaults only");
    if (c == NULL)
        return;
    is_str(str(c, "smtpd_banner"), "host.example ESMTP", "default expanded");
    v = conf_get(c, "local_domains");
    is_int(v->nlist, 2, "default list count");
    is_str(v->list[0], "example", "default list item 0");
    is_str(v->list[1], "localhost.example", "default list item 1");
    is_int(v->line, 0, "default line 0");
    is_int(num(c, "message_size_limit"), 10LL * 1024 * 1024, "default size");
    is_int(num(c, "maximal_queue_lifetime"), 5 * 86400, "default time");
    is_int(num(c, "smtpd_recipient_limit"), 1000, "default int");
    is_int(num(c, "queue_group_commit"), 1, "default bool");
    is_int(num(c, "smtp_tls"), 1, "default choice");
    is_str(str(c, "run_user"), "", "NULL default is empty string");
    is_int(conf_get(c, "relay_clients")->nlist, 0, "empty list");
    is_int(num(c, "delay_warning_time"), 0, "empty typed default is 0");
    ok(conf_get(c, "nonexistent") == NULL, "unknown name gives NULL");
    is_str(conf_path(c), "", "no path");
    conf_free(c);
}

static void test_types(void)
{
    struct conf *c = load(
        "# a comment\n"
        "\n"
        "   # an indented comment\n"
        "myhostname = mx.example.org\n"
        "message_size_limit=512k\n"
        "maximal_queue_lifetime = 4h\n"
        "smtpd_recipient_limit = 50\n"
        "queue_group_commit = Off\n"
        "smtp_tls = ENCRYPT\n"
        "relay_clients = 127.0.0.0/8,::1  192.168.0.21-24,,\n"
        "run_user =\t hato \t\n"
        "delay_warning_time = 300\n");
    const struct conf_value *v;

    ok(c != NULL, "types load: %s", err);
    if (c == NULL)
        return;
    is_str(conf_path(c), path, "conf_path");
    is_str(str(c, "myhostname"), "mx.example.org", "str");
    is_int(conf_get(c, "myhostname")->line, 4, "line number");
    is_str(str(c, "smtpd_banner"), "mx.example.org ESMTP", "default uses configured value");
    is_int(num(c, "message_size_limit"), 512 * 1024, "size k");
    is_int(num(c, "maximal_queue_lifetime"), 4 * 3600, "time h");
    is_int(num(c, "smtpd_recipient_limit"), 50, "int");
    is_int(num(c, "queue_group_commit"), 0, "bool Off");
    is_int(num(c, "smtp_tls"), 2, "choice case-insensitive index");
    is_str(str(c, "smtp_tls"), "ENCRYPT", "choice str as written");
    v = conf_get(c, "relay_clients");
    is_int(v->nlist, 3, "list items, empties dropped");
    is_str(v->list[0], "127.0.0.0/8", "list 0");
    is_str(v->list[1], "::1", "list 1");
    is_str(v->list[2], "192.168.0.21-24", "list 2");
    is_str(v->str, "127.0.0.0/8,::1  192.168.0.21-24,,", "list str");
    is_str(str(c, "run_user"), "hato", "white space trimmed");
    is_int(num(c, "delay_warning_time"), 300, "bare time is seconds");
    conf_free(c);
}

static void test_continuation(void)
{
    struct conf *c = load(
        "local_domains = a.example,\n"
        "    b.example\n"
        "# comment between\n"
        "\n"
        "\tc.example\n"
        "smtpd_banner =\n"
        "  $myhostname\n"
        "  says hi\n"
        "a = x=y # not a comment\n");
    const struct conf_value *v;

    ok(c != NULL, "continuation load: %s", err);
    if (c == NULL)
        return;
    v = conf_get(c, "local_domains");
    is_str(v->str, "a.example, b.example c.example", "joined with one space");
    is_int(v->nlist, 3, "continued list");
    is_str(v->list[2], "c.example", "continued list item");
    is_str(str(c, "smtpd_banner"), "host.example says hi", "empty first line continued");
    is_str(str(c, "a"), "x=y # not a comment", "'#' inside a value is text");
    conf_free(c);
    load_fails("  leading = 1\n", ":1: continuation line without a parameter",
               "continuation first");
}

static void test_expansion(void)
{
    struct conf *c = load(
        "a = [$b] [${c}] [$(mydomain)] $$literal $$$b\n"
        "b = B$c\n"
        "c = C\n"
        "mydomain = Example.NET\n"
        "myhostname = mail.$mydomain\n");

    ok(c != NULL, "expansion load: %s", err);
    if (c == NULL)
        return;
    is_str(str(c, "a"), "[BC] [C] [Example.NET] $literal $BC", "forward refs, ${}, $(), $$");
    is_str(str(c, "smtpd_banner"), "mail.Example.NET ESMTP", "default through two levels");
    is_str(conf_get(c, "local_domains")->list[1], "localhost.Example.NET", "list default");
    conf_free(c);

    c = load("a = $run_user-$smtp_tls\n");
    ok(c != NULL, "refs to defaults");
    if (c)
        is_str(str(c, "a"), "-may", "default values referenced");
    conf_free(c);

    load_fails("b = x\na = $nosuch\n", ":2: unknown parameter '$nosuch' in value of 'a'",
               "unknown reference");
    load_fails("a = ${nosuch}\n", ":1: unknown parameter '$nosuch' in value of 'a'",
               "unknown ${reference}");
    load_fails("a = $a\n", ":1: expansion loop: '$a' in value of 'a' refers back to itself",
               "self reference");
    load_fails("a = $b\nb = $c\nc = x $a\n",
               ":3: expansion loop: '$a' in value of 'c' refers back to itself", "cycle of 3");
    load_fails("a = cost $\n", ":1: bad '$' in value of 'a' (write $$ for a literal $)",
               "lone $");
    load_fails("a = ${b\n", ":1: bad '$' in value of 'a' (write $$ for a literal $)",
               "unclosed ${");
    load_fails("a = ${}\n", ":1: bad '$' in value of 'a' (write $$ for a literal $)",
               "empty ${}");
}

/* A chain k0 = $k1, k1 = $k2, ... of `n` references. */
static int chain(int n)
{
    struct conf_def d[32];
    char names[32][8], text[1024];
    size_t len = 0;
    struct conf *c;
    int i, rc;

    for (i = 0; i <= n; i++) {
        snprintf(names[i], sizeof(names[i]), "k%d", i);
        d[i].name = names[i];
        d[i].type = CT_STR;
        d[i].defval = NULL;
        d[i].choices = NULL;
    }
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "k%d = $k%d\n", i, i + 1);
    snprintf(text + len, sizeof(text) - len, "k%d = end\n", n);
    write_file(text);
    c = conf_load(path, d, (size_t)n + 1, err, sizeof(err));
    rc = c != NULL && strcmp(conf_get(c, "k0")->str, "end") == 0;
    conf_free(c);
    return rc;
}

static void test_depth(void)
{
    char want[PATH_MAX + 200];

    ok(chain(20), "20 nested references ok");
    ok(!chain(21), "21 nested references fail");
    snprintf(want, sizeof(want),
             "%s:21: expansion of '$k21' in value of 'k20' nested deeper than 20", path);
    is_str(err, want, "depth error text");
}

static void test_nul(void)
{
    static const char text[] = "a = 1\nb = 2\0 3\n";
    char want[PATH_MAX + 64];
    FILE *f = fopen(path, "w");

    if (f == NULL || fwrite(text, 1, sizeof(text) - 1, f) != sizeof(text) - 1 ||
        fclose(f) != 0)
        exit(2);
    ok(conf_load(path, defs, NDEFS, err, sizeof(err)) == NULL, "NUL byte fails");
    snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
    is_str(err, want, "NUL byte message");
}

static void test_errors(void)
{
    load_fails("myhostname = a\nfoo = bar\n", ":2: unknown parameter 'foo'", "unknown key");
    load_fails("myhostname\n", ":1: missing '=' in 'myhostname'", "missing =");
    load_fails(" = x\n", ":1: continuation line without a parameter", "indented = line");
    load_fails("= x\n", ":1: bad parameter name ''", "empty name");
    load_fails("my host = x\n", ":1: bad parameter name 'my host'", "name with space");
    load_fails("\n\nmessage_size_limit = abc\n",
               ":3: bad value for 'message_size_limit': 'abc' (expected a size like 10M)",
               "bad size");
    load_fails("message_size_limit = 10MB\n",
               ":1: bad value for 'message_size_limit': '10MB' (expected a size like 10M)",
               "size with junk suffix");
    load_fails("message_size_limit = 9999999999G\n",
               ":1: bad value for 'message_size_limit': '9999999999G' (expected a size like 10M)",
               "size overflow");
    load_fails("message_size_limit =\n",
               ":1: bad value for 'message_size_limit': '' (expected a size like 10M)",
               "empty size");
    load_fails("maximal_queue_lifetime = 5x\n",
               ":1: bad value for 'maximal_queue_lifetime': '5x' "
               "(expected a time like 300s, 5m, 4h, 5d or 1w)", "bad time");
    load_fails("smtpd_recipient_limit = -1\n",
               ":1: bad value for 'smtpd_recipient_limit': '-1' "
               "(expected a non-negative integer)", "negative int");
    load_fails("queue_group_commit = maybe\n",
               ":1: bad value for 'queue_group_commit': 'maybe' (expected yes or no)",
               "bad bool");
    load_fails("smtp_tls = always\n",
               ":1: bad value for 'smtp_tls': 'always' (expected one of: none,may,encrypt)",
               "bad choice");
    load_fails("a = x\nmessage_size_limit = $a\n",
               ":2: bad value for 'message_size_limit': 'x' (expected a size like 10M)",
               "bad value after expansion");
    test_nul();
}

static void test_last_wins(void)
{
    struct conf *c = load("myhostname = one\nsmtpd_banner = $myhostname\nmyhostname = two\n");

    ok(c != NULL, "duplicate key loads");
    if (c == NULL)
        return;
    is_str(str(c, "myhostname"), "two", "last wins");
    is_int(conf_get(c, "myhostname")->line, 3, "line of the last one");
    is_str(str(c, "smtpd_banner"), "two", "expansion sees the last value");
    conf_free(c);
}

static void test_limits(void)
{
    size_t n = 64 * 1024, i;
    char *big = malloc(5 * 1024 * 1024);
    struct conf *c;

    if (big == NULL)
        exit(2);
    /* a line of exactly 64 KiB is fine, one octet more is not */
    memcpy(big, "a = ", 4);
    memset(big + 4, 'x', n - 4);
    memcpy(big + n, "\n", 2);
    c = load(big);
    ok(c != NULL, "64 KiB line ok");
    if (c)
        is_int(strlen(str(c, "a")), n - 4, "64 KiB line value");
    conf_free(c);
    memset(big + 4, 'x', n + 1 - 4);
    memcpy(big + n + 1, "\n", 2);
    load_fails(big, ":1: line too long (over 65536 octets)", "line over 64 KiB");
    /* file over 4 MiB */
    for (i = 0; i < 4 * 1024 * 1024 + 1; i++)
        big[i] = (i % 64 == 63) ? '\n' : '#';
    big[i] = '\0';
    load_fails(big, ": file too large (over 4194304 octets)", "file over 4 MiB");
    free(big);
    /* a CRLF file */
    c = load("myhostname = crlf.example\r\n");
    ok(c != NULL, "CRLF file");
    if (c)
        is_str(str(c, "myhostname"), "crlf.example", "CR trimmed");
    conf_free(c);
}

static void test_unreadable(void)
{
    char nofile[PATH_MAX + 32], want[PATH_MAX + 128];

    snprintf(nofile, sizeof(nofile), "%s/missing.conf", dir);
    ok(conf_load(nofile, defs, NDEFS, err, sizeof(err)) == NULL, "missing file fails");
    snprintf(want, sizeof(want), "%s: %s", nofile, strerror(ENOENT));
    is_str(err, want, "missing file message");
    ok(conf_load(dir, defs, NDEFS, err, sizeof(err)) == NULL, "directory fails");
    snprintf(want, sizeof(want), "%s: %s", dir, strerror(EISDIR));
    is_str(err, want, "directory message");
}

static void test_bad_default(void)
{
    static const struct conf_def bad[] = {
        { "x", CT_SIZE, "lots", NULL },
    };
    static const struct conf_def dup[] = {
        { "x", CT_STR, NULL, NULL },
        { "x", CT_STR, NULL, NULL },
    };

    ok(conf_load(NULL, bad, 1, err, sizeof(err)) == NULL, "bad default fails");
    is_str(err, "(defaults): default: bad value for 'x': 'lots' (expected a size like 10M)",
           "bad default message");
    ok(conf_load(NULL, dup, 2, err, sizeof(err)) == NULL, "duplicate schema fails");
}

static void test_parsers(void)
{
    long long v;
    int b;
    char **list;
    size_t n;

    ok(conf_parse_size("0", &v) == 0 && v == 0, "size 0");
    ok(conf_parse_size("1g", &v) == 0 && v == 1073741824LL, "size 1g");
    ok(conf_parse_size("1G", &v) == 0 && v == 1073741824LL, "size 1G");
    ok(conf_parse_size("10240000", &v) == 0 && v == 10240000, "size bare");
    ok(conf_parse_size("8589934591G", &v) == 0 && v == 8589934591LL * 1073741824LL,
       "size largest G");
    ok(conf_parse_size("8589934592G", &v) < 0, "size G overflow");
    ok(conf_parse_size("9223372036854775807", &v) == 0 && v == LLONG_MAX, "size LLONG_MAX");
    ok(conf_parse_size("9223372036854775808", &v) < 0, "size digits overflow");
    ok(conf_parse_size("", &v) < 0, "size empty");
    ok(conf_parse_size("M", &v) < 0, "size suffix only");
    ok(conf_parse_size("1.5M", &v) < 0, "size fraction");
    ok(conf_parse_size(" 1M", &v) < 0, "size leading space");
    ok(conf_parse_size("-1", &v) < 0, "size negative");
    ok(conf_parse_size("1MM", &v) < 0, "size double suffix");
    ok(conf_parse_time("1w", &v) == 0 && v == 604800, "time w");
    ok(conf_parse_time("5m", &v) == 0 && v == 300, "time m");
    ok(conf_parse_time("7s", &v) == 0 && v == 7, "time s");
    ok(conf_parse_time("2D", &v) == 0 && v == 172800, "time D");
    ok(conf_parse_time("15250284452471w", &v) == 0, "time largest w");
    ok(conf_parse_time("15250284452472w", &v) < 0, "time overflow");
    ok(conf_parse_time("1y", &v) < 0, "time bad unit");
    ok(conf_parse_bool("YES", &b) == 0 && b == 1, "bool YES");
    ok(conf_parse_bool("true", &b) == 0 && b == 1, "bool true");
    ok(conf_parse_bool("1", &b) == 0 && b == 1, "bool 1");
    ok(conf_parse_bool("False", &b) == 0 && b == 0, "bool False");
    ok(conf_parse_bool("0", &b) == 0 && b == 0, "bool 0");
    ok(conf_parse_bool("no", &b) == 0 && b == 0, "bool no");
    ok(conf_parse_bool("y", &b) < 0, "bool y rejected");
    ok(conf_parse_bool("", &b) < 0, "bool empty rejected");
    ok(conf_split_list(" , a,b\tc ,, ", &list, &n) == 0 && n == 3, "split count");
    if (n == 3) {
        is_str(list[0], "a", "split 0");
        is_str(list[2], "c", "split 2");
        ok(list[3] == NULL, "split NULL-terminated");
    }
    conf_free_list(list, n);
    ok(conf_split_list("", &list, &n) == 0 && n == 0, "split empty");
    conf_free_list(list, n);
    conf_free_list(NULL, 0);
}

int main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/hato.conf", dir);
    test_defaults();
    test_types();
    test_continuation();
    test_expansion();
    test_depth();
    test_errors();
    test_last_wins();
    test_limits();
    test_unreadable();
    test_bad_default();
    test_parsers();
    unlink(path);
    rmdir(dir);
    return tap_done();
}
