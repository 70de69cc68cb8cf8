/*
 * auth/passwd.c — crypt(3) password checks in the worker pool.
 *
 * Owns: the job (a copy of the hash and the password, wiped when done),
 * the dummy setting unknown users are hashed with, the constant-time
 * comparison.  Uses crypt_rn (thread-safe, our own crypt_data per job).
 * Never logs a password, never touches the loop from a worker.
 */
#include <crypt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/passwd.h"
#include "auth/users.h"
#include "lib/work.h"

#define SETTING_SCAN 16     /* users looked at for a setting to hash unknowns with */

struct verify_job {
    struct crypt_data cd;             /* big (32 KiB): on the heap, in the job */
    char setting[CRYPT_OUTPUT_SIZE];  /* the user's hash, or a stand-in */
    char password[PASSWD_MAX + 1];
    int real;                         /* setting is the user's own hash */
    enum auth_verdict verdict;
    auth_verify_cb cb;
    void *arg;
};

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_setting[CRYPT_GENSALT_OUTPUT_SIZE];

static void dummy_init(void)
{
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, dummy_setting, sizeof(dummy_setting)) == NULL)
        strcpy(dummy_setting, "$6$hatodummysalt$");   /* sha512-crypt, 5000 rounds */
}

/* Could crypt() use this hash as a setting?  ("*", "!", "!$y$..." cannot.) */
static int usable_hash(const char *h)
{
    return h != NULL && h[0] == '$' && strlen(h) < CRYPT_OUTPUT_SIZE;
}

/* What an unknown or locked user's password is hashed with: some user's
 * real hash (so the cost is the table's), else the dummy. */
static const char *stand_in(const struct usertab *users)
{
    size_t n = users_count(users);

    for (size_t i = 0; i < n && i < SETTING_SCAN; i++) {
        const struct user *u = users_at(users, i);
        if (usable_hash(u->hash))
            return u->hash;
    }
    pthread_once(&dummy_once, dummy_init);
    return dummy_setting;
}

static enum auth_verdict check_with(struct crypt_data *cd, const char *hash,
                                    const char *password)
{
    const char *out;
    size_t n;

    memset(cd, 0, sizeof(*cd));
    out = crypt_rn(password, hash, cd, (int)sizeof(*cd));
    if (out == NULL || out[0] == '*')
        return AUTH_FAIL;
    n = strlen(hash);
    if (strlen(out) != n || CRYPTO_memcmp(out, hash, n) != 0)
        return AUTH_FAIL;
    return AUTH_PASS;
}

enum auth_verdict passwd_check(const char *hash, const char *password)
{
    struct crypt_data *cd;
    enum auth_verdict v;

    if (!usable_hash(hash) || password == NULL || strlen(password) > PASSWD_MAX)
        return AUTH_FAIL;
    if ((cd = malloc(sizeof(*cd))) == NULL)
        return AUTH_TEMPFAIL;
    v = check_with(cd, hash, password);
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return v;
}

static void verify_run(void *arg)
{
    struct verify_job *j = arg;
    enum auth_verdict v = check_with(&j->cd, j->setting, j->password);

    j->verdict = j->real ? v : AUTH_FAIL;
    explicit_bzero(&j->cd, sizeof(j->cd));
    explicit_bzero(j->password, sizeof(j->password));
}

static void verify_done(void *arg)
{
    struct verify_job *j = arg;
    auth_verify_cb cb = j->cb;
    void *cb_arg = j->arg;
    enum auth_verdict v = j->verdict;

    explicit_bzero(j, sizeof(*j));
    free(j);
    cb(cb_arg, v);
}

int auth_verify(struct work_pool *pool, const struct usertab *users, const char *user,
                const char *password, auth_verify_cb cb, void *arg)
{
    const struct user *u = users_find(users, user);
    struct verify_job *j;

    if (password == NULL || strlen(password) > PASSWD_MAX || (j = calloc(1, sizeof(*j))) == NULL)
        return -1;
    j->real = u != NULL && usable_hash(u->hash);
    strcpy(j->setting, j->real ? u->hash : stand_in(users));
    strcpy(j->password, password);
    j->verdict = AUTH_TEMPFAIL;
    j->cb = cb;
    j->arg = arg;
    if (work_submit(pool, WORK_AUTH, verify_run, verify_done, j) != 0) {
        explicit_bzero(j, sizeof(*j));
        free(j);
        return -1;
    }
    return 0;
}
