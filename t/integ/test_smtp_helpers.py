"""Helpers shared by the test_smtp_*.py modules (no tests here).

SMTPCase is a HatodTestCase with shortcuts for byte-exact sessions and for
checking what was (or was not) queued and delivered.
"""
import os
import re
import socket
import time

from harness import Hatod, HatodTestCase, RawSMTP, wait_for

QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")


def port_listening(port, family=socket.AF_INET):
    """True if something listens on port (read from /proc, no connection made:
    a probe connection would count against the connection limits)."""
    names = ["/proc/net/tcp"] if family == socket.AF_INET else ["/proc/net/tcp6"]
    for name in names:
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def free_port6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind(("::1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def headers_and_body(data):
    """Split stored content at the first empty line."""
    head, sep, body = data.partition(b"\r\n\r\n")
    return head + b"\r\n", body


def unfold(head):
    """Header lines, unfolded, as a list of bytes."""
    out = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += b" " + line.strip()
        else:
            out.append(line)
    return out


class SMTPCase(HatodTestCase):
    """Adds session and queue helpers; no tests of its own."""

    QUIET_START = False      # wait for the port without connecting to it

    def setUp(self):
        if not self.QUIET_START:
            return super().setUp()
        self.h = Hatod(conf=self.CONF, users=self.USERS, aliases=self.ALIASES)
        self.h.start(wait=False)
        if not wait_for(lambda: self.h.proc.poll() is not None or port_listening(self.h.port), 10) \
                or self.h.proc.poll() is not None:
            raise RuntimeError("hatod did not start:\n" + self.h.log())

    def tearDown(self):
        # close client sockets first: an open transaction would hold up
        # hatod's SIGTERM shutdown for its whole grace period
        for c in getattr(self, "_conns", []):
            try:
                c.close()
            except OSError:
                pass
        super().tearDown()

    def track(self, conn):
        """Close conn (a RawSMTP, socket or smtplib.SMTP) before hatod stops."""
        if not hasattr(self, "_conns"):
            self._conns = []
        self._conns.append(conn)
        return conn

    # -- sessions
    def raw(self, ehlo="client.test", port=None, host="127.0.0.1", timeout=10):
        """A RawSMTP past the banner (and EHLO/HELO unless ehlo is None)."""
        r = RawSMTP(port or self.h.port, host=host, timeout=timeout)
        self.track(r)
        code, lines = r.reply()
        self.assertEqual(code, 220, lines)
        if ehlo:
            code, lines = r.cmd("EHLO " + ehlo)
            self.assertEqual(code, 250, lines)
        return r

    def expect(self, r, line, code, enh=None, text=None):
        """Send one command (str or bytes) and check the reply."""
        got, lines = r.cmd(line)
        self.check(got, lines, code, enh, text, line)
        return lines

    def check(self, got, lines, code, enh=None, text=None, what=""):
        self.assertEqual(got, code, "%r -> %r" % (what, lines))
        if enh is not None:
            self.assertTrue(lines[-1].startswith("%d %s " % (code, enh)),
                            "%r -> %r (want %d %s)" % (what, lines, code, enh))
        if text is not None:
            self.assertIn(text, lines[-1], "%r -> %r" % (what, lines))

    def send_message(self, r, sender, rcpts, content, rcpt_code=250):
        """MAIL/RCPT/DATA with content already dot-stuffed and ending in
        CRLF.CRLF; returns the queue ID from the final 250."""
        self.expect(r, "MAIL FROM:<%s>" % sender, 250, "2.1.0")
        for a in rcpts:
            self.expect(r, "RCPT TO:<%s>" % a, rcpt_code)
        self.expect(r, "DATA", 354)
        r.send(content)
        code, lines = r.reply()
        self.assertEqual(code, 250, lines)
        m = QUEUED_RE.match(lines[-1])
        self.assertTrue(m, lines)
        return m.group(1)

    # -- mailboxes
    def one_mail(self, address, timeout=10):
        files = self.h.wait_mail(address, 1, timeout)
        self.assertTrue(files, "no mail for %s\n%s" % (address, self.h.log()))
        self.assertEqual(len(files), 1, files)
        return self.h.read_mail(files[0])

    def assert_no_mail(self, address, settle=0.0):
        if settle:
            time.sleep(settle)
        self.assertEqual(self.h.maildir(address), [], "unexpected mail for " + address)

    # -- queue
    def queue_files(self):
        out = []
        for sub in ("tmp", "msg", "env"):
            d = os.path.join(self.h.state, "queue", sub)
            try:
                out += [sub + "/" + n for n in os.listdir(d)]
            except FileNotFoundError:
                pass
        return sorted(out)

    def commits(self):
        """Messages the queue committed (one log line each)."""
        return re.findall(r"^.*: client=.*, from=<.*$", self.h.log(), re.M)

    def assert_nothing_queued(self, *mailboxes):
        """Nothing was committed: no queue file of any kind (an aborted
        message's file is removed by a pool job, so allow it a moment), no
        log line, no delivery to any of the mailboxes."""
        wait_for(lambda: not self.queue_files(), 5)
        self.assertEqual(self.queue_files(), [], self.h.log())
        self.assertEqual(self.commits(), [], self.h.log())
        for a in mailboxes:
            self.assert_no_mail(a)

    def barrier_delivery(self, r, address="alice@example.test"):
        """Send one good message on r and wait until it is delivered: any
        earlier queued message would have been delivered by then too."""
        qid = self.send_message(r, "sync@remote.test", [address],
                                b"Subject: sync\r\n\r\nsync\r\n.\r\n")
        files = self.h.wait_mail(address)
        self.assertTrue(files, self.h.log())
        wait_for(lambda: not self.h.queue_ids(), 5)
        time.sleep(0.2)
        return qid
