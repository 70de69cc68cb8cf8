#!/usr/bin/env python3
"""bench/pop3-load.py — the POP3 client of bench/pop3: one raw-socket client
for every server, so the figures compare servers, not client libraries.

  pop3-load.py scan HOST:PORT USER PASS          LOGIN+STAT+UIDL, seconds
  pop3-load.py retr HOST:PORT USER PASS          RETR 1..N, seconds and MB/s
  pop3-load.py idle HOST:PORT USERFMT PASS N PID  N logged-in idle sessions
                                                  (USERFMT % k, k = 1..N);
                                                  PSS of PID's process tree
                                                  per session

Each prints one line `key=value ...`.  Commands are sent one at a time
(no pipelining), as fetchmail and most clients do; the server's reply is
read up to its terminator, byte-exact, and the octets counted.
"""
import os
import socket
import sys
import time


class Pop:
    def __init__(self, hostport):
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.line()                      # greeting

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError("server closed")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        if not ln.startswith(b"+OK"):
            raise RuntimeError(ln.decode(errors="replace"))
        return ln

    def multi(self):
        """A multi-line body after +OK; returns its octet count."""
        self.line()
        while True:
            k = self.buf.find(b"\r\n.\r\n")
            if k >= 0:
                n = k + 2
                self.buf = self.buf[k + 5:]
                return n
            if self.buf.startswith(b".\r\n"):
                self.buf = self.buf[3:]
                return 0
            self._fill()

    def cmd(self, c):
        self.s.sendall(c.encode() + b"\r\n")

    def login(self, user, pw):
        self.cmd("USER " + user)
        self.line()
        self.cmd("PASS " + pw)
        self.line()

    def stat(self):
        self.cmd("STAT")
        return int(self.line().split()[1])

    def quit(self):
        self.cmd("QUIT")
        try:
            self.line()
        except (EOFError, RuntimeError):
            pass
        self.s.close()


def scan(hp, user, pw):
    t0 = time.monotonic()
    p = Pop(hp)
    p.login(user, pw)
    n = p.stat()
    p.cmd("UIDL")
    octets = p.multi()
    t = time.monotonic() - t0
    p.quit()
    print(f"op=scan messages={n} uidl_octets={octets} seconds={t:.4f}")


def retr(hp, user, pw):
    p = Pop(hp)
    p.login(user, pw)
    n = p.stat()
    t0 = time.monotonic()
    total = 0
    for k in range(1, n + 1):
        p.cmd(f"RETR {k}")
        total += p.multi()
    t = time.monotonic() - t0
    p.quit()
    print(f"op=retr messages={n} octets={total} seconds={t:.3f} "
          f"MBps={total / t / 1e6:.1f}")


def tree(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def pss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for ln in f:
                    if ln.startswith("Pss:"):
                        total += int(ln.split()[1])
        except OSError:
            pass
    return total


def idle(hp, fmt, pw, n, pid):
    time.sleep(0.5)
    base = pss_kib(pid)
    sess = []
    for k in range(1, n + 1):
        p = Pop(hp)
        p.login(fmt % k, pw)
        p.stat()
        sess.append(p)
    time.sleep(2)
    full = pss_kib(pid)
    for p in sess:
        p.quit()
    print(f"op=idle sessions={n} pss_before_kib={base} pss_with_kib={full} "
          f"per_session_kib={(full - base) / n:.1f}")


def main(a):
    if len(a) == 4 and a[0] == "scan":
        scan(*a[1:])
    elif len(a) == 4 and a[0] == "retr":
        retr(*a[1:])
    elif len(a) == 6 and a[0] == "idle":
        idle(a[1], a[2], a[3], int(a[4]), int(a[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
