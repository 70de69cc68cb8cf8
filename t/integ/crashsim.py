"""t/integ/crashsim.py — crash-state simulation from an strace of hatod
(ALICE, OSDI 2014; CrashMonkey, OSDI 2018), for test_crash_states.py.

Owns: the strace command line; parsing its output into operations on a
model file system (inodes with content, directory entries name -> inode,
open file descriptions with offsets); the persistence rules that say which
operations a power loss at a given point may undo; generating crash states
(which unflushed operations survive) and materialising each as a real
directory tree that hatod can recover.

Model (POSIX, as weak as ext4 without a journal, conservative):
- a write or truncate of a file is durable once an fsync/fdatasync of that
  file, or a syncfs, began after the call completed and itself completed;
- a directory entry change (create, mkdir, link, unlink, rename) is durable
  once an fsync of its directory (a rename: of both directories), or a
  syncfs, began after it and completed;
- anything not durable at the crash point may independently survive or be
  lost; a rename is atomic (both of its entries change, or neither); a
  surviving write may also be cut at half its length; data goes to disk a
  page at a time, so a write survives whole if a later write to one of its
  pages survives.
A flush that is still running at the crash point has not happened.
Nothing here knows about mail: the test supplies the invariants.
"""
import hashlib
import os
import re
import stat

STRACE_CALLS = ("open,openat,creat,write,writev,pwrite64,pwritev,pwritev2,ftruncate,truncate,"
                "fallocate,fsync,fdatasync,syncfs,sync,sync_file_range,rename,renameat,renameat2,"
                "link,linkat,unlink,unlinkat,mkdir,mkdirat,rmdir,close,dup,dup2,dup3,fcntl,lseek,"
                "sendto,sendmsg,copy_file_range,sendfile,splice,mmap,close_range")


def strace_argv(trace_path):
    """strace in front of a command: every thread, fd paths (-y) and socket
    addresses (-yy), every string in hex (-xx) and whole (-s)."""
    return ["strace", "-f", "-qq", "-y", "-yy", "-xx", "-s", "16777216", "-o", trace_path,
            "-e", "trace=" + STRACE_CALLS]


class TraceError(Exception):
    pass


# ------------------------------------------------------------ strace text

_ESC = re.compile(rb'\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)')
_SIMPLE = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"v": b"\v", b"f": b"\f",
           b'"': b'"', b"\\": b"\\"}


def unescape(s):
    """strace's C escapes ("\\x41", "\\n", "\\101") -> bytes."""
    def one(m):
        e = m.group(1)
        if e[:1] == b"x":
            return bytes([int(e[1:], 16)])
        if e[:1].isdigit():
            return bytes([int(e, 8) & 0xff])
        return _SIMPLE.get(e, e)
    return _ESC.sub(one, s.encode("latin-1"))


def split_top(s, sep=","):
    """Split at top-level separators: quotes, (), [], {} and the <...> of -y
    annotations nest; '>' inside [...] (the '->' of a TCP pair) does not."""
    out, depth, cur, i, n = [], [], [], 0, len(s)
    while i < n:
        c = s[i]
        if c == '"':
            j = i + 1
            while j < n and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            cur.append(s[i:j + 1])
            i = j + 1
            continue
        if c in "([{" or (c == "<" and (not depth or depth[-1] != "[")):
            depth.append(c)
        elif c in ")]}" or (c == ">" and depth and depth[-1] == "<"):
            if depth:
                depth.pop()
        if c == sep and not depth:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur or out:
        out.append("".join(cur).strip())
    return out


def close_paren(s, start):
    """Index of the ')' closing the '(' at start (quotes and nesting aware)."""
    depth, i, n = 0, start, len(s)
    while i < n:
        c = s[i]
        if c == '"':
            i += 1
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise TraceError("unbalanced: " + s[:200])


def string_arg(a):
    if not a.startswith('"'):
        raise TraceError("not a string: " + a[:80])
    end = a.rfind('"')
    if a[end + 1:].startswith("..."):
        raise TraceError("strace cut a string short (raise -s)")
    return unescape(a[1:end])


_FD = re.compile(r'^(-?\d+|AT_FDCWD)(?:<(.*)>)?$', re.S)


def fd_arg(a):
    """'15</path>' -> (15, b'/path'); 'AT_FDCWD</cwd>' -> ('AT_FDCWD', b'/cwd')."""
    m = _FD.match(a)
    if not m:
        raise TraceError("not an fd: " + a[:80])
    fd = m.group(1)
    ann = unescape(m.group(2)) if m.group(2) is not None else None
    return (fd if fd == "AT_FDCWD" else int(fd)), ann


