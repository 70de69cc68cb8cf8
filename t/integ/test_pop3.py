"""The POP3 server (issue 9, "POP3"; RFC 1939, 2449, 2595, 5034) with Python's
poplib as the client: every command, sizes as sent, UIDL stable across
sessions and a restart, the maildrop lock ([IN-USE]), UPDATE semantics
(deletions only at QUIT; a dropped connection deletes nothing), mail
delivered during a session, APOP with the digest computed here, the
plaintext-login policy, STLS (pipelined plaintext discarded) and POP3S,
AUTH mechanisms, malformed and overlong lines, the bad-command cap."""
import base64
import hashlib
import hmac
import json
import os
import poplib
import re
import signal
import socket
import ssl
import subprocess
import time
import unittest

from harness import HATOD, Hatod, RawSocket, free_port, wait_for
from test_queue_util import message, send

PASSWORD = "correct horse"


def crypt_hash(pw):
    return subprocess.run(["openssl", "passwd", "-6", pw], capture_output=True,
                          check=True).stdout.decode().strip()


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


class RawPOP(RawSocket):
    """A byte-exact POP3 client for what poplib will not send."""

    def __init__(self, port, host="127.0.0.1", timeout=10, source="127.0.0.1"):
        self.s = socket.create_connection((host, port), timeout, source_address=(source, 0))
        self.buf = b""
        self.greeting = self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed; buffered %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, line):
        self.send(line if isinstance(line, bytes) else line.encode() + b"\r\n")
        return self.line()

    def multi(self):
        lines = []
        while True:
            l = self.line()
            if l == b".":
                return lines
            lines.append(l[1:] if l.startswith(b"..") else l)


class POP3Base(unittest.TestCase):
    CONF = {}
    TLS = False
    ENV = None              # extra environment for hatod

    def setUp(self):
        self.pop_port = free_port()
        self.pops_port = free_port()
        conf = {"pop3_listen": "127.0.0.1:%d" % self.pop_port, "pop3d_timeout": "60s"}
        if self.TLS:
            conf["pop3s_listen"] = "127.0.0.1:%d" % self.pops_port
            conf["pop3_tls"] = "may"
        conf.update(self.CONF)
        h = self.h = Hatod(conf=conf, users=["bob@example.test %s" % crypt_hash(PASSWORD),
                                             "alice@example.test %s" % crypt_hash(PASSWORD),
                                             "carol@other.test *"])
        if self.TLS:
            h.conf.update({"tls_cert_file": os.path.join(h.dir, "cert.pem"),
                           "tls_key_file": os.path.join(h.dir, "key.pem")})
            h.write_conf()
            r = h.hatoctl("tls", "selfsigned", "mx.example.test")
            self.assertEqual(r.returncode, 0, r.stderr)
        if self.ENV:
            h.env = dict(os.environ, **self.ENV)
        h.start()

    def tearDown(self):
        self.h.stop()
        if not os.environ.get("HATO_KEEP"):
            subprocess.run(["rm", "-rf", self.h.dir])

    def deliver(self, n=1, rcpt="bob@example.test", size=0, start=0):
        before = len(self.h.maildir(rcpt))
        for i in range(n):
            code, _ = send(self.h.port, "sender@remote.test", [rcpt],
                           message(subject="m%d" % (start + i), body="body %d" % (start + i),
                                   size=size))
            self.assertEqual(code, 250)
        self.assertTrue(self.h.wait_mail(rcpt, count=before + n, timeout=20))

    def pop(self, user="bob@example.test", password=PASSWORD):
        p = poplib.POP3("127.0.0.1", self.pop_port, timeout=20)
        p.user(user)
        p.pass_(password)
        return p

    def mailbox(self, user="bob@example.test"):
        local, domain = user.split("@")
        return os.path.join(self.h.state, "mail", domain, local)


