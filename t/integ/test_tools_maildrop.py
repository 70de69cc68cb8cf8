"""hato-sendmail while hatod is stopped (the maildrop), and submissions by
a non-root user (nobody) with hatod running and stopped."""
import os
import signal
import stat
import time

from harness import RawSMTP, wait_for
from test_tools_util import NOBODY_UID, EX_TEMPFAIL, ToolsCase, header_of


class Maildrop(ToolsCase):
    def test_kept_while_stopped_then_delivered(self):
        self.h.stop()
        r = self.sendmail("-f", "me@example.test", "bob@example.test", "alice",
                          input=b"Subject: dropped\n\nwhile down\n")
        self.assertRun(r)
        files = self.maildrop_files()
        self.assertEqual(len(files), 1, files)
        self.assertFalse(files[0].endswith(".tmp"), files)
        self.assertEqual(self.h.maildir("bob@example.test"), [])
        self.restart()
        for a in ("bob@example.test", "alice@example.test"):
            data = self.mail_for(a, "dropped")
            self.assertTrue(data.startswith(b"Return-Path: <me@example.test>\r\n"), data)
            self.assertIn(b"from userid 0", data)
            self.assertTrue(data.endswith(b"\r\n\r\nwhile down\r\n"), data)
        self.assertTrue(wait_for(lambda: self.maildrop_files() == []), self.maildrop_files())

    def test_null_sender_and_8bit_while_stopped(self):
        self.h.stop()
        r = self.sendmail("-f", "<>", "bob@example.test",
                          input="Subject: md-null\n\ncaf\u00e9\n".encode())
        self.assertRun(r)
        self.restart()
        data = self.mail_for("bob@example.test", "md-null")
        self.assertTrue(data.startswith(b"Return-Path: <>\r\n"), data)
        self.assertTrue(data.endswith("\r\n\r\ncaf\u00e9\r\n".encode()), data)

    def test_t_and_dots_while_stopped(self):
        self.h.stop()
        r = self.sendmail("-t", input=b"To: bob@example.test\nBcc: alice@example.test\n"
                                      b"Subject: md-t\n\nline\n.\nnot part\n")
        self.assertRun(r)
        self.restart()
        for a in ("bob@example.test", "alice@example.test"):
            data = self.mail_for(a, "md-t")
            self.assertNotIn(b"Bcc", header_of(data))
            self.assertTrue(data.endswith(b"\r\n\r\nline\r\n"), data)

    def test_unknown_local_recipient_bounces_after_pickup(self):
        self.h.stop()
        r = self.sendmail("-f", "bob@example.test", "nosuch@example.test",
                          input=b"Subject: lost\n\nx\n")
        self.assertRun(r)
        self.restart()
        # cannot refuse at submission time: a bounce goes to the sender
        data = self.mail_for("bob@example.test")
        self.assertIn(b"nosuch@example.test", data)
        self.assertTrue(data.startswith(b"Return-Path: <>\r\n"), data)

    def test_queue_list_and_mailq_while_stopped_show_queue_not_maildrop(self):
        self.h.stop()
        self.assertRun(self.sendmail("bob@example.test"))
        r = self.hatoctl("queue", "list")
        self.assertRun(r)
        self.assertEqual(r.stdout, b"Mail queue is empty\n")