class Call:
    """One completed system call: name, raw args, return value and its
    annotation, and the trace positions where it began and completed."""

    def __init__(self, tid, name, args, ret, ret_ann, start, end):
        self.tid, self.name, self.args = tid, name, args
        self.ret, self.ret_ann, self.start, self.end = ret, ret_ann, start, end

    def __repr__(self):
        return "Call(%s %s@%d-%d)" % (self.name, self.ret, self.start, self.end)


_LINE = re.compile(r'^(\d+)\s+(?:\d\d:\d\d:\d\d\.\d+\s+)?(.*)$', re.S)
_RESUMED = re.compile(r'^<\.\.\. (\w+) resumed>(.*)$', re.S)
_RET = re.compile(r'^\s*=\s*(-?\d+|\?)(?:<(.*)>)?(?:\s+(\w+)\s*(?:\(.*\))?)?\s*$', re.S)


def read_calls(path):
    """The trace file -> [Call], in completion order.  A call split by
    another thread (<unfinished ...> / <... resumed>) keeps its start."""
    pending, calls = {}, []
    with open(path, encoding="latin-1") as f:
        for pos, line in enumerate(f):
            line = line.rstrip("\n")
            m = _LINE.match(line)
            if not m:
                continue
            tid, rest = int(m.group(1)), m.group(2)
            if rest.startswith("---") or rest.startswith("+++"):
                continue
            start = pos
            if rest.endswith("<unfinished ...>"):
                head = rest[:-len("<unfinished ...>")].rstrip()
                pending[tid] = (head, pos)
                if head.startswith("close("):
                    # the fd is free from here on: another thread's open may
                    # get it and be reported before this close returns
                    calls.append(Call(tid, "close", split_top(head[6:].rstrip(")")), 0,
                                      None, pos, pos))
                continue
            r = _RESUMED.match(rest)
            if r:
                if tid not in pending:
                    continue
                head, start = pending.pop(tid)
                if head.startswith("close("):
                    continue
                rest = head + r.group(2)
                if head.endswith("(") and rest[len(head):].startswith(", "):
                    rest = head + rest[len(head) + 2:]
            p = rest.find("(")
            if p < 0:
                continue
            name = rest[:p]
            q = close_paren(rest, p)
            rm = _RET.match(rest[q + 1:])
            if not rm:
                continue                      # e.g. exit_group's "= ?"
            ret = rm.group(1)
            ret = None if ret == "?" else int(ret)
            ann = unescape(rm.group(2)) if rm.group(2) is not None else None
            calls.append(Call(tid, name, split_top(rest[p + 1:q]), ret, ann, start, pos))
    return calls


# ------------------------------------------------------------ the model

class Op:
    """A mutation of the model: kind is 'ent' (name -> inode; ino None:
    remove), 'rename', 'write', 'trunc', 'mkinode'; dirs: the directory
    inodes whose fsync makes an entry op durable."""

    def __init__(self, pos, kind, **kw):
        self.pos, self.kind, self.tid = pos, kind, None
        self.__dict__.update(kw)

    def is_entry(self):
        return self.kind in ("ent", "rename")

    def __repr__(self):
        d = {k: v for k, v in self.__dict__.items() if k not in ("pos", "kind", "data", "tid")}
        return "Op(%d %s %r)" % (self.pos, self.kind, d)


class Flush:
    """An fsync/fdatasync (ino set) or a syncfs (ino None) that completed."""

    def __init__(self, num, call, ino, what):
        self.num, self.call, self.ino, self.what = num, call, ino, what
        self.start, self.end = call.start, call.end

    def __repr__(self):
        return "Flush#%d(%s %s @%d-%d)" % (self.num, self.call.name, self.what, self.start,
                                           self.end)


class OFD:
    def __init__(self, ino, append):
        self.ino, self.pos, self.append = ino, 0, append


