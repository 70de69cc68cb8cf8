"""postmaster (RFC 5321 §4.5.1) and abuse (RFC 2142): postmaster, bare or at
any local domain in any case, is accepted even from a client that may not
relay, and goes to its alias, else to postmaster_recipient (by default the
first user of the first local domain); abuse only if it has an alias.
hatod -n, hatod's log and hatoctl warn when postmaster reaches nobody."""
import smtplib
import subprocess

from harness import HATOD
from test_smtp_helpers import SMTPCase

NOT_RELAY = {"relay_clients": "192.0.2.0/24"}   # 127.0.0.1 may not relay
POSTMASTERS = ("postmaster", "POSTMASTER@EXAMPLE.TEST", "PostMaster@other.test")


class PostmasterCase(SMTPCase):
    CONF = NOT_RELAY

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.h.port, timeout=10)
        self.track(s)
        s.ehlo("client.test")
        return s

    def send_each(self, rcpts):
        """One message per recipient, the recipient in its Subject."""
        s = self.smtp()
        for rcpt in rcpts:
            msg = "Subject: to %s\r\n\r\nhello %s\r\n" % (rcpt, rcpt)
            self.assertEqual(s.sendmail("someone@remote.test", [rcpt], msg), {})
        s.quit()

    def subjects(self, address, count):
        files = self.h.wait_mail(address, count)
        self.assertTrue(files, "no mail for %s\n%s" % (address, self.h.log()))
        self.assertEqual(len(files), count, files)
        out = set()
        for f in files:
            for line in self.h.read_mail(f).split(b"\r\n"):
                if line.startswith(b"Subject: "):
                    out.add(line[9:].decode())
        return out

    def rcpt_reply(self, rcpt):
        s = self.smtp()
        s.mail("someone@remote.test")
        code, _ = s.rcpt(rcpt)
        s.quit()
        return code


class Alias(PostmasterCase):
    # "postmaster: bob": bob@other.test does not exist, so at other.test
    # postmaster falls back to postmaster_recipient (default bob@example.test)
    def test_every_form_accepted_without_relay_and_delivered(self):
        self.assertEqual(self.rcpt_reply("friend@remote.test"), 554)   # may not relay
        self.send_each(POSTMASTERS)
        self.assertEqual(self.subjects("bob@example.test", 3),
                         {"to " + a for a in POSTMASTERS})

    def test_original_recipient_kept(self):
        self.send_each(["PostMaster@other.test"])
        data = self.h.read_mail(self.h.wait_mail("bob@example.test")[0])
        self.assertIn(b"Delivered-To: bob@example.test\r\n", data)
        self.assertIn(b"\tfor <PostMaster@other.test>;", data)


class AliasBeatsPostmasterRecipient(PostmasterCase):
    CONF = dict(NOT_RELAY, postmaster_recipient="alice@example.test")
    ALIASES = ["postmaster: bob@example.test"]

    def test_alias_target(self):
        self.send_each(POSTMASTERS)
        self.assertEqual(len(self.subjects("bob@example.test", 3)), 3)
        self.assert_no_mail("alice@example.test")


class PostmasterRecipient(PostmasterCase):
    CONF = dict(NOT_RELAY, postmaster_recipient="alice@example.test")
    ALIASES = ["info: bob"]

    def test_no_alias_goes_to_postmaster_recipient(self):
        self.send_each(POSTMASTERS)
        self.assertEqual(self.subjects("alice@example.test", 3),
                         {"to " + a for a in POSTMASTERS})
        self.assert_no_mail("bob@example.test")


class PostmasterRecipientDefault(PostmasterCase):
    USERS = ["carol@other.test *", "alice@example.test *", "bob@example.test *"]
    ALIASES = ["info: bob"]

    def test_first_user_of_first_local_domain(self):
        self.send_each(POSTMASTERS)
        self.assertEqual(len(self.subjects("alice@example.test", 3)), 3)
        self.assert_no_mail("carol@other.test")
        self.assert_no_mail("bob@example.test")


class Abuse(PostmasterCase):
    ALIASES = ["postmaster: bob", "abuse: alice@example.test"]

    def test_abuse_alias_any_domain_any_case(self):
        self.send_each(["abuse@example.test", "ABUSE@Other.Test"])
        self.assertEqual(self.subjects("alice@example.test", 2),
                         {"to abuse@example.test", "to ABUSE@Other.Test"})


class AbuseWithoutAlias(PostmasterCase):
    CONF = dict(NOT_RELAY, postmaster_recipient="alice@example.test")

    def test_abuse_unknown_without_alias(self):
        self.assertEqual(self.rcpt_reply("abuse@example.test"), 550)
        self.assertEqual(self.rcpt_reply("Abuse@other.test"), 550)
        self.assertEqual(self.rcpt_reply("postmaster@other.test"), 250)


class NoPostmaster(PostmasterCase):
    # no alias, and the first local domain (example.test) has no user
    USERS = ["carol@other.test *"]
    ALIASES = ["info: carol@other.test"]
    WARNING = b"postmaster@example.test does not route"

    def check_n(self):
        return subprocess.run([HATOD, "-n", "-f", self.h.conf_path], capture_output=True,
                              timeout=30)

    def test_refused_and_warned(self):
        self.assertEqual(self.rcpt_reply("postmaster"), 550)
        self.assertIn("postmaster@example.test does not route", self.h.log())
        r = self.check_n()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"hatod: warning: " + self.WARNING, r.stderr)
        self.assertIn(b"configuration OK", r.stdout)
        r = self.h.hatoctl("check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"hatoctl: warning: " + self.WARNING, r.stderr)

    def test_alias_add_clears_the_warning(self):
        r = self.h.hatoctl("user", "add", "dave@other.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.WARNING, r.stderr)          # still nobody
        r = self.h.hatoctl("alias", "add", "postmaster", "carol@other.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"warning", r.stderr)
        self.assertNotIn(b"warning", self.check_n().stderr)
        self.assertNotIn(b"warning", self.h.hatoctl("check").stderr)
        self.send_each(["postmaster", "PostMaster@EXAMPLE.test"])
        self.assertEqual(len(self.subjects("carol@other.test", 2)), 2)
        # deleting the alias brings the warning back, and the refusal
        r = self.h.hatoctl("alias", "del", "postmaster")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.WARNING, r.stderr)
        self.assertEqual(self.rcpt_reply("postmaster"), 550)

    def test_user_add_in_first_domain_clears_the_warning(self):
        r = self.h.hatoctl("user", "add", "erin@example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"warning", r.stderr)
        self.send_each(["postmaster@other.test"])
        self.assertEqual(len(self.subjects("erin@example.test", 1)), 1)
        r = self.h.hatoctl("user", "del", "erin@example.test")
        self.assertIn(self.WARNING, r.stderr)


class PostmasterRecipientUnknown(NoPostmaster):
    CONF = dict(NOT_RELAY, postmaster_recipient="nobody@example.test")

    def test_warning_names_the_recipient(self):
        r = self.check_n()
        self.assertIn(b"nor does postmaster_recipient nobody@example.test", r.stderr)

    test_alias_add_clears_the_warning = None
    test_user_add_in_first_domain_clears_the_warning = None
