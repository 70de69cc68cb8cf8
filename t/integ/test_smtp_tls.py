"""STARTTLS and implicit TLS on the SMTP services (issue 8, "TLS"), over the
connection layer (proto/conn.c): Python's smtplib and ssl, `openssl
s_client` and raw sockets for the edges.  The certificate is made by
`hatoctl tls selfsigned` for each test's hatod."""
import os
import socket
import ssl
import smtplib
import subprocess
import time

from harness import HATOD, Hatod, RawSMTP, free_port, wait_for
from test_queue_util import message
import unittest


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TLSBase(unittest.TestCase):
    CONF = {}

    def setUp(self):
        self.smtps_port = free_port()
        # AUTH has its own tests (test_smtp_auth): here submission needs none
        conf = {"smtp_tls": "may", "submission_tls": "encrypt", "submission_auth": "optional",
                "smtps_listen": "127.0.0.1:%d" % self.smtps_port, "smtpd_timeout": "3s"}
        conf.update(self.CONF)
        self.h = Hatod(conf=conf)
        # as a first start would: the paths in hato.conf, then hatoctl makes the files
        self.h.conf.update({"tls_cert_file": os.path.join(self.h.dir, "cert.pem"),
                            "tls_key_file": os.path.join(self.h.dir, "key.pem")})
        self.h.write_conf()
        r = self.h.hatoctl("tls", "selfsigned", "mx.example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.h.start()

    def tearDown(self):
        self.h.stop()
        if not os.environ.get("HATO_KEEP"):
            subprocess.run(["rm", "-rf", self.h.dir])

    def alive(self):
        """Another client is served normally."""
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            self.assertEqual(s.noop()[0], 250)


class StartTLS(TLSBase):

    def test_starttls_then_mail_is_delivered_with_tls_in_received(self):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("starttls"))
            code, _ = s.starttls(context=client_ctx())
            self.assertEqual(code, 220)
            self.assertEqual(s.sock.version(), "TLSv1.3")
            s.ehlo("client.test")
            self.assertFalse(s.has_extn("starttls"), "STARTTLS offered again after TLS")
            s.sendmail("a@remote.test", ["bob@example.test"], message("over tls", "secret body"))
        path = self.h.wait_mail("bob@example.test")
        self.assertTrue(path, self.h.log())
        data = self.h.read_mail(path[0])
        self.assertIn(b"secret body", data)
        self.assertRegex(data, rb"\(using TLSv1\.3 with cipher [A-Z0-9_]+ \(\d+/\d+ bits\)\)\r\n")
        self.assertIn(b" with ESMTPS id ", data)
        self.assertIn("TLS connection established from 127.0.0.1: TLSv1.3", self.h.log())

    def test_plaintext_pipelined_after_starttls_is_discarded(self):
        r = RawSMTP(self.h.port)
        self.assertEqual(r.reply()[0], 220)
        self.assertEqual(r.cmd("EHLO client.test")[0], 250)
        # the injection (CVE-2011-0411): commands in the same segment as STARTTLS
        r.send(b"STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\n")
        code, lines = r.reply()
        self.assertEqual(code, 220, lines)
        self.assertEqual(r.buf, b"", "the server answered the injected commands")
        tls = client_ctx().wrap_socket(r.s, server_hostname="mx.example.test")
        f = tls.makefile("rwb")
        # exactly one reply per command from here: had the injected MAIL and
        # RCPT been kept, their replies would come first
        f.write(b"EHLO client.test\r\n")
        f.flush()
        first = f.readline()
        self.assertTrue(first.startswith(b"250-mx.example.test"), first)
        while first[3:4] != b" ":
            first = f.readline()
        f.write(b"NOOP\r\n")
        f.flush()
        self.assertEqual(f.readline(), b"250 2.0.0 Ok\r\n")
        tls.settimeout(1)
        with self.assertRaises(socket.timeout):
            tls.recv(4096)
        tls.close()

    def test_plaintext_in_a_later_segment_kills_the_handshake_only(self):
        r = RawSMTP(self.h.port)
        r.reply()
        r.cmd("EHLO client.test")
        r.send(b"STARTTLS\r\n")
        r.send(b"MAIL FROM:<evil@remote.test>\r\n")   # before reading the 220
        code, _ = r.reply()
        self.assertEqual(code, 220)
        # the server now reads a ClientHello and gets a command: the session dies
        r.s.settimeout(10)
        try:
            rest = r.s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            rest = b""
        self.assertFalse(rest.startswith(b"250"), rest)
        self.assertTrue(wait_for(lambda: "TLS handshake failed for 127.0.0.1" in self.h.log(), 5),
                        self.h.log())
        self.assertNotIn("evil@remote.test", self.h.log())
        self.alive()

    def test_starttls_twice_and_inside_a_transaction(self):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            s.ehlo("client.test")
            s.mail("a@remote.test")
            code, text = s.docmd("STARTTLS")
            self.assertEqual(code, 503, text)
            s.rset()
            s.starttls(context=client_ctx())
            s.ehlo("client.test")
            code, text = s.docmd("STARTTLS")
            self.assertEqual(code, 503, text)
            self.assertIn(b"TLS already active", text)
            code, text = s.docmd("STARTTLS", "now")
            self.assertEqual(code, 501)

    def test_starttls_forgets_helo(self):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=client_ctx())
            code, text = s.docmd("MAIL", "FROM:<a@remote.test>")
            self.assertEqual(code, 503, text)
            self.assertIn(b"HELO/EHLO first", text)

    def test_stalled_handshake_times_out_others_served(self):
        r = RawSMTP(self.h.port)
        r.reply()
        r.cmd("EHLO client.test")
        self.assertEqual(r.cmd("STARTTLS")[0], 220)
        r.send(b"\x16\x03\x01")          # the start of a ClientHello, then nothing
        self.alive()
        r.s.settimeout(15)
        t0 = time.time()
        try:
            data = r.s.recv(4096)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"")
        self.assertLess(time.time() - t0, 12, "no timeout during the handshake")
        self.alive()

    def test_openssl_s_client_starttls(self):
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.h.port,
                            "-starttls", "smtp", "-quiet", "-ign_eof"],
                           input=b"EHLO client.test\r\nQUIT\r\n", capture_output=True,
                           timeout=30)
        self.assertIn(b"250-mx.example.test", p.stdout, p.stderr)
        self.assertIn(b"221 2.0.0", p.stdout)


