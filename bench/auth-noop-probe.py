#!/usr/bin/env python3
"""bench/auth-noop-probe.py HOST PORT — the loop-responsiveness probe of
bench/auth-tls: one plaintext SMTP session that sends NOOP, waits for its
250, sleeps 5 ms and repeats, until SIGTERM/SIGINT; then prints
"probe n=… p50_ms=… p99_ms=… max_ms=…" (the NOOP round trips).  On hatod
every session shares the one event loop, so while a login storm runs this
says whether crypt() and the handshakes stay off it."""
import signal
import socket
import sys
import time

stop = False


def on_signal(signo, frame):
    global stop
    stop = True


def reply(s, buf):
    while True:
        while b"\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                raise EOFError("closed")
            buf += d
        line, buf = buf.split(b"\r\n", 1)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), buf


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    code, buf = reply(s, buf)
    s.sendall(b"EHLO probe.test\r\n")
    code, buf = reply(s, buf)
    rtts = []
    while not stop:
        t0 = time.monotonic()
        s.sendall(b"NOOP\r\n")
        code, buf = reply(s, buf)
        rtts.append((time.monotonic() - t0) * 1000)
        if code != 250:
            raise SystemExit("NOOP got %d" % code)
        time.sleep(0.005)
    rtts.sort()
    n = len(rtts)
    pick = lambda q: rtts[min(n - 1, int(q * n))] if n else 0.0
    print("probe n=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f" % (n, pick(0.5), pick(0.99),
                                                              rtts[-1] if n else 0.0))


if __name__ == "__main__":
    main()
