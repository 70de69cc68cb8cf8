/*
 * t/unit/test_users.c — auth/users.c: loading, errors with FILE:LINE,
 * case-insensitive lookup, 100k users, atomic add/del keeping comments.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/users.h"
#include "t/unit/tap.h"

#define MANY_USERS 100000

static char root[256];

#define CRAM_HEX "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
#define CRAM_BAD "00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg"
#define SCRAM_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define SCRAM_KEY "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define SCRAM_REST SCRAM_SALT ":" SCRAM_KEY ":" SCRAM_KEY

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

static void test_load(void)
{
    char path[512], err[512];
    struct usertab *t;
    const struct user *u;

    tmp_path(path, sizeof(path), "users");
    write_str(path,
              "# the users\n"
              "\n"
              "Bob@Example.COM  $y$j9T$abc$def   quota=100M\n"
              "   # indented comment with many many words in it\n"
              "alice@example.com\t$6$salt$hash\n"
              "carol@example.org * quota=512k\n"
              "dave@example.org ! quota=1G\r\n"
              "erin@example.org x quota=0\n"
              "   \t  \n"
              "frank@example.org x quota=12345");
    t = users_load(path, err, sizeof(err));
    ok(t != NULL, "load ok (%s)", t ? "" : err);
    if (t == NULL)
        return;
    is_int(users_count(t), 6, "six users");
    u = users_find(t, "bob@example.com");
    ok(u != NULL, "lower-case lookup finds Bob@Example.COM");
    is_str(u ? u->address : NULL, "bob@example.com", "address lower-cased on load");
    is_str(u ? u->hash : NULL, "$y$j9T$abc$def", "hash kept as written");
    is_int(u ? u->quota : -1, 100LL * 1024 * 1024, "quota=100M");
    ok(users_find(t, "BOB@EXAMPLE.COM") == u, "upper-case lookup");
    u = users_find(t, "alice@example.com");
    is_int(u ? u->quota : -1, 0, "no quota = 0");
    is_str(u ? u->hash : NULL, "$6$salt$hash", "tab separated");
    u = users_find(t, "carol@example.org");
    is_int(u ? u->quota : -1, 512LL * 1024, "quota=512k");
    is_str(u ? u->hash : NULL, "*", "locked hash *");
    u = users_find(t, "dave@example.org");
    is_int(u ? u->quota : -1, 1024LL * 1024 * 1024, "quota=1G with CRLF line");
    is_str(u ? u->hash : NULL, "!", "CR not part of the hash");
    u = users_find(t, "frank@example.org");
    is_int(u ? u->quota : -1, 12345, "bare number quota on last line without newline");
    ok(users_find(t, "nobody@example.com") == NULL, "unknown user");
    ok(users_find(t, "bob") == NULL, "partial address is not found");
    ok(users_find(t, "") == NULL, "empty address is not found");
    is_str(users_at(t, 0)->address, "bob@example.com", "users_at keeps file order");
    ok(users_at(t, 6) == NULL, "users_at out of range");
    users_free(t);

    tmp_path(path, sizeof(path), "missing");
    t = users_load(path, err, sizeof(err));
    ok(t != NULL && users_count(t) == 0, "missing file is an empty table");
    ok(users_find(t, "a@b") == NULL, "lookup in an empty table");
    users_free(t);
}

/* Load `text`; the error must start with "PATH:LINE:" and contain want. */
static void load_err(const char *text, int line, const char *want)
{
    char path[512], err[512] = "", prefix[600];
    struct usertab *t;

    tmp_path(path, sizeof(path), "bad");
    write_str(path, text);
    t = users_load(path, err, sizeof(err));
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    ok(t == NULL && strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, want) != NULL,
       "error '%s' at line %d (%s)", want, line, err);
    users_free(t);
}

