/*
 * tools/hatoctl_tls.c — `hatoctl tls selfsigned`: a new private key and a
 * self-signed certificate for a first start (lib/tlscert.h), written where
 * hatod will read them: --key/--cert, else tls_key_file/tls_cert_file,
 * else state_directory/keys/tls.key and tls.crt (and then it prints the
 * two lines to add to hato.conf).  Existing files are kept unless --force.
 * Each file is replaced atomically (lib/fsutil fs_replace); the key is
 * mode 0600, the certificate 0644, both owned by run_user when run as
 * root, since a reload reads them after hatod's privilege drop.  When the
 * files are the configured ones, a running hatod is asked to reload.
 *
 * The default key is RSA 2048: a self-signed certificate serves
 * opportunistic STARTTLS, where the peers are other MTAs of every age, and
 * every TLS stack speaks RSA while some old ones have no ECDSA (they would
 * fall back to plaintext).  --type ec gives P-256.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/tlscert.h"
#include "mta/config.h"
#include "tools/ctlclient.h"
#include "tools/hatoctl_tls.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define USAGE (-2)
#define DAYS_DEFAULT 365
#define KEYS_DIR "keys"

struct selfsigned_args {
    const char *host, *key, *cert;
    int days, force;
    enum tls_key_type type;
};

static int parse_args(int argc, char **argv, struct selfsigned_args *a)
{
    memset(a, 0, sizeof *a);
    a->days = DAYS_DEFAULT;
    a->type = TLS_KEY_RSA2048;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(o, "--force")) {
            a->force = 1;
        } else if (!strcmp(o, "--days") && has_value) {
            char *end;
            long d = strtol(argv[++i], &end, 10);
            if (*end || d < 1 || d > 36500) {
                fprintf(stderr, "hatoctl: --days: want 1..36500\n");
                return USAGE;
            }
            a->days = (int)d;
        } else if (!strcmp(o, "--type") && has_value) {
            const char *t = argv[++i];
            if (!strcmp(t, "rsa"))
                a->type = TLS_KEY_RSA2048;
            else if (!strcmp(t, "ec"))
                a->type = TLS_KEY_EC_P256;
            else
                return USAGE;
        } else if (!strcmp(o, "--key") && has_value) {
            a->key = argv[++i];
        } else if (!strcmp(o, "--cert") && has_value) {
            a->cert = argv[++i];
        } else if (o[0] != '-' && !a->host) {
            a->host = o;
        } else {
            return USAGE;
        }
    }
    return a->host ? 0 : USAGE;
}

/* run_user's ids when we are root and it is set; *uid -1 otherwise. */
static int owner_ids(const struct hato_config *cfg, uid_t *uid, gid_t *gid)
{
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (geteuid() != 0 || !cfg->run_user[0])
        return 0;
    struct passwd *pw = getpwnam(cfg->run_user);
    if (!pw) {
        fprintf(stderr, "hatoctl: run_user %s does not exist\n", cfg->run_user);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* The file's directory exists (made 0700, owned by run_user, if not). */
static int ensure_dir(const char *path, uid_t uid, gid_t gid)
{
    char dir[PATH_MAX];
    struct stat st;
    fs_dirname(path, dir, sizeof dir);
    if (stat(dir, &st) == 0)
        return 0;
    if (fs_mkdirs(dir, 0700) < 0 || (uid != (uid_t)-1 && chown(dir, uid, gid) < 0)) {
        fprintf(stderr, "hatoctl: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Replace path with data at mode, owned by uid/gid (when set).  An
 * existing file is first narrowed to mode: fs_replace keeps the old mode,
 * and a key must never be readable by others, not even for a moment. */
static int write_one(const char *path, const char *data, size_t len, mode_t mode,
                     uid_t uid, gid_t gid)
{
    struct stat st;
    if (stat(path, &st) == 0 && chmod(path, mode) < 0) {
        fprintf(stderr, "hatoctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fs_replace(path, data, len, mode) < 0 ||
        (uid != (uid_t)-1 && chown(path, uid, gid) < 0)) {
        fprintf(stderr, "hatoctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void ask_reload(const struct hato_config *cfg)
{
    char err[1024];
    switch (ctl_command(cfg, "RELOAD", NULL, err, sizeof err)) {
    case CTL_OK:
        printf("hatod reloaded\n");
        break;
    case CTL_DOWN:
        break;
    default:
        fprintf(stderr, "hatoctl: files written, but reload failed: %s\n", err);
    }
}

int hatoctl_tls_selfsigned(const struct hato_config *cfg, int argc, char **argv)
{
    struct selfsigned_args a;
    char defkey[PATH_MAX], defcert[PATH_MAX], err[1024];
    if (parse_args(argc, argv, &a) < 0)
        return USAGE;
    snprintf(defkey, sizeof defkey, "%s/%s/tls.key", cfg->state_directory, KEYS_DIR);
    snprintf(defcert, sizeof defcert, "%s/%s/tls.crt", cfg->state_directory, KEYS_DIR);
    const char *key = a.key ? a.key : cfg->tls_key_file[0] ? cfg->tls_key_file : defkey;
    const char *cert = a.cert ? a.cert : cfg->tls_cert_file[0] ? cfg->tls_cert_file : defcert;
    if (!strcmp(key, cert)) {
        fprintf(stderr, "hatoctl: the key and the certificate need two files\n");
        return EXIT_FAIL;
    }
    const char *paths[] = { key, cert };
    for (int i = 0; i < 2 && !a.force; i++)
        if (access(paths[i], F_OK) == 0) {
            fprintf(stderr, "hatoctl: %s exists; --force replaces it\n", paths[i]);
            return EXIT_FAIL;
        }
    uid_t uid;
    gid_t gid;
    if (owner_ids(cfg, &uid, &gid) < 0 || ensure_dir(key, uid, gid) < 0 ||
        ensure_dir(cert, uid, gid) < 0)
        return EXIT_FAIL;
    char *kp, *cp;
    size_t kl, cl;
    if (tls_selfsigned(a.host, a.days, a.type, &kp, &kl, &cp, &cl, err, sizeof err) < 0) {
        fprintf(stderr, "hatoctl: %s\n", err);
        return EXIT_FAIL;
    }
    /* the key first: until the certificate follows, a reload refuses the
     * mismatched pair and keeps the old one */
    int rc = write_one(key, kp, kl, 0600, uid, gid) < 0 ||
             write_one(cert, cp, cl, 0644, uid, gid) < 0 ? EXIT_FAIL : EXIT_OK;
    free(kp);
    free(cp);
    if (rc != EXIT_OK)
        return rc;
    printf("wrote %s (%s) and %s (CN=%s, DNS:%s, %d days)\n", key,
           a.type == TLS_KEY_EC_P256 ? "EC P-256" : "RSA 2048", cert, a.host, a.host, a.days);
    if (!strcmp(key, cfg->tls_key_file) && !strcmp(cert, cfg->tls_cert_file))
        ask_reload(cfg);
    else
        printf("to use them, set in %s:\n  tls_cert_file = %s\n  tls_key_file = %s\n",
               cfg->path, cert, key);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
