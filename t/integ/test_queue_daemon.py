"""The daemon around the queue: SIGHUP, SIGTERM, config errors, the log
format and the maildrop pickup (issue 2 "The daemon", "Queue", "Tools")."""
import os
import re
import signal
import subprocess
import time
import unittest

from harness import HATOD, Hatod, HatodTestCase, RawSMTP, wait_for
from test_queue_util import (Tmpfs, ls, mails, message, qdir, read_text, reload, restart,
                             send_ok, start, stays, wait_queue_empty)


def rcpt(c, addr):
    return c.cmd("RCPT TO:<%s>" % addr)[0]


def open_txn(port, sender="a@remote.test"):
    c = RawSMTP(port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    return c


class Reload(HatodTestCase):

    def test_sighup_keeps_open_session_and_loads_new_user(self):
        h = self.h
        c = open_txn(h.port)
        self.addCleanup(c.close)
        self.assertEqual(rcpt(c, "bob@example.test"), 250)
        self.assertEqual(rcpt(c, "dave@example.test"), 550)
        with open(h.users_path, "a") as f:
            f.write("dave@example.test *\n")
        self.assertTrue(reload(h), h.log())
        # same session, same transaction: bob is still a recipient, and the
        # session goes on with the tables it started with (its generation)
        self.assertEqual(rcpt(c, "dave@example.test"), 550)
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, lines = c.cmd(message("after reload", "reload-body") + b".\r\n")
        self.assertEqual(code, 250, lines)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        self.assertIn(b"reload-body", mails(h, "bob@example.test")[0])
        # a new session has the new user
        c2 = open_txn(h.port)
        self.addCleanup(c2.close)
        self.assertEqual(rcpt(c2, "dave@example.test"), 250)
        self.assertEqual(c2.cmd("DATA")[0], 354)
        code, lines = c2.cmd(message("new session", "new-session-body") + b".\r\n")
        self.assertEqual(code, 250, lines)
        self.assertEqual(c2.cmd("QUIT")[0], 221)
        self.assertTrue(h.wait_mail("dave@example.test", 1, 10), h.log())
        self.assertIn(b"new-session-body", mails(h, "dave@example.test")[0])

    def test_broken_config_on_sighup_keeps_old_one(self):
        h = self.h
        c = open_txn(h.port)
        self.addCleanup(c.close)
        self.assertEqual(rcpt(c, "carol@other.test"), 250)
        # the broken file also drops other.test: it must not take effect
        ok = reload(h, set_conf={"local_domains": "example.test", "no_such_key": "1"},
                    expect="reload failed, old configuration kept")
        self.assertTrue(ok, h.log())
        self.assertRegex(h.log(), r"reload failed, old configuration kept: .*hato\.conf:\d+: "
                                  r".*no_such_key")
        self.assertIsNone(h.proc.poll())
        self.assertEqual(rcpt(c, "carol@other.test"), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.assertEqual(c.cmd(message("x") + b".\r\n")[0], 250)
        c.cmd("QUIT")
        send_ok(self, h, "a@remote.test", ["carol@other.test"], message("new session"))
        self.assertTrue(h.wait_mail("carol@other.test", 2, 10), h.log())

    def test_broken_users_file_on_sighup_keeps_old_tables(self):
        h = self.h
        with open(h.users_path, "w") as f:
            f.write("alice@example.test * quota=banana\n")       # bob gone, bad line
        self.assertTrue(reload(h, expect="reload failed, old configuration kept"), h.log())
        self.assertRegex(h.log(), r"reload failed.*" + re.escape(h.users_path) + ":1")
        send_ok(self, h, "a@remote.test", ["bob@example.test"], message("old table"))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())

    def test_sighup_cannot_move_state_directory(self):
        """The queue and the mailboxes are open where they are: a reload that
        moves state_directory is refused, not half applied."""
        h = self.h
        old_state = h.state
        other = os.path.join(h.dir, "elsewhere")
        self.assertTrue(reload(h, set_conf={"state_directory": other},
                               expect="reload failed, old configuration kept"), h.log())
        self.assertIn("state_directory", h.log())
        send_ok(self, h, "a@remote.test", ["bob@example.test"], message("stays"))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5), h.log())
        self.assertTrue(h.maildir("bob@example.test")[0].startswith(old_state))
        self.assertFalse(os.path.exists(other))

    def test_sighup_right_after_start_does_not_kill(self):
        """The listeners are bound before the queue is recovered: a SIGHUP
        (or SIGTERM) in that window must be handled, not kill hatod."""
        self.h.stop()
        with Tmpfs("64m") as fs:      # fast to fill with queue files
            h = Hatod(state_dir=os.path.join(fs.dir, "state"))
            try:
                self.sighup_during_recovery(h)
            finally:
                h.cleanup()

    def sighup_during_recovery(self, h):
        # a queue to recover makes the window between bind and serving longer
        env_dir, msg_dir = qdir(h, "env"), qdir(h, "msg")
        os.makedirs(env_dir)
        os.makedirs(msg_dir)
        base = int(time.time() * 1e6) << 12
        for i in range(3000):
            qid = "%016X" % (base + i)
            with open(os.path.join(env_dir, qid), "w") as f:
                f.write("hato-envelope 1\nid %s\narrival %d\nsender a@remote.test\n"
                        "client 127.0.0.1\nhelo -\nproto ESMTP\nsize 3\nattempts 0\n"
                        "next_try %d\nwarned 0\nflags 0\nrcpt P x@remote.test - - -\nend\n"
                        % (qid, int(time.time() * 1e6), int(time.time()) + 3600))
            with open(os.path.join(msg_dir, qid), "w") as f:
                f.write("x\r\n")
        h.start(wait=False)
        self.assertTrue(wait_for(lambda: h.listening(), 10, step=0.001))
        h.signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertIsNone(h.proc.poll(), h.log())
        self.assertTrue(wait_for(lambda: "reloaded" in h.log(), 10), h.log())
        self.assertIn("3000 message(s) recovered", h.log())


