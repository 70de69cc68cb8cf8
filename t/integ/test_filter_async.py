"""The asynchronous filter path end to end, with the test-only hold filter
(test_filter_hold / test_filter_hold_ms, filters/hold.h): it answers
"pending" and lets the chain go on later from a timer, as a DNS or worker
filter would.

- While a filter is pending the session reads nothing (the commands sent
  meanwhile stay in the kernel's socket buffer), and pipelined commands
  after it are answered in order.
- A reload (SIGHUP) while a filter is pending frees nothing the session
  uses (it holds its configuration generation; under ASan a use-after-free
  kills hatod): the transaction completes with the answers of the old
  generation (its tables, its filters), the next session gets the new one,
  and a session cut while pending (shutdown timeout) cancels its run and
  drops the old generation cleanly.
"""
import select
import signal
import smtplib
import socket

from harness import Hatod, wait_for
from test_smtp_helpers import QUEUED_RE, SMTPCase

MSG = b"Subject: held\r\n\r\nheld body\r\n.\r\n"


def server_rx_queue(server_port, client_port):
    """Octets the kernel holds unread for hatod's end of this connection."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote = parts[1], parts[2]
            if int(local.split(":")[1], 16) == server_port and \
                    int(remote.split(":")[1], 16) == client_port:
                return int(parts[4].split(":")[1], 16)
    return None


def readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


class HoldLog:
    """The hold filter's log lines for one hatod."""

    def __init__(self, h):
        self.h = h

    def holding(self, phase):
        return self.h.log().count("test filter: holding %s of session" % phase)

    def wait_holding(self, phase, n):
        ok = wait_for(lambda: self.holding(phase) >= n, 15)
        assert ok, "no hold of %s (#%d):\n%s" % (phase, n, self.h.log())


