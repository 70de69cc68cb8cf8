"""t/integ/test_dsn.py — DSN (RFC 3461) and SMTPUTF8 (RFC 6531) on the
server side (issue 7): the parameters offered, validated and kept in the
envelope, and honoured by the notices hatod builds (RFC 3464 reports,
every part parsed with Python's email): success notices for local
delivery, NOTIFY=NEVER, RET=FULL|HDRS against bounce_return_original,
Original-Envelope-Id and Original-Recipient.  carol@other.test has a 20K
quota and quota_full_permanent makes an over-quota delivery bounce at once."""
import email
import re
import smtplib
from email import policy

from harness import HatodTestCase, wait_for
from test_queue_util import mails, message, read_env, stays, wait_queue_empty

BIG = 30 * 1024


def send_dsn(h, sender, rcpts, msg, mail_options=(), rcpt_options=()):
    """One transaction; returns the queue ID (asserting every 250)."""
    with smtplib.SMTP("127.0.0.1", h.port, timeout=15) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender, list(mail_options))
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r, list(rcpt_options))
            assert code == 250, (code, text)
        code, text = s.data(msg)
        assert code == 250, (code, text)
        return re.search(r"queued as ([0-9A-F]{16})", text.decode()).group(1)


def parse(data):
    """(message, [per-recipient field blocks]) of a multipart/report."""
    msg = email.message_from_bytes(data, policy=policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()       # [per-message, per-recipient...]
    return msg, blocks


class Offer(HatodTestCase):
    def test_ehlo_offers_dsn_and_smtputf8(self):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("dsn"))
            self.assertTrue(s.has_extn("smtputf8"))

    def test_bad_parameters_refused(self):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertEqual(s.mail("a@remote.test", ["RET=SOME"])[0], 501)
            self.assertEqual(s.mail("a@remote.test", ["ENVID=a+zz"])[0], 501)
            self.assertEqual(s.mail("a@remote.test", ["RET=FULL"])[0], 250)
            self.assertEqual(s.rcpt("bob@example.test", ["NOTIFY=NEVER,SUCCESS"])[0], 501)
            self.assertEqual(s.rcpt("bob@example.test", ["ORCPT=bob@example.test"])[0], 501)
            self.assertEqual(s.rcpt("bob@example.test", ["NOTIFY=FAILURE",
                                                         "ORCPT=rfc822;bob@example.test"])[0], 250)


