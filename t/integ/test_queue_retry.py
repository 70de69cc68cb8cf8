"""Retries, bounces and delay notices (issue 2 "Local delivery", "Queue";
DESIGN.md "Retry").  The harness sets minimal_backoff_time = 1s and
maximal_backoff_time = 2s."""
import os
import re
import time

from harness import HatodTestCase, wait_for
from test_queue_util import (ls, mails, message, qdir, read_env, restart, send_ok, stays,
                             wait_queue_empty)


def dsn_status(data):
    return re.findall(rb"\r\nStatus: ([245]\.\d+\.\d+)\r\n", data)


class LocalFailure(HatodTestCase):
    # over quota bounces at once (the default defers: t/integ/test_store_quota.py)
    CONF = {"quota_full_permanent": "yes"}

    def test_temporary_failure_is_retried_not_dropped(self):
        h = self.h
        dom = os.path.join(h.state, "mail", "example.test")
        os.makedirs(dom, exist_ok=True)
        blocker = os.path.join(dom, "bob")
        with open(blocker, "w") as f:          # a file where the Maildir should be
            f.write("not a directory\n")
        qid = send_ok(self, h, "alice@example.test", ["bob@example.test"],
                      message("retry me", "retried-body"))
        pat = qid + r": to=<bob@example.test>, relay=local, delay=[\d.]+, dsn=4\.\d\.\d, " \
                    r"status=deferred \(.+\)"
        self.assertTrue(wait_for(lambda: re.search(pat, h.log()), 5), h.log())
        self.assertIn(qid, h.queue_ids())
        # the envelope is rewritten (after the log line): attempts 1, still pending
        self.assertTrue(wait_for(lambda: int(read_env(h, qid)["attempts"]) >= 1, 5))
        env = read_env(h, qid)
        self.assertTrue(env["rcpt"][0].startswith("P bob@example.test"), env["rcpt"])
        self.assertEqual(h.maildir("alice@example.test"), [])   # no bounce
        os.unlink(blocker)
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertIn(b"retried-body", mails(h, "bob@example.test")[0])
        self.assertEqual(h.maildir("alice@example.test"), [])

    def test_maildir_missing_new_is_repaired(self):
        h = self.h
        box = os.path.join(h.state, "mail", "example.test", "bob")
        os.makedirs(os.path.join(box, "tmp"))    # tmp/ alone: no new/, no cur/
        send_ok(self, h, "a@remote.test", ["bob@example.test"], message("repair"))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        self.assertTrue(os.path.isdir(os.path.join(box, "cur")))

    def test_over_quota_bounces_with_dsn(self):
        h = self.h
        qid = send_ok(self, h, "bob@example.test", ["carol@other.test", "alice@example.test"],
                      message("too big for carol", size=30 * 1024))
        self.assertTrue(h.wait_mail("alice@example.test", 1, 10), h.log())
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertEqual(h.maildir("carol@other.test"), [])
        self.assertRegex(h.log(), qid + r": to=<carol@other.test>, relay=local, .*dsn=5\.2\.2, "
                                        r"status=bounced")
        dsn = mails(h, "bob@example.test")[0]
        self.assertIn(b"Content-Type: multipart/report; report-type=delivery-status", dsn)
        self.assertEqual(dsn_status(dsn), [b"5.2.2"])
        self.assertIn(b"Final-Recipient: rfc822; carol@other.test", dsn)
        self.assertIn(b"Action: failed", dsn)
        self.assertNotIn(b"Final-Recipient: rfc822; alice@example.test", dsn)
        self.assertIn(b"Return-Path: <>", dsn)
        self.assertTrue(stays(lambda: len(h.maildir("bob@example.test")) == 1, 1.0))
        self.assertEqual(ls(qdir(h, "msg")), [])


