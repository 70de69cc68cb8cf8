"""Quota end to end (issue 9 "Mailbox store", "Tests"): the RCPT-time answer
(452 4.2.2, or 552 5.2.2 with quota_full_permanent), a message that would
cross the quota at delivery deferred then bounced per the queue's lifetime,
the warning mail at quota_warning_percent once per crossing, and the
mailbox layout made at the first delivery."""
import os
import re
import smtplib
import socket
import subprocess

from harness import HATOD, HatodTestCase, RawSMTP, wait_for
from test_queue_util import mails, message, send, send_ok, stays, wait_queue_empty


def box(h, address):
    local, domain = address.split("@")
    return os.path.join(h.state, "mail", domain, local)


def fill(h, address, size):
    """A message of `size` octets that a Maildir client left (no maildirsize
    line: hatod recounts), making the Maildir if needed."""
    d = box(h, address)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    path = os.path.join(d, "cur", "1700000000.M1P1.client,S=%d:2,S" % size)
    with open(path, "wb") as f:
        f.write(b"Subject: filler\r\n\r\n" + b"x" * (size - 19))
    try:
        os.unlink(os.path.join(d, "maildirsize"))
    except FileNotFoundError:
        pass
    return path


def rcpt_reply(h, rcpt):
    with smtplib.SMTP("127.0.0.1", h.port, timeout=15) as s:
        s.ehlo("client.test")
        s.mail("a@remote.test")
        code, text = s.rcpt(rcpt)
        return code, text.decode()


def dsn_status(data):
    return re.findall(rb"\r\nStatus: ([245]\.\d+\.\d+)\r\n", data)


class RcptQuota(HatodTestCase):
    USERS = ["bob@example.test * quota=20K", "alice@example.test *",
             "carol@other.test * quota=20K"]

    def test_full_mailbox_refused_at_rcpt(self):
        h = self.h
        self.assertEqual(rcpt_reply(h, "bob@example.test")[0], 250)   # no Maildir yet
        filler = fill(h, "bob@example.test", 20 * 1024)
        code, text = rcpt_reply(h, "bob@example.test")
        self.assertEqual((code, text), (452, "4.2.2 Mailbox full"), h.log())
        self.assertEqual(rcpt_reply(h, "bob+tag@example.test")[0], 452)   # plus-address
        self.assertEqual(rcpt_reply(h, "alice@example.test")[0], 250)     # unlimited
        self.assertEqual(rcpt_reply(h, "carol@other.test")[0], 250)       # other mailbox
        # an alias with room in one of its mailboxes is accepted
        self.assertEqual(rcpt_reply(h, "info@example.test")[0], 250)
        # the session goes on after a 452: another RCPT gets its own answer
        with smtplib.SMTP("127.0.0.1", h.port, timeout=15) as s:
            s.ehlo("client.test")
            s.mail("a@remote.test")
            self.assertEqual(s.rcpt("bob@example.test")[0], 452)
            self.assertEqual(s.rcpt("alice@example.test")[0], 250)
            self.assertEqual(s.data(message("to alice"))[0], 250)
        self.assertTrue(h.wait_mail("alice@example.test", 1, 10), h.log())
        # room again (the user deleted it and the count follows)
        os.unlink(filler)
        os.unlink(os.path.join(box(h, "bob@example.test"), "maildirsize"))
        self.assertEqual(rcpt_reply(h, "bob@example.test")[0], 250)


    def test_check_runs_off_the_loop(self):
        """The usage read happens in the worker pool while the session
        waits: with bob's maildirsize a FIFO nobody writes, his RCPT stays
        unanswered but another session is served; writing the FIFO
        (usage at the quota) brings the 452."""
        h = self.h
        d = box(h, "bob@example.test")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        fifo = os.path.join(d, "maildirsize")
        os.mkfifo(fifo)
        r = RawSMTP(h.port)
        r.reply()
        r.cmd("EHLO client.test")
        r.cmd("MAIL FROM:<a@remote.test>")
        r.send(b"RCPT TO:<bob@example.test>\r\n")
        # another session meanwhile: a blocked loop would answer nothing
        self.assertEqual(rcpt_reply(h, "alice@example.test")[0], 250)
        r.s.settimeout(0.5)
        try:
            got = r.s.recv(100)
        except (socket.timeout, TimeoutError):
            got = b""
        self.assertEqual(got, b"")                     # still waiting on the pool
        r.s.settimeout(10)
        with open(fifo, "w") as f:                     # opens once the reader is there
            f.write("20480S\n20480 1\n")
        self.assertEqual(r.reply(), (452, ["452 4.2.2 Mailbox full"]))
        r.close()