class Shutdown(HatodTestCase):
    CONF = {"shutdown_timeout": "5s"}

    def test_sigterm_finishes_transaction_in_data(self):
        h = self.h
        idle = RawSMTP(h.port)
        self.addCleanup(idle.close)
        self.assertEqual(idle.reply()[0], 220)
        self.assertEqual(idle.cmd("EHLO idle.test")[0], 250)
        busy = open_txn(h.port)
        self.addCleanup(busy.close)
        self.assertEqual(rcpt(busy, "bob@example.test"), 250)
        self.assertEqual(busy.cmd("DATA")[0], 354)
        msg = message("in flight", "finished-during-shutdown", size=8000)
        busy.send(msg[:4000])
        time.sleep(0.2)
        h.signal(signal.SIGTERM)
        code, lines = idle.reply()
        self.assertEqual(code, 421, lines)
        self.assertTrue(idle.closed(3))
        time.sleep(0.3)
        self.assertIsNone(h.proc.poll())          # waits for the transaction
        busy.send(msg[4000:] + b".\r\n")
        code, lines = busy.reply()
        self.assertEqual(code, 250, lines)
        qid = re.search(r"queued as ([0-9A-F]{16})", lines[-1]).group(1)
        # no new transaction once it is done: 421 and the connection closes
        code, lines = busy.reply()
        self.assertEqual(code, 421, lines)
        self.assertTrue(busy.closed(3))
        h.proc.wait(5)
        self.assertEqual(h.proc.returncode, 0, h.log())
        self.assertEqual(h.stop(), 0)
        # the message was kept (queued or already delivered), and is delivered once
        restart(h)
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        self.assertTrue(wait_queue_empty(h))
        self.assertEqual(len(h.maildir("bob@example.test")), 1)
        self.assertIn(qid.encode(), mails(h, "bob@example.test")[0])

    def test_sigterm_bounded_by_shutdown_timeout(self):
        h = self.h
        h.stop()
        restart(h, set_conf={"shutdown_timeout": "1s"})
        stuck = open_txn(h.port)
        self.addCleanup(stuck.close)
        self.assertEqual(rcpt(stuck, "bob@example.test"), 250)
        self.assertEqual(stuck.cmd("DATA")[0], 354)
        stuck.send(b"Subject: never finished\r\n\r\n")
        time.sleep(0.1)
        t0 = time.time()
        h.signal(signal.SIGTERM)
        h.proc.wait(5)
        self.assertLess(time.time() - t0, 3.5)
        self.assertIn("shutdown timeout", h.log())
        # the cut session's queue file is dropped after the pool is gone:
        # cleanly (under ASan: no use of the freed pool), exit status 0
        self.assertEqual(h.proc.returncode, 0, h.log())
        self.assertNotIn("AddressSanitizer", h.log())
        h.stop()
        restart(h)
        self.assertEqual(ls(qdir(h, "tmp")), [])
        self.assertEqual(h.queue_ids(), [])


