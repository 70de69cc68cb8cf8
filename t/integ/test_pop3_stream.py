"""POP3 RETR streaming (issue 9): a 50 MB message goes out in chunks and
never sits whole in hatod's memory (peak RSS measured); a client that stops
reading in the middle of a RETR holds no worker and does not stall another
session; the idle timeout ends a stalled one.  And fetchmail (Debian's) as a
real client: it downloads everything, deletes it (UPDATE at QUIT), and with
`keep` + UIDL ("leave a copy on the server") fetches only new mail the next
time."""
import os
import shutil
import socket
import subprocess
import time
import unittest

from harness import wait_for
from test_pop3 import PASSWORD, POP3Base, RawPOP

BIG = 50 * 1024 * 1024


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def write_big(mailbox, size=BIG):
    """A CRLF message of about `size` octets in new/ under a hato-style name
    (hato delivers with CRLF; the index sync gives it its UID)."""
    line = b"y" * 998 + b"\r\n"
    head = b"Subject: big\r\nFrom: a@b.test\r\n\r\n"
    n = (size - len(head)) // len(line)
    total = len(head) + n * len(line)
    name = "1764633600.M1P1Q1.big,S=%d" % total
    tmp = os.path.join(mailbox, "tmp", name)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(mailbox, sub), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(head)
        chunk = line * 1024
        for _ in range(n // 1024):
            f.write(chunk)
        f.write(line * (n % 1024))
    os.rename(tmp, os.path.join(mailbox, "new", name))
    return total


class Stream(POP3Base):
    CONF = {"pop3d_timeout": "5s"}
    # under ASan freed memory waits in a quarantine (256 MB) and counts in
    # RSS; a small one makes RSS mean what is in use
    ENV = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS", ""),
                                                  "quarantine_size_mb=1",
                                                  "thread_local_quarantine_size_kb=64"]))}

    def retr_count(self, r, n):
        """Read RETR n's reply and body; return the octets before the final dot."""
        first = r.cmd("RETR %d" % n)
        self.assertTrue(first.startswith(b"+OK"), first)
        got, tail = 0, b""
        data = r.buf
        r.buf = b""
        while True:
            if data:
                buf = tail + data
                if buf.endswith(b"\r\n.\r\n"):
                    got += len(data) - 3
                    return got
                got += len(data)
                tail = buf[-5:]
            data = r.s.recv(1 << 20)
            if not data:
                raise EOFError("closed mid-RETR after %d" % got)

    def test_50mb_retr_does_not_sit_in_memory(self):
        self.deliver(1)
        size = write_big(self.mailbox())
        pid = self.h.proc.pid
        r = RawPOP(self.pop_port, timeout=60)
        r.cmd("USER bob@example.test")
        self.assertTrue(r.cmd("PASS " + PASSWORD).startswith(b"+OK"))
        before = rss_kb(pid)
        got = self.retr_count(r, 2)
        peak = rss_kb(pid, "VmHWM")
        r.cmd("QUIT")
        self.assertEqual(got, size)        # no line needs stuffing: exact
        grew_mb = (peak - before) / 1024.0
        print("# 50 MB RETR: RSS %d kB before, peak %d kB (+%.1f MB)" % (before, peak, grew_mb))
        self.assertLess(grew_mb, 16, "peak RSS grew by %.1f MB for a 50 MB message" % grew_mb)

    def test_stalled_reader_does_not_stall_others(self):
        self.deliver(1, rcpt="alice@example.test", size=200 * 1024)
        write_big(self.mailbox())
        # bob's client asks for 50 MB and reads nothing, with a small window
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", self.pop_port))
        s.recv(512)
        s.sendall(b"USER bob@example.test\r\nPASS " + PASSWORD.encode() + b"\r\n")
        time.sleep(1)
        s.sendall(b"RETR 1\r\n")
        time.sleep(1)
        pid = self.h.proc.pid
        held = rss_kb(pid)
        # alice is served meanwhile, quickly and in full
        t0 = time.time()
        r = RawPOP(self.pop_port)
        r.cmd("USER alice@example.test")
        self.assertTrue(r.cmd("PASS " + PASSWORD).startswith(b"+OK"))
        for _ in range(3):
            self.assertGreater(self.retr_count(r, 1), 200 * 1024)
            self.assertTrue(r.cmd("NOOP").startswith(b"+OK"))
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        took = time.time() - t0
        self.assertLess(took, 3.0, "alice waited %.1f s beside a stalled RETR" % took)
        self.assertLess(rss_kb(pid) - held, 16 * 1024)   # the stalled one is not buffered
        # the stalled session ends at the idle timeout, deleting nothing
        self.assertTrue(wait_for(lambda: "client stopped reading a message" in self.h.log(), 20))
        s.close()
        self.assertEqual(len(self.h.maildir("bob@example.test")), 1)


@unittest.skipUnless(shutil.which("fetchmail"), "fetchmail not installed")
class Fetchmail(POP3Base):

    def fetchmail(self, *extra, port=None):
        rc = os.path.join(self.h.dir, "fetchmailrc")
        out = os.path.join(self.h.dir, "fetched.mbox")
        with open(rc, "w") as f:
            f.write('poll 127.0.0.1 service %d protocol pop3 auth password uidl\n'
                    '  user "bob@example.test" password "%s" is root here\n'
                    '  %s mda "cat >> %s"\n'
                    % (port or self.pop_port, PASSWORD,
                       " ".join(extra + (("no sslcertck",) if self.TLS else ('sslproto ""',))),
                       out))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=self.h.dir, FETCHMAILHOME=self.h.dir)
        p = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--nosyslog", "-v"],
                           capture_output=True, env=env, timeout=60)
        try:
            with open(out, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        return p, data

    def test_fetchmail_downloads_and_deletes(self):
        self.deliver(3)
        p, data = self.fetchmail()
        self.assertIn(p.returncode, (0,), p.stdout.decode() + p.stderr.decode())
        for i in range(3):
            self.assertIn(b"Subject: m%d" % i, data)
        self.assertEqual(self.h.maildir("bob@example.test"), [])    # deleted at QUIT
        p, _ = self.fetchmail()
        self.assertEqual(p.returncode, 1)          # 1: no mail

    def test_fetchmail_keep_with_uidl_fetches_only_new_mail(self):
        self.deliver(2)
        p, data = self.fetchmail("keep")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(data.count(b"Subject: m"), 2)
        self.assertEqual(len(self.h.maildir("bob@example.test")), 2)   # left on the server
        self.deliver(1, start=2)
        p, data = self.fetchmail("keep")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(data.count(b"Subject: m"), 3)      # only m2 was new
        self.assertEqual(data.count(b"Subject: m2"), 1)


@unittest.skipUnless(shutil.which("fetchmail"), "fetchmail not installed")
class FetchmailTLS(Fetchmail):
    """The same over STLS (fetchmail takes it when offered), and POP3S."""
    TLS = True

    def test_fetchmail_pop3s(self):
        self.deliver(2)
        p, data = self.fetchmail("keep ssl", port=self.pops_port)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertEqual(data.count(b"Subject: m"), 2)

    def test_fetchmail_stls(self):
        self.deliver(1)
        p, data = self.fetchmail("keep sslproto tls1.2+")
        out = p.stdout.decode() + p.stderr.decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("STLS", out)
        self.assertEqual(data.count(b"Subject: m"), 1)
        self.assertIn("pop3: TLS connection established", self.h.log())


if __name__ == "__main__":
    unittest.main()
