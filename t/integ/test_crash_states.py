"""Crash consistency under power loss (issue 6, "Tests that can fail").

kill -9 keeps the page cache, so it cannot show a missing flush.  This test
records hatod's file-system calls with strace while it picks up a message
from the maildrop, accepts and delivers fourteen over SMTP, generates the states a power loss may leave (crashsim.py:
POSIX persistence rules, unflushed operations lost or kept independently),
materialises each one as a state directory, starts hatod on it (recovery:
queue/queue.c queue_recover, the spare pool's adoption, redelivery) and
checks:
- every message acknowledged before the crash point is delivered whole
  (Return-Path and Delivered-To, then the queued content, whose end is the
  message as sent) or, for a remote recipient, still queued whole;
- nothing half-written or unknown is delivered;
- nothing is delivered twice, except inside the documented at-least-once
  windows: after the Maildir rename and before the record that the recipient
  is done (removal of env/ID, or an envelope rewrite marking it S) is on
  disk under the same rules with every flush in place; and for the maildrop
  message, before the unlink of its file after the pickup's commit is;
- a Maildir with tmp/ (which hatod takes for a whole one) or with mail
  has cur/ and new/;
- every folder index (store/index.c) is readable (a torn last record or a
  hole of lost appends at most), and a copy past its at-least-once window
  has its UID in it;
- hatod starts, recovers and stops cleanly; a corrupt/ entry only for a
  message whose env/ID survived without its msg/ID and which was either
  never acknowledged or already delivered (see doc/architecture.md).
Then the mutation check: for each flush the run issued, the same state
generation with that one flush treated as never issued must give at least
one state that really violates an invariant (confirmed by running hatod on
it), unless the flush is shown not to matter for these invariants.
"""
import os
import random
import re
import shutil
import signal
import smtplib
import struct
import subprocess
import time
import unittest
import zlib

import crashsim
import harness
from harness import Hatod, wait_for

SEED = 20141006            # ALICE's OSDI date: a fixed seed, a fixed set of states
N_RANDOM = 5               # random states per crash point
N_SAMPLE = 12              # crash points sampled between flushes and acks
MAX_STATES = 250           # distinct baseline states run through hatod
MUTATION_CONFIRM = 6       # hatod runs per removed flush at most
CONF = {"queue_run_delay": "1s", "minimal_backoff_time": "1s", "maximal_backoff_time": "1s"}
QUEUED = re.compile(rb"^250 [^\r\n]*queued as ([0-9A-F]{16})", re.M)
TOKEN = re.compile(rb"X-Crash-Token: (\d+)")

# (recipients, size of the body): local users, a remote domain that stays
# queued ("remote delivery off in this test"), and one message to both, whose
# envelope rewrite records the local delivery.
MESSAGES = [(["bob@example.test"], 300), (["alice@example.test"], 5000),
            (["someone@remote.test"], 200), (["bob@example.test"], 70000),
            (["alice@example.test", "far@remote.test"], 400), (["bob@example.test"], 100)]
# then a burst whose ends of data arrive together: commit batches of four or
# more (one syncfs before and after the renames) and batched local delivery
BURST = [(["bob@example.test"] if k % 2 else ["alice@example.test"], 150 + 40 * k)
         for k in range(8)]


def body(k, size):
    lines = ["From: <sender@remote.test>", "To: <rcpt@example.test>",
             "Subject: crash state %d" % k, "Message-ID: <crash-%d@remote.test>" % k,
             "Date: Tue, 1 Dec 2026 21:00:00 +0000", "X-Crash-Token: %d" % k, "", "body %d" % k]
    text = "\r\n".join(lines) + "\r\n"
    pad = "%05d " % k + "y" * 68 + "\r\n"
    while len(text) < size:
        text += pad
    return text.encode()


class Msg:
    def __init__(self, k, rcpts, sent):
        self.k, self.rcpts, self.sent = k, rcpts, sent
        self.sender = "sender@remote.test"
        self.qid = None
        self.ack = None          # trace position of the 250
        self.content = None      # msg/ID as committed
        self.done_record = {}    # rcpt -> trace position of the op recording it done
        self.maildrop = None     # the maildrop file's name (hato-sendmail, hatod stopped)
        self.maildrop_unlink = None   # trace position of its unlink after pickup

    def local(self):
        return [r for r in self.rcpts if r.endswith("@example.test")]

    def remote(self):
        return [r for r in self.rcpts if not r.endswith("@example.test")]

    def whole(self, rcpt):
        return (b"Return-Path: <%s>\r\nDelivered-To: %s\r\n" % (self.sender.encode(), rcpt.encode())
                + self.content)

    def is_whole(self, rcpt, data):
        """data is this message delivered to rcpt, byte for byte; a maildrop
        message picked up again after a crash has a Received: line of its
        own (another ID and time), all the rest must be the same."""
        if data == self.whole(rcpt):
            return True
        if self.maildrop is None:
            return False
        return strip_received(data) == strip_received(self.whole(rcpt))


