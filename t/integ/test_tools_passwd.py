"""hatoctl user passwd [--with-cram] [--with-scram] [--password-stdin] and
user add --password-stdin: the hash and the secrets written beside it,
checked here the way a client would use them (crypt for the hash, RFC 5802
for the SCRAM keys), other fields and lines kept, hatod reloaded."""
import base64
import hashlib
import hmac
import os
import re
import warnings

from test_tools_util import ToolsCase

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402

USERS = ["# users", "bob@example.test *", "alice@example.test * quota=1M", "carol@other.test *"]


def read(path):
    with open(path) as f:
        return f.read()


def line_of(path, addr):
    return [l for l in read(path).splitlines() if l.startswith(addr + " ")][0]


def scram_ok(field, password):
    """The scram-sha-256= value is ITER:SALT:StoredKey:ServerKey of password."""
    it, salt, stored, server = field.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(it))
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    skey = hmac.new(salted, b"Server Key", "sha256").digest()
    return (int(it) >= 4096 and len(base64.b64decode(salt)) >= 8
            and base64.b64decode(stored) == hashlib.sha256(ckey).digest()
            and base64.b64decode(server) == skey)


def fields(line):
    parts = line.split()
    return parts[0], parts[1], dict(p.split("=", 1) for p in parts[2:])


class Passwd(ToolsCase):
    USERS = USERS

    def passwd(self, addr, pw, *flags):
        return self.hatoctl("user", "passwd", addr, "--password-stdin", *flags,
                            input=pw.encode() + b"\n")

    def test_passwd_sets_hash_and_reloads(self):
        pid = self.h.proc.pid
        r = self.passwd("Bob@Example.Test", "new pass")
        self.assertRun(r)
        self.assertEqual(r.stderr, b"", "no warning, reload answered")
        addr, h, opts = fields(line_of(self.h.users_path, "bob@example.test"))
        self.assertTrue(h.startswith("$y$"), h)
        self.assertEqual(crypt.crypt("new pass", h), h)
        self.assertEqual(opts, {})
        text = read(self.h.users_path).splitlines()
        self.assertEqual([l for l in text if not l.startswith("bob@")],
                         [l for l in USERS if not l.startswith("bob@")], "other lines kept")
        self.assertEqual(self.h.proc.pid, pid)
        self.assertEqual(self.rcpt_code("bob@example.test"), 250)

    def test_with_secrets_kept_fields_and_dropped_on_change(self):
        r = self.passwd("alice@example.test", "pencil", "--with-cram", "--with-scram")
        self.assertRun(r)
        self.assertEqual(r.stderr, b"", "hatod reloaded the file with both secrets")
        _, h, opts = fields(line_of(self.h.users_path, "alice@example.test"))
        self.assertEqual(crypt.crypt("pencil", h), h)
        self.assertEqual(opts["quota"], "1M", "quota kept")
        self.assertRegex(opts["cram-md5"], r"^[0-9a-f]{64}$")
        self.assertTrue(scram_ok(opts["scram-sha-256"], "pencil"), opts["scram-sha-256"])
        self.assertFalse(scram_ok(opts["scram-sha-256"], "pencil2"))
        self.assertNotIn("pencil", read(self.h.users_path))
        cram1 = opts["cram-md5"]
        scram1 = opts["scram-sha-256"]

        # the same password again: CRAM states are unsalted (equal), SCRAM salted (new)
        self.assertRun(self.passwd("alice@example.test", "pencil", "--with-cram", "--with-scram"))
        _, _, opts = fields(line_of(self.h.users_path, "alice@example.test"))
        self.assertEqual(opts["cram-md5"], cram1)
        self.assertNotEqual(opts["scram-sha-256"], scram1)
        self.assertTrue(scram_ok(opts["scram-sha-256"], "pencil"))
        self.assertRun(self.passwd("alice@example.test", "other", "--with-cram"))
        _, _, opts = fields(line_of(self.h.users_path, "alice@example.test"))
        self.assertNotEqual(opts["cram-md5"], cram1)
        self.assertNotIn("scram-sha-256", opts, "old SCRAM secret dropped with the old password")

        # a password change without --with-*: both secrets gone, quota stays
        self.assertRun(self.passwd("alice@example.test", "third"))
        _, _, opts = fields(line_of(self.h.users_path, "alice@example.test"))
        self.assertEqual(opts, {"quota": "1M"})
        self.assertEqual(self.rcpt_code("alice@example.test"), 250)

    def test_add_with_password_stdin_and_secrets(self):
        r = self.hatoctl("user", "add", "dave@example.test", "--password-stdin", "--with-scram",
                         "--quota", "5M", input=b"s3cret\n")
        self.assertRun(r)
        self.assertEqual(r.stderr, b"")
        _, h, opts = fields(line_of(self.h.users_path, "dave@example.test"))
        self.assertEqual(crypt.crypt("s3cret", h), h)
        self.assertEqual(opts["quota"], "5M")
        self.assertTrue(scram_ok(opts["scram-sha-256"], "s3cret"))
        self.assertEqual(self.rcpt_code("dave@example.test"), 250)

    def test_failures_leave_the_file_alone(self):
        before = read(self.h.users_path)
        r = self.passwd("nobody@example.test", "x")
        self.assertRun(r, 1)
        self.assertIn(b"no such user", r.stderr)
        r = self.passwd("bob@elsewhere.test", "x")
        self.assertRun(r, 1)
        self.assertIn(b"not in local_domains", r.stderr)
        r = self.hatoctl("user", "passwd", "bob@example.test", "--password-stdin", input=b"\n")
        self.assertRun(r, 1)
        self.assertIn(b"empty password", r.stderr)
        r = self.hatoctl("user", "passwd", "bob@example.test", "--password-stdin", input=b"")
        self.assertRun(r, 1)
        self.assertEqual(read(self.h.users_path), before)

    def test_usage(self):
        for args in (("user", "passwd"), ("user", "passwd", "a@example.test", "b@example.test"),
                     ("user", "passwd", "bob@example.test", "--bogus"),
                     ("user", "add", "x@example.test", "--with-cram")):
            r = self.hatoctl(*args, input=b"pw\n")
            self.assertRun(r, 2, args)
            self.assertIn(b"usage:", r.stderr)