class SubmissionPolicy(TLSBase):

    def test_encrypt_refuses_mail_before_starttls(self):
        with smtplib.SMTP("127.0.0.1", self.h.sub_port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("starttls"))
            code, text = s.mail("bob@example.test")
            self.assertEqual(code, 530, text)
            self.assertIn(b"5.7.0", text)
            s.starttls(context=client_ctx())
            s.ehlo("client.test")
            self.assertEqual(s.mail("bob@example.test")[0], 250)

    def test_smtps_implicit_tls(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, timeout=10,
                              context=client_ctx()) as s:
            code, _ = s.ehlo("client.test")
            self.assertEqual(code, 250)
            self.assertFalse(s.has_extn("starttls"))
            s.sendmail("bob@example.test", ["alice@example.test"], message("465", "implicit"))
        self.assertTrue(self.h.wait_mail("alice@example.test"), self.h.log())

    def test_smtps_plaintext_client_is_dropped(self):
        r = socket.create_connection(("127.0.0.1", self.smtps_port), 10)
        r.sendall(b"EHLO client.test\r\n")
        try:
            data = r.recv(4096)
        except ConnectionResetError:
            data = b""
        self.assertFalse(data.startswith(b"220"), data)
        r.close()
        self.alive()


class NoCertificate(unittest.TestCase):

    def test_may_without_certificate_offers_nothing(self):
        h = Hatod(conf={"smtp_tls": "may"})
        try:
            h.start()
            with smtplib.SMTP("127.0.0.1", h.port, timeout=10) as s:
                s.ehlo("client.test")
                self.assertFalse(s.has_extn("starttls"))
                self.assertEqual(s.docmd("STARTTLS")[0], 502)
            self.assertIn("STARTTLS is not offered", h.log())
        finally:
            h.cleanup()

    def test_smtps_without_certificate_is_a_config_error(self):
        h = Hatod(conf={"smtps_listen": "127.0.0.1:%d" % free_port()})
        try:
            r = subprocess.run([HATOD, "-n", "-f", h.conf_path], capture_output=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"smtps_listen", r.stdout + r.stderr)
        finally:
            h.cleanup()


if __name__ == "__main__":
    unittest.main()
