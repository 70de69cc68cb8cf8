"""t/integ/test_dsn_remote.py — the failure report for a recipient a remote
server refused (issue 7 "Bounces and notices"): RFC 3464 multipart/report
whose every part Python's email parses, with Remote-MTA: dns; host,
Diagnostic-Code: smtp; and the server's reply, the Status it gave,
Original-Envelope-Id and Original-Recipient from the DSN parameters, the
whole message with RET=FULL; and none at all with NOTIFY=NEVER.  The peer
is the outbound tests' scripted sink (outsink.py: "perm..." gets 550 5.1.1)."""
import email
import smtplib
from email import policy

from outsink import wait_until
from test_outbound import OutboundBase, msg


class RemoteFailureReport(OutboundBase):
    def send_dsn(self, rcpts, mail_options=(), rcpt_options=(), subject="dsn"):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as c:
            c.ehlo("client.test")
            c.sendmail("bob@example.test", rcpts, msg(subject, "BODY-LINE\r\n"),
                       list(mail_options), list(rcpt_options))

    def report(self):
        got = self.h.wait_mail("bob@example.test", 1, 15)
        self.assertTrue(got, "no report for bob:\n" + self.h.log())
        m = email.message_from_bytes(self.h.read_mail(got[0]), policy=policy.compat32)
        self.assertEqual(m.get_content_type(), "multipart/report")
        parts = m.get_payload()
        self.assertEqual([p.get_content_type() for p in parts][:2],
                         ["text/plain", "message/delivery-status"])
        return m, parts

    def test_550_report_fields(self):
        self.sink()
        self.start()
        self.send_dsn(["perm1@dom1.test", "ok1@dom1.test"], ["RET=FULL", "ENVID=E+2B7"],
                      ["NOTIFY=FAILURE", "ORCPT=rfc822;Perm1@dom1.test"])
        m, parts = self.report()
        self.assertEqual(m["Subject"], "Undelivered Mail Returned to Sender")
        blocks = parts[1].get_payload()
        self.assertEqual(blocks[0]["Original-Envelope-Id"], "E+7")
        failed = [b for b in blocks[1:] if b["Action"] == "failed"]
        self.assertEqual(len(failed), 1, [dict(b) for b in blocks])
        f = failed[0]
        self.assertEqual(f["Final-Recipient"], "rfc822; perm1@dom1.test")
        self.assertEqual(f["Original-Recipient"], "rfc822; Perm1@dom1.test")
        self.assertEqual(f["Status"], "5.1.1")
        self.assertEqual(f["Remote-MTA"], "dns; mx.dom1.test")
        self.assertTrue(f["Diagnostic-Code"].startswith("smtp; 550 5.1.1 perm1@dom1.test"),
                        f["Diagnostic-Code"])
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        inner = parts[2].get_payload()[0]
        self.assertEqual(inner["Subject"], "dsn")
        self.assertIn("BODY-LINE", inner.get_payload())
        self.assertTrue(self.queue_empty(), self.h.log())

    def test_notify_never_no_report(self):
        s = self.sink()
        self.start()
        self.send_dsn(["perm2@dom1.test"], [], ["NOTIFY=NEVER"])
        self.wait_log(r"to=<perm2@dom1\.test>: no non-delivery notification \(NOTIFY\)")
        self.assertTrue(self.queue_empty(), self.h.log())
        self.assertFalse(wait_until(lambda: self.h.maildir("bob@example.test"), 1.0))
        self.assertEqual(s.count(), 0)
