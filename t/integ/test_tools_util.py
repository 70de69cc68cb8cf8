"""t/integ/test_tools_util.py — helpers shared by the test_tools_* tests
(hato-sendmail, mailq, newaliases, hatoctl).  No test cases here.

ToolsCase is a HatodTestCase with shortcuts: run hato-sendmail under any of
its names (symlinks in the test's temp dir), optionally as `nobody`; read a
delivered message; ask hatod at RCPT whether an address is accepted.
"""
import os
import re
import socket
import subprocess
import time

from harness import HATOCTL, SENDMAIL, HatodTestCase, RawSMTP, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY_UID = 65534
# run a command as nobody:nogroup without any supplementary group
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

# sysexits.h
EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE = 0, 64, 65, 69
EX_CANTCREAT, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 73, 75, 77, 78

MAILQ_HEAD = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
# "ID[*!]  size  Www Mmm dd hh:mm:ss  sender"
MAILQ_ENTRY_RE = re.compile(
    r"^([0-9A-F]{16})([*!]?)\s+(\d+) [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d "
    r"\d\d:\d\d:\d\d\s+(\S+)$")
FOOTER_RE = re.compile(r"^-- (\d+) Kbytes in (\d+) Requests?\.$")


def body_of(data):
    """The body of a delivered message (bytes after the first CRLF CRLF)."""
    return data.split(b"\r\n\r\n", 1)[1]


def header_of(data):
    return data.split(b"\r\n\r\n", 1)[0]


class ToolsCase(HatodTestCase):
    """A running hatod plus ways to call the tools against it."""

    def link(self, name):
        """A symlink `name` → hato-sendmail in the test's temp dir."""
        path = os.path.join(self.h.dir, name)
        if not os.path.islink(path):
            os.symlink(SENDMAIL, path)
        return path

    def tool(self, argv, input=None, env=None, nobody=False, conf=True):
        """Run a tool; conf=False drops HATO_CONFIG from the environment."""
        e = dict(os.environ)
        if conf:
            e["HATO_CONFIG"] = self.h.conf_path
        else:
            e.pop("HATO_CONFIG", None)
        e.update(env or {})
        if nobody:
            argv = AS_NOBODY + list(argv)
        if isinstance(input, str):
            input = input.encode()
        return subprocess.run(argv, input=input, capture_output=True, env=e, timeout=60)

    def sendmail(self, *args, input=b"Subject: test\n\nhello\n", name=None, **kw):
        prog = self.link(name) if name else SENDMAIL
        return self.tool([prog] + list(args), input=input, **kw)

    def hatoctl(self, *args, input=None, nobody=False):
        return self.tool([HATOCTL, "-f", self.h.conf_path] + list(args), input=input,
                         nobody=nobody)

    def setUp(self):
        super().setUp()
        self.wait_control()

    def wait_control(self, timeout=10):
        """Wait until hatod's control socket accepts connections (hatod
        opens it just after its TCP listeners, which Hatod.start waits for)."""
        path = os.path.join(self.h.state, "hatod.sock")

        def up():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return True
            except OSError:
                return False
            finally:
                s.close()
        self.assertTrue(wait_for(up, timeout), "control socket %s not up" % path)

    def restart(self):
        self.h.start()
        self.wait_control()

    def assertRun(self, r, code=0, msg=""):
        self.assertEqual(r.returncode, code, "%s\nstdout: %r\nstderr: %r\n%s" % (
            msg, r.stdout, r.stderr, self.diag()))

    def diag(self):
        """State for a failure message: maildrop, queue, log tail."""
        out = []
        for sub in ("maildrop", "queue/env", "queue/corrupt"):
            try:
                out.append("%s: %s" % (sub, os.listdir(os.path.join(self.h.state, sub))))
            except OSError as e:
                out.append("%s: %s" % (sub, e))
        return "\n".join(out) + "\nlog:\n" + self.h.log()[-3000:]

    def mails(self, address, count=1, timeout=10):
        """The contents of the (at least `count`) messages delivered to address."""
        files = self.h.wait_mail(address, count, timeout)
        self.assertTrue(files, "fewer than %d message(s) for %s\n%s" % (count, address,
                                                                         self.diag()))
        return [self.h.read_mail(f) for f in files]

    def mail_for(self, address, subject=None, timeout=10):
        """The one message delivered to address (or the one with that Subject)."""
        if subject is None:
            got = self.mails(address, 1, timeout)
            self.assertEqual(len(got), 1, got)
            return got[0]
        want = b"\r\nSubject: " + subject.encode() + b"\r\n"
        got = wait_for(lambda: [m for m in (self.h.read_mail(f) for f in self.h.maildir(address))
                                if want in header_of(m) + b"\r\n"], timeout)
        self.assertTrue(got, "no message %r for %s\n%s" % (subject, address, self.diag()))
        return got[0]

    def no_mail(self, address, wait=0.5):
        time.sleep(wait)
        self.assertEqual(self.h.maildir(address), [], "unexpected mail for " + address)

    def rcpt_code(self, address):
        """The reply code hatod gives to RCPT TO:<address> (over SMTP)."""
        s = RawSMTP(self.h.port)
        try:
            s.reply()
            s.cmd("EHLO client.test")
            s.cmd("MAIL FROM:<x@remote.test>")
            return s.cmd("RCPT TO:<%s>" % address)[0]
        finally:
            s.close()

    def wait_log(self, text, timeout=10):
        ok = wait_for(lambda: text in self.h.log(), timeout)
        self.assertTrue(ok, "no %r in the log:\n%s" % (text, self.h.log()[-3000:]))

    def maildrop_files(self):
        d = os.path.join(self.h.state, "maildrop")
        return sorted(n for n in os.listdir(d) if not n.startswith("."))

    def open_up(self):
        """Make the test's directory traversable for nobody (mkdtemp: 0700)."""
        os.chmod(self.h.dir, 0o755)
