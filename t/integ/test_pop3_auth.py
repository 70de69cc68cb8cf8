"""POP3 logins (issue 9 "POP3", issue 8's throttle and POP-before-SMTP): STLS
with poplib (and pipelined plaintext after STLS never executed, same segment
and split), POP3S, AUTH PLAIN/LOGIN/CRAM-MD5/SCRAM-SHA-256 (RFC 5034) with the
exchanges computed here, APOP with `hatoctl user passwd --with-apop` and the
digest computed here, the plaintext policy (pop3_tls = encrypt,
auth_plaintext_clients), the lockout shared with SMTP (-ERR at connect), and
POP-before-SMTP (smtplib relays after a poplib login, and not after
pop_before_smtp_time)."""
import base64
import hashlib
import hmac
import os
import poplib
import re
import smtplib
import socket
import ssl
import time
import unittest

from harness import wait_for
from scram_client import ScramClient
from test_pop3 import PASSWORD, POP3Base, RawPOP, ctx
from test_queue_util import message


class SourcePOP3(poplib.POP3):
    """poplib from a given loopback address (it has no source_address)."""

    def __init__(self, port, source, timeout=20):
        self._source = source
        super().__init__("127.0.0.1", port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


class TLS(POP3Base):
    TLS = True

    def test_stls_with_poplib(self):
        self.deliver(1)
        p = poplib.POP3("127.0.0.1", self.pop_port, timeout=20)
        self.assertIn("STLS", p.capa())
        p.stls(context=ctx())
        caps = p.capa()
        self.assertNotIn("STLS", caps)          # not twice
        self.assertIn("USER", caps)
        p.user("bob@example.test")
        p.pass_(PASSWORD)
        self.assertEqual(p.stat()[0], 1)
        self.assertIn(b"Subject: m0", p.retr(1)[1])
        p.quit()
        self.assertIn("pop3: TLS connection established from 127.0.0.1", self.h.log())

    def test_pop3s_with_poplib(self):
        self.deliver(1)
        p = poplib.POP3_SSL("127.0.0.1", self.pops_port, timeout=20, context=ctx())
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        self.assertNotIn("STLS", p.capa())
        p.user("bob@example.test")
        p.pass_(PASSWORD)
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def _after_stls(self, r):
        t = ctx().wrap_socket(r.s, server_hostname="mx.example.test")
        r.s, r.buf = t, b""
        return r

    def test_stls_discards_pipelined_plaintext_same_segment(self):
        r = RawPOP(self.pop_port)
        r.send(b"STLS\r\nUSER bob@example.test\r\n")
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertEqual(r.buf, b"")
        self._after_stls(r)
        # had USER run, this PASS would log in
        self.assertTrue(r.cmd("PASS " + PASSWORD).startswith(b"-ERR"))
        self.assertTrue(r.cmd("USER bob@example.test").startswith(b"+OK"))
        self.assertTrue(r.cmd("PASS " + PASSWORD).startswith(b"+OK"))
        r.cmd("QUIT")

    def test_stls_discards_pipelined_plaintext_split(self):
        r = RawPOP(self.pop_port)
        r.send(b"STLS\r\n")
        time.sleep(0.05)
        r.send(b"USER bob@example.test\r\n")     # behind the command, before the handshake
        self.assertTrue(r.line().startswith(b"+OK"))
        try:
            self._after_stls(r)
            got = r.cmd("PASS " + PASSWORD)
        except (ssl.SSLError, OSError, EOFError):
            got = b"closed"                      # read by the handshake: the session died
        self.assertFalse(got.startswith(b"+OK"), got)
        self.assertNotIn("pop3: login: user=bob", self.h.log())


class ScramPlus(POP3Base):
    TLS = True
    CONF = {"auth_failure_limit": "20"}

    def setUp(self):
        super().setUp()
        r = self.h.hatoctl("user", "passwd", "bob@example.test", "--with-scram",
                           "--password-stdin", input=(PASSWORD + "\n").encode())
        self.assertEqual(r.returncode, 0, r.stderr)

    def tls_session(self):
        r = RawPOP(self.pop_port)
        self.assertTrue(r.cmd("STLS").startswith(b"+OK"))
        r.s, r.buf = ctx().wrap_socket(r.s, server_hostname="x"), b""
        return r

    def exchange(self, r, gs2, cb, mech="SCRAM-SHA-256-PLUS"):
        sc = ScramClient("bob@example.test", b64(os.urandom(18)), gs2, cb)
        line = r.cmd("AUTH %s %s" % (mech, b64(sc.first())))
        if not line.startswith(b"+ "):
            return line
        line = r.cmd(b64(sc.final(PASSWORD, base64.b64decode(line[2:]).decode())))
        if not line.startswith(b"+ "):
            return line
        return r.cmd("")

    def test_plus_over_tls_only(self):
        from test_smtp_scram_plus import tls_exporter
        r = RawPOP(self.pop_port)
        r.cmd("CAPA")
        self.assertNotIn(b"SCRAM-SHA-256-PLUS", b" ".join(r.multi()))
        r.cmd("QUIT")
        r = self.tls_session()
        r.cmd("CAPA")
        self.assertIn(b"SCRAM-SHA-256-PLUS", b" ".join(r.multi()))
        self.assertTrue(self.exchange(r, "p=tls-exporter,,", tls_exporter(r.s)).startswith(b"+OK"))
        r.cmd("QUIT")
        # another connection's binding does not pass
        other, r = self.tls_session(), self.tls_session()
        self.assertTrue(self.exchange(r, "p=tls-exporter,,", tls_exporter(other.s))
                        .startswith(b"-ERR [AUTH]"))


class Encrypt(POP3Base):
    TLS = True
    CONF = {"pop3_tls": "encrypt"}

    def test_no_login_before_stls(self):
        r = RawPOP(self.pop_port)
        r.cmd("CAPA")
        caps = r.multi()
        self.assertIn(b"STLS", caps)
        self.assertNotIn(b"USER", caps)
        for line in ("USER bob@example.test", "PASS x", "AUTH PLAIN " + b64("\0bob@example.test\0x"),
                     "AUTH CRAM-MD5"):
            self.assertTrue(r.cmd(line).startswith(b"-ERR [AUTH]"), line)
        self.assertTrue(r.cmd("STLS").startswith(b"+OK"))
        t = ctx().wrap_socket(r.s, server_hostname="x")
        r.s, r.buf = t, b""
        self.assertTrue(r.cmd("USER bob@example.test").startswith(b"+OK"))
        self.assertTrue(r.cmd("PASS " + PASSWORD).startswith(b"+OK"))
        r.cmd("QUIT")


class PlaintextClients(POP3Base):
    TLS = True
    CONF = {"auth_plaintext_clients": "127.0.0.1"}

    def test_plaintext_only_from_listed_clients(self):
        # 127.0.0.2 is not listed: no USER, no PLAIN/LOGIN before STLS
        r = RawPOP(self.pop_port, source="127.0.0.2")
        r.cmd("CAPA")
        caps = r.multi()
        self.assertNotIn(b"USER", caps)
        sasl = [c for c in caps if c.startswith(b"SASL")][0]
        self.assertNotIn(b"PLAIN", sasl)
        self.assertIn(b"CRAM-MD5", sasl)
        self.assertTrue(r.cmd("USER bob@example.test").startswith(b"-ERR [AUTH]"))
        self.assertTrue(r.cmd("AUTH PLAIN " + b64("\0bob@example.test\0" + PASSWORD))
                        .startswith(b"-ERR [AUTH]"))
        r.cmd("QUIT")
        # 127.0.0.1 is
        p = self.pop()
        p.quit()


class Mechanisms(POP3Base):

    def setUp(self):
        super().setUp()
        r = self.h.hatoctl("user", "passwd", "bob@example.test", "--with-cram", "--with-scram",
                           "--with-apop", "--password-stdin", input=(PASSWORD + "\n").encode())
        self.assertEqual(r.returncode, 0, r.stderr)

    def login_raw(self):
        return RawPOP(self.pop_port)

    def test_auth_list_and_plain_and_login(self):
        r = self.login_raw()
        self.assertTrue(r.cmd("AUTH").startswith(b"+OK"))
        self.assertEqual(set(r.multi()) & {b"PLAIN", b"LOGIN", b"CRAM-MD5", b"SCRAM-SHA-256"},
                         {b"PLAIN", b"LOGIN", b"CRAM-MD5", b"SCRAM-SHA-256"})
        self.assertTrue(r.cmd("AUTH PLAIN " + b64("\0bob@example.test\0" + PASSWORD))
                        .startswith(b"+OK"))
        r.cmd("QUIT")
        r = self.login_raw()
        self.assertEqual(r.cmd("AUTH LOGIN"), b"+ " + b64("Username:").encode())
        self.assertEqual(r.cmd(b64("bob@example.test")), b"+ " + b64("Password:").encode())
        self.assertTrue(r.cmd(b64(PASSWORD)).startswith(b"+OK"))
        r.cmd("QUIT")
        r = self.login_raw()
        self.assertTrue(r.cmd("AUTH PLAIN").startswith(b"+ "))
        self.assertTrue(r.cmd("*").startswith(b"-ERR"))           # cancelled
        self.assertTrue(r.cmd("AUTH PLAIN " + b64("\0bob@example.test\0wrong"))
                        .startswith(b"-ERR [AUTH]"))
        self.assertTrue(r.cmd("AUTH NOSUCH").startswith(b"-ERR"))
        r.cmd("QUIT")

    def test_cram_md5(self):
        r = self.login_raw()
        line = r.cmd("AUTH CRAM-MD5")
        self.assertTrue(line.startswith(b"+ "))
        chal = base64.b64decode(line[2:])
        digest = hmac.new(PASSWORD.encode(), chal, hashlib.md5).hexdigest()
        self.assertTrue(r.cmd(b64("bob@example.test " + digest)).startswith(b"+OK"))
        r.cmd("QUIT")

    def test_scram_sha_256(self):
        for pw, ok in ((PASSWORD, True), ("wrong", False)):
            r = self.login_raw()
            sc = ScramClient("bob@example.test", b64(os.urandom(18)))
            line = r.cmd("AUTH SCRAM-SHA-256 " + b64(sc.first()))
            self.assertTrue(line.startswith(b"+ "), line)
            line = r.cmd(b64(sc.final(pw, base64.b64decode(line[2:]).decode())))
            if not ok:
                self.assertTrue(line.startswith(b"-ERR [AUTH]"), line)
                continue
            self.assertTrue(line.startswith(b"+ "), line)   # server-final as a challenge
            self.assertEqual(base64.b64decode(line[2:]).decode(), sc.server_final())
            self.assertTrue(r.cmd("").startswith(b"+OK"))
            r.cmd("QUIT")

    def test_apop_off_by_default(self):
        r = self.login_raw()
        self.assertNotIn(b"<", r.greeting)
        self.assertTrue(r.cmd("APOP bob@example.test " + "0" * 32).startswith(b"-ERR"))
        r.cmd("QUIT")


class APOP(Mechanisms):
    CONF = {"pop3_apop": "yes"}

    def test_apop_off_by_default(self):
        r = self.login_raw()
        self.assertRegex(r.greeting, rb"^\+OK .* <\d+\.[0-9a-f]+\.\d+@mx\.example\.test>$")
        r.cmd("QUIT")

    def test_apop_digest(self):
        r = self.login_raw()
        ts = re.search(rb"<[^>]+>", r.greeting).group(0)
        digest = hashlib.md5(ts + PASSWORD.encode()).hexdigest()
        self.assertTrue(r.cmd("APOP bob@example.test " + "f" * 32).startswith(b"-ERR [AUTH]"))
        self.assertTrue(r.cmd("APOP bob@example.test " + digest).startswith(b"+OK"))
        r.cmd("QUIT")
        # every banner has its own timestamp: the old digest is worthless
        r = self.login_raw()
        self.assertNotIn(ts, r.greeting)
        self.assertTrue(r.cmd("APOP bob@example.test " + digest).startswith(b"-ERR [AUTH]"))
        r.cmd("QUIT")
        # a user without apop= cannot use APOP even with the right digest
        r = self.login_raw()
        ts = re.search(rb"<[^>]+>", r.greeting).group(0)
        self.assertTrue(r.cmd("APOP alice@example.test " + hashlib.md5(ts + PASSWORD.encode())
                              .hexdigest()).startswith(b"-ERR [AUTH]"))
        r.cmd("QUIT")

    def test_apop_with_poplib(self):
        p = poplib.POP3("127.0.0.1", self.pop_port, timeout=20)
        p.apop("bob@example.test", PASSWORD)
        p.quit()


class Lockout(POP3Base):
    CONF = {"auth_failure_limit": "2", "auth_lockout_time": "30m"}

    def test_locked_out_client_gets_err_at_connect_on_pop3_and_smtp(self):
        for _ in range(2):
            p = poplib.POP3("127.0.0.1", self.pop_port, timeout=20)
            p.user("bob@example.test")
            self.assertRaises(poplib.error_proto, p.pass_, "wrong")
            p.close()
        r = RawPOP(self.pop_port)
        self.assertTrue(r.greeting.startswith(b"-ERR"), r.greeting)
        self.assertTrue(r.closed())
        # the same table as SMTP's
        s = socket.create_connection(("127.0.0.1", self.h.port), 10)
        self.assertTrue(s.recv(512).startswith(b"421 4.7.0"))
        s.close()
        # another address is served
        r = RawPOP(self.pop_port, source="127.0.0.3")
        self.assertTrue(r.greeting.startswith(b"+OK"))
        r.close()
        self.assertIn("auth lockout", self.h.log())


class PopBeforeSmtp(POP3Base):
    CONF = {"pop_before_smtp_time": "3s", "relay_clients": ""}

    def relay(self, source):
        s = smtplib.SMTP("127.0.0.1", self.h.port, timeout=20, source_address=(source, 0))
        s.ehlo("client.test")
        code, _ = s.mail("bob@example.test")
        code, text = s.rcpt("someone@remote.test")
        s.quit()
        return code

    def test_relay_after_pop3_login_until_it_expires(self):
        self.assertEqual(self.relay("127.0.0.5"), 554)     # no login yet
        p = SourcePOP3(self.pop_port, "127.0.0.5")
        p.user("bob@example.test")
        p.pass_(PASSWORD)
        p.quit()
        self.assertEqual(self.relay("127.0.0.5"), 250)
        self.assertEqual(self.relay("127.0.0.6"), 554)     # only that address
        time.sleep(3.5)
        self.assertEqual(self.relay("127.0.0.5"), 554)     # expired

    def test_failed_login_allows_nothing(self):
        p = SourcePOP3(self.pop_port, "127.0.0.7")
        p.user("bob@example.test")
        self.assertRaises(poplib.error_proto, p.pass_, "wrong")
        p.close()
        self.assertEqual(self.relay("127.0.0.7"), 554)


class PopBeforeSmtpOff(POP3Base):
    CONF = {"relay_clients": ""}

    def test_off_by_default(self):
        p = SourcePOP3(self.pop_port, "127.0.0.8")
        p.user("bob@example.test")
        p.pass_(PASSWORD)
        p.quit()
        s = smtplib.SMTP("127.0.0.1", self.h.port, timeout=20, source_address=("127.0.0.8", 0))
        s.ehlo("client.test")
        s.mail("bob@example.test")
        self.assertEqual(s.rcpt("someone@remote.test")[0], 554)
        s.quit()


if __name__ == "__main__":
    unittest.main()