RECEIVED = re.compile(rb"^Received:[^\n]*\n(?:[ \t][^\n]*\n)*", re.M)


def strip_received(data):
    return RECEIVED.sub(b"", data, count=1)


def index_names(data):
    """The names a hato.index (store/index.c) gives UIDs to, or None when it
    is unreadable: a bad header, or a bad record with more after it (a torn
    last record is what kill -9 or a power loss in an append leaves)."""
    if len(data) < 32 or data[:8] != b"HATOIX01" or \
            struct.unpack_from("<I", data, 28)[0] != zlib.crc32(data[:28]):
        return None
    names, off = {}, 32
    while off + 4 <= len(data):
        (ln,) = struct.unpack_from("<I", data, off)
        rec = data[off:off + ln]
        if ln < 76 or len(rec) < ln or struct.unpack_from("<I", rec, ln - 8)[0] \
                != zlib.crc32(rec[:ln - 8]) or struct.unpack_from("<I", rec, ln - 4)[0] != ln:
            tail = data[off:]
            torn = (76 <= ln <= 76 + 255 and ln >= len(tail)) or not tail.strip(b"\0")
            return names if torn else None
        uid = struct.unpack_from("<I", rec, 8)[0]
        (nl,) = struct.unpack_from("<H", rec, 64)
        if rec[4] == 1:
            names[rec[68:68 + nl].decode("latin-1")] = uid
        elif rec[4] == 3:
            names = {n: u for n, u in names.items() if u != uid}
        off += ln
    return names


def mailbox_of(rel):
    """'mail/example.test/bob/new/NAME' -> 'bob@example.test' (None: not a
    delivered message)."""
    p = rel.split("/")
    if len(p) == 5 and p[0] == "mail" and p[3] in ("new", "cur"):
        return "%s@%s" % (p[2], p[1])
    return None


class Facts:
    """What a tree holds: Maildir copies per (token, rcpt), bad Maildir
    files, queue entries."""

    def __init__(self, tree, msgs):
        self.copies, self.bad, self.tree = {}, [], tree
        by_k = {m.k: m for m in msgs}
        for rel, ent in tree.items():
            rcpt = mailbox_of(rel)
            if rcpt is None or ent[0] != "file":
                continue
            t = TOKEN.search(ent[2])
            m = by_k.get(int(t.group(1))) if t else None
            if m is None or rcpt not in m.rcpts or not m.is_whole(rcpt, ent[2]):
                self.bad.append(rel)
                continue
            self.copies[(m.k, rcpt)] = self.copies.get((m.k, rcpt), 0) + 1

    def broken_maildirs(self):
        """Mailboxes (mail/DOMAIN/USER) that have tmp/ (which hatod takes
        for a whole Maildir) or mail, but lack cur/ or new/."""
        boxes = [r for r in self.tree if r.count("/") == 2 and r.startswith("mail/")]
        out = []
        for b in boxes:
            used = b + "/tmp" in self.tree or any(r.startswith(b + "/new/") for r in self.tree)
            if used and (b + "/cur" not in self.tree or b + "/new" not in self.tree):
                out.append(b)
        return out

    def file(self, rel):
        ent = self.tree.get(rel)
        return ent[2] if ent and ent[0] == "file" else None

    def queued(self, m):
        return (self.file("queue/env/" + m.qid) is not None,
                self.file("queue/msg/" + m.qid))

    def ls(self, d):
        return sorted(r.rsplit("/", 1)[1] for r in self.tree if crashsim.Trace.parent(r) == d)


