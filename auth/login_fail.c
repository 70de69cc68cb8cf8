/*
 * auth/login_fail.c — the sessions' side of the login throttle
 * (auth/login_fail.h): logging and the loop clock around auth/throttle.c.
 */
#include "auth/login_fail.h"
#include "auth/throttle.h"
#include "lib/log.h"
#include "lib/timeutil.h"

static long long now_s(void)
{
    return (long long)(time_mono_us() / 1000000);
}

long long login_failure(struct throttle *t, const struct sockaddr *peer, const char *client_name,
                        const char *peer_addr, const char *mech, const char *why)
{
    int locked_now = 0;
    log_warn(AUTH_FAILURE_LOG_FMT, client_name ? client_name : "unknown", peer_addr,
             mech ? mech : "?", why ? why : "authentication failure");
    if (!t)
        return 0;
    long long delay = throttle_failure(t, peer, now_s(), &locked_now);
    if (locked_now) {
        char key[THROTTLE_KEY_MAX];
        throttle_key(t, peer, key, sizeof key);
        log_warn("auth lockout: %s locked out after failed logins", key);
    }
    return delay;
}

long long login_locked(struct throttle *t, const struct sockaddr *peer)
{
    return t ? throttle_locked(t, peer, now_s()) : 0;
}

void login_success(struct throttle *t, const struct sockaddr *peer)
{
    if (t)
        throttle_success(t, peer);
}