class RcptQuotaPermanent(HatodTestCase):
    CONF = {"quota_full_permanent": "yes"}
    USERS = ["bob@example.test * quota=20K", "alice@example.test *",
             "carol@other.test * quota=20K"]

    def test_full_mailbox_552(self):
        h = self.h
        fill(h, "bob@example.test", 21 * 1024)
        self.assertEqual(rcpt_reply(h, "bob@example.test"), (552, "5.2.2 Mailbox full"))

    def test_crossing_at_delivery_bounces_at_once(self):
        h = self.h
        qid = send_ok(self, h, "alice@example.test", ["carol@other.test"],
                      message("too big for carol", size=30 * 1024))
        self.assertTrue(h.wait_mail("alice@example.test", 1, 10), h.log())
        self.assertRegex(h.log(), qid + r": to=<carol@other.test>, relay=local, .*dsn=5\.2\.2, "
                                        r"status=bounced")
        self.assertEqual(dsn_status(mails(h, "alice@example.test")[0]), [b"5.2.2"])
        self.assertTrue(wait_queue_empty(h), h.log())


class DeliveryQuota(HatodTestCase):
    """Without quota_full_permanent a message that would cross the quota is
    deferred (4.2.2) and retried; it goes in if room is made, and bounces
    when maximal_queue_lifetime runs out."""
    CONF = {"maximal_queue_lifetime": "4s"}

    def test_deferred_then_bounced(self):
        h = self.h
        qid = send_ok(self, h, "alice@example.test", ["carol@other.test"],
                      message("too big for carol", size=30 * 1024))
        pat = qid + r": to=<carol@other.test>, relay=local, .*dsn=4\.2\.2, status=deferred " \
                    r"\(mailbox full\)"
        self.assertTrue(wait_for(lambda: re.search(pat, h.log()), 10), h.log())
        self.assertIn(qid, h.queue_ids())
        self.assertEqual(h.maildir("alice@example.test"), [])       # no bounce yet
        self.assertTrue(h.wait_mail("alice@example.test", 1, 15), h.log())
        dsn = mails(h, "alice@example.test")[0]
        self.assertIn(b"Action: failed", dsn)
        self.assertEqual(dsn_status(dsn), [b"4.2.2"])
        self.assertIn(b"Final-Recipient: rfc822; carol@other.test", dsn)
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertEqual(h.maildir("carol@other.test"), [])

    def test_deferred_then_delivered_when_room_is_made(self):
        h = self.h
        filler = fill(h, "carol@other.test", 15 * 1024)
        qid = send_ok(self, h, "alice@example.test", ["carol@other.test"],
                      message("fits only after a delete", size=8 * 1024))
        pat = qid + r": to=<carol@other.test>, relay=local, .*dsn=4\.2\.2, status=deferred"
        self.assertTrue(wait_for(lambda: re.search(pat, h.log()), 10), h.log())
        os.unlink(filler)
        os.unlink(os.path.join(box(h, "carol@other.test"), "maildirsize"))
        self.assertTrue(h.wait_mail("carol@other.test", 1, 10), h.log())
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertEqual(h.maildir("alice@example.test"), [])