class RemoteQueued(HatodTestCase):
    CONF = {"maximal_queue_lifetime": "4s", "delay_warning_time": "1s"}

    def test_remote_stays_queued_then_delay_notice_then_bounce(self):
        h = self.h
        qid = send_ok(self, h, "bob@example.test", ["friend@remote.test"],
                      message("to the world", "remote-body"))
        self.assertTrue(wait_for(lambda: re.search(
            qid + r": to=<friend@remote.test>, relay=smtp, .*status=deferred "
                  r"\(remote delivery off in this test\)", h.log()), 5), h.log())
        env = read_env(h, qid)
        self.assertEqual(env["sender"], "bob@example.test")
        self.assertTrue(env["rcpt"][0].startswith("P friend@remote.test"), env["rcpt"])
        # one delay notice after 1 s, then the bounce at 4 s
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        first = mails(h, "bob@example.test")[0]
        self.assertIn(b"Action: delayed", first)
        self.assertIn(qid, h.queue_ids())        # still queued after the notice
        self.assertTrue(h.wait_mail("bob@example.test", 2, 8), h.log())
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertTrue(stays(lambda: len(h.maildir("bob@example.test")) == 2, 1.5), h.log())
        got = mails(h, "bob@example.test")
        delayed = [m for m in got if b"Action: delayed" in m]
        failed = [m for m in got if b"Action: failed" in m]
        self.assertEqual((len(delayed), len(failed)), (1, 1))
        self.assertIn(b"Final-Recipient: rfc822; friend@remote.test", failed[0])
        self.assertTrue(dsn_status(failed[0])[0].startswith(b"4.") or
                        dsn_status(failed[0])[0].startswith(b"5."))
        self.assertIn(qid + ": to=<friend@remote.test>, status=expired", h.log())


class Backoff(HatodTestCase):
    CONF = {"minimal_backoff_time": "1s", "maximal_backoff_time": "2s"}

    def test_attempts_grow_and_wait_is_capped(self):
        h = self.h
        qid = send_ok(self, h, "bob@example.test", ["friend@remote.test"], message("backoff"))
        seen = []
        end = time.time() + 5.5
        while time.time() < end:
            try:
                env = read_env(h, qid)
                mtime = int(os.stat(os.path.join(qdir(h, "env"), qid)).st_mtime)
            except (FileNotFoundError, ValueError):
                continue
            if not env["_text"].endswith("end\n"):
                continue
            a, nt = int(env["attempts"]), int(env["next_try"])
            if not seen or seen[-1][0] != a:
                seen.append((a, nt, mtime))
            time.sleep(0.05)
        attempts = [a for a, _, _ in seen]
        self.assertEqual(attempts, sorted(attempts))
        self.assertGreaterEqual(attempts[-1], 3, seen)       # retried, not stuck
        self.assertLessEqual(attempts[-1], 7, seen)          # not faster than 1 s
        for a, nt, mtime in seen[1:] if seen[0][0] == 0 else seen:
            self.assertLessEqual(nt - mtime, 2, seen)        # maximal_backoff_time
            self.assertGreaterEqual(nt - mtime, 0, seen)
        # waits between attempts are about 1..2 s (minimal .. maximal)
        times = [float(t) for t in re.findall(
            r"\d\d:(\d\d\.\d+)\+0000 hatod\[\d+\]: " + qid + r": to=<friend", h.log())]
        gaps = [(b - a) % 60 for a, b in zip(times, times[1:])]
        self.assertTrue(gaps, h.log())
        for g in gaps:
            self.assertGreater(g, 0.5, gaps)
            self.assertLess(g, 3.0, gaps)


class Quota(HatodTestCase):
    CONF = {"quota_full_permanent": "yes"}

    def test_quota_counts_earlier_deliveries(self):
        h = self.h
        send_ok(self, h, "bob@example.test", ["carol@other.test"], message("one", size=12000))
        self.assertTrue(h.wait_mail("carol@other.test", 1, 5), h.log())
        send_ok(self, h, "bob@example.test", ["carol@other.test"], message("two", size=12000))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())   # the DSN
        self.assertEqual(dsn_status(mails(h, "bob@example.test")[0]), [b"5.2.2"])
        self.assertEqual(len(h.maildir("carol@other.test")), 1)
        self.assertTrue(wait_queue_empty(h), h.log())


