"""A large due backlog (issue 6, item 1): the scheduler must never recurse
through an agent's completion, and one timer pass starts a bounded number
of attempts.  Remote recipients defer at once (the "smtp" agent completes
inside its deliver call), which is the deepest case: before the fix every
due message added a few stack frames and hatod died of SIGSEGV.

The queue is written by hand (envelope format of queue/envelope.h) so the
backlog costs seconds, not minutes of SMTP, and the state directory is a
tmpfs: this test is about the scheduler, and creating and deleting 200,000
files on the VM's ext4 (mounted with discard) takes minutes.  HATO_BACKLOG_N overrides the
count (default 100,000; the recursion crashed well below 50,000)."""
import os
import signal
import smtplib
import subprocess
import time

from harness import HATOCTL, SENDMAIL, Hatod, wait_for
from test_queue_util import Tmpfs, ls, qdir
import unittest

N = int(os.environ.get("HATO_BACKLOG_N", "100000"))
ARRIVAL_US = int(time.time() * 1e6) - 60 * 1000000   # a minute ago: not expired
BASE = ARRIVAL_US << 12
CONTENT = (b"Received: by mx.example.test\r\nFrom: <a@remote.test>\r\n"
           b"To: <x@far.test>\r\nSubject: backlog\r\n\r\nbody\r\n")


def envelope(qid, i):
    return ("hato-envelope 1\nid %s\narrival %d\nsender a@remote.test\n"
            "client 127.0.0.1\nhelo client.test\nproto ESMTP\nsize %d\nattempts 0\n"
            "next_try 0\nwarned 0\nflags 0\nrcpt P u%d@far%d.test - - -\nend\n"
            % (qid, ARRIVAL_US, len(CONTENT), i, i % 100))


def fill_queue(h, n):
    envd, msgd = qdir(h, "env"), qdir(h, "msg")
    for i in range(n):
        qid = "%016X" % (BASE + i)
        with open(os.path.join(msgd, qid), "wb") as f:
            f.write(CONTENT)
        with open(os.path.join(envd, qid), "w") as f:
            f.write(envelope(qid, i))


def start_and_wait(h, timeout):
    """Start hatod and wait for the end of recovery (it reads N envelopes)."""
    before = h.log().count("hatod started")
    h.start(wait=False)
    ok = wait_for(lambda: h.proc.poll() is not None or h.log().count("hatod started") > before,
                  timeout, 0.1)
    if h.proc.poll() is not None or not ok:
        raise AssertionError("hatod did not start (rc %s):\n%s" % (h.proc.poll(), h.log()[-3000:]))


def smtp_answers(h):
    t0 = time.time()
    with smtplib.SMTP("127.0.0.1", h.port, timeout=30) as s:
        code, _ = s.ehlo("client.test")
        code2, _ = s.noop()
    return code == 250 and code2 == 250, time.time() - t0


def queue_listing(h, argv):
    r = h.run_tool(argv)
    if r.returncode != 0:
        return None
    return sum(1 for line in r.stdout.decode().splitlines() if line[:16] in IDS)


IDS = set("%016X" % (BASE + i) for i in range(N))


class Backlog(unittest.TestCase):

    def setUp(self):
        self.fs = Tmpfs("4g").__enter__()
        # remote mail only; the far*.test domains have no DNS data at all
        self.h = Hatod(conf={"minimal_backoff_time": "300s", "maximal_backoff_time": "300s"},
                       state_dir=os.path.join(self.fs.dir, "state"))
        self.h.start()
        self.h.stop()

    def tearDown(self):
        if self.h.proc:
            self.h.kill9()
        if os.environ.get("HATO_KEEP"):
            print("kept", self.h.log_path)
        else:
            subprocess.run(["rm", "-rf", self.h.dir])
        subprocess.run(["rm", "-rf", self.h.state])
        self.fs.__exit__(None, None, None)

    def alive(self):
        self.assertIsNone(self.h.proc.poll(), "hatod died:\n" + self.h.log()[-3000:])

    def test_big_due_backlog_flush_kill_restart(self):
        h = self.h
        fill_queue(h, N)
        start_and_wait(h, 180)               # every message due at once
        ok, took = smtp_answers(h)
        self.assertTrue(ok)
        self.alive()
        # the backlog is worked through in bounded steps: some attempts done
        self.assertTrue(wait_for(lambda: "status=deferred" in h.log(), 30), h.log()[-2000:])
        r = h.hatoctl("queue", "flush")
        self.assertEqual(r.returncode, 0, r.stderr)
        ok, took = smtp_answers(h)
        self.assertTrue(ok)
        self.assertLess(took, 10, "SMTP answered only after %.1f s during the backlog" % took)
        self.alive()
        time.sleep(1)
        self.alive()
        h.kill9()
        self.assertEqual(len(ls(qdir(h, "env"))), N)
        start_and_wait(h, 180)
        ok, took = smtp_answers(h)
        self.assertTrue(ok)
        self.assertLess(took, 10, "SMTP answered only after %.1f s after the restart" % took)
        self.assertEqual(queue_listing(h, [HATOCTL, "-f", h.conf_path, "queue", "list"]), N)
        self.assertEqual(queue_listing(h, [SENDMAIL, "-bp"]), N)     # mailq
        self.alive()
        self.assertEqual(h.stop(), 0, h.log()[-2000:])


if __name__ == "__main__":
    unittest.main()
