/*
 * t/unit/test_aliases.c — mta/aliases.c: the /etc/aliases grammar
 * (continuations, quotes, comments), refused targets with FILE:LINE,
 * lookup order, and the atomic set/del edits keeping other lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mta/aliases.h"
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

static char *read_str(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", root, name);
}

/* Targets of local@domain joined with '|', or "(none)". */
static const char *look(const struct aliastab *t, const char *local, const char *domain)
{
    static char buf[1024];
    char *const *v;
    size_t n, i;

    v = aliases_lookup(t, local, domain, &n);
    if (v == NULL)
        return "(none)";
    buf[0] = '\0';
    for (i = 0; i < n; i++) {
        if (i)
            strcat(buf, "|");
        strcat(buf, v[i]);
    }
    return buf;
}

static void test_load(void)
{
    char path[512], err[512];
    struct aliastab *t;
    char *const *tg;
    size_t n;
    const char *name;

    tmp_path(path, sizeof(path), "aliases");
    write_str(path,
              "# system aliases\n"
              "Postmaster: root\n"
              "\n"
              "team: alice, bob,\n"
              "  carol@example.org\n"
              "\tdave , Erin@Example.NET\n"
              "   # comment inside the file\n"
              "info@example.com: sales\n"
              "info:sales-all\n"
              "quoted: \"john smith\", \"a,b\", \"q\\\"x\"\n"
              "spaces  :   x   y\n"
              "last: z");
    t = aliases_load(path, err, sizeof(err));
    ok(t != NULL, "load ok (%s)", t ? "" : err);
    if (t == NULL)
        return;
    is_int(aliases_count(t), 7, "seven entries");
    is_str(look(t, "postmaster", NULL), "root", "bare name, no domain");
    is_str(look(t, "POSTMASTER", "example.com"), "root", "name lower-cased, bare applies to any domain");
    is_str(look(t, "team", "example.com"), "alice|bob|carol@example.org|dave|Erin@Example.NET",
           "continuation lines (space and tab), targets as written");
    is_str(look(t, "info", "example.com"), "sales", "name@domain entry beats bare name");
    is_str(look(t, "info", "EXAMPLE.COM"), "sales", "domain compared in any case");
    is_str(look(t, "info", "example.org"), "sales-all", "bare name for another domain");
    is_str(look(t, "quoted", "x"), "john smith|a,b|q\"x", "quoted targets lose quotes, keep blanks");
    is_str(look(t, "spaces", NULL), "x|y", "blanks around ':' and between targets");
    is_str(look(t, "last", NULL), "z", "last line without newline");
    is_str(look(t, "nobody", "example.com"), "(none)", "unknown name");
    is_str(look(t, "info@example.com", NULL), "sales", "full name as local part");
    name = aliases_at(t, 0, &tg, &n);
    is_str(name, "postmaster", "aliases_at(0) name");
    ok(n == 1 && strcmp(tg[0], "root") == 0, "aliases_at(0) targets");
    name = aliases_at(t, 2, &tg, &n);
    is_str(name, "info@example.com", "aliases_at keeps file order");
    ok(aliases_at(t, 7, &tg, &n) == NULL && n == 0, "aliases_at out of range");
    aliases_free(t);

    tmp_path(path, sizeof(path), "missing");
    t = aliases_load(path, err, sizeof(err));
    ok(t != NULL && aliases_count(t) == 0, "missing file is an empty table");
    is_str(look(t, "x", "y"), "(none)", "lookup in empty table");
    aliases_free(t);
}

static void load_err(const char *text, int line, const char *want)
{
    char path[512], err[512] = "", prefix[600];
    struct aliastab *t;

    tmp_path(path, sizeof(path), "bad");
    write_str(path, text);
    t = aliases_load(path, err, sizeof(err));
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    ok(t == NULL && strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, want) != NULL,
       "error '%s' at line %d (%s)", want, line, err);
    aliases_free(t);
}

static void test_errors(void)
{
    load_err("a: b\nlog: |/usr/bin/logger\n", 2, "unsupported alias target");
    load_err("a: b\n\nsave: /var/mail/x\n", 3, "unsupported alias target");
    load_err("list: :include:/etc/list\n", 1, "unsupported alias target");
    load_err("list: :INCLUDE:/etc/list\n", 1, "unsupported alias target");
    load_err("x: \"|quoted pipe\"\n", 1, "unsupported alias target");
    load_err("x: a,\n  b,\n  /tmp/file\n", 3, "unsupported alias target");
    load_err("a: b\nA: c\n", 2, "duplicate");
    load_err("  b, c\n", 1, "continuation line without an alias");
    load_err("a: b\n# c\n  d\n", 3, "continuation line without an alias");
    load_err("a b\n", 1, "missing ':'");
    load_err("a b: c\n", 1, "bad character");
    load_err(": c\n", 1, "empty alias name");
    load_err("x\n:\n", 1, "missing ':'");
    load_err("a: b\nempty:\n\nc: d\n", 2, "no targets");
    load_err("a: b\nempty:\n", 2, "no targets");
    load_err("empty: ,\n", 1, "no targets");
    load_err("a: \"unterminated\n", 1, "unterminated");
    load_err("a: \"\"\n", 1, "empty alias target");
    load_err("a: @example.com\n", 1, "bad alias target");
    load_err("a: bob@\n", 1, "bad alias target");
    load_err("a@: b\n", 1, "bad alias name");
    load_err("a@b@c: b\n", 1, "bad alias name");
}

