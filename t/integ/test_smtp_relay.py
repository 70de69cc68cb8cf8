"""Relay access (filters/acl.c): a non-local domain is accepted only from
relay_clients (loopback by default); remote recipients stay queued."""
import os
import time

from harness import wait_for
from test_smtp_helpers import SMTPCase


class RelayAllowed(SMTPCase):
    def test_remote_recipient_from_loopback_queued(self):
        r = self.raw()
        qid = self.send_message(r, "a@remote.test", ["someone@far.test"],
                                b"Subject: out\r\n\r\nx\r\n.\r\n")
        time.sleep(1.0)
        # remote delivery off in this test: the message stays in the queue
        self.assertEqual(self.h.queue_ids(), [qid], self.h.log())
        self.assertTrue(os.path.exists(os.path.join(self.h.state, "queue", "msg", qid)))

    def test_remote_quoted_local_part_kept_as_written(self):
        r = self.raw()
        qid = self.send_message(r, "a@remote.test", ['"john doe"@far.test'],
                                b"Subject: q\r\n\r\nx\r\n.\r\n")
        envfile = os.path.join(self.h.state, "queue", "env", qid)
        self.assertTrue(wait_for(lambda: os.path.exists(envfile), 5))
        with open(envfile) as f:
            env = f.read()
        # %-encoded in the envelope: the quotes are kept, the space encoded
        self.assertIn('"john%20doe"@far.test', env)

    def test_ip_literal_domain_is_remote(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<bob@[127.0.0.1]>", 250, "2.1.5")
        self.expect(r, "RCPT TO:<bob@[IPv6:::1]>", 250, "2.1.5")
        self.expect(r, "DATA", 354)
        r.send(b"Subject: lit\r\n\r\nx\r\n.\r\n")
        self.assertEqual(r.reply()[0], 250)
        time.sleep(0.5)
        self.assertEqual(len(self.h.queue_ids()), 1)
        self.assertEqual(self.h.maildir("bob@example.test"), [])

    def test_local_and_remote_in_one_message(self):
        r = self.raw()
        self.send_message(r, "a@remote.test", ["bob@example.test", "x@far.test"],
                          b"Subject: mix\r\n\r\nx\r\n.\r\n")
        self.one_mail("bob@example.test")
        time.sleep(0.5)
        self.assertEqual(len(self.h.queue_ids()), 1)   # the remote part is still queued


class RelayDenied(SMTPCase):
    CONF = {"relay_clients": "192.0.2.0/24"}

    def test_relay_access_denied(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        lines = self.expect(r, "RCPT TO:<someone@far.test>", 554, "5.7.1",
                            "Relay access denied")
        self.assertIn("<someone@far.test>", lines[-1])
        self.expect(r, "RCPT TO:<bob@[127.0.0.1]>", 554, "5.7.1")
        self.expect(r, "RCPT TO:<bob@example.test.far.test>", 554, "5.7.1")
        self.expect(r, "RCPT TO:<bob%far.test@example.test>", 550, "5.1.1")
        # local recipients still work in the same transaction
        self.expect(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
        self.expect(r, "RCPT TO:<carol@OTHER.TEST>", 250, "2.1.5")
        self.expect(r, "DATA", 354)
        r.send(b"Subject: local\r\n\r\nx\r\n.\r\n")
        self.assertEqual(r.reply()[0], 250)
        self.one_mail("bob@example.test")
        self.one_mail("carol@other.test")
        wait_for(lambda: not self.h.queue_ids(), 5)
        self.assertEqual(self.h.queue_ids(), [])

    def test_only_relay_denied_no_transaction(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<someone@far.test>", 554, "5.7.1")
        self.expect(r, "DATA", 554, "5.5.1")
        self.assertEqual(self.queue_files(), [])

    def test_source_route_cannot_relay(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<@example.test:someone@far.test>", 554, "5.7.1")
        self.expect(r, "RCPT TO:<@far.test:bob@example.test>", 250, "2.1.5")
