/*
 * t/unit/test_passwd.c — auth/passwd: yescrypt, sha512-crypt and bcrypt
 * hashes made with crypt_gensalt, checked blocking and in a real worker
 * pool; unknown users, "*" / "!" / broken hashes; the table freed while the
 * job is queued (the job holds copies); unknown users cost a crypt().
 */
#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/passwd.h"
#include "auth/users.h"
#include "lib/work.h"
#include "t/unit/tap.h"

static struct event_base *base;
static pthread_t loop_thread;
static int outstanding, off_loop;

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static char *make_hash(const char *prefix, const char *pw)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;

    memset(&cd, 0, sizeof(cd));
    if (crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof(salt)) == NULL
        || crypt_rn(pw, salt, &cd, sizeof(cd)) == NULL) {
        fprintf(stderr, "cannot hash with %s\n", prefix);
        exit(2);
    }
    return strdup(cd.output);
}

struct want {
    const char *what;
    enum auth_verdict want, got;
    int done;
};

static void verdict_cb(void *arg, enum auth_verdict v)
{
    struct want *w = arg;

    if (!pthread_equal(pthread_self(), loop_thread))
        off_loop = 1;
    w->got = v;
    w->done = 1;
    if (--outstanding == 0)
        event_base_loopbreak(base);
}

static void gate_job(void *arg)
{
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

static void gate_done(void *arg)
{
    if (--outstanding == 0)
        event_base_loopbreak(base);
}

static void test_blocking(char **h)
{
    is_int(passwd_check(h[0], "correct horse"), AUTH_PASS, "yescrypt: right password");
    is_int(passwd_check(h[0], "correct horsE"), AUTH_FAIL, "yescrypt: wrong password");
    is_int(passwd_check(h[1], "correct horse"), AUTH_PASS, "sha512-crypt: right password");
    is_int(passwd_check(h[1], ""), AUTH_FAIL, "sha512-crypt: empty password");
    is_int(passwd_check(h[2], "correct horse"), AUTH_PASS, "bcrypt: right password");
    is_int(passwd_check(h[2], "correct horse "), AUTH_FAIL, "bcrypt: wrong password");
    is_int(passwd_check("*", "*"), AUTH_FAIL, "'*' never matches");
    is_int(passwd_check("!", "!"), AUTH_FAIL, "'!' never matches");
    is_int(passwd_check("", ""), AUTH_FAIL, "empty hash never matches");
    {
        char locked[256];
        snprintf(locked, sizeof(locked), "!%s", h[0]);
        is_int(passwd_check(locked, "correct horse"), AUTH_FAIL, "'!'-locked yescrypt hash");
    }
    is_int(passwd_check("$6$", "x"), AUTH_FAIL, "broken hash");
    is_int(passwd_check("*0", "x"), AUTH_FAIL, "crypt's failure token");
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One verify through the pool, waited for; its wall time. */
static double timed_verify(struct work_pool *pool, const struct usertab *t, const char *user,
                           const char *pw, struct want *w)
{
    double t0 = now_s();

    outstanding = 1;
    if (auth_verify(pool, t, user, pw, verdict_cb, w) != 0)
        return -1;
    event_base_dispatch(base);
    return now_s() - t0;
}

static void test_pool(char **h)
{
    char path[] = "/tmp/hato-test-passwd-XXXXXX", err[256];
    struct want w[8] = {
        { "yescrypt user, right password", AUTH_PASS, 0, 0 },
        { "sha512 user, right password", AUTH_PASS, 0, 0 },
        { "bcrypt user, right password", AUTH_PASS, 0, 0 },
        { "yescrypt user, wrong password", AUTH_FAIL, 0, 0 },
        { "unknown user, a known user's password", AUTH_FAIL, 0, 0 },
        { "'*' account", AUTH_FAIL, 0, 0 },
        { "'!' account", AUTH_FAIL, 0, 0 },
        { "user case-insensitive", AUTH_PASS, 0, 0 },
    };
    const char *users[8] = { "y@example.test", "s@example.test", "b@example.test",
                             "y@example.test", "nobody@example.test", "star@example.test",
                             "bang@example.test", "Y@Example.TEST" };
    const char *pws[8] = { "correct horse", "correct horse", "correct horse", "wrong",
                           "correct horse", "*", "!", "correct horse" };
    struct work_pool *pool;
    struct usertab *t;
    FILE *f;
    int fd = mkstemp(path), all = 1;
    double known[3], unknown[3];

    f = fdopen(fd, "w");
    fprintf(f, "y@example.test %s\ns@example.test %s\nb@example.test %s\n"
               "star@example.test *\nbang@example.test !\n", h[0], h[1], h[2]);
    fclose(f);
    t = users_load(path, err, sizeof(err));
    ok(t != NULL, "users load (%s)", t ? "" : err);
    pool = work_pool_new(base, 1);

    /* one thread, held by a gate job: every verify stays queued while the
     * table is freed, as a reload would free it */
    outstanding = 1;
    gate_open = 0;
    work_submit(pool, WORK_AUTH, gate_job, gate_done, NULL);
    for (int i = 0; i < 8; i++) {
        ok(auth_verify(pool, t, users[i], pws[i], verdict_cb, &w[i]) == 0, "queued: %s", w[i].what);
        outstanding++;
    }
    users_free(t);
    t = NULL;
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_signal(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    event_base_dispatch(base);
    for (int i = 0; i < 8; i++) {
        ok(w[i].done && w[i].got == w[i].want, "%s: %s", w[i].what,
           w[i].got == AUTH_PASS ? "pass" : "fail");
        all &= w[i].done;
    }
    ok(all && !off_loop, "every callback ran, on the loop thread");

    /* unknown users cost a crypt() like known ones (10x margin, best of 3) */
    t = users_load(path, err, sizeof(err));
    for (int i = 0; i < 3; i++) {
        known[i] = timed_verify(pool, t, "y@example.test", "wrong", &w[0]);
        unknown[i] = timed_verify(pool, t, "nobody@example.test", "wrong", &w[1]);
    }
    {
        double k = known[0], u = unknown[0];
        for (int i = 1; i < 3; i++) {
            if (known[i] < k) k = known[i];
            if (unknown[i] < u) u = unknown[i];
        }
        ok(u * 10 > k, "unknown user %.1f ms vs known %.1f ms: hashed too", u * 1e3, k * 1e3);
    }
    users_free(t);
    /* an empty table: the dummy yescrypt setting */
    t = users_load("/nonexistent/users", err, sizeof(err));
    ok(timed_verify(pool, t, "x@example.test", "pw", &w[2]) >= 0 && w[2].got == AUTH_FAIL,
       "empty table: fail");
    users_free(t);
    work_pool_free(pool);
    unlink(path);
}

int main(void)
{
    char *h[3];

    base = event_base_new();
    loop_thread = pthread_self();
    h[0] = make_hash("$y$", "correct horse");
    h[1] = make_hash("$6$", "correct horse");
    h[2] = make_hash("$2b$", "correct horse");
    ok(strncmp(h[0], "$y$", 3) == 0 && strncmp(h[1], "$6$", 3) == 0 && strncmp(h[2], "$2b$", 4) == 0,
       "hashes made with crypt_gensalt");
    test_blocking(h);
    test_pool(h);
    for (int i = 0; i < 3; i++)
        free(h[i]);
    event_base_free(base);
    return tap_done();
}
