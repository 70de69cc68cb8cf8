"""t/integ/test_maildrop_hostile.py — what a hostile local user can leave in
the world-writable maildrop (mode 1733), and how pickup copes (issue 6,
item 3).

Each hostile entry (FIFO, symlink, device node, directory, hard link, a
file whose owner is not the uid it records, a file over
message_size_limit) is logged with its name, owner and size, moved to
queue/corrupt/maildrop-NAME, never queued; a good file dropped beside it
is still picked up and hatod keeps serving SMTP.  hatod stops promptly
with a FIFO and a big file in the maildrop.  The submitter named in
Received: is the file's owner.  A big file is streamed into the queue:
hatod's peak RSS does not grow by anything near its size.
"""
import os
import re
import signal
import stat
import subprocess
import time

from harness import HATOD, Hatod, RawSMTP, wait_for
from test_tools_util import AS_NOBODY, NOBODY_UID, ToolsCase

MIB = 1024 * 1024


def md(body, rcpts=("bob@example.test",), sender="root@example.test", uid=None):
    """A maildrop file (queue/maildrop.h)."""
    h = b"hato-maildrop 1\nsender %s\n" % sender.encode()
    if uid is not None:
        h += b"uid %d\n" % uid
    for r in rcpts:
        h += b"rcpt %s\n" % r.encode()
    return h + b"\n" + body


def hostile_body(tag):
    return b"Subject: HOSTILE " + tag.encode() + b"\n\nmust not be queued\n"


class MaildropCase(ToolsCase):
    def drop(self, name):
        return os.path.join(self.h.state, "maildrop", name)

    def corrupt(self, name):
        return os.path.join(self.h.state, "queue", "corrupt", "maildrop-" + name)

    def put(self, name, data):
        """Write a maildrop file the way hato-sendmail does (NAME.tmp, rename)."""
        with open(self.drop(name) + ".tmp", "wb") as f:
            f.write(data)
        os.rename(self.drop(name) + ".tmp", self.drop(name))

    def put_good(self, tag):
        self.put("0005E8C2F1A2D%03X.good" % (len(tag) * 7 % 4096),
                 md(b"Subject: good " + tag.encode() + b"\n\nfine\n"))
        return "good " + tag

    def flush(self):
        self.assertRun(self.hatoctl("queue", "flush"))

    def assert_serves_smtp(self):
        s = RawSMTP(self.h.port)
        try:
            self.assertEqual(s.reply()[0], 220)
            self.assertEqual(s.cmd("EHLO client.test")[0], 250)
            self.assertEqual(s.cmd("NOOP")[0], 250)
        finally:
            s.close()

    def assert_skipped(self, name, why, good_subject, hostile_rcpt="alice@example.test"):
        """name was logged with owner and size and moved aside; the good file
        was delivered; nothing reached hostile_rcpt; SMTP still answers."""
        pat = (r"maildrop file %s: %s \(uid \d+, size \d+\); moved to %s"
               % (re.escape(name), why, re.escape(self.corrupt(name))))
        ok = wait_for(lambda: re.search(pat, self.h.log()), 10)
        self.assertTrue(ok, "no line matching %r:\n%s" % (pat, self.diag()))
        self.mail_for("bob@example.test", good_subject)
        self.assertFalse(os.path.lexists(self.drop(name)), self.diag())
        self.assertTrue(os.path.lexists(self.corrupt(name)), self.diag())
        self.assertTrue(wait_for(lambda: self.h.queue_ids() == [], 10), self.diag())
        self.assert_serves_smtp()
        if hostile_rcpt:
            self.no_mail(hostile_rcpt, 0.3)
        self.assertNotIn(b"HOSTILE", b"".join(self.mails("bob@example.test")))