class Trace:
    """Parse calls under root (a state directory) against a snapshot of it.

    snapshot: {relpath: ('dir', mode) | ('file', mode, bytes)} with '' the
    root itself.  Results: ops, flushes, socket_writes [(pos, fd, bytes)],
    paths [rel] -> ino as the run left them, and for each inode its content
    as the run left it."""

    def __init__(self, root, snapshot):
        self.root = os.path.normpath(root)
        self.ops, self.flushes, self.socket_writes = [], [], []
        self.kind, self.mode, self.data0 = {}, {}, {}   # per inode
        self.ns = {}          # live names (rel) -> ino
        self.data = {}        # live content
        self.fds = {}
        self.nino = 0
        self.renames = []     # (pos, old rel, new rel, ino, content at that moment)
        for rel, ent in sorted(snapshot.items()):
            ino = self._new_inode(ent[0], ent[1], ent[2] if ent[0] == "file" else b"")
            self.ns[rel] = ino
        self.ns0 = dict(self.ns)

    def _new_inode(self, kind, mode, data=b""):
        self.nino += 1
        self.kind[self.nino], self.mode[self.nino] = kind, mode
        self.data0[self.nino] = bytes(data)
        self.data[self.nino] = bytearray(data)
        return self.nino

    # -- paths
    def rel(self, path):
        """Absolute path under root -> relative ('' for root); None outside."""
        p = os.path.normpath(path.decode("latin-1") if isinstance(path, bytes) else path)
        if p == self.root:
            return ""
        if p.startswith(self.root + "/"):
            return p[len(self.root) + 1:]
        return None

    def resolve(self, dirfd_raw, name):
        name = name.decode("latin-1")
        if name.startswith("/"):
            return self.rel(name)
        fd, ann = fd_arg(dirfd_raw)
        if ann is None:
            raise TraceError("relative path without a directory: %r" % name)
        return self.rel(os.path.join(ann.decode("latin-1"), name))

    @staticmethod
    def parent(rel):
        return rel.rsplit("/", 1)[0] if "/" in rel else ""

    def dir_ino(self, rel):
        ino = self.ns.get(self.parent(rel))
        if ino is None:
            raise TraceError("no parent directory in the model for %r" % rel)
        return ino

    # -- ops
    def _entry(self, pos, rel, ino):
        self.ops.append(Op(pos, "ent", path=rel, ino=ino, old=self.ns.get(rel),
                           dirs=(self.dir_ino(rel),)))
        if ino is None:
            self.ns.pop(rel, None)
        else:
            self.ns[rel] = ino

    def _write(self, pos, ino, off, data):
        d = self.data[ino]
        if len(d) < off:
            d.extend(b"\0" * (off - len(d)))
        d[off:off + len(data)] = data
        self.ops.append(Op(pos, "write", ino=ino, off=off, data=bytes(data)))

    def _trunc(self, pos, ino, size):
        d = self.data[ino]
        if len(d) > size:
            del d[size:]
        else:
            d.extend(b"\0" * (size - len(d)))
        self.ops.append(Op(pos, "trunc", ino=ino, size=size))

    def _open(self, call, rel, flags):
        ino = self.ns.get(rel)
        if ino is None:
            if "O_CREAT" not in flags:
                raise TraceError("open of %r that the model lacks" % rel)
            ino = self._new_inode("file", 0o600)
            self._entry(call.end, rel, ino)
        elif "O_TRUNC" in flags and self.kind[ino] == "file":
            self._trunc(call.end, ino, 0)
        self.fds[call.ret] = OFD(ino, "O_APPEND" in flags)

    def _rename(self, call, old, new):
        if old is None and new is None:
            return
        if old is None or new is None:
            raise TraceError("rename across the state directory: %r" % call.args)
        ino = self.ns.get(old)
        if ino is None:
            raise TraceError("rename of %r that the model lacks" % old)
        if self.kind[ino] == "dir":
            raise TraceError("directory rename not modelled: %r" % old)
        odir, ndir = self.dir_ino(old), self.dir_ino(new)
        self.ops.append(Op(call.end, "rename", old=old, new=new, ino=ino,
                           replaced=self.ns.get(new), odir=odir, ndir=ndir,
                           dirs=tuple(sorted({odir, ndir}))))
        del self.ns[old]
        self.ns[new] = ino
        self.renames.append((call.end, old, new, ino, bytes(self.data[ino])))

    def _ofd(self, raw):
        """(fd, its open file description or None, is a socket).  An fd
        strace shows under root that the model does not know is an error
        (a lost open or close would hide writes or flushes)."""
        fd, ann = fd_arg(raw)
        if ann is not None and (ann.startswith(b"TCP") or ann.startswith(b"UDP")
                                or ann.startswith(b"UNIX")):
            return fd, None, True
        ofd = self.fds.get(fd)
        if ofd is None and ann is not None and self.rel(ann.split(b" (deleted)")[0]) is not None:
            raise TraceError("fd %d (%r) is not in the model" % (fd, ann))
        return fd, ofd, False

    def _flush(self, call, what):
        fd, ofd, sock = self._ofd(call.args[0])
        if call.ret != 0:
            return
        if what == "fs":
            if ofd is None and self.rel(fd_arg(call.args[0])[1] or b"/") is None:
                return                        # another file system
            ino = None
        else:
            if ofd is None:
                return
            ino = ofd.ino
        fl = Flush(len(self.flushes), call, ino, what if ino is None else self.kind[ino])
        of = ofd.ino if ofd is not None else None     # for a syncfs: the file it went through
        fl.name = next((r for r, i in self.ns.items() if i == of), None) if of else None
        self.flushes.append(fl)

    def feed(self, call):
        nops = len(self.ops)
        self._feed(call)
        for o in self.ops[nops:]:
            o.tid = call.tid

    def _feed(self, call):
        n, a, ok = call.name, call.args, call.ret is not None and call.ret >= 0
        if n in ("open", "openat", "creat"):
            if not ok:
                return
            if n in ("open", "creat"):
                path = string_arg(a[0])
                if not path.startswith(b"/"):
                    raise TraceError("%s of a relative path: %r" % (n, path))
                rel = self.rel(path)
                flags = a[1] if n == "open" else "O_CREAT|O_TRUNC|O_WRONLY"
            else:
                rel, flags = self.resolve(a[0], string_arg(a[1])), a[2]
            if rel is None:
                self.fds.pop(call.ret, None)
                return
            self._open(call, rel, flags)
        elif n == "close":
            self.fds.pop(fd_arg(a[0])[0], None)
        elif n in ("dup", "dup2", "dup3"):
            if ok:
                src = self.fds.get(fd_arg(a[0])[0])
                if src is None:
                    self.fds.pop(call.ret, None)
                else:
                    self.fds[call.ret] = src
        elif n == "fcntl":
            if ok and a[1].startswith("F_DUPFD"):
                src = self.fds.get(fd_arg(a[0])[0])
                if src is not None:
                    self.fds[call.ret] = src
        elif n == "lseek":
            fd, ofd, _ = self._ofd(a[0])
            if ok and ofd is not None:
                ofd.pos = call.ret
        elif n in ("write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg"):
            if not ok:
                return
            fd, ofd, sock = self._ofd(a[0])
            if n in ("write", "sendto", "pwrite64"):
                data = string_arg(a[1])
            else:
                data = b"".join(unescape(x) for x in
                                re.findall(r'iov_base="((?:[^"\\]|\\.)*)"', a[1]))
            data = data[:call.ret]
            if sock:
                self.socket_writes.append((call.end, fd, data))
                return
            if ofd is None:
                return
            if n in ("pwrite64", "pwritev", "pwritev2"):
                off = int(a[-1] if n == "pwrite64" else a[3])
            else:
                off = len(self.data[ofd.ino]) if ofd.append else ofd.pos
                ofd.pos = off + len(data)
            self._write(call.end, ofd.ino, off, data)
        elif n == "ftruncate":
            fd, ofd, _ = self._ofd(a[0])
            if ok and ofd is not None:
                self._trunc(call.end, ofd.ino, int(a[1]))
        elif n == "truncate":
            rel = self.rel(string_arg(a[0]))
            if ok and rel is not None:
                self._trunc(call.end, self.ns[rel], int(a[1]))
        elif n in ("fsync", "fdatasync"):
            self._flush(call, "file")
        elif n == "syncfs":
            self._flush(call, "fs")
        elif n == "sync":
            if ok:
                fl = Flush(len(self.flushes), call, None, "fs")
                fl.name = None
                self.flushes.append(fl)
        elif n in ("rename", "renameat", "renameat2"):
            if not ok:
                return
            if n == "rename":
                old = self.rel(string_arg(a[0]))
                new = self.rel(string_arg(a[1]))
            else:
                old = self.resolve(a[0], string_arg(a[1]))
                new = self.resolve(a[2], string_arg(a[3]))
                if n == "renameat2" and "RENAME_EXCHANGE" in (a[4] if len(a) > 4 else ""):
                    raise TraceError("RENAME_EXCHANGE not modelled")
            self._rename(call, old, new)
        elif n in ("link", "linkat"):
            if not ok:
                return
            if n == "link":
                old, new = self.rel(string_arg(a[0])), self.rel(string_arg(a[1]))
            else:
                old, new = self.resolve(a[0], string_arg(a[1])), self.resolve(a[2], string_arg(a[3]))
            if new is not None:
                self._entry(call.end, new, self.ns[old])
        elif n in ("unlink", "unlinkat", "rmdir"):
            if not ok:
                return
            if n == "unlinkat":
                rel = self.resolve(a[0], string_arg(a[1]))
            else:
                rel = self.rel(string_arg(a[0]))
            if rel is not None and rel in self.ns:
                self._entry(call.end, rel, None)
        elif n in ("mkdir", "mkdirat"):
            if not ok:
                return
            if n == "mkdir":
                rel, mode = self.rel(string_arg(a[0])), int(a[1], 8)
            else:
                rel, mode = self.resolve(a[0], string_arg(a[1])), int(a[2], 8)
            if rel is not None:
                self._entry(call.end, rel, self._new_inode("dir", mode))
        elif n in ("copy_file_range", "sendfile", "splice", "fallocate"):
            out = a[2] if n in ("copy_file_range", "splice") else a[0]   # the fd written
            fd, ofd, _ = self._ofd(out)
            if ok and ofd is not None:
                raise TraceError("%s on a state file is not modelled" % n)
        elif n == "mmap":
            if ok and "PROT_WRITE" in a[2] and "MAP_SHARED" in a[3]:
                fd, ofd, _ = self._ofd(a[4])
                if ofd is not None:
                    raise TraceError("shared writable mmap of a state file is not modelled")
        elif n == "close_range":
            if ok:
                lo, hi = int(a[0]), int(a[1]) if a[1] != "~0U" else 1 << 30
                for fd in [fd for fd in self.fds if lo <= fd <= hi]:
                    del self.fds[fd]

    def feed_all(self, calls):
        for c in calls:
            self.feed(c)
        return self

    def renames_into(self, prefix):
        """[(pos, name, ino, content)] of every rename whose new name is in
        the directory prefix ('queue/env')."""
        out = []
        for pos, old, new, ino, content in self.renames:
            if self.parent(new) == prefix:
                out.append((pos, new.rsplit("/", 1)[1], ino, content))
        return out