class BadConfig(unittest.TestCase):

    def setUp(self):
        self.h = Hatod()

    def tearDown(self):
        self.h.cleanup()

    def run_hatod(self, *flags):
        return subprocess.run([HATOD, "-f", self.h.conf_path] + list(flags),
                              capture_output=True, text=True, timeout=20)

    def line_of(self, key):
        with open(self.h.conf_path) as f:
            for n, line in enumerate(f, 1):
                if line.startswith(key + " "):
                    return n
        raise KeyError(key)

    def check_refused(self, key):
        where = "%s:%d" % (self.h.conf_path, self.line_of(key))
        for flags in (["-n"], ["-d"]):
            r = self.run_hatod(*flags)
            out = r.stdout + r.stderr
            self.assertNotEqual(r.returncode, 0, (flags, out))
            self.assertIn(where, out, flags)
            self.assertIn(key, out, flags)
        self.assertFalse(os.path.exists(os.path.join(self.h.state, "queue", "env")) and
                         ls(os.path.join(self.h.state, "queue", "env")))

    def test_good_config_checks_ok(self):
        r = self.run_hatod("-n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def test_unknown_key(self):
        self.h.conf["no_such_key"] = "1"
        self.h.write_conf()
        self.check_refused("no_such_key")

    def test_bad_value(self):
        self.h.conf["minimal_backoff_time"] = "soon"
        self.h.write_conf()
        self.check_refused("minimal_backoff_time")

    def test_bad_bool(self):
        self.h.conf["queue_group_commit"] = "perhaps"
        self.h.write_conf()
        self.check_refused("queue_group_commit")

    def test_unreadable_config_file(self):
        for path in (self.h.conf_path + ".missing", self.h.dir):   # absent; a directory
            for flags in (["-n"], ["-d"]):
                r = subprocess.run([HATOD, "-f", path] + flags, capture_output=True, timeout=30)
                out = r.stdout + r.stderr
                self.assertNotEqual(r.returncode, 0, out)
                self.assertIn(path.encode(), out)

    def test_resolver_config_rejected_by_libunbound(self):
        with open(self.h.resolver_path, "w") as f:
            f.write("server:\n  bogus-option: yes\n")
        for flags in (["-n"], ["-d"]):
            r = self.run_hatod(*flags)
            out = r.stdout + r.stderr
            self.assertNotEqual(r.returncode, 0, out)
            self.assertIn("resolver_config", out)
            self.assertIn(self.h.resolver_path, out)
            self.assertIn("syntax error", out)       # ub_strerror(UB_SYNTAX)


class LogFormat(HatodTestCase):

    def test_queue_and_delivery_lines(self):
        h = self.h
        msg = message("log", "log-body")
        qid = send_ok(self, h, "sender@remote.test", ["info@example.test"], msg)
        self.assertTrue(h.wait_mail("alice@example.test", 1, 10), h.log())
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        self.assertTrue(wait_for(lambda: (qid + ": removed") in h.log(), 5), h.log())
        log = h.log()
        m = re.search(qid + r": client=([^,]+), from=<sender@remote\.test>, size=(\d+), "
                            r"nrcpt=2\b", log)
        self.assertTrue(m, log)
        self.assertIn("127.0.0.1", m.group(1))
        self.assertGreater(int(m.group(2)), len(msg))        # + Received:
        for who in ("alice", "bob"):
            self.assertRegex(log, qid + r": to=<%s@example\.test>, orig_to=<info@example\.test>, "
                                        r"relay=local, delay=\d+\.\d\d, dsn=2\.0\.0, "
                                        r"status=sent \(delivered to maildir\)" % who)
        # the size logged is the queue file's: the Maildir copy adds only the prefix
        data = mails(h, "bob@example.test")[0]
        prefix = b"Return-Path: <sender@remote.test>\r\nDelivered-To: bob@example.test\r\n"
        self.assertTrue(data.startswith(prefix))
        self.assertEqual(len(data) - len(prefix), int(m.group(2)))


MAILDROP_OK = (b"hato-maildrop 1\nsender bob@example.test\nrcpt alice@example.test\n"
               b"rcpt nobody@example.test\n\nSubject: from the maildrop\nX-Marker: md-7\n\n"
               b"line one\nline two\n")


class Pickup(unittest.TestCase):

    def setUp(self):
        self.h = Hatod()

    def tearDown(self):
        if os.environ.get("HATO_KEEP"):
            self.h.stop()
            print("kept", self.h.dir)
        else:
            self.h.cleanup()

    def test_maildrop_queued_at_start(self):
        h = self.h
        drop = os.path.join(h.state, "maildrop")
        os.makedirs(drop)
        good, bad, young_tmp = "0005E8C2F1A2B001.abc", "0005E8C2F1A2B002.def", "x.tmp"
        with open(os.path.join(drop, good), "wb") as f:
            f.write(MAILDROP_OK)
        with open(os.path.join(drop, bad), "wb") as f:
            f.write(b"this is not a maildrop file\n\nhello\n")
        with open(os.path.join(drop, young_tmp), "wb") as f:
            f.write(b"hato-maildrop 1\n")              # being written: left alone
        start(h)
        self.assertTrue(h.wait_mail("alice@example.test", 1, 10), h.log())
        self.assertTrue(wait_for(lambda: good not in ls(drop), 5))
        data = mails(h, "alice@example.test")[0]
        self.assertIn(b"Subject: from the maildrop\r\nX-Marker: md-7\r\n\r\nline one\r\n"
                      b"line two\r\n", data)
        self.assertRegex(data, rb"Received: by mx\.example\.test \(hato, from userid 0\)")
        self.assertTrue(data.startswith(b"Return-Path: <bob@example.test>\r\n"))
        # the unknown recipient bounces to the (local) sender
        self.assertTrue(h.wait_mail("bob@example.test", 1, 10), h.log())
        self.assertIn(b"Final-Recipient: rfc822; nobody@example.test",
                      mails(h, "bob@example.test")[0])
        # the malformed file is moved aside, never deleted
        self.assertTrue(wait_for(lambda: ("maildrop-" + bad) in ls(qdir(h, "corrupt")), 5),
                        h.log())
        self.assertNotIn(bad, ls(drop))
        self.assertRegex(h.log(), "maildrop file " + re.escape(bad) + ": .*moved to")
        self.assertIn(young_tmp, ls(drop))
        self.assertTrue(wait_queue_empty(h), h.log())
        self.assertTrue(stays(lambda: len(h.maildir("alice@example.test")) == 1, 1.0))

    def test_maildrop_gets_missing_date_message_id_from(self):
        """Like local SMTP submission: a message without Date:, Message-ID:
        or From: gets them at pickup; fields it has are left alone."""
        h = self.h
        drop = os.path.join(h.state, "maildrop")
        os.makedirs(drop)
        with open(os.path.join(drop, "0005E8C2F1A2B003.aaa"), "wb") as f:
            f.write(b"hato-maildrop 1\nsender bob@example.test\nrcpt alice@example.test\n\n"
                    b"Subject: bare\n\nDate: not a header, body text\n")
        with open(os.path.join(drop, "0005E8C2F1A2B004.bbb"), "wb") as f:
            f.write(b"hato-maildrop 1\nsender bob@example.test\nrcpt carol@other.test\n\n"
                    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <own@x>\n"
                    b"From: Bob <bob@example.test>\n\nhi\n")
        start(h)
        self.assertTrue(h.wait_mail("alice@example.test", 1, 10), h.log())
        self.assertTrue(h.wait_mail("carol@other.test", 1, 10), h.log())
        bare = mails(h, "alice@example.test")[0]
        head = bare.split(b"\r\n\r\n", 1)[0]
        self.assertRegex(head, rb"\r\nDate: [A-Z][a-z]{2}, ")
        self.assertRegex(head, rb"\r\nMessage-ID: <[0-9A-F]{16}@mx\.example\.test>")
        self.assertIn(b"\r\nFrom: <bob@example.test>\r\n", head)
        full = mails(h, "carol@other.test")[0]
        self.assertEqual(full.count(b"Date:"), 1)
        self.assertEqual(full.count(b"Message-ID:"), 1)
        self.assertEqual(full.count(b"From:"), 1)

    def test_maildrop_more_than_one_batch(self):
        """More files than one scan takes: all are queued promptly, not one
        batch per 60 s timer tick."""
        h = self.h
        drop = os.path.join(h.state, "maildrop")
        os.makedirs(drop)
        n = 250
        for i in range(n):
            with open(os.path.join(drop, "0005E8C2F1A2%04X.r" % i), "wb") as f:
                f.write(b"hato-maildrop 1\nsender bob@example.test\nrcpt alice@example.test\n\n"
                        b"Subject: batch %d\n\nbody\n" % i)
        start(h)
        self.assertTrue(h.wait_mail("alice@example.test", n, 15),
                        "%d of %d delivered" % (len(h.maildir("alice@example.test")), n))
        self.assertTrue(wait_for(lambda: not ls(drop), 5), ls(drop)[:5])

    def test_maildrop_addresses_are_checked(self):
        """The maildrop is world-writable: a hand-made file must not inject
        header lines through %-encoded CR LF in its addresses."""
        h = self.h
        drop = os.path.join(h.state, "maildrop")
        os.makedirs(drop)
        files = {
            "0005E8C2F1A2C001.a": b"hato-maildrop 1\nsender x%0D%0AX-Injected:%20yes@example.test\n"
                                  b"rcpt alice@example.test\n\nSubject: inj\n\nbody\n",
            "0005E8C2F1A2C002.b": b"hato-maildrop 1\nsender bob@example.test\n"
                                  b"rcpt alice@example.test%0D%0AX-Injected:%20yes\n\n"
                                  b"Subject: inj2\n\nbody\n",
            "0005E8C2F1A2C003.c": b"hato-maildrop 1\nsender \nrcpt alice@example.test\n\n"
                                  b"Subject: null sender is fine\n\nbody\n",
        }
        for name, data in files.items():
            with open(os.path.join(drop, name), "wb") as f:
                f.write(data)
        start(h)
        self.assertTrue(wait_for(lambda: not ls(drop), 5), ls(drop))
        self.assertTrue(h.wait_mail("alice@example.test", 1, 5), h.log())
        self.assertTrue(wait_queue_empty(h), h.log())
        time.sleep(0.5)
        got = b"".join(mails(h, "alice@example.test") + mails(h, "bob@example.test"))
        self.assertNotIn(b"\nX-Injected", got)
        self.assertEqual(len(h.maildir("alice@example.test")), 1)
        self.assertIn(b"null sender is fine", got)
        corrupt = ls(qdir(h, "corrupt"))
        self.assertIn("maildrop-0005E8C2F1A2C001.a", corrupt)
        self.assertIn("maildrop-0005E8C2F1A2C002.b", corrupt)


class Detached(unittest.TestCase):
    """Without -d: hatod detaches, the parent exits 0 once it serves (1 if
    it cannot start), and log_file gets the log."""

    def setUp(self):
        self.h = Hatod()
        self.h.conf["log_file"] = os.path.join(self.h.dir, "file.log")
        self.h.write_conf()
        self.pid = None

    def tearDown(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.h.cleanup()

    def alive(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().split(")")[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    def test_detach_log_file_and_pidfile(self):
        h = self.h
        r = subprocess.run([HATOD, "-f", h.conf_path], capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(h.state, "hatod.pid")) as f:
            self.pid = int(f.read())
        self.assertTrue(self.alive())
        send_ok(self, h, "a@remote.test", ["bob@example.test"], message("detached"))
        self.assertTrue(h.wait_mail("bob@example.test", 1, 5))
        logf = h.conf["log_file"]
        self.assertTrue(wait_for(lambda: "status=sent (delivered to maildir)" in read_text(logf), 5))
        os.kill(self.pid, signal.SIGTERM)
        self.assertTrue(wait_for(lambda: not self.alive(), 10))
        self.assertIn("stopped", read_text(logf))

    def test_detached_start_failure_exits_1(self):
        h = self.h
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", h.port))
        s.listen()
        try:
            r = subprocess.run([HATOD, "-f", h.conf_path], capture_output=True, timeout=20)
        finally:
            s.close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("Address already in use", read_text(h.conf["log_file"]))
