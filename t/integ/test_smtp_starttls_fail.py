"""A STARTTLS that cannot start after its 220 (SSL_new out of memory,
forced by the LD_PRELOAD shim t/integ/shims/fail_ssl_new.c for the first
call): the client is already shaking hands, so the server sends nothing
more in plaintext (no 454 after the 220) and closes; the next STARTTLS
works."""
import os
import smtplib
import ssl
import subprocess
import unittest

from harness import Hatod, RawSMTP, wait_for
from test_smtp_limits import start_with_shim


class StartTLSFailsAfter220(unittest.TestCase):

    def setUp(self):
        self.h = Hatod(conf={"smtp_tls": "may", "smtpd_timeout": "5s"})
        self.h.conf.update({"tls_cert_file": os.path.join(self.h.dir, "cert.pem"),
                            "tls_key_file": os.path.join(self.h.dir, "key.pem")})
        self.h.write_conf()
        r = self.h.hatoctl("tls", "selfsigned", "mx.example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        start_with_shim(self.h, "fail_ssl_new", HATO_SHIM_FAIL_SSL_NEW="1")

    def tearDown(self):
        self.h.stop()
        if not os.environ.get("HATO_KEEP"):
            subprocess.run(["rm", "-rf", self.h.dir])

    def test_no_454_after_220(self):
        r = RawSMTP(self.h.port)
        self.assertEqual(r.reply()[0], 220)
        r.send(b"EHLO client.test\r\n")
        self.assertEqual(r.reply()[0], 250)
        r.send(b"STARTTLS\r\n")
        code, lines = r.reply()
        self.assertEqual(code, 220, lines)
        self.assertTrue(r.closed(5), "the session goes on after a failed STARTTLS")
        self.assertEqual(r.buf, b"", "plaintext after the 220: %r" % r.buf)
        self.assertTrue(wait_for(lambda: "cannot start TLS for 127.0.0.1" in self.h.log(), 5),
                        self.h.log())
        # SSL_new works again: a real client gets TLS
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertEqual(s.starttls(context=ctx)[0], 220)
            self.assertEqual(s.noop()[0], 250)


if __name__ == "__main__":
    unittest.main()
