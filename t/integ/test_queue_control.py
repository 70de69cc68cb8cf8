"""t/integ/test_queue_control.py — hatoctl queue list/show/flush/hold/
release/delete/requeue against a running hatod (issue 7 "Queue control"):
held messages are marked '!' by hatoctl and mailq alike, live in
queue/hold/, are never tried and stay held across a restart; delete
removes both files without a notice; exit codes 0 done, 1 no such ID,
2 usage, 75 hatod unreachable.  Remote mail stays queued here (the
harness's default_transport defers it), which gives deferred messages
to work on; the backoff is an hour so that only the verbs make attempts."""
import json
import os
import re

from harness import SENDMAIL, HatodTestCase, wait_for
from test_queue_util import (message, qdir, read_env, restart, send_ok, stays,
                             wait_queue_empty)

HOUR = {"minimal_backoff_time": "1h", "maximal_backoff_time": "1h",
        "queue_run_delay": "1h"}


def attempts(h, qid):
    return len(re.findall(qid + r": to=<", h.log()))


class QueueControl(HatodTestCase):
    CONF = HOUR

    def ctl(self, *args):
        return self.h.hatoctl(*args)

    def queued(self, rcpt="friend@remote.test", sender="a@remote.test"):
        h = self.h
        qid = send_ok(self, h, sender, [rcpt], message("ctl"))
        self.assertTrue(wait_for(lambda: attempts(h, qid) >= 1 and
                                 int(read_env(h, qid).get("attempts", 0)) >= 1, 5), h.log())
        return qid

    def test_hold_release_and_restart(self):
        h = self.h
        qid = self.queued()
        r = self.ctl("queue", "hold", qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"placed on hold", r.stdout)
        self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(qdir(h, "hold"), qid)), 5))
        self.assertFalse(os.path.exists(os.path.join(qdir(h, "env"), qid)))
        text = self.ctl("queue", "list").stdout.decode()
        self.assertRegex(text, qid + r"!")
        self.assertEqual(h.run_tool([SENDMAIL, "-bp"]).stdout.decode(), text)
        js = [json.loads(l) for l in self.ctl("queue", "list", "--json").stdout.splitlines()]
        self.assertEqual(js[0]["queue_name"], "hold")
        # never tried while held, not even by a flush
        n = attempts(h, qid)
        self.assertEqual(self.ctl("queue", "flush").returncode, 0)
        self.assertTrue(stays(lambda: attempts(h, qid) == n, 1.0), h.log())
        # held across a restart
        h.stop()
        restart(h)
        self.assertIn("queue: 1 message(s) on hold", h.log())
        self.assertRegex(self.ctl("queue", "list").stdout.decode(), qid + r"!")
        self.assertTrue(stays(lambda: attempts(h, qid) == n, 1.0), h.log())
        r = self.ctl("queue", "release", qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: attempts(h, qid) == n + 1, 5), h.log())
        self.assertTrue(os.path.exists(os.path.join(qdir(h, "env"), qid)))
        self.assertNotRegex(self.ctl("queue", "list").stdout.decode(), qid + r"!")

    def test_hold_and_release_all(self):
        h = self.h
        ids = [self.queued(), self.queued("other@remote2.test")]
        r = self.ctl("queue", "hold", "ALL")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"2 message(s) placed on hold", r.stdout)
        self.assertTrue(wait_for(lambda: sorted(os.listdir(qdir(h, "hold"))) == sorted(ids), 5))
        r = self.ctl("queue", "release", "ALL")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: os.listdir(qdir(h, "hold")) == [], 5))
        self.assertEqual(sorted(h.queue_ids()), sorted(ids))

    def test_show(self):
        h = self.h
        qid = self.queued()
        r = self.ctl("queue", "show", qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for want in ("queue id: " + qid, "queue: deferred", "sender: <a@remote.test>",
                     "recipient: friend@remote.test", "  status: pending",
                     "  last reply: 4.4.0 remote delivery off in this test", "  host: local",
                     "  tls: none", "  attempts: 1", "next attempt: ", "headers:",
                     "  Subject: ctl"):
            self.assertIn(want, out)
        self.assertEqual(self.ctl("queue", "show", "0000000000000001").returncode, 1)
        self.assertEqual(self.ctl("queue", "show", "nonsense").returncode, 2)

    def test_delete(self):
        h = self.h
        a, b, c = (self.queued("x@remote.test", "s1@remote.test"),
                   self.queued("y@remote2.test", "s2@remote.test"),
                   self.queued("z@remote3.test", "s3@remote.test"))
        r = self.ctl("queue", "delete", a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: a not in h.queue_ids(), 5))
        self.assertFalse(os.path.exists(os.path.join(qdir(h, "msg"), a)))
        r = self.ctl("queue", "delete", "--from", "s2@remote.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1 message(s) deleted", r.stdout)
        self.assertTrue(wait_for(lambda: b not in h.queue_ids(), 5))
        r = self.ctl("queue", "delete", "--to", "remote3.test")
        self.assertIn(b"1 message(s) deleted", r.stdout)
        self.assertTrue(wait_queue_empty(h, 5))
        self.assertNotIn(c, self.ctl("queue", "list").stdout.decode())
        self.assertNotIn("notification", h.log())          # no notice to anybody

    def test_delete_all_and_missing(self):
        h = self.h
        self.queued()
        self.queued("b@remote2.test")
        self.assertEqual(self.ctl("queue", "delete", "ALL").returncode, 0)
        self.assertTrue(wait_queue_empty(h, 5))
        r = self.ctl("queue", "delete", "0000000000000001")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"no such message", r.stderr)

    def test_requeue_and_flush_domain(self):
        h = self.h
        a = self.queued("x@remote.test")
        b = self.queued("y@elsewhere.test")
        na, nb = attempts(h, a), attempts(h, b)
        self.assertEqual(self.ctl("queue", "flush", "remote.test").returncode, 0)
        self.assertTrue(wait_for(lambda: attempts(h, a) == na + 1, 5), h.log())
        self.assertTrue(stays(lambda: attempts(h, b) == nb, 0.5))
        r = self.ctl("queue", "requeue", b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: attempts(h, b) == nb + 1, 5), h.log())
        self.assertTrue(wait_for(lambda: read_env(h, b)["attempts"] == "1", 5))
        # sendmail -qR DOMAIN is the same flush
        na, nb = attempts(h, a), attempts(h, b)
        self.assertTrue(wait_for(lambda: int(read_env(h, a)["attempts"]) == na, 5))
        r = h.run_tool([SENDMAIL, "-qR", "remote.test"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: attempts(h, a) == na + 1, 5), h.log())
        self.assertTrue(stays(lambda: attempts(h, b) == nb, 0.5))

    def test_usage_and_daemon_down(self):
        h = self.h
        for args in (("queue", "hold"), ("queue", "delete"), ("queue", "requeue", "ALL"),
                     ("queue", "hold", "xyz"), ("queue", "delete", "--from"),
                     ("queue", "show"), ("queue", "flush", "a", "b")):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        h.stop()
        for args in (("queue", "hold", "ALL"), ("queue", "show", "0000000000000001"),
                     ("queue", "delete", "0000000000000001"), ("queue", "flush", "x.test")):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 75, (args, r.stderr))