class Recorded:
    """The traced run: trace, messages, acknowledgements, windows."""

    def __init__(self, trace, msgs, env_versions):
        self.trace, self.msgs, self.env_versions = trace, msgs, env_versions
        self.base = crashsim.Persistence(trace)
        self.corrupt_allowed = [0, 0]     # envelopes set aside: never acknowledged, delivered
        self.window_end, self.maildrop_end = {}, {}
        by_pos = {o.pos: o for o in trace.ops}
        for m in msgs:
            if m.maildrop_unlink is not None:
                op = by_pos[m.maildrop_unlink]
                self.maildrop_end[m.k] = self.own_flush_end(op, op.dirs[0])
            for r, pos in m.done_record.items():
                op = by_pos[pos]
                if op.kind == "rename" and op.old.endswith(".upd"):
                    # a rewrite is flushed by the job that wrote it
                    self.window_end[(m.k, r)] = self.own_flush_end(op, op.ndir)
                else:             # a removal is never flushed: until a later flush
                    self.window_end[(m.k, r)] = self.durable_from(self.base, pos)

    def own_flush_end(self, op, dir_ino):
        """Where a window documented as "until its flush" ends: at the flush
        of dir_ino (or of the file system) that the thread which did op
        issues next, with nothing between but more of the same batch
        (entry changes in that directory); without one there is no window.
        (The unlink of a picked-up maildrop file; an envelope rewrite.)"""
        later = [o for o in self.trace.ops if o.tid == op.tid and o.pos > op.pos]
        for f in sorted(self.trace.flushes, key=lambda f: f.start):
            if f.call.tid != op.tid or f.start < op.pos:
                continue
            between = [o for o in later if o.pos < f.start]
            if f.ino in (None, dir_ino) and all(o.is_entry() and o.dirs == op.dirs
                                                for o in between):
                return f.end + 1
            break
        return op.pos

    def durable_from(self, pers, pos):
        """First crash point from which the record at pos is always on disk:
        for a rewrite, the new env/ID; for a removal, env/ID being gone."""
        op = next(o for o in self.trace.ops if o.pos == pos)
        enough = (None, "link") if op.kind == "rename" and op.new.startswith("queue/env/") \
            else (None, "unlink")
        for f in sorted(pers.flushes, key=lambda f: f.end):
            if pers.weakest(op, f.end + 1) in enough:
                return f.end + 1
        return float("inf")

    def acked(self, m, crash):
        return m.ack is not None and m.ack < crash

    def predict(self, pre, crash):
        """Model-only guesses of a violation (to pick states to run first)."""
        out = list("half-written " + r for r in pre.bad)
        out += ["broken Maildir " + b for b in pre.broken_maildirs()]
        for m in self.msgs:
            env, msg = pre.queued(m)
            envb = pre.file("queue/env/" + m.qid)
            if envb is not None and envb not in self.env_versions.get(m.qid, ()):
                out.append("partial envelope %s" % m.qid)
            if env and msg is not None and msg != m.content:
                out.append("partial content %s" % m.qid)
            if not self.acked(m, crash):
                continue
            if m.maildrop and pre.file("maildrop/" + m.maildrop) is not None:
                # picked up (again) at start: twice if it was queued already
                if (env or any(pre.copies.get((m.k, r)) for r in m.local())) and \
                        crash >= self.maildrop_end.get(m.k, 0):
                    out.append("maildrop %d picked up twice" % m.k)
                continue
            for r in m.local():
                again = env and msg == m.content and \
                    ("\nrcpt P %s " % r).encode() in (envb or b"")
                if not pre.copies.get((m.k, r)) and not again:
                    out.append("lost %d %s" % (m.k, r))
                if pre.copies.get((m.k, r)) and again and \
                        crash >= self.window_end.get((m.k, r), 0):
                    out.append("duplicate %d %s" % (m.k, r))
            if m.remote() and not (env and msg == m.content):
                out.append("lost queued %d" % m.k)
        return out + self.check_index(pre, crash)

    def check(self, pre, post, crash, rc, log):
        """Violations after hatod's recovery of a state (post: its tree)."""
        v = []
        if rc != 0:
            v.append("hatod exited %s" % rc)
        if "AddressSanitizer" in log or "runtime error" in log:
            v.append("sanitizer report")
        v += ["half-written or unknown file delivered: " + r for r in post.bad]
        v += ["Maildir with tmp/ or mail but without cur/ or new/: " + b
              for b in post.broken_maildirs()]
        dups = 0
        for m in self.msgs:
            for r in m.local():
                n, before = post.copies.get((m.k, r), 0), pre.copies.get((m.k, r), 0)
                if self.acked(m, crash) and n == 0:
                    v.append("acknowledged message %d (%s) lost for %s" % (m.k, m.qid, r))
                if n > 1:
                    in_window = before >= 1 and crash < self.window_end.get((m.k, r), 0)
                    # the maildrop file back after the pickup's commit: queued again
                    again = m.maildrop and pre.file("maildrop/" + m.maildrop) is not None \
                        and crash < self.maildrop_end.get(m.k, 0)
                    if n > 1 + in_window + bool(again) or not (in_window or again):
                        v.append("message %d delivered %d times to %s outside the window"
                                 % (m.k, n, r))
                    dups += 1
            env, msg = post.queued(m)
            if m.remote() and self.acked(m, crash) and not (env and msg == m.content):
                v.append("acknowledged message %d (%s) for %s not queued whole"
                         % (m.k, m.qid, m.remote()))
            if env and not m.remote():
                v.append("message %d still queued after recovery" % m.k)
            if env and msg != m.content:
                v.append("message %d queued with partial content" % m.k)
        v += self.check_index(pre, crash)
        known = {m.qid for m in self.msgs}
        v += ["unknown queue entry env/" + n for n in post.ls("queue/env") if n not in known]
        for name in post.ls("queue/corrupt"):
            qid = name.split(".")[0]
            m = next((m for m in self.msgs if m.qid == qid), None)
            env, msg = pre.queued(m) if m else (False, None)
            delivered = m and any(pre.copies.get((m.k, r)) for r in m.local())
            if m and m.maildrop and pre.file("maildrop/" + m.maildrop) is not None:
                delivered = True      # the file is there still: it is picked up again
            if not (m and env and msg is None and (not self.acked(m, crash) or delivered)):
                v.append("corrupt/%s" % name)
            elif name.endswith(".env"):
                self.corrupt_allowed[bool(delivered)] += 1
        return v, dups


    def check_index(self, pre, crash):
        """The folder indexes (store/index.c) in a crash state: readable (a
        torn last record at most; anything else costs a new UIDVALIDITY),
        and a copy whose delivery is done for good (past its at-least-once
        window) has its UID there, so no reader who saw that UID can see it
        given again.  Recovery does not touch indexes: the state decides."""
        v = []
        for rel, ent in pre.tree.items():
            if rel.endswith("/hato.index") and ent[0] == "file" and index_names(ent[2]) is None:
                v.append("unreadable index: " + rel)
        for rel, ent in pre.tree.items():
            rcpt = mailbox_of(rel)
            if rcpt is None or ent[0] != "file" or "/new/" not in rel:
                continue
            t = TOKEN.search(ent[2])
            k = int(t.group(1)) if t else None
            if k is None or crash < self.window_end.get((k, rcpt), float("inf")):
                continue
            ix = pre.file(rel.split("/new/")[0] + "/hato.index")
            names = index_names(ix) if ix is not None else None
            if names is None or rel.rsplit("/", 1)[1] not in names:
                v.append("delivered message %d for %s has no UID in the index: %s" % (k, rcpt, rel))
        return v