static void test_errors(void)
{
    char longaddr[400], text[512];

    load_err("# c\nnoatsign x\n", 2, "'@'");
    load_err("a@b@c x\n", 1, "'@'");
    load_err("@example.com x\n", 1, "local part");
    load_err("bob@ x\n", 1, "local part");
    load_err("bob@example.com\n", 1, "missing password hash");
    load_err("a@example.com x\n\n# x\nA@EXAMPLE.com y\n", 4, "duplicate");
    load_err("a@example.com x quota=10X\n", 1, "bad quota");
    load_err("a@example.com x quota=\n", 1, "bad quota");
    load_err("a@example.com x quota=99999999999999999999\n", 1, "bad quota");
    load_err("a@example.com x quota=9000000000000G\n", 1, "bad quota");
    load_err("a@example.com x size=10\n", 1, "unknown option");
    load_err("a@example.com x quota=1 extra\n", 1, "unknown option");
    load_err("a@example.com x quota=1 quota=2\n", 1, "given twice");
    load_err("a@example.com x quota=1 a=1 b=2 c=3 d=4\n", 1, "too many fields");
    load_err("a@example.com x apop=\n", 1, "apop wants base64");
    load_err("a@example.com x apop=cGFzcw\n", 1, "apop wants base64");      /* no padding */
    load_err("a@example.com x apop=cGEAc3M=\n", 1, "apop wants base64");    /* a NUL */
    load_err("a@example.com x apop=cGFzcw== apop=cGFzcw==\n", 1, "given twice");
    load_err("a@example.com x cram-md5=0011\n", 1, "64 hex digits");
    load_err("a@example.com x cram-md5=" CRAM_HEX "0\n", 1, "64 hex digits");
    load_err("a@example.com x cram-md5=" CRAM_BAD "\n", 1, "64 hex digits");
    load_err("a@example.com x cram-md5=" CRAM_HEX " cram-md5=" CRAM_HEX "\n", 1, "given twice");
    load_err("a@example.com x scram-sha-256=4095:" SCRAM_REST "\n", 1, "4096..10000000");
    load_err("a@example.com x scram-sha-256=10000001:" SCRAM_REST "\n", 1, "4096..10000000");
    load_err("a@example.com x scram-sha-256=99999999999999999999999:" SCRAM_REST "\n", 1, "4096..");
    load_err("a@example.com x scram-sha-256=4096\n", 1, "iteration count");
    load_err("a@example.com x scram-sha-256=4096:AAAA:" SCRAM_KEY ":" SCRAM_KEY "\n", 1, "salt");
    load_err("a@example.com x scram-sha-256=4096:" SCRAM_SALT ":" SCRAM_KEY "\n", 1, "ITER:SALT");
    load_err("a@example.com x scram-sha-256=4096:" SCRAM_SALT ":AAAA:" SCRAM_KEY "\n", 1, "ITER:SALT");
    load_err("a@example.com x scram-sha-256=4096:" SCRAM_SALT ":" SCRAM_KEY ":" SCRAM_KEY ":x\n", 1,
             "ITER:SALT");
    load_err("a@example.com x scram-sha-256=4096:" SCRAM_SALT ":" SCRAM_KEY ":" SCRAM_KEY "=\n", 1,
             "ITER:SALT");
    memset(longaddr, 'a', 315);
    memcpy(longaddr + 315, "@b.cd", 6);          /* 320 octets: fine */
    snprintf(text, sizeof(text), "%s x\nq\n", longaddr);
    load_err(text, 2, "'@'");
    memset(longaddr, 'a', 316);
    memcpy(longaddr + 316, "@b.cd", 6);          /* 321 octets */
    snprintf(text, sizeof(text), "%s x\n", longaddr);
    load_err(text, 1, "length");
}

static void test_many(void)
{
    char path[512], err[512], addr[64];
    struct usertab *t;
    FILE *f;
    clock_t c0;
    int i, found = 0;
    double secs;

    tmp_path(path, sizeof(path), "many");
    f = fopen(path, "w");
    for (i = 0; i < MANY_USERS; i++)
        fprintf(f, "user%d@domain%d.example x quota=%dK\n", i, i % 97, i % 1000 + 1);
    fclose(f);
    c0 = clock();
    t = users_load(path, err, sizeof(err));
    ok(t != NULL, "load 100k users");
    is_int(users_count(t), MANY_USERS, "100k users counted");
    for (i = 0; i < MANY_USERS; i++) {
        const struct user *u;
        snprintf(addr, sizeof(addr), "USER%d@Domain%d.example", i, i % 97);
        u = users_find(t, addr);
        if (u && u->quota == (i % 1000 + 1) * 1024LL)
            found++;
    }
    secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    is_int(found, MANY_USERS, "every one of 100k users found");
    ok(users_find(t, "user100000@domain0.example") == NULL, "absent user among 100k");
    ok(secs < 10.0, "100k load + lookups in %.2fs (sanitizers on)", secs);
    users_free(t);
}

