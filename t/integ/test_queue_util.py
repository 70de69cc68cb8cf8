"""t/integ/test_queue_util.py — helpers shared by the test_queue_* tests
(queue durability, retry, daemon).  No test cases here."""
import os
import re
import smtplib
import subprocess
import time

from harness import wait_for

QUEUED_RE = re.compile(r"queued as ([0-9A-F]{16})")


def message(subject="test", body="hello", extra_headers=(), size=0):
    """A CRLF message; size > 0 pads the body with 76-octet lines to about
    that many octets."""
    lines = ["From: <bob@example.test>", "To: <bob@example.test>",
             "Subject: %s" % subject]
    lines += list(extra_headers)
    lines += ["", body]
    text = "\r\n".join(lines) + "\r\n"
    pad = "x" * 74 + "\r\n"
    while len(text) < size:
        text += pad
    return text.encode()


def send(port, sender, rcpts, msg):
    """One transaction with smtplib.  Returns (code, text) of the reply to
    the end of data (or to DATA if that was refused)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode()
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250:
                return code, text.decode()
        try:
            code, text = s.data(msg)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
        return code, text.decode()


def send_ok(tc, h, sender, rcpts, msg):
    """send() that must get 250; returns the queue ID."""
    code, text = send(h.port, sender, rcpts, msg)
    tc.assertEqual(code, 250, "%s %s\n%s" % (code, text, h.log()))
    m = QUEUED_RE.search(text)
    tc.assertTrue(m, text)
    return m.group(1)


def qdir(h, sub):
    return os.path.join(h.state, "queue", sub)


def ls(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def read_env(h, qid):
    """env/ID as a dict of its single-valued fields plus 'rcpt': [lines]."""
    with open(os.path.join(qdir(h, "env"), qid)) as f:
        text = f.read()
    env = {"rcpt": [], "_text": text}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "rcpt":
            env["rcpt"].append(value)
        else:
            env[key] = value
    return env


def restart(h, set_conf=None, drop_conf=()):
    """Rewrite the config (set/drop keys) and start hatod again (it must be
    stopped already)."""
    for k in drop_conf:
        h.conf.pop(k, None)
    h.conf.update(set_conf or {})
    h.write_conf()
    start(h)


def start(h):
    """h.start(), then wait for the end of start-up: the listeners are bound
    (as root) before the queue is recovered, so "listening" is too early
    to look at the queue directories."""
    before = h.log().count("hatod started")
    h.start()
    if not wait_for(lambda: h.log().count("hatod started") > before, 10):
        raise RuntimeError("hatod did not finish starting:\n" + h.log())


def reload(h, set_conf=None, drop_conf=(), expect="reloaded "):
    """Rewrite the config, send SIGHUP and wait for the log line."""
    import signal
    before = h.log().count(expect)
    for k in drop_conf:
        h.conf.pop(k, None)
    h.conf.update(set_conf or {})
    h.write_conf()
    h.signal(signal.SIGHUP)
    return wait_for(lambda: h.log().count(expect) > before, 10)


def mails(h, address):
    return [h.read_mail(p) for p in h.maildir(address)]


def wait_queue_empty(h, timeout=10):
    return wait_for(lambda: not h.queue_ids(), timeout)


def stays(pred, seconds, step=0.05):
    """True if pred() holds during the whole period."""
    end = time.time() + seconds
    while time.time() < end:
        if not pred():
            return False
        time.sleep(step)
    return bool(pred())


def next_ids(base, n):
    """n valid queue IDs just after `base` (for hand-made queue files)."""
    v = int(base, 16)
    return ["%016X" % (v + i + 1) for i in range(n)]


class Tmpfs:
    """A small tmpfs mounted at a fresh directory (we run as root)."""

    def __init__(self, size="1m"):
        self.dir = None
        self.size = size

    def __enter__(self):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="hato-tmpfs-", dir="/tmp")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % self.size,
                        "tmpfs", self.dir], check=True)
        return self

    def fill(self, name="filler"):
        """Fill the file system; returns the filler's path."""
        path = os.path.join(self.dir, name)
        chunk = b"\0" * 4096
        with open(path, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass
            try:
                while True:
                    f.write(b"\0")
            except OSError:
                pass
        return path

    def __exit__(self, *exc):
        for _ in range(50):
            if subprocess.run(["umount", self.dir]).returncode == 0:
                break
            time.sleep(0.1)
        try:
            os.rmdir(self.dir)
        except OSError:
            pass
        return False


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()