class DoubleBounce(HatodTestCase):
    """A DSN that cannot be delivered is reported once to postmaster after
    bounce_queue_lifetime (a double bounce), never bounced to its null
    sender; postmaster is bob here (aliases)."""
    CONF = {"bounce_queue_lifetime": "2s", "quota_full_permanent": "yes"}

    def test_undeliverable_dsn_goes_to_postmaster_once(self):
        h = self.h
        qid = send_ok(self, h, "a@remote.test", ["carol@other.test"], message("x", size=30000))
        m = wait_for(lambda: re.search(qid + r": sender non-delivery notification: ([0-9A-F]{16})",
                                       h.log()), 5)
        self.assertTrue(m, h.log())
        dsn_id = m.group(1)
        m2 = wait_for(lambda: re.search(dsn_id + r": postmaster double-bounce notification: "
                                                 r"([0-9A-F]{16})", h.log()), 10)
        self.assertTrue(m2, h.log())
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        self.assertTrue(wait_queue_empty(h, 8), h.log())
        import email
        from email import policy
        msg = email.message_from_bytes(mails(h, "bob@example.test")[0], policy=policy.compat32)
        self.assertEqual(msg["To"], "<postmaster@example.test>")
        self.assertEqual(msg.get_content_type(), "multipart/report")
        report = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"][0]
        rcpt = report.get_payload()[1]
        self.assertEqual(rcpt["Final-Recipient"], "rfc822; a@remote.test")
        self.assertEqual(rcpt["Action"], "failed")
        self.assertEqual(len(re.findall(r"sender non-delivery notification", h.log())), 1)
        self.assertEqual(len(re.findall(r"double-bounce notification", h.log())), 1)


class DoubleBounceUndeliverable(HatodTestCase):
    """A double bounce that cannot be delivered either is discarded: no loop."""
    CONF = {"bounce_queue_lifetime": "2s", "quota_full_permanent": "yes"}
    ALIASES = ["postmaster: pm@remote.test"]

    def test_undeliverable_double_bounce_discarded(self):
        h = self.h
        send_ok(self, h, "a@remote.test", ["carol@other.test"], message("x", size=30000))
        m = wait_for(lambda: re.search(r": postmaster double-bounce notification: ([0-9A-F]{16})",
                                       h.log()), 10)
        self.assertTrue(m, h.log())
        self.assertTrue(wait_for(lambda: re.search(m.group(1) + r": undeliverable double bounce: "
                                                   r"discarded", h.log()), 10), h.log())
        self.assertTrue(wait_queue_empty(h, 8), h.log())
        self.assertEqual(len(re.findall(r"notification: ", h.log())), 2, h.log())


class RetrySchedule(HatodTestCase):
    CONF = {"retry_schedule": "1s, 3s"}

    def test_explicit_schedule(self):
        h = self.h
        qid = send_ok(self, h, "a@remote.test", ["friend@remote.test"], message("sched"))
        self.assertTrue(wait_for(lambda: len(re.findall(qid + ": to=<friend", h.log())) >= 4, 12),
                        h.log())
        times = [float(t) for t in re.findall(
            r"\d\d:(\d\d\.\d+)\+0000 hatod\[\d+\]: " + qid + r": to=<friend", h.log())]
        gaps = [(b - a) % 60 for a, b in zip(times, times[1:])]
        self.assertTrue(0.5 < gaps[0] < 2.0, gaps)
        self.assertTrue(2.5 < gaps[1] < 4.0, gaps)
        self.assertTrue(2.5 < gaps[2] < 4.0, gaps)     # the last entry repeats


class DelayNoticeOnce(HatodTestCase):
    CONF = {"delay_warning_time": "1s", "maximal_queue_lifetime": "1h"}

    def test_delay_notice_not_repeated_after_restart(self):
        h = self.h
        qid = send_ok(self, h, "bob@example.test", ["friend@remote.test"], message("slow"))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        self.assertTrue(wait_for(lambda: read_env(h, qid).get("warned") == "1", 5))
        # the notice itself is out of the queue too (a crash between its
        # delivery and its removal would deliver it again: at least once)
        self.assertTrue(wait_for(lambda: h.queue_ids() == [qid], 5), h.queue_ids())
        h.kill9()
        restart(h)
        self.assertTrue(wait_for(lambda: int(read_env(h, qid)["attempts"]) >= 4, 8), h.log())
        self.assertEqual(len(h.maildir("bob@example.test")), 1)
        self.assertIn(b"Action: delayed", mails(h, "bob@example.test")[0])
        self.assertIn(qid, h.queue_ids())