# ------------------------------------------------------------ crash states

class Persistence:
    """Which ops are durable at a crash point, with some flushes treated as
    never issued (removed: a set of Flush.num)."""

    def __init__(self, trace, removed=()):
        self.t = trace
        self.flushes = [f for f in trace.flushes if f.num not in set(removed)]

    def _covered(self, op, crash):
        """Inodes fsynced, and whether a syncfs ran, after op and before crash."""
        done = [f for f in self.flushes if f.end < crash and f.start > op.pos]
        return {f.ino for f in done}, any(f.ino is None for f in done)

    def weakest(self, op, crash):
        """None if op (completed before crash) is on disk whatever the power
        loss; else the worst a power loss may leave of it: 'drop' (not done),
        or for a rename with one side flushed, 'link' (the new name is there,
        the old one too) or 'unlink' (the old name is gone, the new one not)."""
        inos, fs = self._covered(op, crash)
        if fs:
            return None
        if op.kind == "rename":
            old_ok, new_ok = op.odir in inos, op.ndir in inos
            if old_ok and new_ok:
                return None
            return "link" if new_ok else "unlink" if old_ok else "drop"
        if op.is_entry():
            return None if all(d in inos for d in op.dirs) else "drop"
        return None if op.ino in inos else "drop"

    def durable(self, op, crash):
        return self.weakest(op, crash) is None

    def pending(self, crash):
        """Ops done before crash that a power loss may still undo."""
        return [o for o in self.t.ops if o.pos < crash and not self.durable(o, crash)]


