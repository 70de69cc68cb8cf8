"""SMTP AUTH (RFC 4954) on submission and smtps (issue 8, "Authentication"):
PLAIN and LOGIN checked with crypt(3) in the worker pool, CRAM-MD5 and
SCRAM-SHA-256 against the secrets `hatoctl user passwd --with-cram
--with-scram` stores, offered only over TLS, required before MAIL on
submission, the growing delay and the lockout after failures, relay for
authenticated clients.  Real clients: smtplib (PLAIN, LOGIN, CRAM-MD5) and a
SCRAM exchange computed here as RFC 5802 says."""
import base64
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time

from harness import Hatod, RawSMTP, free_port, wait_for
from scram_client import ScramClient
from test_queue_util import message
import unittest

PASSWORD = "correct horse"


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def crypt_hash(pw):
    return subprocess.run(["openssl", "passwd", "-6", pw], capture_output=True,
                          check=True).stdout.decode().strip()


class AuthBase(unittest.TestCase):
    CONF = {}

    def setUp(self):
        self.smtps_port = free_port()
        conf = {"submission_tls": "may", "smtps_listen": "127.0.0.1:%d" % self.smtps_port,
                "auth_failure_limit": "3", "auth_failure_window": "10m",
                "auth_lockout_time": "30m"}
        conf.update(self.CONF)
        h = self.h = Hatod(conf=conf, users=["bob@example.test %s" % crypt_hash(PASSWORD),
                                             "alice@example.test *"])
        h.conf.update({"tls_cert_file": os.path.join(h.dir, "cert.pem"),
                       "tls_key_file": os.path.join(h.dir, "key.pem")})
        h.write_conf()
        r = h.hatoctl("tls", "selfsigned", "mx.example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        h.start()

    def tearDown(self):
        self.h.stop()
        if not os.environ.get("HATO_KEEP"):
            subprocess.run(["rm", "-rf", self.h.dir])

    def submission(self, tls=True, source="127.0.0.1"):
        s = smtplib.SMTP("127.0.0.1", self.h.sub_port, timeout=30, source_address=(source, 0))
        s.ehlo("client.test")
        if tls:
            s.starttls(context=ctx())
            s.ehlo("client.test")
        return s


class Auth(AuthBase):

    def test_offered_only_over_tls_and_required_before_mail(self):
        s = self.submission(tls=False)
        self.assertFalse(s.has_extn("auth"), "AUTH offered in plaintext")
        self.assertEqual(s.docmd("AUTH", "PLAIN AGJvYgBi")[0], 503)
        s.starttls(context=ctx())
        s.ehlo("client.test")
        mechs = s.esmtp_features["auth"].split()
        for m in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"):
            self.assertIn(m, mechs)
        code, text = s.mail("bob@example.test")
        self.assertEqual(code, 530, text)
        self.assertIn(b"5.7.0 Authentication required", text)
        s.quit()

    def test_plain_login_then_relay_and_received_esmtpsa(self):
        s = self.submission()
        s.login("bob@example.test", PASSWORD, initial_response_ok=True)   # PLAIN
        self.assertEqual(s.mail("bob@example.test")[0], 250)
        code, text = s.rcpt("someone@remote.test")     # relay: authenticated
        self.assertEqual(code, 250, text)
        self.assertEqual(s.rcpt("alice@example.test")[0], 250)
        code, _ = s.data(message("authenticated", "hello"))
        self.assertEqual(code, 250)
        s.quit()
        mail = self.h.wait_mail("alice@example.test")
        self.assertTrue(mail, self.h.log())
        self.assertIn(b" with ESMTPSA id ", self.h.read_mail(mail[0]))
        self.assertIn("sasl_method=PLAIN, sasl_username=bob@example.test", self.h.log())

    def test_submission_completes_date_and_message_id(self):
        s = self.submission()
        s.login("bob@example.test", PASSWORD)
        bare = b"From: <bob@example.test>\r\nSubject: bare\r\n\r\nno date here\r\n"
        s.sendmail("bob@example.test", ["alice@example.test"], bare)
        s.quit()
        mail = self.h.wait_mail("alice@example.test")
        self.assertTrue(mail, self.h.log())
        data = self.h.read_mail(mail[0])
        self.assertRegex(data, rb"\r\nDate: [A-Z][a-z]{2}, ")
        self.assertRegex(data, rb"\r\nMessage-ID: <[0-9A-F]{16}@mx\.example\.test>\r\n")
        self.assertEqual(data.count(b"From: "), 1)

    def test_login_mechanism(self):
        s = self.submission()
        s.user, s.password = "bob@example.test", PASSWORD
        code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        self.assertEqual(code, 235, text)
        code, text = s.docmd("AUTH", "PLAIN")
        self.assertEqual(code, 503, text)              # already authenticated
        s.quit()

    def test_cram_md5_and_scram_with_stored_secrets(self):
        r = self.h.hatoctl("user", "passwd", "bob@example.test", "--with-cram", "--with-scram",
                           "--password-stdin", input=(PASSWORD + "\n").encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        s = self.submission()
        s.user, s.password = "bob@example.test", PASSWORD
        code, text = s.auth("CRAM-MD5", s.auth_cram_md5)
        self.assertEqual(code, 235, text)
        s.quit()
        self.scram("bob@example.test", PASSWORD, expect=235)
        self.scram("bob@example.test", "wrong", expect=535)

    def scram(self, user, pw, expect):
        s = self.submission()
        sc = ScramClient(user, base64.b64encode(os.urandom(18)).decode())
        code, text = s.docmd("AUTH", "SCRAM-SHA-256 " + base64.b64encode(
            sc.first().encode()).decode())
        self.assertEqual(code, 334, text)
        final = sc.final(pw, base64.b64decode(text).decode())
        self.assertTrue(sc.attrs["r"].startswith(sc.nonce))
        code, text = s.docmd(base64.b64encode(final.encode()).decode())
        if expect == 535:
            self.assertEqual(code, 535, text)
            return
        self.assertEqual(code, 334, text)            # server-final as a challenge
        self.assertEqual(base64.b64decode(text).decode(), sc.server_final(),
                         "the server proved the wrong key")
        code, text = s.docmd("")
        self.assertEqual(code, expect, text)
        s.quit()

    def test_errors_cancel_unknown_mechanism_before_ehlo(self):
        r = RawSMTP(self.h.sub_port)
        r.reply()
        self.assertEqual(r.cmd("AUTH PLAIN")[0], 503)             # before EHLO
        s = self.submission()
        self.assertEqual(s.docmd("AUTH", "NTLM")[0], 504)
        self.assertEqual(s.docmd("AUTH", "LOGIN")[0], 334)
        self.assertEqual(s.docmd("*")[0], 501)                     # cancelled
        self.assertEqual(s.docmd("AUTH", "PLAIN ###")[0], 535)     # bad base64
        s.quit()

    def test_smtps_auth(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, timeout=30, context=ctx()) as s:
            s.ehlo("client.test")
            self.assertIn("PLAIN", s.esmtp_features["auth"])
            self.assertEqual(s.mail("bob@example.test")[0], 530)
            s.login("bob@example.test", PASSWORD)
            self.assertEqual(s.mail("bob@example.test")[0], 250)

    def test_wrong_password_delay_log_and_lockout(self):
        early = self.submission()            # opened before the lockout
        t0 = time.time()
        for i in range(3):
            s = self.submission()
            s.user, s.password = "bob@example.test", "guess%d" % i
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                s.auth("PLAIN", s.auth_plain)            # one try (login() tries each)
            self.assertEqual(cm.exception.smtp_code, 535)
            self.assertIn(b"5.7.8", cm.exception.smtp_error)
            s.close()
        self.assertGreater(time.time() - t0, 2.5, "no growing delay before 535")
        # Postfix's line, which fail2ban's postfix-sasl filter reads
        self.assertRegex(self.h.log(), r"warning: client\.test\[127\.0\.0\.1\]: SASL PLAIN "
                                       r"authentication failed: ")
        # locked out: every new session from that address is refused at once
        r = RawSMTP(self.h.sub_port)
        code, lines = r.reply()
        self.assertEqual(code, 421, lines)
        self.assertIn("4.7.0", lines[0])
        r = RawSMTP(self.h.port)
        self.assertEqual(r.reply()[0], 421)
        # nor can a session opened before the lockout go on guessing
        code, text = early.docmd("AUTH", "PLAIN " + base64.b64encode(
            b"\0bob@example.test\0" + PASSWORD.encode()).decode())
        self.assertEqual(code, 421, text)
        # another address is not
        s = self.submission(source="127.0.0.2")
        s.login("bob@example.test", PASSWORD)
        s.quit()
        # the operator sees the lockout and lifts it
        r = self.h.hatoctl("auth", "lockouts")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"^127\.0\.0\.1 3 \d+\n$")
        self.assertEqual(self.h.hatoctl("auth", "unlock", "127.0.0.1").returncode, 0)
        self.assertEqual(self.h.hatoctl("auth", "lockouts").stdout, b"")
        r = self.h.hatoctl("auth", "unlock", "127.0.0.1")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"not locked out", r.stderr)
        self.assertEqual(self.h.hatoctl("auth", "unlock", "not-an-ip").returncode, 1)
        self.assertEqual(self.h.hatoctl("auth", "unlock").returncode, 2)
        s = self.submission()
        s.login("bob@example.test", PASSWORD)
        s.quit()

    def test_auth_verbs_say_75_when_hatod_is_down(self):
        self.h.stop()
        self.assertEqual(self.h.hatoctl("auth", "lockouts").returncode, 75)
        self.assertEqual(self.h.hatoctl("auth", "unlock", "127.0.0.1").returncode, 75)

    def test_locked_account_never_logs_in(self):
        s = self.submission()
        s.user, s.password = "alice@example.test", "*"
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            s.auth("PLAIN", s.auth_plain)
        s.close()