def settled(h, msgs):
    """Every local copy delivered, only remote mail queued, and each queued
    message's envelope rewritten after a deferral."""
    for m in msgs:
        for r in m.local():
            if not any(("X-Crash-Token: %d\r\n" % m.k).encode() in h.read_mail(p)
                       for p in h.maildir(r)):
                return False
    if set(h.queue_ids()) != {m.qid for m in msgs if m.remote()}:
        return False
    for m in msgs:
        if m.remote():
            with open(os.path.join(h.state, "queue", "env", m.qid), "rb") as f:
                if b"\nattempts 0\n" in f.read():
                    return False
    return True


def send_burst(h, burst):
    """Open a transaction per message, then send every DATA in one go."""
    conns = []
    for m in burst:
        c = harness.RawSMTP(h.port, timeout=30)
        conns.append(c)
        for cmd in (None, "EHLO client.test", "MAIL FROM:<%s>" % m.sender) + tuple(
                "RCPT TO:<%s>" % r for r in m.rcpts) + ("DATA",):
            code = c.reply()[0] if cmd is None else c.cmd(cmd)[0]
            if code not in (220, 250, 354):
                raise RuntimeError("%s: %s" % (cmd, code))
    for c, m in zip(conns, burst):
        c.send(m.sent + b".\r\n")
    for c, m in zip(conns, burst):
        code, lines = c.reply()
        if code != 250:
            raise RuntimeError("burst: %s %s" % (code, lines))
        m.qid = QUEUED.search(("\n".join(lines)).encode()).group(1).decode()
        c.close()


