"""Session limits: smtpd_recipient_limit, smtpd_hard_error_limit,
smtpd_timeout, and the per-client connection count and rate limits."""
import os
import socket
import subprocess
import time

from harness import HATOD, Hatod, RawSMTP, wait_for
from test_smtp_helpers import QUEUED_RE, SMTPCase, free_port6, port_listening

SHIMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shims")


def build_shim(name, outdir):
    """Compile t/integ/shims/NAME.c into OUTDIR/NAME.so (for LD_PRELOAD)."""
    so = os.path.join(outdir, name + ".so")
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O1", "-o", so,
                    os.path.join(SHIMS, name + ".c"), "-ldl"], check=True)
    return so


def start_with_shim(h, name, **knobs):
    """Start hatod h with shims/NAME.c preloaded (knobs: its environment
    variables) and wait until it listens; RuntimeError with the log if it
    exits instead."""
    env = dict(os.environ, **knobs)
    env["LD_PRELOAD"] = build_shim(name, h.dir)
    # the shim loads before an ASan runtime; that is fine here
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    h.env = env
    h.start(wait=False)
    if not wait_for(lambda: h.proc.poll() is not None or port_listening(h.port), 10) \
            or h.proc.poll() is not None:
        raise RuntimeError("hatod did not start:\n" + h.log())


