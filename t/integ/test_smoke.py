"""Smoke: a message through smtplib lands in the Maildir with the headers."""
import smtplib

from harness import HatodTestCase, wait_for


class Smoke(HatodTestCase):
    def test_deliver_local(self):
        with smtplib.SMTP("127.0.0.1", self.h.port) as s:
            s.sendmail("a@remote.test", ["bob@example.test"], b"Subject: t\r\n\r\nbody\r\n")
        files = self.h.wait_mail("bob@example.test")
        self.assertTrue(files, self.h.log())
        data = self.h.read_mail(files[0])
        self.assertTrue(data.startswith(b"Return-Path: <a@remote.test>\r\nDelivered-To: bob@example.test\r\nReceived: from "))
        self.assertIn(b"\r\n\r\nbody\r\n", data)
        # the file is in new/ before its flushes (and the index record) end
        # and "sent" is logged: wait for the line, do not race it
        self.assertTrue(wait_for(lambda: "status=sent (delivered to maildir)" in self.h.log()),
                        self.h.log())
