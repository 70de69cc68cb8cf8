#!/usr/bin/env bash
# run.sh — install what is missing, build, and start hatod in the foreground
# on a demo configuration: state under ./run/, loopback only, SMTP on 2525,
# submission on 2587, domain demo.test with user demo@demo.test.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
PKGS="gcc make autoconf automake pkg-config libevent-dev libssl-dev libunbound-dev libcrypt-dev
      swaks"   # swaks: the test client the banner below suggests
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null
fi
RUN="$ROOT/run"
mkdir -p "$RUN" build
echo "building (log: run/build.log) ..."
{ { [ -x configure ] || autoreconf -fi; } &&
  ( cd build && { [ -f Makefile ] || ../configure -q; } && make -s -j2 ); } >"$RUN/build.log" 2>&1 \
    || { tail -30 "$RUN/build.log"; echo "build failed"; exit 1; }
if [ ! -f "$RUN/hato.conf" ]; then
    cat > "$RUN/hato.conf" <<CONF
# demo configuration written by run.sh
myhostname = demo.test
state_directory = $RUN/state
run_user =
local_domains = demo.test
smtp_listen = 127.0.0.1:2525
submission_listen = 127.0.0.1:2587
users_file = $RUN/users
alias_maps = $RUN/aliases
resolver_config = $RUN/unbound.conf
CONF
    printf 'server:\n    local-zone: "." static\n    local-data: "demo.test. IN MX 10 demo.test."\n    local-data: "demo.test. IN A 127.0.0.1"\n' > "$RUN/unbound.conf"
    : > "$RUN/users"
    printf 'postmaster: demo\n' > "$RUN/aliases"
    HATO_CONFIG="$RUN/hato.conf" build/tools/hatoctl user add demo@demo.test >/dev/null
fi
# TLS: a self-signed pair for demo.test (also added to a demo made before TLS)
if ! grep -q '^tls_cert_file' "$RUN/hato.conf"; then
    printf 'tls_cert_file = %s\ntls_key_file = %s\n' \
        "$RUN/state/keys/tls.crt" "$RUN/state/keys/tls.key" >> "$RUN/hato.conf"
fi
if [ ! -f "$RUN/state/keys/tls.crt" ] || [ ! -f "$RUN/state/keys/tls.key" ]; then
    build/tools/hatoctl -f "$RUN/hato.conf" tls selfsigned demo.test --force \
        --key "$RUN/state/keys/tls.key" --cert "$RUN/state/keys/tls.crt" >/dev/null
fi
cat <<MSG
hatod demo: SMTP 127.0.0.1:2525, submission 127.0.0.1:2587, domain demo.test
  send:   swaks --server 127.0.0.1:2525 --to demo@demo.test
     or:  printf 'Subject: hi\n\nhello\n' | HATO_CONFIG=$RUN/hato.conf build/tools/hato-sendmail demo@demo.test
  lands:  $RUN/state/mail/demo.test/demo/new/
  queue:  HATO_CONFIG=$RUN/hato.conf build/tools/hatoctl queue list
  TLS:    $RUN/state/keys/tls.crt (self-signed, demo.test)
  stop:   Ctrl-C
MSG
exec build/mta/hatod -f "$RUN/hato.conf" -d