class PlaintextAuth(AuthBase):
    """smtpd_tls_auth_only = no: AUTH over plaintext, for the edges."""
    CONF = {"smtpd_tls_auth_only": "no"}

    def test_half_close_while_waiting_for_an_answer_ends_the_session(self):
        r = RawSMTP(self.h.sub_port)
        r.reply()
        r.cmd("EHLO client.test")
        self.assertEqual(r.cmd("AUTH LOGIN")[0], 334)
        r.s.shutdown(socket.SHUT_WR)
        r.s.settimeout(10)
        try:
            rest = r.s.recv(4096)
            while rest and not rest.endswith(b"\r\n"):
                rest += r.s.recv(4096)
            end = r.s.recv(4096)
        except socket.timeout:
            self.fail("the session waits forever for an AUTH answer after EOF")
        self.assertEqual(end, b"")

    def test_over_long_answer_line_keeps_replies_in_step(self):
        r = RawSMTP(self.h.sub_port)
        r.reply()
        r.cmd("EHLO client.test")
        self.assertEqual(r.cmd("AUTH PLAIN")[0], 334)
        r.send(b"A" * 15000)                    # over the limit: answered now...
        code, lines = r.reply()
        self.assertEqual(code, 500, lines)
        r.send(b"A" * 5100 + b"\r\n")           # ...and its tail is no command
        code, lines = r.cmd("NOOP")
        self.assertEqual((code, lines), (250, ["250 2.0.0 Ok"]))
        r.s.settimeout(1)
        with self.assertRaises(socket.timeout):
            r.s.recv(4096)                      # no second answer to anything

    def test_starttls_forgets_a_plaintext_login(self):
        s = self.submission(tls=False)
        s.login("bob@example.test", PASSWORD)
        s.starttls(context=ctx())
        s.ehlo("client.test")
        self.assertEqual(s.mail("bob@example.test")[0], 530)
        s.quit()


class Exempt(AuthBase):
    CONF = {"auth_exempt_clients": "127.0.0.1"}

    def test_exempt_client_submits_without_auth(self):
        s = self.submission()
        self.assertEqual(s.mail("bob@example.test")[0], 250)
        s.quit()
        s = self.submission(source="127.0.0.2")
        self.assertEqual(s.mail("bob@example.test")[0], 530)
        s.quit()


if __name__ == "__main__":
    unittest.main()