class Commands(POP3Base):

    def test_every_command(self):
        self.deliver(3)
        p = poplib.POP3("127.0.0.1", self.pop_port, timeout=20)
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        caps = p.capa()
        for c in ("TOP", "UIDL", "RESP-CODES", "PIPELINING", "USER", "SASL"):
            self.assertIn(c, caps)
        self.assertNotIn("STLS", caps)          # pop3_tls = none
        p.user("bob@example.test")
        p.pass_(PASSWORD)
        count, octets = p.stat()
        self.assertEqual(count, 3)
        resp, lines, _ = p.list()
        sizes = [int(l.split()[1]) for l in lines]
        self.assertEqual(sum(sizes), octets)
        subjects = []
        for i in range(1, 4):
            resp, body, n = p.retr(i)
            self.assertTrue(resp.startswith(b"+OK %d octets" % sizes[i - 1]), resp)
            # the octets as sent: every line and its CRLF (before dot-stuffing)
            self.assertEqual(sum(len(l) + 2 for l in body), sizes[i - 1])
            subj = [l for l in body if l.startswith(b"Subject: m")][0]
            subjects.append(subj)
            self.assertIn(b"body " + subj[-1:], body)
        self.assertEqual(sorted(subjects), [b"Subject: m0", b"Subject: m1", b"Subject: m2"])
        self.assertTrue(p.list(2).startswith(b"+OK 2 %d" % sizes[1]))
        resp, top, _ = p.top(1, 0)
        self.assertIn(subjects[0], top)
        self.assertNotIn(b"body " + subjects[0][-1:], top)
        self.assertEqual(top[-1], b"")          # the header's blank line, then nothing
        resp, uidl, _ = p.uidl()
        self.assertEqual(len(uidl), 3)
        self.assertTrue(all(re.match(rb"^\d \d+\.\d+$", l) for l in uidl), uidl)
        self.assertTrue(p.uidl(3).startswith(b"+OK 3 "))
        self.assertTrue(p.noop().startswith(b"+OK"))
        self.assertTrue(p.dele(2).startswith(b"+OK"))
        self.assertEqual(p.stat(), (2, octets - sizes[1]))
        self.assertRaisesRegex(poplib.error_proto, "deleted", p.retr, 2)
        self.assertRaisesRegex(poplib.error_proto, "deleted", p.dele, 2)
        self.assertRaisesRegex(poplib.error_proto, "No such message", p.retr, 4)
        self.assertRaisesRegex(poplib.error_proto, "No such message", p.list, 0)
        self.assertTrue(p.rset().startswith(b"+OK"))
        self.assertEqual(p.stat(), (3, octets))
        p.dele(1)
        self.assertTrue(p.quit().startswith(b"+OK"))
        self.assertEqual(len(self.h.maildir("bob@example.test")), 2)
        p = self.pop()
        self.assertEqual(p.stat()[0], 2)
        p.quit()

    def test_uidl_stable_across_sessions_and_restart(self):
        self.deliver(3)
        p = self.pop()
        first = p.uidl()[1]
        p.dele(1)
        p.quit()
        p = self.pop()
        second = p.uidl()[1]
        p.quit()
        ids = lambda ls: [l.split()[1] for l in ls]
        self.assertEqual(ids(second), ids(first)[1:])
        self.h.stop()
        self.h.start()
        self.deliver(1, start=3)
        p = self.pop()
        third = p.uidl()[1]
        p.quit()
        self.assertEqual(ids(third)[:2], ids(second))
        self.assertNotIn(ids(third)[2], ids(first))  # a new message, a new UIDL

    def test_dropped_connection_deletes_nothing(self):
        self.deliver(2)
        p = self.pop()
        p.dele(1)
        p.dele(2)
        p.sock.shutdown(socket.SHUT_RDWR)       # no QUIT
        p.close()
        self.assertTrue(wait_for(lambda: self._can_login(), 10))
        p = self.pop()
        self.assertEqual(p.stat()[0], 2)
        p.quit()
        self.assertEqual(len(self.h.maildir("bob@example.test")), 2)

    def _can_login(self):
        try:
            p = self.pop()
        except poplib.error_proto:
            return False
        p.quit()
        return True

    def test_deletions_give_quota_back(self):
        self.deliver(3, size=4000)
        usage = lambda: json.loads(self.h.hatoctl("quota", "show", "bob@example.test",
                                                  "--json").stdout)[0]["usage"]
        before = usage()
        self.assertGreater(before, 12000)
        p = self.pop()
        sizes = [int(l.split()[1]) for l in p.list()[1]]
        p.dele(1)
        p.dele(3)
        p.quit()
        self.assertEqual(usage(), before - sizes[0] - sizes[2])   # hato's files: sizes as stored
        self.assertEqual(len(self.h.maildir("bob@example.test")), 1)

    def test_login_makes_the_folders(self):
        # a mailbox never delivered to gets the special folders and the
        # subscriptions file at its first login, as at first delivery
        p = self.pop("alice@example.test")
        self.assertTrue(p.stat()[0] == 0)
        p.quit()
        root = self.mailbox("alice@example.test")
        for f in ("Sent", "Drafts", "Trash", "Junk"):
            self.assertTrue(os.path.isdir(os.path.join(root, "." + f, "cur")), f)
        with open(os.path.join(root, "subscriptions")) as f:
            self.assertIn("Sent", f.read().split())

    def test_lock_in_use(self):
        self.deliver(1)
        p = self.pop()
        q = poplib.POP3("127.0.0.1", self.pop_port, timeout=20)
        q.user("bob@example.test")
        self.assertRaisesRegex(poplib.error_proto, r"\[IN-USE\]", q.pass_, PASSWORD)
        # the session goes on, and another maildrop is free
        q.user("alice@example.test")
        q.pass_(PASSWORD)
        q.quit()
        p.quit()
        q = self.pop()                          # free again after QUIT
        q.quit()

    def test_lock_held_by_another_program(self):
        # a second hatod or any tool that flocks hato.pop3.lock keeps us out
        import fcntl
        self.deliver(1)
        fd = os.open(os.path.join(self.mailbox(), "hato.pop3.lock"), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            q = poplib.POP3("127.0.0.1", self.pop_port, timeout=20)
            q.user("bob@example.test")
            self.assertRaisesRegex(poplib.error_proto, r"\[IN-USE\]", q.pass_, PASSWORD)
            q.quit()
        finally:
            os.close(fd)
        self.pop().quit()

    def test_delivery_during_session_appears_in_next(self):
        self.deliver(1)
        p = self.pop()
        self.deliver(1, start=1)
        self.assertEqual(p.stat()[0], 1)
        self.assertEqual(len(p.uidl()[1]), 1)
        p.dele(1)
        p.quit()
        p = self.pop()
        self.assertEqual(p.stat()[0], 1)
        self.assertIn(b"Subject: m1", p.retr(1)[1])
        p.quit()

    def test_wrong_password_and_unknown_user(self):
        p = poplib.POP3("127.0.0.1", self.pop_port, timeout=20)
        p.user("bob@example.test")
        self.assertRaisesRegex(poplib.error_proto, r"\[AUTH\]", p.pass_, "wrong")
        p.user("nobody@example.test")
        self.assertRaisesRegex(poplib.error_proto, r"\[AUTH\]", p.pass_, "wrong")
        p.user("bob@example.test")
        p.pass_(PASSWORD)                       # the session went on
        p.quit()
        self.assertIn("SASL LOGIN authentication failed", self.h.log())

    def test_message_moved_or_removed_by_another_program(self):
        self.deliver(2)
        p = self.pop()
        new = os.path.join(self.mailbox(), "new")
        names = sorted(os.listdir(new))
        # mutt reads one: new/NAME becomes cur/NAME:2,S; RETR follows it
        os.rename(os.path.join(new, names[0]), os.path.join(self.mailbox(), "cur", names[0] + ":2,S"))
        os.unlink(os.path.join(new, names[1]))
        bodies = []
        for i in (1, 2):
            try:
                bodies.append(p.retr(i)[1])
            except poplib.error_proto as e:
                bodies.append(e.args[0])
        self.assertEqual(sum(1 for b in bodies if isinstance(b, list)), 1, bodies)
        gone = [b for b in bodies if not isinstance(b, list)][0]
        self.assertTrue(gone.startswith(b"-ERR [SYS/TEMP]"), gone)
        self.assertTrue(p.noop().startswith(b"+OK"))     # the session goes on
        p.quit()

    def test_reload_turns_apop_on(self):
        r = RawPOP(self.pop_port)
        self.assertNotIn(b"<", r.greeting)
        r.cmd("QUIT")
        self.h.conf["pop3_apop"] = "yes"
        self.h.write_conf()
        n = self.h.log().count("reload")
        self.h.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: self.h.log().count("reload") > n, 10))
        time.sleep(0.2)
        r = RawPOP(self.pop_port)
        self.assertIn(b"@mx.example.test>", r.greeting)
        r.cmd("QUIT")

    def test_pipelined_commands_in_one_segment(self):
        # CAPA says PIPELINING: 100 RETRs of a 20 KB message and QUIT in one
        # write are answered in order (the output's high-water mark pauses
        # and resumes the command loop many times on the way)
        self.deliver(1, size=20000)
        r = RawPOP(self.pop_port, timeout=30)
        r.cmd("USER bob@example.test")
        r.cmd("PASS " + PASSWORD)
        r.send(b"RETR 1\r\n" * 100 + b"STAT\r\nQUIT\r\n")
        for i in range(100):
            first = r.line()
            self.assertTrue(first.startswith(b"+OK"), (i, first))
            self.assertGreater(len(b"".join(r.multi())), 19000)
        self.assertTrue(r.line().startswith(b"+OK 1 "))
        self.assertTrue(r.line().startswith(b"+OK Logging out"))
        self.assertTrue(r.closed())

    def test_half_close_after_pipelined_quit(self):
        # DELE, RETR, QUIT, then the client closes its side: every command is
        # still answered, and the QUIT that arrived means UPDATE runs
        self.deliver(2)
        r = RawPOP(self.pop_port)
        r.cmd("USER bob@example.test")
        r.cmd("PASS " + PASSWORD)
        r.send(b"DELE 1\r\nRETR 2\r\nQUIT\r\n")
        r.s.shutdown(socket.SHUT_WR)
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertTrue(any(l.startswith(b"Subject: m") for l in r.multi()))
        self.assertTrue(r.line().startswith(b"+OK Logging out, 1 messages deleted"))
        self.assertTrue(r.closed())
        self.assertEqual(len(self.h.maildir("bob@example.test")), 1)

    def test_commands_in_the_wrong_state(self):
        r = RawPOP(self.pop_port)
        self.assertTrue(r.cmd("STAT").startswith(b"-ERR"))
        self.assertTrue(r.cmd("PASS x").startswith(b"-ERR"))   # no USER
        r.cmd("USER bob@example.test")
        self.assertTrue(r.cmd("PASS " + PASSWORD).startswith(b"+OK"))
        self.assertTrue(r.cmd("USER bob@example.test").startswith(b"-ERR"))
        self.assertTrue(r.cmd("STLS").startswith(b"-ERR"))
        self.assertTrue(r.cmd("STAT").startswith(b"+OK 0 0"))
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))


