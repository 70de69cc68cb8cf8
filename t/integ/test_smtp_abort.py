"""Aborted DATA does not block the loop (issue 6 item 4): the unlink or
truncate that drops an unfinished message's queue file (client gone
mid-DATA, 552 over message_size_limit, 521 on a bare LF) runs in the worker
pool.  An LD_PRELOAD shim (t/integ/shims/gate_queue_drop.c) holds every
such call until the test releases it and says which thread made it; while
it is held, another session's NOOP is answered, and so are the 552 and the
521.  When the drop ran on the loop, the NOOP waited for the release."""
import os
import socket

from harness import Hatod, wait_for
from test_smtp_helpers import SMTPCase
from test_smtp_limits import build_shim

CONTENT = b"Subject: aborted\r\n\r\n" + (b"z" * 998 + b"\r\n") * 30    # 30 KB


class AbortedDataOffTheLoop(SMTPCase):
    CONF = {"smtpd_forbid_bare_newline": "yes", "message_size_limit": "10K"}

    def setUp(self):
        self.h = Hatod(conf=self.CONF)
        self.gate = os.path.join(self.h.dir, "gate")
        os.mkdir(self.gate)
        env = dict(os.environ)
        env["LD_PRELOAD"] = build_shim("gate_queue_drop", self.h.dir)
        env["HATO_SHIM_GATE"] = self.gate
        # the shim loads before an ASan runtime; that is fine here
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
        self.h.env = env
        self.h.start()

    def tearDown(self):
        self.release()                     # never leave hatod stuck in the shim
        super().tearDown()

    def release(self):
        open(os.path.join(self.gate, "release"), "w").close()

    def close_gate(self):
        for n in ("release", "entered-loop", "entered-worker"):
            try:
                os.unlink(os.path.join(self.gate, n))
            except FileNotFoundError:
                pass

    def entered(self):
        return [n for n in ("entered-loop", "entered-worker")
                if os.path.exists(os.path.join(self.gate, n))]

    def tmp_files(self):
        return os.listdir(os.path.join(self.h.state, "queue", "tmp"))

    def start_data(self):
        r = self.raw(timeout=30)
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
        self.expect(r, "DATA", 354)
        r.send(CONTENT)
        return r

    def held_drop(self, abort):
        """Abort a message with abort(r) while the drop is held: returns the
        aborting session's reply (or None) and checks the loop meanwhile."""
        self.close_gate()
        other = self.raw(timeout=10)       # the loop answers at once, or never
        r = self.start_data()
        self.assertTrue(wait_for(lambda: self.tmp_files(), 10), "no queue file in tmp/")
        abort(r)
        self.assertTrue(wait_for(self.entered, 15), "the drop never started:\n" + self.h.log())
        self.assertEqual(self.entered(), ["entered-worker"], "the drop ran on the loop")
        # the loop is free while the drop waits: another session is answered
        try:
            self.expect(other, "NOOP", 250, "2.0.0")
        except socket.timeout:
            self.fail("NOOP not answered while a queue file's drop was held")
        got = None
        if abort is not self.disconnect:
            try:
                got = r.reply()
            except socket.timeout:
                self.fail("the abort's own reply waited for the drop")
        self.assertTrue(self.tmp_files(), "dropped before the release?")
        self.release()
        self.assertTrue(wait_for(lambda: not self.tmp_files(), 10), self.tmp_files())
        self.expect(other, "QUIT", 221)
        return got

    @staticmethod
    def disconnect(r):
        r.close()

    @staticmethod
    def overflow(r):
        r.send(b".\r\n")

    @staticmethod
    def bare_lf(r):
        r.send(b"bare\n")

    def test_disconnect_mid_data(self):
        self.held_drop(self.disconnect)

    def test_552_over_size_limit(self):
        self.check(*self.held_drop(self.overflow), 552, "5.3.4")

    def test_521_bare_lf(self):
        self.check(*self.held_drop(self.bare_lf), 521, "5.5.2")

    def test_hatod_goes_on_after_the_drops(self):
        for abort in (self.disconnect, self.overflow, self.bare_lf):
            self.held_drop(abort)
        r = self.raw()
        self.send_message(r, "a@remote.test", ["bob@example.test"],
                          b"Subject: after\r\n\r\nafter\r\n.\r\n")
        self.expect(r, "QUIT", 221)
        self.assertTrue(self.h.wait_mail("bob@example.test"), self.h.log())
        self.assertNotIn("AddressSanitizer", self.h.log())
