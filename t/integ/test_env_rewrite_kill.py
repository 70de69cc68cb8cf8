"""t/integ/test_env_rewrite_kill.py — kill -9 while envelopes are being
rewritten (issue 7: "kill -9 during a rewrite leaves the old or the new
envelope, never neither").  40 remote messages are deferred every second
(the harness's default_transport defers them, backoff 1s), so their
envelopes are rewritten all the time; hatod is killed at a few instants
and restarted.  After each restart every message is still queued, its
envelope parses (nothing in corrupt/, no leftover tmp/*.upd is taken for
an envelope) and its attempt count never went back.  (The power-loss
model in test_crash_states.py checks the same for flushes.)"""
import os
import random
import re
import time

from harness import HatodTestCase, wait_for
from test_queue_util import ls, message, qdir, read_env, send, start

N = 40
KILLS = 4


class RewriteKill(HatodTestCase):
    CONF = {"minimal_backoff_time": "1s", "maximal_backoff_time": "1s",
            "queue_run_delay": "1s"}

    def test_kill9_during_rewrites_keeps_every_envelope(self):
        h = self.h
        ids = []
        for i in range(N):
            code, text = send(h.port, "a@remote.test", ["r%d@remote%d.test" % (i, i % 5)],
                              message("kill %d" % i))
            self.assertEqual(code, 250, text)
            ids.append(re.search(r"queued as ([0-9A-F]{16})", text).group(1))
        rng = random.Random(7)
        seen = {q: 0 for q in ids}
        for k in range(KILLS):
            # let a few rounds of deferral rewrites run, then kill mid-stream
            before = h.log().count("status=deferred")
            self.assertTrue(wait_for(lambda: h.log().count("status=deferred") >= before + N, 10),
                            h.log()[-2000:])
            time.sleep(rng.uniform(0.0, 0.5))
            h.kill9()
            self.assertEqual(sorted(ls(qdir(h, "env"))), sorted(ids), "after kill %d" % k)
            self.assertEqual(ls(qdir(h, "corrupt")), [])
            for q in ids:
                env = read_env(h, q)
                self.assertTrue(env["_text"].endswith("\nend\n"), q)
                n = int(env["attempts"])
                self.assertGreaterEqual(n, seen[q], q)     # never an older envelope back
                seen[q] = n
            start(h)
            self.assertIn("queue: %d message(s) recovered" % N, h.log())
        self.assertTrue(all(n >= 1 for n in seen.values()), seen)
        self.assertEqual(ls(qdir(h, "corrupt")), [])