class Sizes(POP3Base):

    def test_foreign_file_with_bare_lf_counts_crlf(self):
        # a Maildir file another program wrote with LF line ends and no
        # final newline; a line starting with a dot
        self.deliver(1)
        new = os.path.join(self.mailbox(), "new")
        content = b"From: x@y\nSubject: lf\n\nline one\n.dot line\nlast without newline"
        with open(os.path.join(new, "1700000000.12345_1.otherhost"), "wb") as f:
            f.write(content)
        p = self.pop()
        resp, lines, _ = p.list()
        size = int(lines[1].split()[1])
        wire = content.replace(b"\n", b"\r\n") + b"\r\n"
        self.assertEqual(size, len(wire))
        r = RawPOP(self.pop_port)
        p.quit()
        r.cmd("USER bob@example.test")
        r.cmd("PASS " + PASSWORD)
        raw = b""
        self.assertTrue(r.cmd("RETR 2").startswith(b"+OK %d octets" % size))
        while not raw.endswith(b"\r\n.\r\n"):
            raw += r.s.recv(65536) if not r.buf else r.buf
            r.buf = b""
        body = raw[:-3]
        self.assertIn(b"\r\n..dot line\r\n", body)          # dot-stuffed
        self.assertEqual(len(body) - body.count(b"\r\n.."), size)
        self.assertNotIn(b"\n", body.replace(b"\r\n", b""))  # no bare LF
        r.cmd("QUIT")

    def test_listing_opens_no_file_hato_delivered(self):
        # a hato-named file is CRLF as stored: its ,S= size is the size as
        # sent, and listing never reads it (were it read, this content
        # would count 6, not the 10 its name says)
        self.deliver(1)
        with open(os.path.join(self.mailbox(), "new", "1764633600.M1P1Q1.host,S=10"), "wb") as f:
            f.write(b"a\nb\n")
        p = self.pop()
        self.assertEqual(int(p.list()[1][1].split()[1]), 10)
        p.quit()

    def test_counted_sizes_are_cached(self):
        # a foreign file is counted once; the next logins take the count from
        # hato.pop3.sizes (Maildir files never change: the probe below does
        # change one in place, same size, to see that it is not read again)
        self.deliver(1)
        path = os.path.join(self.mailbox(), "new", "1700000002.77_1.mutthost")
        with open(path, "wb") as f:
            f.write(b"a\nbc")                 # counted: 4 + 1 + 2 = 7
        p = self.pop()
        self.assertEqual(int(p.list()[1][1].split()[1]), 7)
        p.quit()
        self.assertTrue(os.path.exists(os.path.join(self.mailbox(), "hato.pop3.sizes")))
        with open(path, "r+b") as f:
            f.write(b"ab\r\n")               # would count 4
        p = self.pop()
        self.assertEqual(int(p.list()[1][1].split()[1]), 7)
        p.quit()

    def test_flagged_file_in_new_is_retrieved(self):
        # Dovecot and mutt leave files flagged in new/ as NAME:2,S; LIST
        # counts it and RETR opens it under that name
        self.deliver(1)
        content = b"Subject: seen\r\n\r\nflagged in new\r\n"
        with open(os.path.join(self.mailbox(), "new", "1700000003.M9P9.dove:2,S"), "wb") as f:
            f.write(content)
        p = self.pop()
        self.assertEqual(int(p.list()[1][1].split()[1]), len(content))
        self.assertEqual(p.retr(2)[1], [b"Subject: seen", b"", b"flagged in new"])
        p.quit()

    def test_dovecot_w_size_is_used(self):
        self.deliver(1)
        new = os.path.join(self.mailbox(), "new")
        content = b"Subject: w\n\nx\n"
        with open(os.path.join(new, "1700000001.M1P2.dove,S=%d,W=%d" % (len(content), len(content) + 3)), "wb") as f:
            f.write(content)
        p = self.pop()
        self.assertEqual(int(p.list()[1][1].split()[1]), len(content) + 3)
        self.assertEqual(sum(len(l) + 2 for l in p.retr(2)[1]), len(content) + 3)
        p.quit()