class PipelineThroughPendingFilter(SMTPCase):
    CONF = {"test_filter_hold": "mail, rcpt", "test_filter_hold_ms": "1000"}

    def one_try(self, n):
        """One transaction; True if the pending MAIL was seen with its
        follow-up commands still unread in the kernel (else inconclusive)."""
        log = HoldLog(self.h)
        s = self.track(smtplib.SMTP("127.0.0.1", self.h.port, timeout=30))
        self.assertEqual(s.ehlo("client.test")[0], 250)
        s.send("MAIL FROM:<a@remote.test>\r\n")
        log.wait_holding("mail", n)
        # pipelined behind the pending MAIL: RCPT, RCPT, DATA in one write
        s.send("RCPT TO:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        rx = wait_for(lambda: server_rx_queue(self.h.port, s.sock.getsockname()[1]), 0.5)
        still_pending = not readable(s.sock)       # no reply yet: MAIL still held
        replies = [s.getreply() for _ in range(4)]
        self.assertEqual([c for c, _ in replies], [250, 250, 250, 354], replies)
        self.assertTrue(replies[0][1].startswith(b"2.1.0"), replies)
        self.assertTrue(replies[1][1].startswith(b"2.1.5"), replies)
        self.assertTrue(replies[2][1].startswith(b"2.1.5"), replies)
        s.send(MSG.decode())
        code, text = s.getreply()
        self.assertEqual(code, 250, text)
        self.assertTrue(QUEUED_RE.match("250 " + text.decode()), text)
        self.assertEqual(s.quit()[0], 221)
        if still_pending:
            self.assertTrue(rx, "the session read its input while the MAIL filter was pending")
        return still_pending

    def test_reads_nothing_while_pending_and_answers_in_order(self):
        conclusive = False
        for n in range(1, 4):
            if self.one_try(n):
                conclusive = True
                break
        self.assertTrue(conclusive, "the hold never outlasted the test's own check")
        self.assertEqual(len(self.h.wait_mail("bob@example.test", n) or []), n)
        self.assertEqual(len(self.h.wait_mail("alice@example.test", n) or []), n)
        # each RCPT was held in turn: MAIL once, RCPT twice per transaction
        self.assertEqual(HoldLog(self.h).holding("rcpt"), 2 * n)


class ReloadWhileFilterPending(SMTPCase):
    """SIGHUP that adds a user and removes the hold filter, while a RCPT is
    held; the hold is long enough for the reload, else the try is repeated
    with a longer one (never fails on timing alone)."""
    CONF = {"test_filter_hold": "rcpt"}

    def setUp(self):
        pass          # each try starts its own hatod

    def start(self, hold_ms):
        conf = dict(self.CONF, test_filter_hold_ms=str(hold_ms))
        self.h = Hatod(conf=conf)
        self.h.start()

    def reload_new_generation(self):
        """dave becomes a user and the hold filter goes away."""
        n = self.h.log().count("reloaded ")
        with open(self.h.users_path, "a") as f:
            f.write("dave@example.test *\n")
        del self.h.conf["test_filter_hold"]
        self.h.write_conf()
        self.h.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: self.h.log().count("reloaded ") > n, 15), self.h.log())

    def reload_came_first(self, session_phase_line):
        log = self.h.log()
        return log.rfind("reloaded ") < log.find(session_phase_line)

    def assert_alive(self):
        self.assertIsNone(self.h.proc.poll(), self.h.log())
        self.assertNotIn("AddressSanitizer", self.h.log())

    def try_transaction(self, hold_ms):
        """False if the reload did not finish within the hold (try again)."""
        self.start(hold_ms)
        log = HoldLog(self.h)
        r = self.raw(timeout=60)
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        r.send(b"RCPT TO:<dave@example.test>\r\n")
        log.wait_holding("rcpt", 1)
        self.reload_new_generation()
        try:
            code, lines = r.reply()
        except (EOFError, OSError) as e:
            self.fail("hatod dropped the held session across the reload (%s):\n%s"
                      % (e, self.h.log()))
        if not self.reload_came_first("test filter: releasing rcpt"):
            r.close()
            return False
        # the old generation's tables: dave unknown
        self.check(code, lines, 550, "5.1.1", what="RCPT dave under the old generation")
        # and its filter chain still holds this session's RCPTs
        r.send(b"RCPT TO:<bob@example.test>\r\n")
        log.wait_holding("rcpt", 2)
        self.check(*r.reply(), 250, "2.1.5", what="RCPT bob under the old generation")
        self.expect(r, "DATA", 354)
        r.send(MSG)
        code, lines = r.reply()
        self.assertTrue(QUEUED_RE.match(lines[-1]), lines)
        self.expect(r, "QUIT", 221)
        self.assertTrue(self.h.wait_mail("bob@example.test"), self.h.log())
        # the next session: the new generation, dave known and nothing held
        r2 = self.raw()
        self.expect(r2, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r2, "RCPT TO:<dave@example.test>", 250, "2.1.5")
        self.expect(r2, "DATA", 354)
        r2.send(MSG)
        code, lines = r2.reply()
        self.assertTrue(QUEUED_RE.match(lines[-1]), lines)
        self.expect(r2, "QUIT", 221)
        self.assertEqual(log.holding("rcpt"), 2, self.h.log())
        self.assertTrue(self.h.wait_mail("dave@example.test"), self.h.log())
        self.assert_alive()
        return True

    def test_transaction_keeps_old_generation_next_session_gets_new(self):
        for hold_ms in (2000, 6000, 15000):
            if self.try_transaction(hold_ms):
                return
            self.h.cleanup()
        self.fail("the reload never finished within the filter's hold")

    def test_session_cut_while_pending_drops_old_generation(self):
        """The session that holds the old generation is cut by the shutdown
        timeout with its filter still pending: the run is cancelled, the
        generation freed with the last session, and hatod exits 0 (under
        ASan: no use after free, no leak)."""
        self.CONF = dict(self.CONF, shutdown_timeout="1s")
        self.start(60000)
        log = HoldLog(self.h)
        r = self.raw(timeout=60)
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        r.send(b"RCPT TO:<bob@example.test>\r\n")
        log.wait_holding("rcpt", 1)
        self.reload_new_generation()
        r2 = self.raw()
        self.send_message(r2, "a@remote.test", ["dave@example.test"], MSG)
        self.expect(r2, "QUIT", 221)
        self.assertTrue(self.h.wait_mail("dave@example.test"), self.h.log())
        self.assert_alive()
        self.assertEqual(self.h.stop(), 0, self.h.log())
        self.assertIn("shutdown timeout", self.h.log())
        self.assertNotIn("test filter: releasing", self.h.log())

    def tearDown(self):
        if getattr(self, "h", None):
            super().tearDown()
