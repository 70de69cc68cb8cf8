"""SMTP commands (RFC 5321 §4.1): banner, EHLO/HELO, RSET, NOOP, QUIT, VRFY,
HELP, unknown commands, command order, the 512-octet line limit, IPv6."""
import smtplib
import socket
import time

from harness import Hatod, RawSMTP
from test_smtp_helpers import SMTPCase, free_port6, headers_and_body, unfold


class Banner(SMTPCase):
    CONF = {"mail_name": "Pigeon",
            "smtpd_banner": "$myhostname ESMTP $mail_name ready-$mail_name"}

    def test_banner_expands_myhostname_and_mail_name(self):
        r = RawSMTP(self.h.port)
        self.track(r)
        code, lines = r.reply()
        self.assertEqual((code, lines), (220, ["220 mx.example.test ESMTP Pigeon ready-Pigeon"]))


class DefaultBanner(SMTPCase):
    def test_default_banner(self):
        r = RawSMTP(self.h.port)
        self.track(r)
        self.assertEqual(r.reply(), (220, ["220 mx.example.test ESMTP hato"]))


class Ehlo(SMTPCase):
    CONF = {"message_size_limit": "123456"}

    def test_ehlo_keywords(self):
        r = self.raw(ehlo=None)
        code, lines = r.cmd("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertEqual(lines[0], "250-mx.example.test")
        for l in lines[:-1]:
            self.assertTrue(l.startswith("250-"), lines)
        self.assertTrue(lines[-1].startswith("250 "), lines)
        kw = [l[4:] for l in lines[1:]]
        for k in ("PIPELINING", "SIZE 123456", "8BITMIME", "ENHANCEDSTATUSCODES"):
            self.assertIn(k, kw)

    def test_ehlo_smtplib(self):
        with smtplib.SMTP("127.0.0.1", self.h.port) as s:
            code, _ = s.ehlo("client.test")
            self.assertEqual(code, 250)
            self.assertEqual(s.esmtp_features.get("size"), "123456")
            for k in ("pipelining", "8bitmime", "enhancedstatuscodes"):
                self.assertIn(k, s.esmtp_features)

    def test_ehlo_without_argument(self):
        r = self.raw(ehlo=None)
        self.expect(r, "EHLO", 501, "5.5.4")
        self.expect(r, "MAIL FROM:<a@remote.test>", 503, "5.5.1")

    def test_helo(self):
        r = self.raw(ehlo=None)
        self.assertEqual(r.cmd("HELO client.test"), (250, ["250 mx.example.test"]))
        self.expect(r, "HELO", 501, "5.5.4")
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")

    def test_ehlo_resets_transaction(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "EHLO client.test", 250)
        self.expect(r, "RCPT TO:<bob@example.test>", 503, "5.5.1")
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")


class Commands(SMTPCase):
    def test_noop(self):
        r = self.raw()
        self.expect(r, "NOOP", 250, "2.0.0")
        self.expect(r, "noop with an argument", 250, "2.0.0")

    def test_rset_clears_transaction(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
        self.expect(r, "RSET", 250, "2.0.0")
        self.expect(r, "RCPT TO:<bob@example.test>", 503, "5.5.1")
        self.expect(r, "DATA", 503, "5.5.1")
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "DATA", 554, "5.5.1")

    def test_quit_replies_221_and_closes(self):
        r = self.raw()
        self.expect(r, "QUIT", 221, "2.0.0")
        self.assertTrue(r.closed(3))

    def test_vrfy(self):
        r = self.raw()
        self.expect(r, "VRFY bob", 252, "2.0.0")
        self.expect(r, "VRFY nobody@example.test", 252, "2.0.0")

    def test_help(self):
        r = self.raw()
        self.expect(r, "HELP", 214, "2.0.0")

    def test_unknown_command(self):
        r = self.raw()
        self.expect(r, "FOOBAR", 500, "5.5.2")
        self.expect(r, "MAILX FROM:<a@remote.test>", 500, "5.5.2")
        self.expect(r, b"NO\x00OP\r\n", 500, "5.5.2")
        self.expect(r, "", 500, "5.5.2")
        self.expect(r, "NOOP", 250, "2.0.0")

    def test_verbs_case_insensitive(self):
        r = self.raw(ehlo=None)
        self.expect(r, "ehlo client.test", 250)
        self.expect(r, "mail from:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "rcpt to:<bob@example.test>", 250, "2.1.5")
        self.expect(r, "rset", 250, "2.0.0")

    def test_mail_before_helo(self):
        r = self.raw(ehlo=None)
        self.expect(r, "MAIL FROM:<a@remote.test>", 503, "5.5.1")
        self.expect(r, "RCPT TO:<bob@example.test>", 503, "5.5.1")

    def test_nested_mail(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "MAIL FROM:<b@remote.test>", 503, "5.5.1")
        # the first transaction is intact
        self.expect(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
        r.cmd("DATA")
        r.send(b"Subject: nested\r\n\r\nx\r\n.\r\n")
        self.assertEqual(r.reply()[0], 250)
        data = self.one_mail("bob@example.test")
        self.assertTrue(data.startswith(b"Return-Path: <a@remote.test>\r\n"), data[:200])

    def test_rcpt_before_mail(self):
        r = self.raw()
        self.expect(r, "RCPT TO:<bob@example.test>", 503, "5.5.1")

    def test_data_without_mail(self):
        r = self.raw()
        self.expect(r, "DATA", 503, "5.5.1")

    def test_data_without_recipients(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<nobody@example.test>", 550, "5.1.1")
        self.expect(r, "DATA", 554, "5.5.1")
        self.expect(r, "NOOP", 250, "2.0.0")


class LineLength(SMTPCase):
    def test_line_over_512_rejected_session_goes_on(self):
        r = self.raw()
        line = b"NOOP " + b"x" * 506 + b"\r\n"          # 513 octets
        self.assertEqual(len(line), 513)
        self.expect(r, line, 500, "5.5.2", "Line too long")
        self.expect(r, "NOOP", 250, "2.0.0")

    def test_line_of_exactly_512_accepted(self):
        r = self.raw()
        line = b"NOOP " + b"x" * 505 + b"\r\n"          # 512 octets
        self.assertEqual(len(line), 512)
        self.expect(r, line, 250, "2.0.0")

    def test_rcpt_line_of_512_is_parsed(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        pad = " " * (512 - len("RCPT TO:<bob@example.test>\r\n"))
        # trailing spaces after the path are allowed before parameters
        line = ("RCPT TO:<bob@example.test>" + pad + "\r\n").encode()
        self.assertEqual(len(line), 512)
        self.expect(r, line, 250, "2.1.5")

    def test_huge_line_one_reply(self):
        r = self.raw()
        # sent in pieces: the tail must be discarded without a second reply
        r.send(b"MAIL FROM:<" + b"a" * 40000)
        r.send(b"b" * 100000)
        r.send(b"@remote.test>\r\nNOOP\r\n")
        self.check(*r.reply(), 500, "5.5.2", "Line too long")
        self.check(*r.reply(), 250, "2.0.0")
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")

    def test_long_line_split_at_limit(self):
        r = self.raw()
        # the CRLF split over two writes, at the limit and one over it
        r.send(b"NOOP " + b"y" * 505 + b"\r")
        time.sleep(0.1)
        r.send(b"\n")
        self.check(*r.reply(), 250, "2.0.0")
        r.send(b"NOOP " + b"y" * 506 + b"\r")
        time.sleep(0.1)
        r.send(b"\nNOOP\r\n")
        self.check(*r.reply(), 500, "5.5.2", "Line too long")
        self.check(*r.reply(), 250, "2.0.0")


class IPv6Listener(SMTPCase):
    def setUp(self):
        self.port6 = free_port6()
        self.h = Hatod()
        self.h.conf["smtp_listen"] = "127.0.0.1:%d, [::1]:%d" % (self.h.port, self.port6)
        self.h.write_conf()
        self.h.start()

    def test_ipv6_delivery(self):
        r = self.raw(port=self.port6, host="::1")
        self.assertEqual(r.s.family, socket.AF_INET6)
        qid = self.send_message(r, "a@remote.test", ["bob@example.test"],
                                b"Subject: v6\r\n\r\nover IPv6\r\n.\r\n")
        data = self.one_mail("bob@example.test")
        head, body = headers_and_body(data)
        self.assertEqual(body, b"over IPv6\r\n")
        received = [h for h in unfold(head) if h.startswith(b"Received:")][0]
        self.assertIn(b"[IPv6:::1]", received)
        self.assertIn(("id " + qid).encode(), received)