class Hostile(MaildropCase):
    CONF = {"message_size_limit": "100k"}

    def test_fifo(self):
        name = "0005E8C2F1A2E001.fifo"
        os.mkfifo(self.drop(name), 0o644)
        good = self.put_good("fifo")
        self.flush()
        self.assert_skipped(name, "a FIFO", good)
        self.assertTrue(stat.S_ISFIFO(os.lstat(self.corrupt(name)).st_mode))

    def test_longest_name(self):
        """A name of 255 octets still fits in corrupt/ (cut to 200): it is
        moved, not read again at every scan."""
        name = "0005E8C2F1A2E00C." + "n" * (255 - 17)
        os.mkfifo(self.drop(name), 0o644)
        good = self.put_good("long name")
        self.flush()
        away = "maildrop-" + name[:200]
        self.assertTrue(wait_for(lambda: re.search(r"maildrop file %s: a FIFO .*; moved to \S+/%s$"
                                                   % (name, away), self.h.log(), re.M), 10),
                        self.diag())
        self.mail_for("bob@example.test", good)
        self.assertEqual(self.maildrop_files(), [])
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(self.h.state, "queue", "corrupt",
                                                            away)).st_mode))

    def test_symlink_to_root_only_file(self):
        secret = os.path.join(self.h.dir, "secret")
        with open(secret, "wb") as f:
            f.write(md(hostile_body("secret"), rcpts=("alice@example.test",)))
        os.chmod(secret, 0o600)
        name = "0005E8C2F1A2E002.link"
        os.symlink(secret, self.drop(name))
        good = self.put_good("symlink")
        self.flush()
        self.assert_skipped(name, "a symbolic link", good)
        self.assertTrue(os.path.islink(self.corrupt(name)))
        with open(secret, "rb") as f:
            self.assertIn(b"HOSTILE secret", f.read())        # the target is left alone

    def test_symlink_to_dev_zero(self):
        name = "0005E8C2F1A2E003.zero"
        os.symlink("/dev/zero", self.drop(name))
        good = self.put_good("dev-zero")
        self.flush()
        self.assert_skipped(name, "a symbolic link", good)

    def test_device_node(self):
        name = "0005E8C2F1A2E004.dev"
        try:
            os.mknod(self.drop(name), stat.S_IFCHR | 0o644, os.makedev(1, 5))   # /dev/zero
        except PermissionError:
            self.skipTest("no CAP_MKNOD here")
        good = self.put_good("device")
        self.flush()
        self.assert_skipped(name, "a device", good)
        self.assertTrue(stat.S_ISCHR(os.lstat(self.corrupt(name)).st_mode))

    def test_directory(self):
        name = "0005E8C2F1A2E005.dir"
        os.mkdir(self.drop(name))
        with open(os.path.join(self.drop(name), "inside"), "wb") as f:
            f.write(md(hostile_body("dir"), rcpts=("alice@example.test",)))
        good = self.put_good("directory")
        self.flush()
        self.assert_skipped(name, "a directory", good)
        self.assertTrue(os.path.isdir(self.corrupt(name)))

    def test_hard_link_to_another_users_file(self):
        """A user links someone else's file (here nobody's, recording
        nobody's uid) into the maildrop: it must not be submitted as theirs."""
        theirs = os.path.join(self.h.dir, "theirs")
        with open(theirs, "wb") as f:
            f.write(md(hostile_body("hardlink"), rcpts=("alice@example.test",), uid=NOBODY_UID))
        os.chown(theirs, NOBODY_UID, -1)
        name = "0005E8C2F1A2E006.hl"
        os.link(theirs, self.drop(name))
        good = self.put_good("hard-link")
        self.flush()
        self.assert_skipped(name, r"has 2 links \(a hard link is not a submission\)", good)
        self.assertEqual(os.stat(theirs).st_uid, NOBODY_UID)

    def test_file_claiming_another_uid(self):
        """nobody writes a file whose uid line says root: refused, not
        queued as root's (nor as nobody's)."""
        self.open_up()
        name = "0005E8C2F1A2E007.claim"
        path = self.drop(name)
        r = subprocess.run(AS_NOBODY + ["sh", "-c", 'cat > "$1.tmp" && mv "$1.tmp" "$1"', "sh",
                                        path],
                           input=md(hostile_body("claim"), rcpts=("alice@example.test",), uid=0),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(path).st_uid, NOBODY_UID)
        good = self.put_good("claim")
        self.flush()
        self.assert_skipped(name, "written by uid 0 but owned by uid %d" % NOBODY_UID, good)

    def test_owner_is_the_submitter(self):
        """A file without a uid line is nobody's if nobody owns it: the
        Received: line and the log say so."""
        self.open_up()
        path = self.drop("0005E8C2F1A2E008.nb")
        r = subprocess.run(AS_NOBODY + ["sh", "-c", 'cat > "$1.tmp" && mv "$1.tmp" "$1"', "sh",
                                        path],
                           input=md(b"Subject: by nobody\n\nx\n"), capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.flush()
        data = self.mail_for("bob@example.test", "by nobody")
        self.assertIn(b"(hato, from userid %d)" % NOBODY_UID, data)
        self.assertIn("uid=%d from=<root@example.test>" % NOBODY_UID, self.h.log())

    def test_sparse_file_over_size_limit(self):
        name = "0005E8C2F1A2E009.huge"
        self.put(name, md(hostile_body("huge"), rcpts=("alice@example.test",)))
        os.truncate(self.drop(name), 64 * MIB)
        good = self.put_good("sparse")
        self.flush()
        self.assert_skipped(name, r"larger than message_size_limit \(102400\)", good)
        st = os.stat(self.corrupt(name))
        self.assertEqual(st.st_size, 64 * MIB)
        self.assertLess(st.st_blocks * 512, MIB)                 # still sparse: never copied

    def test_message_over_size_limit(self):
        name = "0005E8C2F1A2E00A.big"
        self.put(name, md(hostile_body("big") + b"y" * 150000 + b"\n",
                          rcpts=("alice@example.test",)))
        good = self.put_good("over-limit")
        self.flush()
        self.assert_skipped(name, r"message of \d+ octets is over message_size_limit \(102400\)",
                            good)

    def test_message_over_size_limit_once_in_crlf(self):
        """80,000 octets of LF lines are 120,000 as CRLF, which is what the
        limit counts (as over SMTP): refused while copying, nothing left
        of it in the queue."""
        name = "0005E8C2F1A2E00B.lf"
        self.put(name, md(hostile_body("lf") + b"x\n" * 40000, rcpts=("alice@example.test",)))
        good = self.put_good("crlf")
        self.flush()
        self.assert_skipped(name, r"message over message_size_limit \(102400\)", good)


class Stopping(MaildropCase):
    CONF = {"message_size_limit": "0", "shutdown_timeout": "30s"}

    def queue_file_over(self, size):
        """Some file under queue/ (the one being written) is over size."""
        for top, _, files in os.walk(os.path.join(self.h.state, "queue")):
            for n in files:
                try:
                    if os.stat(os.path.join(top, n)).st_size > size:
                        return True
                except FileNotFoundError:
                    pass
        return False

    def test_sigterm_while_copying_and_with_a_fifo(self):
        """A FIFO and a 1 TiB (sparse) file in the maildrop at start: the
        FIFO is skipped at once (no open() waiting for a writer), and a
        SIGTERM while the big file is being copied stops hatod within
        seconds; the file stays for the next start, nothing is queued."""
        self.h.stop()
        fifo = "0005E8C2F1A2F001.fifo"
        os.mkfifo(self.drop(fifo), 0o644)
        big = "0005E8C2F1A2F002.big"
        self.put(big, md(b"Subject: big\n\n", rcpts=("x@remote.test",)))
        os.truncate(self.drop(big), 1 << 40)
        self.restart()
        self.wait_log("maildrop file %s: a FIFO" % fifo)
        self.assertTrue(wait_for(lambda: self.queue_file_over(8 * MIB), 30),
                        "the big file is not being copied\n" + self.diag())
        self.assert_serves_smtp()
        self.h.signal(signal.SIGTERM)
        try:
            self.h.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.h.proc.kill()
            self.fail("hatod did not stop within 5 s of SIGTERM\n" + self.diag())
        self.assertEqual(self.h.stop(), 0)
        self.assertIn("maildrop file %s: left for the next start" % big, self.h.log())
        self.assertTrue(os.path.exists(self.drop(big)), self.diag())
        self.assertEqual(self.h.queue_ids(), [], self.diag())
        self.assertFalse(self.queue_file_over(64 * MIB), "the copy was not abandoned")


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


class Streaming(MaildropCase):
    CONF = {"message_size_limit": "64M"}

    def test_big_file_is_streamed_not_read_whole(self):
        """A 24 MiB maildrop file is queued byte for byte while hatod's peak
        RSS grows by less than a third of that (reading it whole would need
        at least its size, building the content once more)."""
        lines = [b"line %07d of the big message, with some padding to make it long\r\n" % i
                 for i in range(24 * MIB // 68)]
        body = b"".join(lines)
        head = (b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <big@x>\r\n"
                b"From: <root@example.test>\r\nSubject: streamed\r\n\r\n")
        time.sleep(0.5)                                   # start-up done
        before = vm_hwm_kib(self.h.proc.pid)
        self.put("0005E8C2F1A30001.stream", md(head + body, rcpts=("x@remote.test",)))
        self.flush()
        self.assertTrue(wait_for(lambda: self.maildrop_files() == [], 30), self.diag())
        ids = self.h.queue_ids()
        self.assertEqual(len(ids), 1, self.diag())
        grew = (vm_hwm_kib(self.h.proc.pid) - before) * 1024
        with open(os.path.join(self.h.state, "queue", "msg", ids[0]), "rb") as f:
            content = f.read()
        self.assertTrue(content.startswith(b"Received: by mx.example.test (hato, from userid 0)"),
                        content[:200])
        self.assertTrue(content.endswith(b"\r\n" + head + body), len(content))
        self.assertLess(grew, len(body) // 3,
                        "peak RSS grew by %d KiB for a %d KiB file" % (grew // 1024,
                                                                      len(body) // 1024))


class SendmailSizeLimit(MaildropCase):
    CONF = {"message_size_limit": "1000"}

    def test_over_limit_refused_before_the_maildrop(self):
        """With hatod stopped, hato-sendmail refuses a message pickup would
        set aside (counted with CRLF, as over SMTP) instead of dropping it."""
        self.h.stop()
        r = self.sendmail("bob@example.test", input=b"Subject: s\n\n" + b"x\n" * 450)
        self.assertRun(r, 65)                                   # EX_DATAERR
        self.assertIn(b"over message_size_limit (1000)", r.stderr)
        self.assertEqual(self.maildrop_files(), [])
        self.assertRun(self.sendmail("bob@example.test",
                                     input=b"Subject: small\n\n" + b"x\n" * 200))
        self.assertEqual(len(self.maildrop_files()), 1)
        self.restart()
        self.mail_for("bob@example.test", "small")


class Traced(MaildropCase):
    """hatod under strace (the calls in TRACE; -y shows fd paths)."""
    TRACE = "unlink,unlinkat,fsync,fdatasync,syncfs,openat,close"

    def setUp(self):
        self.h = Hatod(conf=self.CONF)
        self.trace = os.path.join(self.h.dir, "strace.out")
        self.h.logf = open(self.h.log_path, "ab")
        env = dict(os.environ)      # LeakSanitizer cannot run under ptrace
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        self.h.proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-y", "-o", self.trace,
             "-e", "trace=" + self.TRACE, HATOD, "-f",
             self.h.conf_path, "-d"], stdout=self.h.logf, stderr=self.h.logf, env=env)
        if not wait_for(lambda: self.h.listening() and "hatod started" in self.h.log(), 30):
            raise RuntimeError("hatod under strace did not start:\n" + self.h.log())
        self.wait_control()

    def stop_traced(self):
        with open("/proc/%d/task/%d/children" % (self.h.proc.pid, self.h.proc.pid)) as f:
            os.kill(int(f.read().split()[0]), signal.SIGTERM)
        self.assertEqual(self.h.proc.wait(30), 0, self.h.log())
        self.h.logf.close()
        self.h.proc = None

    def trace_lines(self):
        with open(self.trace, errors="replace") as f:
            return f.read().splitlines()


class UnlinkFlushed(Traced):
    """After the commit the maildrop file is unlinked and the unlink made
    durable (an fsync of the maildrop directory after it): otherwise a power
    loss could bring the file back and queue the message twice."""

    def test_unlink_then_directory_fsync(self):
        name = "0005E8C2F1A30002.flush"
        self.put(name, md(b"Subject: flushed\n\nx\n", rcpts=("x@remote.test",)))
        self.flush()
        self.assertTrue(wait_for(lambda: self.maildrop_files() == [], 30), self.diag())
        self.assertTrue(wait_for(lambda: "(queue active)" in self.h.log(), 10), self.diag())
        time.sleep(0.5)
        self.stop_traced()
        drop = os.path.join(self.h.state, "maildrop")
        lines = self.trace_lines()
        at = [i for i, l in enumerate(lines)
              if "unlinkat(" in l and "<%s>" % drop in l and '"%s"' % name in l]
        self.assertEqual(len(at), 1, "no unlinkat of the maildrop file in the trace")
        flushed = [l for l in lines[at[0] + 1:]
                   if re.search(r"\bfsync\(\d+<%s>" % re.escape(drop), l)]
        self.assertTrue(flushed, "no fsync of %s after the unlink:\n%s"
                        % (drop, "\n".join(lines[at[0]:at[0] + 20])))


class InFlightBound(Traced):
    """At most 8 maildrop files are open at once, however many wait: 40
    files dropped together never have more than 8 descriptors open."""
    TRACE = "openat,close"

    def test_at_most_eight_files_open(self):
        n = 40
        for i in range(n):
            self.put("0005E8C2F1A32%03X.many" % i,
                     md(b"Subject: many %d\n\n" % i + b"x\n" * 1000, rcpts=("x@remote.test",)))
        self.flush()
        self.assertTrue(wait_for(lambda: self.maildrop_files() == [], 60), self.diag())
        self.stop_traced()
        drop = re.escape(os.path.join(self.h.state, "maildrop"))
        opened = re.compile(r"openat.*= (\d+)<%s/[^/>]+\.many>$" % drop)
        closed = re.compile(r"close\((\d+)<%s/[^/>]+\.many>" % drop)
        now = most = total = 0
        for line in self.trace_lines():
            if opened.search(line):
                now += 1
                total += 1
                most = max(most, now)
            elif closed.search(line):
                now -= 1
        self.assertEqual(total, n, "each file opened once")
        self.assertLessEqual(most, 8)
        self.assertGreater(most, 1, "files are read one after another, not pipelined")
