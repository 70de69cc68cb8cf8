#!/usr/bin/env python3
"""bench/abort-data.py — the load of bench/abort-data against one hatod.

  abort-data.py PORT SECONDS ABORTERS SIZE OVERFLOW RATE

ABORTERS processes abort DATA in a loop, each cycling through the three
ways a message is dropped unfinished: the client disconnects after SIZE
octets of content, it sends more than message_size_limit (552 5.3.4 after
the final dot), and it sends a bare LF after SIZE octets (521 with
smtpd_forbid_bare_newline = yes), at most RATE aborts a second each, so that
both binaries of a comparison get the same abort load.  Meanwhile one
session (this process) sends 1 KiB messages one after another, with three
NOOPs before each, and times the NOOPs.  Prints one line: messages/s of
that session, NOOP p50/p99/max in ms, NOOPs timed, aborts done.
"""
import multiprocessing
import socket
import sys
import time

LINE = b"x" * 998 + b"\r\n"
MSG = b"Subject: bench\r\n\r\n" + b"y" * 1000 + b"\r\n.\r\n"


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise EOFError
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3])

    def cmd(self, line):
        self.s.sendall(line + b"\r\n")
        return self.reply()


def open_data(port):
    c = Conn(port)
    c.reply()
    c.cmd(b"EHLO aborter.test")
    c.cmd(b"MAIL FROM:<a@bench.test>")
    c.cmd(b"RCPT TO:<u@bench.test>")
    if c.cmd(b"DATA") != 354:
        raise RuntimeError("no 354")
    return c


def content(c, size):
    chunk = LINE * 64
    sent = 0
    while sent < size:
        c.s.sendall(chunk)
        sent += len(chunk)


def aborter(port, deadline, size, overflow, rate, counter):
    kind = 0
    slot = time.time()
    while time.time() < deadline:
        slot += 1.0 / rate
        if slot > time.time():
            time.sleep(slot - time.time())
        try:
            c = open_data(port)
            if kind == 0:                       # disconnect mid-DATA
                content(c, size)
            elif kind == 1:                     # 552 after the dot
                content(c, overflow)
                c.s.sendall(b".\r\n")
                c.reply()
                c.cmd(b"QUIT")
            else:                               # 521 on a bare LF
                content(c, size)
                c.s.sendall(b"bare\n")
                c.reply()
            c.s.close()
            with counter.get_lock():
                counter.value += 1
        except (OSError, EOFError, RuntimeError):
            time.sleep(0.01)
        kind = (kind + 1) % 3


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))] * 1000


def main():
    port, seconds, naborters, size = (int(a) for a in sys.argv[1:5])
    overflow, rate = int(sys.argv[5]), float(sys.argv[6])
    deadline = time.time() + seconds
    counter = multiprocessing.Value("l", 0)
    procs = [multiprocessing.Process(target=aborter,
                                     args=(port, deadline, size, overflow, rate, counter))
             for _ in range(naborters)]
    for p in procs:
        p.start()
    c = Conn(port)
    c.reply()
    c.cmd(b"EHLO sender.test")
    lat, sent = [], 0
    t0 = time.time()
    while time.time() < deadline:
        for _ in range(3):
            t = time.perf_counter()
            c.cmd(b"NOOP")
            lat.append(time.perf_counter() - t)
        c.cmd(b"MAIL FROM:<s@bench.test>")
        c.cmd(b"RCPT TO:<u@bench.test>")
        c.cmd(b"DATA")
        c.s.sendall(MSG)
        if c.reply() == 250:
            sent += 1
    elapsed = time.time() - t0
    c.cmd(b"QUIT")
    for p in procs:
        p.join()
    lat.sort()
    print("%9.1f %8.2f %8.2f %8.2f %7d %7d" % (sent / elapsed, pct(lat, 0.5), pct(lat, 0.99),
                                            lat[-1] * 1000, len(lat), counter.value))


if __name__ == "__main__":
    main()
