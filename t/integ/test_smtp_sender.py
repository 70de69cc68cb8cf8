"""Sender/login policy for authenticated submission (issue 8, "Relay ACL
and submission policy"): after AUTH, MAIL FROM and every address of From:
(and of a Sender: the client wrote) must be owned by the login — the login
itself, a local address that delivers only to it (alias, plus-address), or
a grant in sender_login_maps — else 553 5.7.1, at MAIL or at the end of
data with nothing queued.  <> only with allow_null_sender_auth.  A Sender:
<login> is added when From: names an owned address other than the login.
Sessions without AUTH (exempt clients) are unaffected."""
import os
import signal
import subprocess

from harness import Hatod, wait_for
from test_smtp_auth import AuthBase, PASSWORD, crypt_hash
import unittest

ALIASES = ["postmaster: bob", "info: bob, alice", "team: bob, alice", "b.smith: bob",
           "forward: bob, someone@remote.test", "away: someone@remote.test"]
GRANTS = ["# grants beyond what aliases give",
          "info@example.test bob@example.test",
          "sales@example.test alice@example.test,",
          "   carol@example.test",
          "@other.test Bob@Example.test"]


class SenderBase(AuthBase):
    EXTRA = {}

    def setUp(self):
        # AuthBase.setUp with our aliases and a sender_login_maps file
        import test_smtp_auth
        self.smtps_port = test_smtp_auth.free_port()
        h = self.h = Hatod(conf={"submission_tls": "may"},
                           users=["bob@example.test %s" % crypt_hash(PASSWORD),
                                  "alice@example.test *"], aliases=ALIASES)
        self.map_path = os.path.join(h.dir, "sender_logins")
        with open(self.map_path, "w") as f:
            f.write("\n".join(GRANTS) + "\n")
        h.conf.update({"tls_cert_file": os.path.join(h.dir, "cert.pem"),
                       "tls_key_file": os.path.join(h.dir, "key.pem"),
                       "sender_login_maps": self.map_path})
        h.conf.update(self.EXTRA)
        h.write_conf()
        r = h.hatoctl("tls", "selfsigned", "mx.example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        h.start()

    def login(self):
        s = self.submission()
        s.login("bob@example.test", PASSWORD)
        return s

    def mail_from(self, sender):
        s = self.login()
        code, text = s.docmd("MAIL", "FROM:<%s>" % sender)
        s.quit()
        return code, text

    def submit(self, from_field, extra=(), sender="bob@example.test"):
        """Submit a message with that From: (None: none) to alice; the
        end-of-data reply."""
        s = self.login()
        self.assertEqual(s.mail(sender)[0], 250)
        self.assertEqual(s.rcpt("alice@example.test")[0], 250)
        lines = ([] if from_field is None else ["From: " + from_field]) + list(extra)
        msg = "\r\n".join(lines + ["To: alice@example.test", "Subject: t", "", "body"]) + "\r\n"
        code, text = s.data(msg.encode())
        s.quit()
        return code, text

    def delivered(self, n=1):
        mail = self.h.wait_mail("alice@example.test", n)
        self.assertTrue(mail, self.h.log())
        return self.h.read_mail(mail[-1])


class MailFrom(SenderBase):

    def test_owned_senders_accepted(self):
        for sender in ("bob@example.test", "BOB@Example.TEST", "bob+lists@example.test",
                       "b.smith@example.test", "postmaster@example.test",
                       "forward@example.test",            # its remote copy does not count
                       "info@example.test",               # granted in the map
                       "anyone@other.test",               # @other.test granted
                       "info+x@example.test"):            # the grant without extension
            code, text = self.mail_from(sender)
            self.assertEqual(code, 250, "%s: %s" % (sender, text))

    def test_others_refused_553(self):
        for sender in ("alice@example.test", "team@example.test",   # shared alias
                       "sales@example.test",              # granted to others only
                       "away@example.test",               # forwards elsewhere only
                       "nobody@example.test", "mallory@remote.test", "bob@remote.test"):
            code, text = self.mail_from(sender)
            self.assertEqual(code, 553, sender)
            self.assertEqual(text, b"5.7.1 Sender address rejected: not owned by user "
                             b"bob@example.test", sender)
        self.assertIn("Sender address rejected: not owned by user bob@example.test",
                      self.h.log())

    def test_null_sender_refused_by_default(self):
        code, text = self.mail_from("")
        self.assertEqual(code, 553, text)
        self.assertIn(b"5.7.1", text)

    def test_grants_reloaded_on_sighup(self):
        self.assertEqual(self.mail_from("new@example.test")[0], 553)
        with open(self.map_path, "a") as f:
            f.write("new@example.test bob@example.test\n")
        self.h.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "reloaded" in self.h.log(), 10), self.h.log())
        self.assertEqual(self.mail_from("new@example.test")[0], 250)


