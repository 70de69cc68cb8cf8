"""Queue identity: IDs across restarts and clock steps (issue 6, item 2),
and the envelope version rule (an older hatod never calls a newer
envelope corrupt).  IDs:  The clock
is faked with libfaketime (Debian `faketime`) and frozen, so a restart
"steps back" to exactly where the first run was: every ID the second run
would issue from the clock alone is one the first run issued.  Before the
fix the second run's commits renamed over the first run's queue files and
acknowledged messages were silently replaced."""
import os
import smtplib

from harness import HatodTestCase
from test_queue_util import QUEUED_RE, message, qdir, start
import unittest

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
N = 150


def frozen_env(when):
    e = dict(os.environ)
    e["LD_PRELOAD"] = FAKETIME_LIB
    e["FAKETIME"] = when                 # no "@": the clock stands still
    e["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"   # libevent's timers keep running
    e["FAKETIME_NO_CACHE"] = "1"
    # ASan wants to be first in the library list; libfaketime is harmless there
    e["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    return e


@unittest.skipUnless(os.path.exists(FAKETIME_LIB), "libfaketime not installed")
class ClockStepsBack(HatodTestCase):
    CONF = {"minimal_backoff_time": "1h", "maximal_backoff_time": "1h"}

    def send_batch(self, tag):
        """N messages to a remote recipient (they stay queued); {qid: tag}."""
        got = {}
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=15) as s:
            s.ehlo("client.test")
            for i in range(N):
                t = "%s-%d" % (tag, i)
                s.mail("a@remote.test")
                s.rcpt("x@far.test")
                code, text = s.data(message(t, "body " + t))
                self.assertEqual(code, 250, text)
                qid = QUEUED_RE.search(text.decode()).group(1)
                self.assertNotIn(qid, got, "ID issued twice in one run")
                got[qid] = t
        return got

    def restart_frozen(self):
        self.h.env = frozen_env("2026-06-01 12:00:00")
        start(self.h)

    def test_restart_with_clock_set_back_never_replaces_mail(self):
        h = self.h
        h.stop()
        self.restart_frozen()
        first = self.send_batch("first")
        h.kill9()
        self.restart_frozen()               # the same instant again
        second = self.send_batch("second")
        self.assertFalse(set(first) & set(second),
                         "the second run reissued %d IDs" % len(set(first) & set(second)))
        acked = dict(first, **second)
        self.assertEqual(len(acked), 2 * N)
        on_disk = set(os.listdir(qdir(h, "env")))
        self.assertEqual(on_disk, set(acked))
        # every acknowledged ID still holds the message that was sent under it
        for qid, tag in acked.items():
            with open(os.path.join(qdir(h, "msg"), qid), "rb") as f:
                self.assertIn(("Subject: %s\r\n" % tag).encode(), f.read(), qid)


class NewerEnvelope(HatodTestCase):

    def test_newer_envelope_version_refuses_start_and_touches_nothing(self):
        h = self.h
        h.stop()
        qid = "0005E8C2F1A2B001"
        env = os.path.join(qdir(h, "env"), qid)
        with open(os.path.join(qdir(h, "msg"), qid), "wb") as f:
            f.write(message("from the future"))
        with open(env, "w") as f:
            f.write("hato-envelope 999\nid %s\nsomething new 1\nend\n" % qid)
        h.start(wait=False)
        try:
            rc = h.proc.wait(30)
        except Exception:
            rc = None
        self.assertIsNotNone(rc, "hatod kept running:\n" + h.log())
        self.assertNotEqual(rc, 0)
        h.proc = None
        h.logf.close()
        self.assertIn("envelope of version 999; this hatod reads versions up to 2", h.log())
        self.assertTrue(os.path.exists(env))
        self.assertTrue(os.path.exists(os.path.join(qdir(h, "msg"), qid)))
        self.assertEqual(os.listdir(qdir(h, "corrupt")), [])


if __name__ == "__main__":
    unittest.main()