class Limits(POP3Base):
    CONF = {"pop3d_timeout": "2s"}

    def test_idle_timeout(self):
        r = RawPOP(self.pop_port)
        r.cmd("USER bob@example.test")
        t0 = time.time()
        self.assertTrue(r.closed(timeout=10))
        self.assertGreater(time.time() - t0, 1.5)
        self.assertIn(b"-ERR Disconnected for inactivity", r.buf)

    def test_shutdown_deletes_nothing(self):
        self.deliver(2)
        p = self.pop()
        p.dele(1)
        p.dele(2)
        self.h.stop()                       # SIGTERM with the session open
        self.assertEqual(len(self.h.maildir("bob@example.test")), 2)
        self.h.start()
        p = self.pop()
        self.assertEqual(p.stat()[0], 2)
        p.quit()

    def test_overlong_and_malformed_lines(self):
        r = RawPOP(self.pop_port)
        self.assertTrue(r.cmd(b"NOOP " + b"x" * 300 + b"\r\n").startswith(b"-ERR Line too long"))
        self.assertTrue(r.cmd("FOO").startswith(b"-ERR"))
        self.assertTrue(r.cmd(b"US\x00R bob\r\n").startswith(b"-ERR"))
        r.cmd("USER bob@example.test")
        self.assertTrue(r.cmd("PASS " + PASSWORD).startswith(b"+OK"))
        for bad in ("RETR", "RETR x", "RETR -1", "RETR 1 2", "LIST  1", "TOP 1", "DELE 99999999999",
                    "STAT 1", "LIST 1 "):
            self.assertTrue(r.cmd(bad).startswith(b"-ERR"), bad)
        self.assertTrue(r.cmd("NOOP").startswith(b"+OK"))      # alive
        r.cmd("QUIT")

    def test_bad_command_cap_closes(self):
        r = RawPOP(self.pop_port)
        replies = [r.cmd("BOGUS") for _ in range(19)]
        self.assertTrue(all(x.startswith(b"-ERR") for x in replies))
        r.send(b"BOGUS\r\n")
        self.assertTrue(r.line().startswith(b"-ERR"))
        self.assertIn(b"Too many bad commands", r.line())
        self.assertTrue(r.closed())


class Config(unittest.TestCase):
    """The POP3 keys' checks (hatod -n)."""

    def check(self, **kv):
        h = Hatod(conf=dict({"pop3_listen": "127.0.0.1:%d" % free_port()}, **kv))
        try:
            return subprocess.run([HATOD, "-f", h.conf_path, "-n"], capture_output=True,
                                  timeout=30)
        finally:
            h.cleanup()

    def test_checks(self):
        self.assertEqual(self.check().returncode, 0)
        for kv, want in (({"pop3s_listen": "127.0.0.1:1"}, b"pop3s_listen: implicit TLS needs tls_cert_file"),
                         ({"pop3_tls": "encrypt"}, b"pop3_tls: encrypt needs tls_cert_file"),
                         ({"auth_plaintext_clients": "10.0.0.0/99"}, b"auth_plaintext_clients"),
                         ({"pop3d_timeout": "0"}, b"pop3d_timeout: must be > 0"),
                         ({"pop3_listen": "nowhere"}, b"pop3_listen: bad listen address")):
            r = self.check(**kv)
            self.assertNotEqual(r.returncode, 0, kv)
            self.assertIn(want, r.stderr + r.stdout, kv)


if __name__ == "__main__":
    unittest.main()