static void test_edit(void)
{
    static const char orig[] =
        "# users of example.com\n"
        "bob@example.com  $y$hash1  quota=10M   \n"
        "\n"
        "  # an odd   comment\n"
        "alice@example.com $y$hash2\n";
    char path[512], err[512], want[1024];
    struct usertab *t;
    struct stat st;

    tmp_path(path, sizeof(path), "edit");
    write_str(path, orig);
    chmod(path, 0600);
    is_int(users_file_add(path, "Carol@Example.com", "$y$hash3", 100LL * 1024 * 1024, err, sizeof(err)),
           0, "add carol");
    snprintf(want, sizeof(want), "%scarol@example.com $y$hash3 quota=100M\n", orig);
    is_str(read_str(path), want, "add appends one line, every other byte kept");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600 kept");
    is_int(users_file_add(path, "BOB@example.com", "x", 0, err, sizeof(err)), -1, "add existing (other case) fails");
    ok(strstr(err, "exists") != NULL, "error says it exists (%s)", err);
    is_str(read_str(path), want, "failed add leaves the file alone");
    is_int(users_file_add(path, "no-at-sign", "x", 0, err, sizeof(err)), -1, "add bad address fails");
    is_int(users_file_add(path, "x@example.com", "two words", 0, err, sizeof(err)), -1, "add hash with blank fails");
    is_int(users_file_add(path, "x@example.com", "", 0, err, sizeof(err)), -1, "add empty hash fails");
    is_int(users_file_add(path, "x@example.com", "#x", 0, err, sizeof(err)), -1, "add hash starting with # fails");
    is_int(users_file_add(path, "x@example.com", "x", -1, err, sizeof(err)), -1, "add negative quota fails");
    is_int(users_file_add(path, "d@example.com", "h", 1536, err, sizeof(err)), 0, "add quota 1536");
    ok(strstr(read_str(path), "d@example.com h quota=1536\n") != NULL, "non-round quota written in bytes");
    is_int(users_file_add(path, "e@example.com", "h", 3LL << 30, err, sizeof(err)), 0, "add quota 3G");
    ok(strstr(read_str(path), "e@example.com h quota=3G\n") != NULL, "quota 3G written with suffix");

    t = users_load(path, err, sizeof(err));
    ok(t && users_find(t, "carol@example.com") && users_find(t, "carol@example.com")->quota == 100LL << 20,
       "added user loads with its quota");
    users_free(t);

    is_int(users_file_del(path, "ALICE@example.com", err, sizeof(err)), 0, "del alice (other case)");
    snprintf(want, sizeof(want),
             "# users of example.com\n"
             "bob@example.com  $y$hash1  quota=10M   \n"
             "\n"
             "  # an odd   comment\n"
             "carol@example.com $y$hash3 quota=100M\n"
             "d@example.com h quota=1536\n"
             "e@example.com h quota=3G\n");
    is_str(read_str(path), want, "del removes only that line");
    is_int(users_file_del(path, "alice@example.com", err, sizeof(err)), -1, "del absent fails");
    ok(strstr(err, "no such user") != NULL, "error says no such user (%s)", err);
    is_int(users_file_del(path, "an", err, sizeof(err)), -1, "del of a comment word fails");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode still 0600");

    /* no trailing newline: a newline is added before the new line */
    write_str(path, "a@example.com x");
    is_int(users_file_add(path, "b@example.com", "y", 0, err, sizeof(err)), 0, "add after unterminated line");
    is_str(read_str(path), "a@example.com x\nb@example.com y\n", "newline inserted");
    is_int(users_file_del(path, "b@example.com", err, sizeof(err)), 0, "del last line");
    is_str(read_str(path), "a@example.com x\n", "del keeps the rest");

    /* passwd: hash replaced, old secrets dropped, quota and other lines kept */
    write_str(path, "# c\na@example.com old quota=5M cram-md5=" CRAM_HEX "\r\nb@example.com y\n");
    is_int(users_file_passwd(path, "A@example.com", "$y$new", NULL, err, sizeof(err)), 0,
           "passwd without secrets");
    is_str(read_str(path), "# c\na@example.com $y$new quota=5M\r\nb@example.com y\n",
           "hash replaced, cram-md5 dropped, quota and CRLF kept");
    is_int(users_file_passwd(path, "a@example.com", "$y$newer",
                             " cram-md5=" CRAM_HEX " scram-sha-256=4096:" SCRAM_REST, err,
                             sizeof(err)), 0, "passwd with both secrets");
    is_str(read_str(path), "# c\na@example.com $y$newer quota=5M cram-md5=" CRAM_HEX
           " scram-sha-256=4096:" SCRAM_REST "\r\nb@example.com y\n", "secrets written");
    t = users_load(path, err, sizeof(err));
    ok(t && users_find(t, "a@example.com")->secrets && users_find(t, "a@example.com")->secrets->has_scram
       && users_find(t, "a@example.com")->quota == 5 << 20, "the edited file loads");
    users_free(t);
    /* apop= (the password itself, base64): loaded, and dropped with the password */
    is_int(users_file_passwd(path, "a@example.com", "$y$apop", " apop=cGFzcyB3b3Jk", err,
                             sizeof(err)), 0, "passwd with apop");
    t = users_load(path, err, sizeof(err));
    ok(t && users_find(t, "a@example.com")->secrets &&
       users_find(t, "a@example.com")->secrets->has_apop &&
       !strcmp(users_find(t, "a@example.com")->secrets->apop, "pass word"), "apop= loads");
    users_free(t);
    is_int(users_file_passwd(path, "a@example.com", "$y$newer", NULL, err, sizeof(err)), 0,
           "passwd drops apop=");
    ok(!strstr(read_str(path), "apop="), "apop= gone with the old password");
    is_int(users_file_passwd(path, "b@example.com", "z", " scram-sha-256=1:x", err, sizeof(err)), -1,
           "passwd with a bad secret fails");
    ok(strstr(err, "scram") != NULL, "... saying why (%s)", err);
    is_int(users_file_passwd(path, "c@example.com", "z", NULL, err, sizeof(err)), -1,
           "passwd of an unknown user fails");
    is_int(users_file_passwd(path, "b@example.com", "two words", NULL, err, sizeof(err)), -1,
           "passwd with a bad hash fails");
    ok(strstr(read_str(path), "b@example.com y\n") != NULL, "failed passwds leave the file alone");
    is_int(users_file_passwd(path, "b@example.com", "w", NULL, err, sizeof(err)), 0,
           "passwd of the last line");
    ok(strstr(read_str(path), "\nb@example.com w\n") != NULL, "its newline kept");

    tmp_path(path, sizeof(path), "new-users");
    is_int(users_file_add(path, "z@example.com", "h", 0, err, sizeof(err)), 0, "add creates a missing file");
    is_str(read_str(path), "z@example.com h\n", "new file content");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640, "new file mode 0640");
    tmp_path(want, sizeof(want), "new-users.tmp.");
    snprintf(want + strlen(want), sizeof(want) - strlen(want), "%ld", (long)getpid());
    ok(access(want, F_OK) != 0, "no tmp file left behind");
    is_int(users_file_del(path, "y@example.com", err, sizeof(err)), -1, "del absent in new file");
    tmp_path(path, sizeof(path), "nodir/users");
    is_int(users_file_add(path, "z@example.com", "h", 0, err, sizeof(err)), -1, "add in a missing directory fails");
}

int main(void)
{
    char cmd[300];

    snprintf(root, sizeof(root), "/tmp/hato-test-users-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_load();
    test_errors();
    test_many();
    test_edit();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return tap_done();
}