class NonRoot(ToolsCase):
    def setUp(self):
        super().setUp()
        self.open_up()

    def test_nobody_with_hatod_running(self):
        r = self.sendmail("bob@example.test", nobody=True, input=b"Subject: nb\n\nx\n")
        self.assertRun(r)
        self.assertEqual(self.maildrop_files(), [])
        data = self.mail_for("bob@example.test")
        self.assertTrue(data.startswith(b"Return-Path: <nobody@example.test>\r\n"), data)
        self.assertIn(b"(hato, from userid %d)" % NOBODY_UID, data)
        self.assertIn("uid=%d" % NOBODY_UID, self.h.log())

    def test_nobody_with_hatod_stopped(self):
        self.h.stop()
        drop = os.path.join(self.h.state, "maildrop")
        st = os.stat(drop)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o1733)
        r = self.sendmail("bob@example.test", nobody=True, input=b"Subject: nb-md\n\nx\n")
        self.assertRun(r)
        files = self.maildrop_files()
        self.assertEqual(len(files), 1)
        self.assertEqual(os.stat(os.path.join(drop, files[0])).st_uid, NOBODY_UID)
        # nobody can neither list nor read the maildrop
        r = self.tool(["ls", drop], nobody=True)
        self.assertNotEqual(r.returncode, 0)
        self.restart()
        data = self.mail_for("bob@example.test", "nb-md")
        self.assertTrue(data.startswith(b"Return-Path: <nobody@example.test>\r\n"), data)
        self.assertIn(b"(hato, from userid %d)" % NOBODY_UID, data)
        self.assertTrue(wait_for(lambda: self.maildrop_files() == []))

    def test_nobody_mailq_and_flush(self):
        r = self.tool([self.link("mailq")], nobody=True)
        self.assertRun(r)
        self.assertEqual(r.stdout, b"Mail queue is empty\n")
        self.assertRun(self.sendmail("-q", nobody=True, input=b""))

    def test_nobody_bs(self):
        r = self.sendmail("-bs", nobody=True,
                          input=b"HELO x\r\nMAIL FROM:<nobody@example.test>\r\n"
                                b"RCPT TO:<bob@example.test>\r\nDATA\r\nSubject: nbs\r\n\r\n"
                                b"x\r\n.\r\nQUIT\r\n")
        self.assertRun(r)
        self.assertIn(b"250 2.0.0 Ok: queued as", r.stdout)
        self.assertIn(b"from userid %d" % NOBODY_UID, self.mail_for("bob@example.test"))

    def test_nobody_bs_when_stopped(self):
        self.h.stop()
        r = self.sendmail("-bs", nobody=True, input=b"HELO x\r\n")
        self.assertRun(r, EX_TEMPFAIL)
        self.assertTrue(r.stdout.startswith(b"421 "))



class NotAnswering(ToolsCase):
    """hatod's control socket exists but hatod does not take the message
    (shutting down, or answering 421): nothing was submitted, so the
    message goes to the maildrop instead of being refused."""
    CONF = {"shutdown_timeout": "20s"}

    def fake_control(self, reply):
        """With hatod stopped: a socket at hatod.sock that answers `reply`
        (None: never accepts) and closes."""
        import socket
        import threading
        path = os.path.join(self.h.state, "hatod.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(8)
        self.addCleanup(srv.close)
        if reply is None:
            return

        def serve():
            try:
                c, _ = srv.accept()
                c.recv(100)
                c.sendall(reply)
                c.close()
            except OSError:
                pass
        threading.Thread(target=serve, daemon=True).start()

    def check_dropped_then_delivered(self, r, subject):
        self.assertRun(r)
        self.assertIn(b"maildrop", r.stderr)
        self.assertEqual(len(self.maildrop_files()), 1)
        os.unlink(os.path.join(self.h.state, "hatod.sock"))
        self.restart()
        self.mail_for("bob@example.test", subject)

    def test_421_greeting(self):
        self.h.stop()
        self.fake_control(b"421 4.3.2 hatod is shutting down\r\n")
        r = self.sendmail("bob@example.test", input=b"Subject: g421\n\nx\n")
        self.check_dropped_then_delivered(r, "g421")

    def test_closed_without_greeting(self):
        self.h.stop()
        self.fake_control(b"")
        r = self.sendmail("bob@example.test", input=b"Subject: closed\n\nx\n")
        self.check_dropped_then_delivered(r, "closed")

    def test_hatod_shutting_down(self):
        s = RawSMTP(self.h.port)
        s.reply()
        s.cmd("EHLO client.test")
        s.cmd("MAIL FROM:<x@remote.test>")
        s.cmd("RCPT TO:<alice@example.test>")
        self.assertEqual(s.cmd("DATA")[0], 354)
        s.send(b"Subject: inflight\r\n\r\nstill coming\r\n")
        self.h.signal(signal.SIGTERM)
        self.wait_log("stopping")
        t0 = time.time()
        r = self.sendmail("bob@example.test", input=b"Subject: during\n\nx\n")
        self.assertLess(time.time() - t0, 15)
        self.assertRun(r)
        self.assertIn(b"maildrop", r.stderr)
        self.assertEqual(len(self.maildrop_files()), 1)
        self.assertEqual(s.cmd(b".\r\n")[0], 250)          # the in-flight one completes
        s.close()
        self.assertEqual(self.h.stop(), 0)
        self.restart()
        self.mail_for("alice@example.test", "inflight")
        self.mail_for("bob@example.test", "during")