def run_traced(h, msgs, burst, trace_path, md):
    """Start h under strace, send msgs one by one (waiting for each one's
    local delivery or first deferral), then the burst; stop hatod."""
    h.logf = open(h.log_path, "ab")
    h.proc = subprocess.Popen(crashsim.strace_argv(trace_path) + [
        harness.HATOD, "-f", h.conf_path, "-d"], stdout=h.logf, stderr=h.logf)
    if not wait_for(lambda: h.listening() and h.log().count("hatod started") >= 2, 30):
        raise RuntimeError("hatod under strace did not start:\n" + h.log())
    if not wait_for(lambda: settled(h, [md]), 30):     # the pickup at start, alone
        raise RuntimeError("the maildrop was not delivered:\n" + h.log())
    for i, m in enumerate(msgs):
        with smtplib.SMTP("127.0.0.1", h.port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail(m.sender)
            for r in m.rcpts:
                s.rcpt(r)
            code, text = s.data(m.sent)
            if code != 250:
                raise RuntimeError("%s %s" % (code, text))
            m.qid = QUEUED.search(b"250 " + text).group(1).decode()
        # one message at a time: no other commit's syncfs hides a missing flush
        if not wait_for(lambda: settled(h, [md] + msgs[:i + 1]), 30):
            raise RuntimeError("the traced run did not deliver:\n" + h.log())
    send_burst(h, burst)
    if not wait_for(lambda: settled(h, [md] + msgs + burst), 30):
        raise RuntimeError("the traced run did not deliver the burst:\n" + h.log())
    with open("/proc/%d/task/%d/children" % (h.proc.pid, h.proc.pid)) as f:
        kids = f.read().split()
    os.kill(int(kids[0]), signal.SIGTERM)
    h.proc.wait(30)
    h.logf.close()
    h.proc = None


def record(h, msgs, snap, trace_path):
    calls = crashsim.read_calls(trace_path)
    tr = crashsim.Trace(h.state, snap).feed_all(calls)
    acks = {}
    for pos, fd, data in tr.socket_writes:
        for qid in QUEUED.findall(data):
            acks.setdefault(qid.decode(), pos)
    by_qid = {m.qid: m for m in msgs if m.qid}
    for qid, pos in acks.items():
        by_qid[qid].ack = pos
    for m in msgs:
        if m.maildrop:              # in the maildrop before the run: accepted from the start
            m.qid = next(n for p, n, i, c in tr.renames_into("queue/env") if n not in by_qid)
            m.ack = -1
            by_qid[m.qid] = m
            m.maildrop_unlink = next(o.pos for o in tr.ops if o.kind == "ent" and o.ino is None
                                     and o.path == "maildrop/" + m.maildrop)
    for pos, name, ino, content in tr.renames_into("queue/msg"):
        if name in by_qid and by_qid[name].content is None:
            by_qid[name].content = content
    env_versions = {}
    for pos, name, ino, content in tr.renames_into("queue/env"):
        env_versions.setdefault(name, set()).add(content)
        m = by_qid.get(name)
        for line in content.decode("latin-1").splitlines():
            p = line.split(" ")
            if m and p[0] == "rcpt" and p[1] != "P" and p[2] in m.rcpts:
                m.done_record.setdefault(p[2], pos)
    # removal of env/ID (rename into free/ or unlink) records every recipient
    for o in tr.ops:
        old = getattr(o, "old", None) if o.kind == "rename" else \
            (o.path if o.kind == "ent" and o.ino is None else None)
        if isinstance(old, str) and old.startswith("queue/env/") and old[10:] in by_qid:
            m = by_qid[old[10:]]
            for r in m.local():
                m.done_record.setdefault(r, o.pos)
    return Recorded(tr, msgs, env_versions)


class Runner:
    """Runs hatod's recovery on materialised states, one hatod at a time on
    one configuration (a fresh state directory each run)."""

    def __init__(self, rec):
        self.rec = rec
        self.h = Hatod(conf=CONF)
        self.runs = 0

    def run(self, state, tree):
        h = self.h
        if os.path.exists(h.state):
            shutil.rmtree(h.state)
        crashsim.materialise(tree, h.state)
        if os.path.exists(h.log_path):
            os.unlink(h.log_path)
        pre = Facts(tree, self.rec.msgs)
        remote = {m.qid for m in self.rec.msgs if m.remote()}
        local_dirs = {r for m in self.rec.msgs for r in m.local()}
        self.runs += 1
        for attempt in range(3):
            try:
                h.start()
                break
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == 2:
                    return ["hatod did not start: %s" % str(e)[-2000:]], 0, ""
                h.logf.close()
                h.proc = None
                self.new_ports()      # someone else took the port since the last run
                os.unlink(h.log_path)
        wait_for(lambda: set(h.queue_ids()) <= remote and
                 not os.listdir(os.path.join(h.state, "queue", "tmp")) and
                 not [n for n in os.listdir(os.path.join(h.state, "maildrop")) if n[0] != "."],
                 15)
        rc = h.stop()
        log = h.log()
        post = Facts(crashsim.snapshot(h.state), self.rec.msgs)
        v, dups = self.rec.check(pre, post, state.crash, rc, log)
        if v:
            v.append("log: " + log[-1500:])
        return v, dups, log

    def new_ports(self):
        h = self.h
        h.port, h.sub_port = harness.free_port(), harness.free_port()
        h.conf["smtp_listen"] = "127.0.0.1:%d" % h.port
        h.conf["submission_listen"] = "127.0.0.1:%d" % h.sub_port
        h.write_conf()

    def cleanup(self):
        self.h.cleanup()


class CrashStates(unittest.TestCase):
    def setUp(self):
        if not shutil.which("strace"):
            self.fail("strace is not installed (test.sh installs it)")
        self.h = Hatod(conf=CONF)
        self.addCleanup(self.h.cleanup)

    def test_power_loss_states(self):
        h = self.h
        h.start()                     # the layout, then a known start state
        self.assertEqual(h.stop(), 0)
        msgs = [Msg(k, rcpts, body(k, size)) for k, (rcpts, size) in enumerate(MESSAGES)]
        burst = [Msg(len(msgs) + k, rcpts, body(len(msgs) + k, size))
                 for k, (rcpts, size) in enumerate(BURST)]
        # and one for the maildrop, written by hato-sendmail while hatod is
        # down: picked up, committed and unlinked at the traced start
        md = Msg(len(msgs) + len(burst), ["bob@example.test"], body(len(msgs) + len(burst), 600))
        r = h.run_tool([harness.SENDMAIL, "-f", md.sender] + md.rcpts,
                       input=md.sent.replace(b"\r\n", b"\n"))
        self.assertEqual(r.returncode, 0, r.stderr)
        drop = [n for n in os.listdir(os.path.join(h.state, "maildrop")) if n[0] != "."]
        self.assertEqual(len(drop), 1, drop)
        md.maildrop = drop[0]
        snap = crashsim.snapshot(h.state)
        trace_path = os.path.join(h.dir, "trace")
        run_traced(h, msgs, burst, trace_path, md)
        msgs += burst + [md]
        if os.environ.get("CRASH_KEEP_TRACE"):
            shutil.copy(trace_path, os.environ["CRASH_KEEP_TRACE"])
        rec = record(h, msgs, snap, trace_path)
        for m in msgs:
            self.assertIsNotNone(m.ack, "no 250 in the trace for %d" % m.k)
            self.assertTrue(m.content and m.content.endswith(m.sent), m.k)
        tr = rec.trace
        self.assertTrue(tr.flushes, "no flush in the trace")
        runner = Runner(rec)
        self.addCleanup(runner.cleanup)
        t0 = time.time()
        seen, violations, ran, dups = {}, [], 0, 0
        rng = random.Random(SEED)
        points = crashsim.crash_points(tr, [m.ack for m in msgs], extra=[tr.ops[-1].pos + 1],
                                       rng=rng, n_sample=N_SAMPLE)
        states = []
        for c in points:
            states += crashsim.states_at(rec.base, c, N_RANDOM, rng)
        generated = len(states)
        # distinct states, run in this order up to MAX_STATES: those the
        # model expects to fail (none, with every flush in place), then
        # "all lost" and "all kept" at every crash point, then the random ones
        distinct, fps = [], set()
        for i, st in enumerate(states):
            tree = crashsim.replay(tr, st)
            fp = crashsim.fingerprint(tree)
            if fp in fps:
                continue
            fps.add(fp)
            flagged = bool(rec.predict(Facts(tree, rec.msgs), st.crash))
            rank = 0 if flagged else 1 if st.label in ("lost", "kept") else 2
            distinct.append((rank, i, st, tree, fp))
        distinct.sort(key=lambda x: x[:2])
        predicted = sum(1 for x in distinct if x[0] == 0)
        for rank, i, st, tree, fp in distinct[:MAX_STATES]:
            seen[fp] = st
            v, d, _ = runner.run(st, tree)
            ran += 1
            dups += d
            if v:
                violations.append((st, v))
        base_time = time.time() - t0
        report = ["crash states: %d ops, %d flushes, %d acks, %d crash points, %d states "
                  "generated, %d distinct (%d predicted to fail), %d run through hatod "
                  "(%d with a duplicate inside the "
                  "window; %d set an unacknowledged and %d a delivered message's envelope "
                  "aside in corrupt/), %d violated, %.1fs"
                  % (len(tr.ops), len(tr.flushes), len(msgs), len(points), generated,
                     len(distinct), predicted, ran, dups,
                     rec.corrupt_allowed[0], rec.corrupt_allowed[1], len(violations), base_time)]
        if violations:
            kinds = {}
            for st, v in violations:
                k = re.sub(r"\d+", "N", re.sub(r"[0-9A-F]{16}", "ID", v[0]))
                kinds[k] = kinds.get(k, 0) + 1
            report += ["  %3d x %s" % (n, k) for k, n in sorted(kinds.items())]
            st, v = violations[0]
            self.fail("\n".join(report) + "\nfirst: %r (pending %r)\n  %s"
                      % (st, [o for o in rec.base.pending(st.crash)
                              if st.fate.get(o.pos) != "keep"], "\n  ".join(v)))
        # the mutation check
        undetected, bookkeeping, paired = [], 0, 0
        for f in tr.flushes:
            res = self.mutate(rec, runner, f, seen, points)
            text = res[1]
            if not res[0]:
                bk = self.bookkeeping_only(rec, f)
                if bk:
                    text += " (this one only makes rewrites durable that change no " \
                            "recipient's state)"
                site = [g for g in tr.flushes if self.call_site(tr, g) == self.call_site(tr, f)]
                if len(site) > 1:
                    # masked in this run (by another batch's flush, or it
                    # guards bookkeeping only); deleting the call deletes
                    # every flush it issued
                    res = self.mutate(rec, runner, f, seen, points, also=site)
                    text += "; with all %d flushes of its call (%s) removed: %s" % (
                        len(site), self.call_site(tr, f), res[1])
                    paired += res[0]
                if not res[0] and bk:
                    bookkeeping += 1
                elif not res[0]:
                    undetected.append(f)
            report.append("  without %-45s %-26s %s" % (self.describe(tr, f),
                                                      "[%s]" % self.call_site(tr, f), text))
        report.append("mutation check: %d flushes, %d removals detected (%d only with a "
                      "call's other flushes), %d bookkeeping-only, %d undetected; %d hatod runs in "
                      "all, %.1fs"
                      % (len(tr.flushes), len(tr.flushes) - bookkeeping - len(undetected), paired,
                         bookkeeping, len(undetected), runner.runs, time.time() - t0))
        print("\n# " + "\n# ".join(report))
        self.assertEqual(undetected, [], "flushes whose removal no state detects:\n"
                         + "\n".join(report))

    @staticmethod
    def call_site(tr, f):
        """Which call in the code issued flush f, told from what it flushed:
        the role of the file (queue content, envelope or rewrite, Maildir
        file), the directory, or for a syncfs the file system's way in (the
        queue directory, a Maildir file) and whether the same thread had
        just renamed into queue/env or a new/ (the second flush) or not."""
        if f.ino is None:
            prev = max([g.end for g in tr.flushes if g.call.tid == f.call.tid and g.end < f.start]
                       or [-1])
            after = any(o.kind == "rename" and o.tid == f.call.tid and prev < o.pos < f.start
                        and (o.new.startswith("queue/env/") or "/new/" in o.new)
                        for o in tr.ops)
            where = "queue" if (f.name or "").startswith("queue") else "Maildir"
            return "%s(%s) %s" % (f.call.name, where, "after renames" if after else "before renames")
        name = f.name or "?"
        role = re.sub(r"^mail/[^/]+/[^/]+", "MAILDIR", name)
        role = re.sub(r"/tmp/[^/]+$", "/tmp/FILE", role) if role.startswith("MAILDIR") else role
        role = re.sub(r"queue/(tmp/[0-9A-F]{16}|free/m\d+)$", "queue content", role)
        role = re.sub(r"queue/(tmp/[0-9A-F]{16}\.env|free/e\d+)$", "queue envelope", role)
        role = re.sub(r"queue/tmp/[0-9A-F]{16}\.upd$", "queue rewrite", role)
        role = re.sub(r"^mail/[^/]+$", "mail/DOMAIN", role)
        return "%s %s" % (f.call.name, role)

    @staticmethod
    def rcpt_states(content):
        return sorted(re.findall(rb"^rcpt (\w) (\S+)", content or b"", re.M))

    def bookkeeping_only(self, rec, f):
        """True if flush f only makes envelope rewrites durable that change
        no recipient's state (attempts, next_try, last reason): losing such
        a rewrite retries the message early, and loses or repeats no mail."""
        tr = rec.trace
        mut = crashsim.Persistence(tr, removed={f.num})
        ops = set()
        for c in sorted({o.pos + 1 for o in tr.ops if o.pos > f.end} | {f.end + 1}):
            ops |= {o.pos for o in mut.pending(c) if rec.base.weakest(o, c) != mut.weakest(o, c)}
        by_pos = {o.pos: o for o in tr.ops}
        for pos in ops:
            o = by_pos[pos]
            if not (o.kind == "rename" and o.new.startswith("queue/env/")
                    and o.old.endswith(".upd") and o.replaced is not None):
                return False
            new = next(x[4] for x in tr.renames if x[0] == o.pos)
            if self.rcpt_states(tr.data0.get(o.replaced) or self.content_at(tr, o.replaced, pos)) \
                    != self.rcpt_states(new):
                return False
        return bool(ops)

    @staticmethod
    def content_at(tr, ino, pos):
        """The content inode ino had when it was last renamed before pos."""
        got = None
        for p, old, new, i, content in tr.renames:
            if i == ino and p < pos:
                got = content
        return got

    @staticmethod
    def describe(tr, f):
        if f.ino is None:
            return "%s#%d" % (f.call.name, f.num)
        name = next((r for r, i in tr.ns.items() if i == f.ino), None)
        if name is None:       # gone by the end: the name it had at the flush
            name = "inode %d" % f.ino
            for o in tr.ops:
                if getattr(o, "ino", None) == f.ino and o.kind in ("ent", "rename"):
                    name = o.path if o.kind == "ent" else o.new
                    if o.pos > f.end:
                        break
        name = re.sub(r"[0-9A-F]{16}", "ID", re.sub(r"/\d+\.M[^/]*", "/MSG", name))
        return "%s#%d(%s)" % (f.call.name, f.num, name)

    def mutate(self, rec, runner, f, seen, points, also=None):
        """States with flush f (and also) treated as never issued: the ops
        only f made durable are lost, all together, one alone, cut at half
        or at random, with the other pending ones kept or lost, at each
        crash point where that differs from the real code.  States the model
        flags are run through hatod until one violates an invariant
        (CRASH_FULL=1: all flagged, up to 30, counting the violations).
        Returns (detected, text)."""
        full = bool(os.environ.get("CRASH_FULL"))
        n = {"new": 0, "flagged": 0, "ran": 0, "violated": 0}
        first = None
        for st, tree in self.mutant_states(rec, f, seen, points, also):
            n["new"] += 1
            if not rec.predict(Facts(tree, rec.msgs), st.crash):
                continue
            n["flagged"] += 1
            if n["ran"] >= (30 if full else MUTATION_CONFIRM + n["violated"]):
                continue
            v, _, _ = runner.run(st, tree)
            n["ran"] += 1
            if v:
                n["violated"] += 1
                first = first or v[0][:90]
                if not full:
                    break
        text = "%(new)d new states, %(flagged)d flagged, %(ran)d run, %(violated)d violated" % n
        return bool(first), text + (": " + first if first else ": NOT detected")

    @staticmethod
    def mutant_states(rec, f, seen, points, also):
        tr = rec.trace
        removed = {f.num} | {g.num for g in also or ()}
        mut = crashsim.Persistence(tr, removed=removed)
        rng = random.Random(SEED + f.num)
        fps = set()
        for c in sorted(set(points) | {o.pos + 1 for o in tr.ops if o.pos > f.start}):
            if c <= min([f.end] + [g.end for g in also or ()]):
                continue
            pend = mut.pending(c)
            worst = {o.pos: mut.weakest(o, c) for o in pend}
            newly = [o for o in pend if rec.base.weakest(o, c) != worst[o.pos]]
            if not newly:
                continue
            keep_rest = {o.pos: "keep" for o in pend}
            for o in newly:
                keep_rest[o.pos] = worst[o.pos]
            half = dict(keep_rest)
            for o in newly:
                if o.kind == "write":
                    half[o.pos] = "half"
            cands = [crashsim.State(c, keep_rest, "only-f-lost"),
                     crashsim.State(c, half, "only-f-half"), crashsim.State(c, worst, "lost")]
            for o in newly[:6]:               # one of them lost alone
                alone = {p: "keep" for p in worst}
                alone[o.pos] = worst[o.pos]
                cands.append(crashsim.State(c, alone, "alone%d" % o.pos))
            for i in range(2):
                fate = {o.pos: "keep" for o in pend}
                for o in newly:
                    fate[o.pos] = rng.choice(("keep", worst[o.pos]))
                cands.append(crashsim.State(c, fate, "random%d" % i))
            for st in cands:
                tree = crashsim.replay(tr, st)
                fp = crashsim.fingerprint(tree)
                if fp in seen or fp in fps:
                    continue          # a state the real code may leave too
                fps.add(fp)
                yield st, tree


if __name__ == "__main__":
    unittest.main()