class RecipientLimit(SMTPCase):
    CONF = {"smtpd_recipient_limit": "3"}

    def test_fourth_rcpt_452(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        for who in ("bob", "alice", "bob+x"):
            self.expect(r, "RCPT TO:<%s@example.test>" % who, 250, "2.1.5")
        self.expect(r, "RCPT TO:<postmaster@example.test>", 452, "4.5.3")
        self.expect(r, "RCPT TO:<carol@other.test>", 452, "4.5.3")
        self.expect(r, "DATA", 354)
        r.send(b"Subject: limit\r\n\r\nx\r\n.\r\n")
        code, lines = r.reply()
        self.assertTrue(QUEUED_RE.match(lines[-1]), lines)
        self.assertEqual(len(self.h.wait_mail("bob@example.test", 2) or []), 2)
        self.one_mail("alice@example.test")
        self.assert_no_mail("carol@other.test")

    def test_rejected_rcpts_do_not_count(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        for i in range(3):
            self.expect(r, "RCPT TO:<nobody%d@example.test>" % i, 550, "5.1.1")
        for who in ("bob", "alice", "bob+x"):
            self.expect(r, "RCPT TO:<%s@example.test>" % who, 250, "2.1.5")
        self.expect(r, "RCPT TO:<bob+y@example.test>", 452, "4.5.3")

    def test_limit_is_per_transaction(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        for who in ("bob", "alice", "bob+x"):
            self.expect(r, "RCPT TO:<%s@example.test>" % who, 250, "2.1.5")
        self.expect(r, "RSET", 250, "2.0.0")
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        for who in ("bob", "alice", "bob+x"):
            self.expect(r, "RCPT TO:<%s@example.test>" % who, 250, "2.1.5")


class HardErrorLimit(SMTPCase):
    CONF = {"smtpd_hard_error_limit": "3"}

    def test_421_after_three_errors(self):
        r = self.raw()
        self.expect(r, "BOGUS1", 500, "5.5.2")
        self.expect(r, "RCPT TO:<bob@example.test>", 503, "5.5.1")
        self.expect(r, "NOOP", 250)             # not an error
        r.send(b"BOGUS3\r\n")
        self.check(*r.reply(), 500, "5.5.2")
        self.check(*r.reply(), 421, "4.7.0")
        self.assertTrue(r.closed(3))

    def test_two_errors_session_goes_on(self):
        r = self.raw()
        self.expect(r, "BOGUS1", 500, "5.5.2")
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<nobody@example.test>", 550, "5.1.1")
        self.expect(r, "NOOP", 250, "2.0.0")
        self.assertFalse(r.closed(0.3))

    def test_line_too_long_counts(self):
        r = self.raw()
        r.send(b"X" * 600 + b"\r\n" + b"Y" * 600 + b"\r\n" + b"Z" * 600 + b"\r\nNOOP\r\n")
        for _ in range(3):
            self.check(*r.reply(), 500, "5.5.2", "Line too long")
        self.check(*r.reply(), 421, "4.7.0")
        self.assertTrue(r.closed(3))

    def test_pipelined_errors_stop_at_limit(self):
        r = self.raw()
        r.send(b"BAD\r\n" * 10 + b"NOOP\r\n")
        for _ in range(3):
            self.check(*r.reply(), 500, "5.5.2")
        self.check(*r.reply(), 421, "4.7.0")
        self.assertTrue(r.closed(3))
        self.assertNotIn(b"250", r.buf)

    def test_delivered_mail_resets_error_count(self):
        # Postfix: "errors a client is allowed to make without delivering mail"
        r = self.raw()
        self.expect(r, "BOGUS1", 500, "5.5.2")
        self.expect(r, "BOGUS2", 500, "5.5.2")
        self.send_message(r, "a@remote.test", ["bob@example.test"],
                          b"Subject: x\r\n\r\nx\r\n.\r\n")
        self.expect(r, "BOGUS3", 500, "5.5.2")
        self.expect(r, "BOGUS4", 500, "5.5.2")
        self.expect(r, "NOOP", 250, "2.0.0")


class Timeout(SMTPCase):
    CONF = {"smtpd_timeout": "1s"}

    def test_idle_command_timeout(self):
        r = self.raw()
        t0 = time.time()
        self.check(*r.reply(), 421, "4.4.2")
        self.assertTrue(r.closed(3))
        self.assertGreaterEqual(time.time() - t0, 0.8)
        self.assertLess(time.time() - t0, 3.5)

    def test_idle_data_timeout_nothing_queued(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
        self.expect(r, "DATA", 354)
        r.send(b"Subject: slow\r\n\r\npart")
        self.check(*r.reply(), 421, "4.4.2")
        self.assertTrue(r.closed(3))
        self.assert_nothing_queued("bob@example.test")

    def test_activity_keeps_session(self):
        r = self.raw()
        for _ in range(4):
            time.sleep(0.5)
            self.expect(r, "NOOP", 250, "2.0.0")


class MinDataRate(SMTPCase):
    """smtpd_min_data_rate: in DATA a client must keep up a rate; one octet
    now and then restarts no timer (drip-feeding)."""
    CONF = {"smtpd_timeout": "2s", "smtpd_min_data_rate": "1000"}

    def open_data(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
        self.expect(r, "DATA", 354)
        r.send(b"Subject: drip\r\n\r\n")
        return r

    def test_drip_feeding_data_is_cut(self):
        r = self.open_data()
        t0 = time.time()
        cut = False
        while time.time() - t0 < 12:
            try:
                r.send(b"x" * 40)           # 40 B every 0.4 s: 100 B/s, a tenth of the rate
            except OSError:
                cut = True
                break
            r.s.settimeout(0.4)
            try:
                data = r.s.recv(4096)
            except socket.timeout:
                continue
            cut = True
            self.assertIn(b"421 4.4.2", data)
            break
        self.assertTrue(cut, "a client dripping at 100 B/s kept its DATA session for 12 s")
        self.assertLess(time.time() - t0, 6)
        self.assert_nothing_queued("bob@example.test")

    def test_steady_sender_is_not_cut(self):
        r = self.open_data()
        for _ in range(12):                 # 3 s at 2,000 B/s: above the rate, past the timeout
            r.send(b"y" * 498 + b"\r\n")
            time.sleep(0.25)
        r.send(b".\r\n")
        code, lines = r.reply()
        self.assertEqual(code, 250, lines)


class ConnectionCountLimit(SMTPCase):
    CONF = {"smtpd_client_connection_count_limit": "2", "relay_clients": "192.0.2.0/24"}
    QUIET_START = True

    def test_third_connection_refused(self):
        a = self.raw()
        b = self.raw()
        c = RawSMTP(self.h.port)
        self.track(c)
        self.check(*c.reply(), 421, "4.7.0")
        self.assertTrue(c.closed(3))
        # the admitted sessions still work
        self.expect(a, "NOOP", 250)
        self.expect(b, "NOOP", 250)
        # a slot frees when a session ends
        self.expect(a, "QUIT", 221)
        self.assertTrue(a.closed(3))

        def admitted():
            d = RawSMTP(self.h.port)
            self.track(d)
            return d.reply()[0] == 220
        self.assertTrue(wait_for(admitted, 5, 0.2))


class ConnectionCountLoopbackExempt(SMTPCase):
    CONF = {"smtpd_client_connection_count_limit": "2"}   # relay_clients: loopback

    def test_relay_clients_exempt(self):
        conns = [self.raw(ehlo=None) for _ in range(4)]
        for r in conns:
            self.expect(r, "NOOP", 250)


class ConnectionRateLimit(SMTPCase):
    CONF = {"smtpd_client_connection_rate_limit": "3", "relay_clients": "192.0.2.0/24"}
    QUIET_START = True

    def test_fourth_connection_in_a_minute_refused(self):
        for i in range(3):
            r = self.raw(ehlo=None)
            self.expect(r, "QUIT", 221)
            self.assertTrue(r.closed(3))
        c = RawSMTP(self.h.port)
        self.track(c)
        self.check(*c.reply(), 421, "4.7.0")
        self.assertTrue(c.closed(3))


class ConnectionCountAfterFailedStarts(SMTPCase):
    """A session start that fails (here: libevent's evbuffer_add_cb out of
    memory, forced by an LD_PRELOAD shim for the first FAILS starts) must
    still give its slot back: before the fix the per-IP count never dropped
    and, after `limit` failures, every later connection got 421."""
    CONF = {"smtpd_client_connection_count_limit": "2", "relay_clients": "192.0.2.0/24"}
    FAILS = 3

    def setUp(self):
        self.h = Hatod(conf=self.CONF)
        start_with_shim(self.h, "fail_add_cb", HATO_SHIM_FAIL_ADD_CB=str(self.FAILS))

    def test_failed_starts_release_their_slot(self):
        for i in range(self.FAILS):
            c = RawSMTP(self.h.port)
            self.track(c)
            self.assertTrue(c.closed(5), i)
            self.assertEqual(c.buf, b"", i)        # no banner, no 421: just closed
        self.assertTrue(wait_for(lambda: self.h.log().count("cannot start a session") == self.FAILS,
                                 5), self.h.log())
        # the limit (2) still admits two, and still refuses the third
        a = self.raw()
        b = self.raw()
        c = RawSMTP(self.h.port)
        self.track(c)
        self.check(*c.reply(), 421, "4.7.0")
        self.expect(a, "NOOP", 250)
        self.expect(b, "NOOP", 250)


class ConnectionCountIPv6Prefix(SMTPCase):
    """Over ::1 (the only IPv6 address here) the limit counts the client's
    /64 by default: the refusal names "::/64"; with
    smtpd_client_ipv6_prefix = 128 the address itself.  (That two
    addresses of one /64 share a counter is t/unit/test_iplist.c.)"""
    PREFIX = None
    KEY = "::/64"

    def setUp(self):
        self.port6 = free_port6()
        conf = {"smtpd_client_connection_count_limit": "1", "relay_clients": "192.0.2.0/24",
                "smtp_listen": "[::1]:%d" % self.port6}
        if self.PREFIX is not None:
            conf["smtpd_client_ipv6_prefix"] = self.PREFIX
        self.h = Hatod(conf=conf)
        self.h.start(wait=False)
        if not wait_for(lambda: self.h.proc.poll() is not None
                        or port_listening(self.port6, socket.AF_INET6), 10) \
                or self.h.proc.poll() is not None:
            raise RuntimeError("hatod did not start:\n" + self.h.log())

    def test_second_connection_refused_per_prefix(self):
        a = self.raw(port=self.port6, host="::1")
        c = RawSMTP(self.port6, host="::1")
        self.track(c)
        self.check(*c.reply(), 421, "4.7.0", "too many connections from " + self.KEY)
        self.assertTrue(c.closed(3))
        self.assertIn("exceeded for " + self.KEY, self.h.log())
        self.expect(a, "QUIT", 221)
        self.assertTrue(a.closed(3))

        def admitted():
            d = RawSMTP(self.port6, host="::1")
            self.track(d)
            return d.reply()[0] == 220
        self.assertTrue(wait_for(admitted, 5, 0.2))


class ConnectionCountIPv6PerAddress(ConnectionCountIPv6Prefix):
    PREFIX = "128"
    KEY = "::1"


class IPv6PrefixConfig(SMTPCase):
    """hatod -n takes smtpd_client_ipv6_prefix 0..128 and refuses the rest."""
    QUIET_START = True

    def check_n(self, value):
        self.h.conf["smtpd_client_ipv6_prefix"] = value
        self.h.write_conf()
        return subprocess.run([HATOD, "-n", "-f", self.h.conf_path], capture_output=True,
                              timeout=30)

    def test_range(self):
        for v in ("0", "48", "64", "128"):
            r = self.check_n(v)
            self.assertEqual(r.returncode, 0, (v, r.stderr))
        for v in ("-1", "129", "wide"):
            r = self.check_n(v)
            self.assertEqual(r.returncode, 1, (v, r.stderr))
            self.assertIn(b"smtpd_client_ipv6_prefix", r.stderr, v)
