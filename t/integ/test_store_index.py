"""Mailbox store index (store/index.c): mail delivered by hatod appears in
the folder's hato.index with UIDs 1..N, one per file in new/, with the size
and header end of the file; a restart keeps the UIDs.  The index is read
here by an independent parser of the format documented atop store/index.c."""
import json
import os
import smtplib
import struct
import zlib

from harness import HatodTestCase, wait_for

HDR = 32
FIXED = 68


def parse_index(path):
    """(uidvalidity, uidnext, {uid: (name, size, hdr_end)}) of an index."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"HATOIX01", data[:8]
    assert struct.unpack_from("<I", data, 28)[0] == zlib.crc32(data[:28])
    validity, uidnext, nsnap = struct.unpack_from("<III", data, 8)
    msgs = {}
    off = HDR
    while off < len(data):
        (ln,) = struct.unpack_from("<I", data, off)
        rec = data[off:off + ln]
        assert len(rec) == ln and struct.unpack_from("<I", rec, ln - 4)[0] == ln
        assert struct.unpack_from("<I", rec, ln - 8)[0] == zlib.crc32(rec[:ln - 8])
        typ = rec[4]
        uid, after = struct.unpack_from("<II", rec, 8)
        size, date, hdr_end = struct.unpack_from("<qqq", rec, 40)
        (nl,) = struct.unpack_from("<H", rec, 64)
        name = rec[FIXED:FIXED + nl].decode()
        if typ == 1:
            assert uid not in msgs, "UID %d twice" % uid
            assert name not in [m[0] for m in msgs.values()], "%s twice" % name
            msgs[uid] = (name, size, hdr_end)
        elif typ == 3:
            msgs.pop(uid, None)
        uidnext = max(uidnext, after)
        off += ln
    return validity, uidnext, msgs


class StoreIndex(HatodTestCase):
    N = 12

    def folder(self):
        return os.path.join(self.h.state, "mail", "example.test", "bob")

    def send(self, n, tag):
        for i in range(n):
            with smtplib.SMTP("127.0.0.1", self.h.port) as s:
                s.sendmail("a@remote.test", ["bob@example.test"],
                           b"Subject: %s %d\r\nX-A: b\r\n\r\nbody %d\r\n" % (tag, i, i))

    def check(self, count):
        path = os.path.join(self.folder(), "hato.index")
        self.assertTrue(wait_for(lambda: os.path.exists(path)
                                 and len(parse_index(path)[2]) == count, 10), self.h.log())
        validity, uidnext, msgs = parse_index(path)
        self.assertEqual(sorted(msgs), list(range(1, count + 1)))
        self.assertEqual(uidnext, count + 1)
        files = sorted(os.listdir(os.path.join(self.folder(), "new")))
        self.assertEqual(sorted(m[0] for m in msgs.values()), files)
        for uid, (name, size, hdr_end) in msgs.items():
            data = self.h.read_mail(os.path.join(self.folder(), "new", name))
            self.assertEqual(size, len(data))
            self.assertEqual(data[hdr_end - 4:hdr_end], b"\r\n\r\n")
            self.assertTrue(data[hdr_end:].startswith(b"body "))
        return validity, msgs

    def test_delivered_mail_gets_uids_1_to_n(self):
        self.send(self.N, b"first")
        self.assertTrue(self.h.wait_mail("bob@example.test", self.N), self.h.log())
        validity, msgs = self.check(self.N)
        # a restart keeps every UID; new mail continues after them
        self.h.stop()
        self.h.start()
        self.send(3, b"second")
        self.assertTrue(self.h.wait_mail("bob@example.test", self.N + 3), self.h.log())
        validity2, msgs2 = self.check(self.N + 3)
        self.assertEqual(validity, validity2)
        for uid, m in msgs.items():
            self.assertEqual(msgs2[uid], m)


class DefaultQuota(HatodTestCase):
    """default_quota applies to users without quota= (carol keeps her 20K)."""
    CONF = {"default_quota": "1K"}
    USERS = ["bob@example.test *", "alice@example.test * quota=100K",
             "carol@other.test * quota=20K"]

    def test_default_quota(self):
        big = b"Subject: big\r\n\r\n" + b"x" * 2048 + b"\r\n"
        with smtplib.SMTP("127.0.0.1", self.h.port) as s:
            s.sendmail("a@remote.test", ["alice@example.test"], big)
            s.sendmail("a@remote.test", ["bob@example.test"], big)
            s.sendmail("a@remote.test", ["carol@other.test"], big)
        self.assertTrue(self.h.wait_mail("alice@example.test"), self.h.log())
        self.assertTrue(self.h.wait_mail("carol@other.test"), self.h.log())
        self.assertTrue(wait_for(lambda: "to=<bob@example.test>" in self.h.log()
                                 and "mailbox full" in self.h.log(), 10), self.h.log())
        self.assertEqual(self.h.maildir("bob@example.test"), [])


class QuotaShow(HatodTestCase):
    """hatoctl quota show: usage from maildirsize (or the files), the limit
    from quota= or default_quota, a table or JSON, sorted by usage."""
    CONF = {"default_quota": "10K"}
    USERS = ["bob@example.test *", "alice@example.test * quota=100K",
             "carol@other.test * quota=20K"]

    def test_quota_show(self):
        with smtplib.SMTP("127.0.0.1", self.h.port) as s:
            s.sendmail("a@remote.test", ["alice@example.test"],
                       b"Subject: q\r\n\r\n" + b"x" * 3000 + b"\r\n")
        self.assertTrue(self.h.wait_mail("alice@example.test"), self.h.log())
        size = len(self.h.read_mail(self.h.maildir("alice@example.test")[0]))
        r = self.h.hatoctl("quota", "show", "--all", "--sort", "usage", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(r.stdout)
        self.assertEqual(rows[0], {"user": "alice@example.test", "usage": size,
                                   "limit": 102400, "percent": round(100 * size / 102400, 1)})
        bob = next(x for x in rows if x["user"] == "bob@example.test")
        self.assertEqual((bob["usage"], bob["limit"]), (0, 10240))   # default_quota
        r = self.h.hatoctl("quota", "show", "carol@other.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(lines[0].split(), ["user", "usage", "limit", "percent"])
        self.assertEqual(lines[1].split(), ["carol@other.test", "0", "20K", "0.0%"])
        r = self.h.hatoctl("quota", "show", "nobody@example.test")
        self.assertNotEqual(r.returncode, 0)
        r = self.h.hatoctl("quota", "show", "--bogus")
        self.assertEqual(r.returncode, 2)

    def test_quota_set(self):
        def limit(addr):
            r = self.h.hatoctl("quota", "show", addr, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)[0]["limit"]

        def line(addr):
            with open(self.h.users_path) as f:
                return next(x for x in f.read().splitlines() if x.startswith(addr + " "))

        self.assertEqual(limit("bob@example.test"), 10240)
        r = self.h.hatoctl("quota", "set", "Bob@example.test", "1M")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(line("bob@example.test"), "bob@example.test * quota=1M")
        self.assertEqual(limit("bob@example.test"), 1048576)
        r = self.h.hatoctl("quota", "set", "bob@example.test", "unlimited")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(line("bob@example.test"), "bob@example.test * quota=unlimited")
        self.assertIsNone(limit("bob@example.test"))        # despite default_quota
        # hatod reloaded: 12 KiB over default_quota is delivered now
        self.assertTrue(wait_for(lambda: "reload" in self.h.log().lower(), 5), self.h.log())
        with smtplib.SMTP("127.0.0.1", self.h.port) as s:
            s.sendmail("a@remote.test", ["bob@example.test"],
                       b"Subject: big\r\n\r\n" + b"x" * 12288 + b"\r\n")
        self.assertTrue(self.h.wait_mail("bob@example.test"), self.h.log())
        r = self.h.hatoctl("quota", "set", "bob@example.test", "default")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(line("bob@example.test"), "bob@example.test *")
        self.assertEqual(limit("bob@example.test"), 10240)
        self.assertEqual(line("alice@example.test"), "alice@example.test * quota=100K")
        for bad in (["nobody@example.test", "1M"], ["bob@example.test", "lots"],
                    ["bob@example.test", "0"]):
            r = self.h.hatoctl("quota", "set", *bad)
            self.assertEqual(r.returncode, 1, bad)
        self.assertEqual(line("bob@example.test"), "bob@example.test *")

    def test_quota_set_bulk(self):
        """--all SIZE and --from-file FILE ("address size" lines): every line
        checked before any change (a bad one changes nothing, exit 1), then
        one edit and one reload; a usage error exits 2."""
        def users():
            with open(self.h.users_path) as f:
                return f.read()

        r = self.h.hatoctl("quota", "set", "--all", "5M")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(users(), "bob@example.test * quota=5M\nalice@example.test * quota=5M\n"
                                  "carol@other.test * quota=5M\n")
        lst = os.path.join(self.h.dir, "quotas")
        with open(lst, "w") as f:
            f.write("# from the old panel\nBOB@example.test 1G\n\n"
                    "carol@other.test\tunlimited\nalice@example.test default  # trailing\n")
        r = self.h.hatoctl("quota", "set", "--from-file", lst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(users(), "bob@example.test * quota=1G\nalice@example.test *\n"
                                  "carol@other.test * quota=unlimited\n")
        before = users()
        for text, why in (("bob@example.test 2M\nnobody@example.test 1M\n", "no such user"),
                          ("bob@example.test 2M\ncarol@other.test lots\n", "bad quota"),
                          ("bob@example.test 2M\nbob@example.test 3M\n", "given twice"),
                          ("bob@example.test\n", "want")):
            with open(lst, "w") as f:
                f.write(text)
            r = self.h.hatoctl("quota", "set", "--from-file", lst)
            self.assertEqual(r.returncode, 1, text)
            self.assertIn(why, r.stderr.decode())
            self.assertIn(lst + ":", r.stderr.decode())
            self.assertEqual(users(), before, text)           # nothing changed
        r = self.h.hatoctl("quota", "set", "--from-file", lst + ".missing")
        self.assertEqual(r.returncode, 1)
        r = self.h.hatoctl("quota", "set", "--all", "0")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(users(), before)
        for bad in (["--all"], ["--bogus", "1M"], ["--from-file"]):
            self.assertEqual(self.h.hatoctl("quota", "set", *bad).returncode, 2, bad)