class State:
    """A crash state: the crash point and the fate of each pending op:
    'keep', 'drop' or 'half' (a write cut at half its length)."""

    def __init__(self, crash, fate, label):
        self.crash, self.fate, self.label = crash, fate, label

    def __repr__(self):
        return "State(%s @%d)" % (self.label, self.crash)


def states_at(pers, crash, n_random, rng, label=""):
    """'everything unflushed lost', 'everything unflushed kept', then
    n_random random choices (data ops may also be cut at half)."""
    pend = [(o, pers.weakest(o, crash)) for o in pers.pending(crash)]
    out = [State(crash, {o.pos: w for o, w in pend}, label + "lost"),
           State(crash, {o.pos: "keep" for o, w in pend}, label + "kept")]
    for i in range(n_random if pend else 0):
        fate = {}
        for o, w in pend:
            if o.is_entry():
                fate[o.pos] = rng.choice(("keep", w))
            else:
                fate[o.pos] = rng.choice(("keep", "drop", "half"))
        out.append(State(crash, fate, label + "random%d" % i))
    return out


PAGE = 4096


def pages(o):
    return range(o.off // PAGE, (o.off + max(len(o.data), 1) - 1) // PAGE + 1)


def page_fates(trace, state):
    """state.fate with page order applied: the kernel writes a file's data a
    page at a time, so a write whose page also holds a later write that
    survives survives whole too (no hole before a surviving append)."""
    fate = dict(state.fate)
    later_kept = set()
    for o in reversed([o for o in trace.ops if o.pos < state.crash and o.kind == "write"]):
        f = fate.get(o.pos, "keep")
        if f != "keep" and any((o.ino, p) in later_kept for p in pages(o)):
            fate[o.pos] = f = "keep"
        if f != "drop":
            later_kept.update((o.ino, p) for p in pages(o))
    return fate


def replay(trace, state):
    """The tree a state leaves: {rel: ('dir', mode) | ('file', mode, bytes)}."""
    ns = dict(trace.ns0)
    data = {ino: bytearray(d) for ino, d in trace.data0.items()}
    fates = page_fates(trace, state)
    for o in trace.ops:
        if o.pos >= state.crash:
            break
        fate = fates.get(o.pos, "keep")
        if fate == "drop":
            continue
        if o.kind == "ent":
            if o.ino is None:
                if o.path in ns:
                    del ns[o.path]
            elif Trace.parent(o.path) in ns:
                ns[o.path] = o.ino
        elif o.kind == "rename":
            if fate != "link" and ns.get(o.old) == o.ino:
                del ns[o.old]
            if fate != "unlink" and Trace.parent(o.new) in ns:
                ns[o.new] = o.ino
        elif o.kind == "write":
            d = data.setdefault(o.ino, bytearray())
            chunk = o.data if fate == "keep" else o.data[:len(o.data) // 2]
            if len(d) < o.off:
                d.extend(b"\0" * (o.off - len(d)))
            d[o.off:o.off + len(chunk)] = chunk
        elif o.kind == "trunc":
            d = data.setdefault(o.ino, bytearray())
            if len(d) > o.size:
                del d[o.size:]
            else:
                d.extend(b"\0" * (o.size - len(d)))
    # names whose directory is gone are unreachable (fsck's lost+found)
    tree = {}
    for rel in sorted(ns, key=lambda r: r.count("/")):
        if rel and Trace.parent(rel) not in tree:
            continue
        ino = ns[rel]
        if trace.kind[ino] == "dir":
            tree[rel] = ("dir", trace.mode[ino])
        else:
            tree[rel] = ("file", trace.mode[ino], bytes(data.get(ino, b"")))
    return tree


def fingerprint(tree):
    h = hashlib.sha256()
    for rel in sorted(tree):
        ent = tree[rel]
        h.update(rel.encode() + b"\0" + ent[0].encode() + b"\0")
        if ent[0] == "file":
            h.update(hashlib.sha256(ent[2]).digest())
    return h.hexdigest()


def snapshot(root):
    """The tree under root as replay() returns it (sockets and the like
    are left out: hatod makes them anew)."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        tree[rel] = ("dir", stat.S_IMODE(os.stat(dirpath).st_mode))
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    tree[os.path.join(rel, fn) if rel else fn] = \
                        ("file", stat.S_IMODE(st.st_mode), f.read())
    return tree


def materialise(tree, root):
    """Write a tree at root (which must not exist)."""
    for rel in sorted(tree, key=lambda r: (r.count("/"), r)):
        ent = tree[rel]
        p = os.path.join(root, rel) if rel else root
        if ent[0] == "dir":
            os.mkdir(p)
        else:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, ent[2])
            finally:
                os.close(fd)
    for rel, ent in tree.items():
        os.chmod(os.path.join(root, rel) if rel else root, ent[1])


def crash_points(trace, acks, extra=(), rng=None, n_sample=0):
    """Crash points: just before and just after each flush completes, right
    after each acknowledgement, and a sample of the other op positions."""
    pts = set()
    for f in trace.flushes:
        pts.add(f.end)
        pts.add(f.end + 1)
    for pos in acks:
        pts.add(pos + 1)
    pts.update(extra)
    others = sorted({o.pos + 1 for o in trace.ops} - pts)
    if rng and n_sample and others:
        pts.update(rng.sample(others, min(n_sample, len(others))))
    return sorted(pts)