class QuotaWarning(HatodTestCase):
    CONF = {"quota_warning_percent": "50"}
    USERS = ["bob@example.test * quota=40K", "alice@example.test *",
             "carol@other.test * quota=20K", "a..b@example.test * quota=10K"]

    def warnings(self):
        return [m for m in mails(self.h, "bob@example.test") if b"quota warning" in m]

    def test_warning_once_per_crossing(self):
        h = self.h
        send_ok(self, h, "alice@example.test", ["bob@example.test"], message("one", size=12 * 1024))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        self.assertTrue(stays(lambda: self.warnings() == [], 1.0))     # 30 %: below
        send_ok(self, h, "alice@example.test", ["bob@example.test"], message("two", size=10 * 1024))
        self.assertTrue(h.wait_mail("bob@example.test", 3, 10), h.log())   # two + the warning
        w = self.warnings()
        self.assertEqual(len(w), 1)
        self.assertIn(b"Return-Path: <>", w[0])
        self.assertIn(b"From: Mail Delivery System <postmaster@example.test>", w[0])
        self.assertIn(b"Auto-Submitted: auto-generated", w[0])
        self.assertRegex(w[0], rb"Subject: Mailbox quota warning: 5\d% full")
        send_ok(self, h, "alice@example.test", ["bob@example.test"], message("three", size=1024))
        self.assertTrue(h.wait_mail("bob@example.test", 4, 10), h.log())
        self.assertTrue(stays(lambda: len(self.warnings()) == 1, 1.0))   # once per crossing
        # the user empties the mailbox: below the mark, re-armed
        d = box(h, "bob@example.test")
        for sub in ("new", "cur"):
            for n in os.listdir(os.path.join(d, sub)):
                os.unlink(os.path.join(d, sub, n))
        os.unlink(os.path.join(d, "maildirsize"))
        send_ok(self, h, "alice@example.test", ["bob@example.test"], message("four", size=1024))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        self.assertTrue(stays(lambda: self.warnings() == [], 1.0))
        send_ok(self, h, "alice@example.test", ["bob@example.test"], message("five", size=22 * 1024))
        self.assertTrue(wait_for(lambda: len(self.warnings()) == 1, 10), h.log())
        self.assertEqual(len(re.findall(r"quota warning to <bob@example.test>", h.log())), 2)


    def test_warning_to_a_quoted_local_part(self):
        h = self.h
        send_ok(self, h, "alice@example.test", ['"a..b"@example.test'], message("q", size=6 * 1024))
        self.assertTrue(h.wait_mail("a..b@example.test", 2, 10), h.log())
        w = [m for m in mails(h, "a..b@example.test") if b"quota warning" in m]
        self.assertEqual(len(w), 1)
        self.assertIn(b'\r\nTo: <"a..b"@example.test>\r\n', w[0])


class Layout(HatodTestCase):

    def test_special_folders_at_first_delivery(self):
        h = self.h
        send_ok(self, h, "alice@example.test", ["bob@example.test"], message("first"))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        d = box(h, "bob@example.test")
        for name in ("Sent", "Drafts", "Trash", "Junk"):
            for sub in ("cur", "new", "tmp"):
                self.assertTrue(os.path.isdir(os.path.join(d, "." + name, sub)), name)
            self.assertTrue(os.path.isfile(os.path.join(d, "." + name, "maildirfolder")))
        with open(os.path.join(d, "subscriptions")) as f:
            self.assertEqual(f.read(), "Sent\nDrafts\nTrash\nJunk\n")


class QuotaConfig(HatodTestCase):
    """hatod -n: the quota keys parse; quota_warning_percent is 0..100."""

    def check(self, **conf):
        self.h.conf.update(conf)
        self.h.write_conf()
        return subprocess.run([HATOD, "-f", self.h.conf_path, "-n"], capture_output=True,
                              timeout=30)

    def test_keys(self):
        r = self.check(quota_full_permanent="yes", quota_warning_percent="90")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.check(quota_full_permanent="no", quota_warning_percent="0")
        self.assertEqual(r.returncode, 0, r.stderr)
        for key, val, why in (("quota_warning_percent", "101", b"must be 0 (off)..100"),
                              ("quota_warning_percent", "-5", b"quota_warning_percent"),
                              ("quota_warning_percent", "lots", b"quota_warning_percent"),
                              ("quota_full_permanent", "maybe", b"quota_full_permanent")):
            r = self.check(**{key: val})
            self.assertEqual(r.returncode, 1, (key, val, r.stderr))
            self.assertIn(why, r.stderr, (key, val))
            self.h.conf.pop(key)
