#!/usr/bin/env bash
# test.sh — install what is missing, build, run every test.
# Unit tests (TAP) and integration tests run against an ASan+UBSan build;
# fuzz targets get a short run.  The last line is "N passed, N failed".
#   FUZZ_SECONDS=10   seconds per fuzz target (0: build only)
#   SKIP_FUZZ=1       don't build or run the fuzz targets
set -uo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
PASS=0
FAIL=0
say() { printf '== %s\n' "$*"; }

# ---------------------------------------------------------------- packages
PKGS="gcc make autoconf automake pkg-config libevent-dev libssl-dev libunbound-dev
      libcrypt-dev clang libclang-rt-dev python3 procps strace faketime fail2ban openssl
      postfix fetchmail dovecot-imapd dovecot-pop3d mutt"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # postfix is there for smtp-sink (t/unit/test_smtp_client): no system instance
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    { apt-get update -qq && apt-get install -y -qq $missing; } >/tmp/hato-apt.log 2>&1 \
        || { echo "apt-get install failed (see /tmp/hato-apt.log)"; echo "0 passed, 1 failed"; exit 1; }
fi

# ---------------------------------------------------------------- build
build() {  # dir configure-args...
    local dir=$1; shift
    mkdir -p "$dir"
    ( cd "$dir" && { [ -f Makefile ] || "$ROOT/configure" -q "$@"; } && make -s -j2 && make -s -j2 check TESTS= ) \
        >"$dir.log" 2>&1
}
say "autoreconf"
autoreconf -fi >/tmp/hato-autoreconf.log 2>&1 || { cat /tmp/hato-autoreconf.log; echo "0 passed, 1 failed"; exit 1; }
say "build (release: build/, sanitizers: build-san/)"
if ! build build; then tail -40 build.log; echo "0 passed, 1 failed"; exit 1; fi
if ! build build-san --enable-sanitizers; then tail -40 build-san.log; echo "0 passed, 1 failed"; exit 1; fi
PASS=$((PASS + 1))

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# ---------------------------------------------------------------- unit tests
say "unit tests (ASan+UBSan)"
for t in build-san/t/unit/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    p=$(grep -c '^ok ' <<<"$out"); f=$(grep -c '^not ok ' <<<"$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    PASS=$((PASS + p)); FAIL=$((FAIL + f))
    printf '  %-28s %4d passed %3d failed\n' "$(basename "$t")" "$p" "$f"
    if [ "$f" -ne 0 ]; then grep -A3 '^not ok\|ERROR\|runtime error' <<<"$out" | head -30; fi
done

# ---------------------------------------------------------------- integration
say "integration tests (real hatod, ASan+UBSan build)"
out=$(cd t/integ && HATO_BUILD="$ROOT/build-san" python3 run.py 2>&1); rc=$?
echo "$out" | grep -v '^ok ' | grep -v '^# integ:' | head -80
line=$(grep '^# integ:' <<<"$out")
p=$(sed -n 's/^# integ: \([0-9]*\) passed, \([0-9]*\) failed/\1/p' <<<"$line")
f=$(sed -n 's/^# integ: \([0-9]*\) passed, \([0-9]*\) failed/\2/p' <<<"$line")
[ -n "$p" ] || { p=0; f=1; echo "$out" | tail -20; }
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
echo "  integration: $p passed, $f failed"
PASS=$((PASS + p)); FAIL=$((FAIL + f))

# ---------------------------------------------------------------- fuzz
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    say "fuzz targets (${FUZZ_SECONDS}s each)"
    if (cd build && make -s fuzz) >build/fuzz.log 2>&1; then
        for fz in build/t/fuzz/fuzz_*; do
            [ -x "$fz" ] || continue
            corpus=$(mktemp -d)
            if "$fz" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "$corpus" \
                   >"$fz.log" 2>&1; then
                PASS=$((PASS + 1)); echo "  $(basename "$fz"): ok"
            else
                FAIL=$((FAIL + 1)); echo "  $(basename "$fz"): CRASH"; tail -30 "$fz.log"
            fi
            rm -rf "$corpus"
        done
    else
        FAIL=$((FAIL + 1)); echo "  fuzz build failed"; tail -20 build/fuzz.log
    fi
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