class NullSenderAllowed(SenderBase):
    EXTRA = {"allow_null_sender_auth": "yes"}

    def test_null_sender_allowed(self):
        code, text = self.mail_from("")
        self.assertEqual(code, 250, text)
        self.assertEqual(self.mail_from("alice@example.test")[0], 553)


class FromHeader(SenderBase):

    def test_owned_from_forms_queued(self):
        forms = ['Bob Smith <bob@example.test>',
                 '"Smith, Bob" <bob@example.test>, b.smith@example.test',
                 'Us: bob@example.test, "B" <bob+x@example.test>;',
                 'bob@example.test (Bob Smith)',
                 'Bob\r\n  <bob@example.test>']
        for i, f in enumerate(forms):
            code, text = self.submit(f)
            self.assertEqual(code, 250, "%r: %s" % (f, text))
        self.delivered(len(forms))

    def test_not_owned_from_refused_at_end_of_data_nothing_queued(self):
        before = self.h.queue_ids()
        for f in ('alice@example.test', 'Bob <bob@example.test>, alice@example.test',
                  'alice@example.test (bob@example.test)', '"bob@example.test" <alice@example.test>',
                  'Us: bob@example.test, alice@example.test;', 'Bob Smith',
                  'undisclosed:;'):
            code, text = self.submit(f)
            self.assertEqual(code, 553, f)
            self.assertEqual(text, b"5.7.1 From: address not owned by user bob@example.test", f)
        # a second From: field counts too
        code, _ = self.submit("bob@example.test", extra=["From: alice@example.test"])
        self.assertEqual(code, 553)
        self.assertEqual(self.h.queue_ids(), before)
        self.assertEqual(self.h.maildir("alice@example.test"), [])
        self.assertNotIn("nrcpt=", self.h.log())

    def test_sender_added_for_an_owned_alias(self):
        self.assertEqual(self.submit("B. Smith <b.smith@example.test>")[0], 250)
        data = self.delivered()
        self.assertIn(b"\r\nSender: <bob@example.test>\r\n", data)
        self.assertIn(b"From: B. Smith <b.smith@example.test>\r\n", data)

    def test_no_sender_when_from_is_the_login(self):
        self.assertEqual(self.submit("Bob <bob@example.test>")[0], 250)
        self.assertNotIn(b"Sender:", self.delivered())

    def test_missing_from_is_the_envelope_sender(self):
        self.assertEqual(self.submit(None, sender="b.smith@example.test")[0], 250)
        data = self.delivered()
        self.assertIn(b"\r\nFrom: <b.smith@example.test>\r\n", data)
        self.assertIn(b"\r\nSender: <bob@example.test>\r\n", data)

    def test_header_ended_by_a_non_field_line_gets_its_empty_line(self):
        # Postfix's rule ends the header at "badline"; a reader that reads on
        # must not find alice's From: in what was checked as body
        s = self.login()
        s.mail("bob@example.test")
        s.rcpt("alice@example.test")
        code, _ = s.data(b"Subject: x\r\nbadline\r\nFrom: alice@example.test\r\n\r\nbody\r\n")
        s.quit()
        self.assertEqual(code, 250)
        data = self.delivered()
        self.assertIn(b"\r\nSubject: x\r\n\r\nbadline\r\nFrom: alice@example.test\r\n", data)
        self.assertIn(b"\r\nFrom: <bob@example.test>\r\n", data)

    def test_client_sender_field_must_be_owned(self):
        code, text = self.submit("b.smith@example.test", extra=["Sender: alice@example.test"])
        self.assertEqual(code, 553)
        self.assertEqual(text, b"5.7.1 Sender: address not owned by user bob@example.test")
        self.assertEqual(self.submit("b.smith@example.test",
                                     extra=["Sender: Bob <bob@example.test>"])[0], 250)
        data = self.delivered()
        self.assertEqual(data.count(b"Sender:"), 1)   # the client's, none added


class ExemptUnaffected(SenderBase):
    EXTRA = {"auth_exempt_clients": "127.0.0.1"}

    def test_exempt_client_without_auth_sends_as_anyone(self):
        s = self.submission()
        self.assertEqual(s.mail("alice@example.test")[0], 250)
        self.assertEqual(s.rcpt("alice@example.test")[0], 250)
        code, _ = s.data(b"From: alice@example.test\r\nSubject: x\r\n\r\nbody\r\n")
        self.assertEqual(code, 250)
        self.assertEqual(s.mail("")[0], 250)
        s.quit()
        self.assertNotIn(b"Sender:", self.delivered())


if __name__ == "__main__":
    unittest.main()