class Envelope(HatodTestCase):
    def test_parameters_kept_in_the_envelope(self):
        h = self.h
        qid = send_dsn(h, "a@remote.test", ["friend@remote.test"], message("kept"),
                       ["RET=HDRS", "ENVID=QQ+2B31"],
                       ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Friend+40x@remote.test"])
        env = read_env(h, qid)
        self.assertTrue(env["_text"].startswith("hato-envelope 2\n"))
        self.assertEqual(env["ret"], "2")
        self.assertEqual(env["envid"], "QQ+31")
        tok = env["rcpt"][0].split(" ")
        self.assertEqual(tok[1], "friend@remote.test")
        self.assertEqual(tok[3], "5")                          # SUCCESS | DELAY
        self.assertEqual(tok[4], "rfc822;Friend@x@remote.test")


class SuccessNotice(HatodTestCase):
    def test_local_delivery_success_notice(self):
        h = self.h
        qid = send_dsn(h, "bob@example.test", ["alice@example.test"], message("yay"),
                       ["ENVID=env-17"],
                       ["NOTIFY=SUCCESS", "ORCPT=rfc822;Alice@example.test"])
        self.assertTrue(h.wait_mail("alice@example.test", 1, 5), h.log())
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        self.assertTrue(wait_queue_empty(h), h.log())
        msg, blocks = parse(mails(h, "bob@example.test")[0])
        self.assertEqual(msg["Subject"], "Successful Mail Delivery Report")
        self.assertEqual(msg["To"], "<bob@example.test>")
        self.assertEqual(blocks[0]["Original-Envelope-Id"], "env-17")
        self.assertEqual(blocks[1]["Action"], "delivered")
        self.assertEqual(blocks[1]["Status"], "2.0.0")
        self.assertEqual(blocks[1]["Original-Recipient"], "rfc822; Alice@example.test")
        self.assertEqual(blocks[1]["Final-Recipient"], "rfc822; alice@example.test")
        self.assertIsNone(blocks[1]["Remote-MTA"])
        self.assertIn(qid + ": sender success notification", h.log())
        # once: the queue is empty and nothing else arrives
        self.assertTrue(stays(lambda: len(h.maildir("bob@example.test")) == 1, 1.5))

    def test_no_success_notice_by_default(self):
        h = self.h
        send_dsn(h, "bob@example.test", ["alice@example.test"], message("quiet"))
        self.assertTrue(h.wait_mail("alice@example.test", 1, 5), h.log())
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertTrue(stays(lambda: h.maildir("bob@example.test") == [], 1.0))


class FailureNotice(HatodTestCase):
    CONF = {"quota_full_permanent": "yes"}

    def test_notify_never_means_no_bounce(self):
        h = self.h
        qid = send_dsn(h, "bob@example.test", ["carol@other.test"], message("big", size=BIG),
                       rcpt_options=["NOTIFY=NEVER"])
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertIn(qid + ": to=<carol@other.test>: no non-delivery notification (NOTIFY)",
                      h.log())
        self.assertTrue(stays(lambda: h.maildir("bob@example.test") == [], 1.0))

    def test_notify_success_only_means_no_bounce(self):
        h = self.h
        send_dsn(h, "bob@example.test", ["carol@other.test"], message("big", size=BIG),
                 rcpt_options=["NOTIFY=SUCCESS"])
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertTrue(stays(lambda: h.maildir("bob@example.test") == [], 1.0))

    def test_failure_report_headers_by_default(self):
        h = self.h
        send_dsn(h, "bob@example.test", ["carol@other.test"],
                 message("big", body="BODY-MARKER", size=BIG),
                 ["ENVID=e1"], ["NOTIFY=FAILURE", "ORCPT=rfc822;carol@other.test"])
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        data = mails(h, "bob@example.test")[0]
        msg, blocks = parse(data)
        self.assertEqual(msg["Subject"], "Undelivered Mail Returned to Sender")
        self.assertTrue(msg["From"].startswith("Mail Delivery System <MAILER-DAEMON@"))
        self.assertEqual(blocks[0]["Original-Envelope-Id"], "e1")
        self.assertEqual(blocks[1]["Action"], "failed")
        self.assertEqual(blocks[1]["Original-Recipient"], "rfc822; carol@other.test")
        self.assertTrue(blocks[1]["Diagnostic-Code"].startswith("X-Hato; "))
        third = msg.get_payload()[2]
        self.assertEqual(third.get_content_type(), "text/rfc822-headers")
        self.assertNotIn(b"BODY-MARKER", data)

    def test_ret_full_returns_the_message(self):
        h = self.h
        send_dsn(h, "bob@example.test", ["carol@other.test"],
                 message("big", body="BODY-MARKER", size=BIG), ["RET=FULL"])
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        msg, blocks = parse(mails(h, "bob@example.test")[0])
        third = msg.get_payload()[2]
        self.assertEqual(third.get_content_type(), "message/rfc822")
        inner = third.get_payload()[0]
        self.assertEqual(inner["Subject"], "big")
        self.assertIn("BODY-MARKER", inner.get_payload())


class ReturnOriginalFull(HatodTestCase):
    CONF = {"quota_full_permanent": "yes", "bounce_return_original": "full"}

    def test_config_full_and_ret_hdrs_overrides(self):
        h = self.h
        send_dsn(h, "bob@example.test", ["carol@other.test"],
                 message("one", body="BODY-ONE", size=BIG))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        msg, _ = parse(mails(h, "bob@example.test")[0])
        self.assertEqual(msg.get_payload()[2].get_content_type(), "message/rfc822")
        send_dsn(h, "bob@example.test", ["carol@other.test"],
                 message("two", body="BODY-TWO", size=BIG), ["RET=HDRS"])
        self.assertTrue(h.wait_mail("bob@example.test", 2, 5), h.log())
        second = [m for m in mails(h, "bob@example.test") if b"Subject: two" in m][0]
        msg, _ = parse(second)
        self.assertEqual(msg.get_payload()[2].get_content_type(), "text/rfc822-headers")
        self.assertNotIn(b"BODY-TWO", second)


class SmtpUtf8(HatodTestCase):
    USERS = ["bob@example.test *", "alice@example.test *", "j\u00f6rg@example.test *"]

    def test_utf8_only_with_smtputf8(self):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            s.ehlo("client.test")
            s.command_encoding = "utf-8"
            code, text = s.docmd("MAIL FROM:<j\u00f6rg@remote.test>")
            self.assertEqual(code, 553, text)
            self.assertIn(b"5.6.7", text)
            self.assertEqual(s.docmd("MAIL FROM:<a@remote.test>")[0], 250)
            code, text = s.docmd("RCPT TO:<j\u00f6rg@example.test>")
            self.assertEqual(code, 553, text)

    def test_utf8_delivered_locally(self):
        h = self.h
        qid = send_dsn(h, "s\u00e9nder@remote.test", ["j\u00f6rg@example.test"],
                       "From: x@remote.test\r\nSubject: utf8\r\n\r\nhi\r\n".encode(),
                       ["SMTPUTF8"])
        self.assertTrue(wait_for(lambda: "%s: to=<j\u00f6rg@example.test>" % qid in h.log(), 5),
                        h.log())
        self.assertTrue(h.wait_mail("j\u00f6rg@example.test", 1, 5), h.log())
        self.assertIn(b"hi", mails(h, "j\u00f6rg@example.test")[0])
        self.assertIn(b" with UTF8SMTP id " + qid.encode(), mails(h, "j\u00f6rg@example.test")[0])


class DelayNotice(HatodTestCase):
    CONF = {"delay_warning_time": "1s", "maximal_queue_lifetime": "1h"}

    def test_notify_delay_gets_a_delay_notice(self):
        h = self.h
        qid = send_dsn(h, "bob@example.test", ["friend@remote.test"], message("slow"),
                       ["ENVID=d1"], ["NOTIFY=DELAY,FAILURE"])
        self.assertTrue(h.wait_mail("bob@example.test", 1, 8), h.log())
        msg, blocks = parse(mails(h, "bob@example.test")[0])
        self.assertEqual(msg["Subject"], "Delayed Mail (still being retried)")
        self.assertEqual(blocks[0]["Original-Envelope-Id"], "d1")
        self.assertEqual(blocks[1]["Action"], "delayed")
        self.assertEqual(blocks[1]["Final-Recipient"], "rfc822; friend@remote.test")
        self.assertIn(qid + ": sender delay notification", h.log())

    def test_notify_without_delay_gets_none(self):
        h = self.h
        qid = send_dsn(h, "bob@example.test", ["friend@remote.test"], message("slow"),
                       rcpt_options=["NOTIFY=FAILURE"])
        self.assertTrue(wait_for(lambda: len(re.findall(qid + ": to=<friend", h.log())) >= 3, 10),
                        h.log())
        self.assertEqual(h.maildir("bob@example.test"), [])
        self.assertNotIn("delay notification", h.log())


class Utf8Report(HatodTestCase):
    """A failure report about an SMTPUTF8 message (RFC 6533): the global
    types, UTF-8 addresses with the "utf-8" type, sent to a UTF-8 sender."""
    CONF = {"quota_full_permanent": "yes"}
    USERS = ["bob@example.test *", "j\u00f6rg@example.test *",
             "m\u00fcller@other.test * quota=20K"]

    def test_global_report(self):
        h = self.h
        send_dsn(h, "j\u00f6rg@example.test", ["m\u00fcller@other.test"],
                 ("From: j\u00f6rg@example.test\r\nSubject: gr\u00fc\u00dfe\r\n\r\n" +
                  "x" * BIG + "\r\n").encode(), ["SMTPUTF8"])
        self.assertTrue(h.wait_mail("j\u00f6rg@example.test", 1, 5), h.log())
        data = mails(h, "j\u00f6rg@example.test")[0]
        msg = email.message_from_bytes(data, policy=policy.compat32)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "global-delivery-status")
        parts = msg.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/global-delivery-status", "message/global-headers"])
        # email reads message/global-* as an enclosed message (RFC 6532
        # allows 8-bit there): its bytes are the fields, blocks apart
        raw = parts[1].get_payload()[0].as_bytes().decode("utf-8")
        blocks = [email.message_from_string(b) for b in raw.replace("\r\n", "\n").split("\n\n")
                  if b.strip()]
        self.assertEqual(blocks[0]["X-Hato-Sender"], "utf-8; j\u00f6rg@example.test")
        self.assertEqual(blocks[1]["Final-Recipient"], "utf-8; m\u00fcller@other.test")
        self.assertEqual(blocks[1]["Action"], "failed")
        self.assertIn(b"To: <j\xc3\xb6rg@example.test>\r\n", data)
        self.assertIn("gr\u00fc\u00dfe", parts[2].get_payload()[0].as_bytes().decode("utf-8"))