static void test_edit(void)
{
    static const char orig[] =
        "# aliases\n"
        "postmaster: root\n"
        "team: alice,\n"
        "   bob\n"
        "  # keep me\n"
        "info:   sales   \n";
    char path[512], err[512];
    char *tg2[] = { "carol", "dave@example.org" };
    char *tg1[] = { "x" };
    char *tgq[] = { "john smith", "a\"b", "c" };
    char *bad[] = { "ok", "|cmd" };
    struct aliastab *t;
    struct stat st;

    tmp_path(path, sizeof(path), "edit");
    write_str(path, orig);
    chmod(path, 0640);
    is_int(aliases_file_set(path, "TEAM", tg2, 2, err, sizeof(err)), 0, "set replaces team");
    is_str(read_str(path),
           "# aliases\n"
           "postmaster: root\n"
           "team: carol, dave@example.org\n"
           "  # keep me\n"
           "info:   sales   \n",
           "entry and its continuation replaced in place, rest byte-exact");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640, "mode 0640 kept");
    is_int(aliases_file_set(path, "new@example.com", tg1, 1, err, sizeof(err)), 0, "set appends");
    is_int(aliases_file_set(path, "q", tgq, 3, err, sizeof(err)), 0, "set with quoting");
    is_str(read_str(path),
           "# aliases\n"
           "postmaster: root\n"
           "team: carol, dave@example.org\n"
           "  # keep me\n"
           "info:   sales   \n"
           "new@example.com: x\n"
           "q: \"john smith\", a\"b, c\n",
           "appended lines");
    t = aliases_load(path, err, sizeof(err));
    ok(t != NULL, "edited file loads (%s)", t ? "" : err);
    is_str(look(t, "q", NULL), "john smith|a\"b|c", "quoted targets round-trip");
    is_str(look(t, "team", NULL), "carol|dave@example.org", "replaced targets load");
    aliases_free(t);

    is_int(aliases_file_set(path, "x", bad, 2, err, sizeof(err)), -1, "set with a pipe fails");
    ok(strstr(err, "unsupported") != NULL, "error says unsupported (%s)", err);
    is_int(aliases_file_set(path, "x", tg1, 0, err, sizeof(err)), -1, "set with no targets fails");
    is_int(aliases_file_set(path, "a b", tg1, 1, err, sizeof(err)), -1, "set with a bad name fails");
    is_int(aliases_file_set(path, "a:b", tg1, 1, err, sizeof(err)), -1, "set with ':' in name fails");

    is_int(aliases_file_del(path, "Info", err, sizeof(err)), 0, "del info");
    is_int(aliases_file_del(path, "q", err, sizeof(err)), 0, "del q (last line)");
    is_str(read_str(path),
           "# aliases\n"
           "postmaster: root\n"
           "team: carol, dave@example.org\n"
           "  # keep me\n"
           "new@example.com: x\n",
           "del removes only those entries");
    is_int(aliases_file_del(path, "info", err, sizeof(err)), -1, "del absent fails");
    ok(strstr(err, "no such alias") != NULL, "error says no such alias (%s)", err);
    is_int(aliases_file_del(path, "new", err, sizeof(err)), -1, "del bare name does not remove name@domain");

    write_str(path, "a: b\n  c\nb: d");
    is_int(aliases_file_set(path, "c", tg1, 1, err, sizeof(err)), 0, "append after unterminated line");
    is_str(read_str(path), "a: b\n  c\nb: d\nc: x\n", "newline inserted before append");
    is_int(aliases_file_del(path, "a", err, sizeof(err)), 0, "del entry with continuation");
    is_str(read_str(path), "b: d\nc: x\n", "continuation removed with its entry");

    tmp_path(path, sizeof(path), "new-aliases");
    is_int(aliases_file_set(path, "abuse", tg1, 1, err, sizeof(err)), 0, "set creates a missing file");
    is_str(read_str(path), "abuse: x\n", "new file content");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "new file mode 0644");
}

int main(void)
{
    char cmd[300];

    snprintf(root, sizeof(root), "/tmp/hato-test-aliases-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_load();
    test_errors();
    test_edit();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return tap_done();
}
