"""Reply codes not covered elsewhere: alias loops and over-large alias
expansions at RCPT, commands that belong to later issues, VRFY without an
argument, and the control socket's error answers."""
import os
import socket

from harness import HatodTestCase
from test_smtp_helpers import SMTPCase


class AliasReplies(SMTPCase):
    ALIASES = ["postmaster: bob", "ping: pong", "pong: ping",
               "crowd: " + ", ".join("m%d@far.test" % i for i in range(1001))]

    def test_alias_loop_554_5_4_6(self):
        r = self.raw()
        self.expect(r, "EHLO c.test", 250)
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<ping@example.test>", 554, "5.4.6")
        self.expect(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")    # session goes on

    def test_alias_over_1000_targets_552_5_3_4(self):
        r = self.raw()
        self.expect(r, "EHLO c.test", 250)
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<crowd@example.test>", 552, "5.3.4")


class LaterIssueCommands(SMTPCase):
    def test_not_implemented_yet_502(self):
        r = self.raw()
        self.expect(r, "EHLO c.test", 250)
        # without a certificate STARTTLS is not offered (smtp_tls = none)
        for cmd in ("EXPN postmaster", "STARTTLS", "BDAT 10 LAST"):
            self.expect(r, cmd, 502, "5.5.1")
        # AUTH exists, but not on port 25 unless smtpd_sasl_auth_enable (Postfix's answer)
        self.expect(r, "AUTH PLAIN", 503, "5.5.1")
        self.expect(r, "NOOP", 250, "2.0.0")

    def test_vrfy_without_argument_501(self):
        r = self.raw()
        self.expect(r, "VRFY", 501, "5.5.4")


class ControlSocketErrors(HatodTestCase):
    def ask(self, line):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(os.path.join(self.h.state, "hatod.sock"))
        s.sendall(line)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return data

    def test_unknown_command(self):
        self.assertEqual(self.ask(b"FROBNICATE\n"), b"ERR unknown command\n")

    def test_line_too_long(self):
        self.assertEqual(self.ask(b"X" * 2000), b"ERR line too long\n")

    def test_reload_and_queue_list(self):
        self.assertEqual(self.ask(b"RELOAD\n"), b"OK\n")
        self.assertEqual(self.ask(b"QUEUE LIST\n"), b"OK\nMail queue is empty\n")
