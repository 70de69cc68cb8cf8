"""hatoctl user|alias|queue|reload and newaliases against a running hatod."""
import json
import os
import subprocess
import warnings

from harness import HATOCTL as HATOCTL_BIN, wait_for
from test_tools_util import EX_CONFIG, EX_NOPERM, MAILQ_ENTRY_RE, MAILQ_HEAD, ToolsCase

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402  (deprecated, still the way to check a $y$ hash)

USERS = ["# users of the test domains",
         "bob@example.test *",
         "",
         "# alice has a quota",
         "alice@example.test * quota=1M",
         "carol@other.test *"]
ALIASES = ["# standard aliases", "postmaster: bob", "", "info: bob,", "  alice"]


def read(path):
    with open(path) as f:
        return f.read()


class Users(ToolsCase):
    USERS = USERS

    def test_add_accepts_at_rcpt_without_restart(self):
        pid = self.h.proc.pid
        self.assertEqual(self.rcpt_code("dave@example.test"), 550)
        ino = os.stat(self.h.users_path).st_ino
        r = self.hatoctl("user", "add", "Dave@Example.Test")
        self.assertRun(r)
        self.assertEqual(r.stderr, b"")
        text = read(self.h.users_path)
        self.assertEqual(text, "\n".join(USERS) + "\ndave@example.test *\n")
        self.assertNotEqual(os.stat(self.h.users_path).st_ino, ino, "not replaced by rename")
        self.assertEqual([n for n in os.listdir(self.h.dir) if n.startswith("users")],
                         ["users"], "temporary file left behind")
        self.assertEqual(self.rcpt_code("dave@example.test"), 250)
        self.assertEqual(self.h.proc.pid, pid)
        self.assertRun(self.sendmail("dave@example.test"))
        self.mail_for("dave@example.test")

    def test_del_gives_550(self):
        self.assertEqual(self.rcpt_code("carol@other.test"), 250)
        r = self.hatoctl("user", "del", "carol@other.test")
        self.assertRun(r)
        self.assertEqual(read(self.h.users_path), "\n".join(USERS[:-1]) + "\n")
        self.assertEqual(self.rcpt_code("carol@other.test"), 550)
        r = self.hatoctl("user", "del", "carol@other.test")
        self.assertRun(r, 1)
        self.assertIn(b"no such user", r.stderr)

    def test_quota(self):
        self.assertRun(self.hatoctl("user", "add", "q1@example.test", "--quota", "5M"))
        self.assertRun(self.hatoctl("user", "add", "--quota=512K", "q2@other.test"))
        self.assertRun(self.hatoctl("user", "add", "q3@example.test", "--quota", "1000"))
        text = read(self.h.users_path)
        self.assertIn("\nq1@example.test * quota=5M\n", text)
        self.assertIn("\nq2@other.test * quota=512K\n", text)
        self.assertIn("\nq3@example.test * quota=1000\n", text)
        r = self.hatoctl("user", "add", "q4@example.test", "--quota", "lots")
        self.assertRun(r, 1)
        self.assertNotIn("q4@", read(self.h.users_path))
        r = self.hatoctl("user", "list")
        self.assertRun(r)
        self.assertEqual(r.stdout.decode().splitlines(), [
            "bob@example.test unlimited", "alice@example.test 1M", "carol@other.test unlimited",
            "q1@example.test 5M", "q2@other.test 512K", "q3@example.test 1000"])

    def test_password_is_hashed(self):
        r = self.hatoctl("user", "add", "pw@example.test", "--password", input=b"s3cret pass\n")
        self.assertRun(r)
        line = [l for l in read(self.h.users_path).splitlines() if l.startswith("pw@")][0]
        addr, h = line.split()
        self.assertTrue(h.startswith("$y$"), line)
        self.assertNotIn("s3cret", line)
        self.assertEqual(crypt.crypt("s3cret pass", h), h)
        r = self.hatoctl("user", "add", "pw2@example.test", "--password", input=b"")
        self.assertRun(r, 1)
        self.assertNotIn("pw2@", read(self.h.users_path))

    def test_duplicate_and_foreign_domain_fail(self):
        before = read(self.h.users_path)
        for args in (("bob@example.test",), ("BOB@example.test",),
                     ("x@elsewhere.test",), ("not an address",), ('"q x"@example.test',)):
            r = self.hatoctl("user", "add", *args)
            self.assertRun(r, 1, args)
            self.assertTrue(r.stderr.startswith(b"hatoctl: "), r.stderr)
        self.assertIn(b"not in local_domains",
                      self.hatoctl("user", "add", "x@elsewhere.test").stderr)
        self.assertIn(b"already exists", self.hatoctl("user", "add", "bob@example.test").stderr)
        self.assertEqual(read(self.h.users_path), before)

    def test_usage_errors(self):
        for args in ((), ("user",), ("user", "add"), ("user", "frob"), ("user", "list", "x"),
                     ("user", "add", "a@example.test", "--bogus"), ("queue", "list", "--xml")):
            r = self.hatoctl(*args)
            self.assertRun(r, 2, args)
            self.assertIn(b"usage:", r.stderr)

    def test_edit_while_stopped_counts(self):
        self.h.stop()
        r = self.hatoctl("user", "add", "late@example.test")
        self.assertRun(r)
        self.assertIn(b"not running", r.stderr)
        self.restart()
        self.assertEqual(self.rcpt_code("late@example.test"), 250)

    def test_nobody_cannot_edit_or_reload(self):
        self.open_up()
        before = read(self.h.users_path)
        r = self.hatoctl("user", "add", "evil@example.test", nobody=True)
        self.assertRun(r, 1)
        self.assertEqual(read(self.h.users_path), before)
        r = self.hatoctl("reload", nobody=True)
        self.assertRun(r, 1)
        self.assertIn(b"permission denied", r.stderr)


class Aliases(ToolsCase):
    ALIASES = ALIASES

    def test_add_delivers_to_targets_without_restart(self):
        self.assertEqual(self.rcpt_code("sales@example.test"), 550)
        r = self.hatoctl("alias", "add", "Sales", "bob,", "carol@other.test")
        self.assertRun(r)
        self.assertEqual(read(self.h.aliases_path),
                         "\n".join(ALIASES) + "\nsales: bob, carol@other.test\n")
        self.assertRun(self.sendmail("sales@example.test", input=b"Subject: sales\n\nx\n"))
        self.mail_for("bob@example.test", "sales")
        self.mail_for("carol@other.test", "sales")

    def test_add_replaces_and_del_gives_550(self):
        self.assertRun(self.hatoctl("alias", "add", "info", "carol@other.test"))
        text = read(self.h.aliases_path)
        self.assertIn("\ninfo: carol@other.test\n", text)
        self.assertNotIn("bob, alice", text)
        self.assertIn("# standard aliases\n", text)
        self.assertRun(self.sendmail("info@example.test", input=b"Subject: info\n\nx\n"))
        self.mail_for("carol@other.test", "info")
        self.no_mail("alice@example.test", 0.2)
        self.assertRun(self.hatoctl("alias", "del", "info"))
        self.assertEqual(self.rcpt_code("info@example.test"), 550)
        self.assertEqual(read(self.h.aliases_path),
                         "# standard aliases\npostmaster: bob\n\n")
        r = self.hatoctl("alias", "del", "info")
        self.assertRun(r, 1)

    def test_domain_alias(self):
        self.assertRun(self.hatoctl("alias", "add", "help@other.test", "carol"))
        self.assertEqual(self.rcpt_code("help@other.test"), 250)
        self.assertEqual(self.rcpt_code("help@example.test"), 550)
        r = self.hatoctl("alias", "add", "help@elsewhere.test", "alice")
        self.assertRun(r, 1)
        self.assertIn(b"not in local_domains", r.stderr)

    def test_bad_targets_refused(self):
        before = read(self.h.aliases_path)
        for args in (("x", "|/bin/sh"), ("x", "/tmp/file"), ("x", ":include:/etc/list"),
                     ("x", ","), ("#x", "bob"), ("x:y", "bob")):
            r = self.hatoctl("alias", "add", *args)
            self.assertRun(r, 1, args)
        self.assertEqual(read(self.h.aliases_path), before)

    def test_list_format(self):
        self.assertRun(self.hatoctl("alias", "add", "team", "bob", "alice", "carol@other.test"))
        r = self.hatoctl("alias", "list")
        self.assertRun(r)
        self.assertEqual(r.stdout.decode(), "postmaster: bob\ninfo: bob, alice\n"
                                            "team: bob, alice, carol@other.test\n")


class NewAliases(ToolsCase):
    ALIASES = ALIASES

    def test_broken_file_keeps_old_table(self):
        with open(self.h.aliases_path, "a") as f:
            f.write("sales: bob\nthis line has no colon\n")
        r = self.tool([self.link("newaliases")])
        self.assertRun(r, EX_CONFIG)
        self.assertIn(("%s:7:" % self.h.aliases_path).encode(), r.stderr)
        # hatod was not asked to reload; and a reload would be refused
        self.assertEqual(self.rcpt_code("sales@example.test"), 550)
        r = self.hatoctl("reload")
        self.assertRun(r, 1)
        self.assertIn(b":7:", r.stderr)
        self.assertEqual(self.rcpt_code("sales@example.test"), 550)
        self.assertRun(self.sendmail("info@example.test", input=b"Subject: old\n\nx\n"))
        self.mail_for("alice@example.test", "old")
        # fixed: newaliases checks and reloads
        with open(self.h.aliases_path, "w") as f:
            f.write("\n".join(ALIASES) + "\nsales: carol@other.test\n")
        r = self.tool([self.link("newaliases")])
        self.assertRun(r)
        self.assertEqual(self.rcpt_code("sales@example.test"), 250)
        r = self.sendmail("-bi", input=b"")
        self.assertRun(r)

    def test_newaliases_while_stopped(self):
        self.h.stop()
        r = self.tool([self.link("newaliases")])
        self.assertRun(r)
        self.assertIn(b"not running", r.stderr)

    def test_newaliases_as_nobody_is_refused(self):
        self.open_up()
        r = self.tool([self.link("newaliases")], nobody=True)
        self.assertRun(r, EX_NOPERM)


class Queue(ToolsCase):
    CONF = {"defer_transports": "local", "minimal_backoff_time": "1h",
            "maximal_backoff_time": "2h"}

    def fill(self):
        self.assertRun(self.sendmail("-f", "a@example.test", "far@remote.test", "bob",
                                     input=b"Subject: one\n\nx\n"))
        self.assertRun(self.sendmail("-f", "", "alice@example.test",
                                     input=b"Subject: two\n\nx\n"))
        self.assertTrue(wait_for(lambda: self.h.log().count("status=deferred") >= 3),
                        self.h.log())
        return self.h.queue_ids()

    def check_json(self, out, ids):
        lines = out.decode().splitlines()
        objs = [json.loads(l) for l in lines]
        self.assertEqual([o["queue_id"] for o in objs], ids)
        by_id = {o["queue_id"]: o for o in objs}
        one, two = by_id[ids[0]], by_id[ids[1]]
        self.assertEqual(one["sender"], "a@example.test")
        self.assertEqual(sorted(r["address"] for r in one["recipients"]),
                         ["bob@example.test", "far@remote.test"])
        reasons = {r["address"]: r["delay_reason"] for r in one["recipients"]}
        self.assertEqual(reasons["far@remote.test"], "remote delivery off in this test")
        self.assertEqual(reasons["bob@example.test"], "deferred transport")
        self.assertEqual(two["sender"], "")
        self.assertEqual(two["recipients"][0]["address"], "alice@example.test")
        for o in objs:
            self.assertIn(o["queue_name"], ("active", "deferred", "hold"))
            self.assertIsInstance(o["arrival_time"], int)
            self.assertGreater(o["message_size"], 0)

    def test_list_text_and_json_running_and_stopped(self):
        ids = self.fill()
        self.assertEqual(len(ids), 2)
        text = self.hatoctl("queue", "list")
        self.assertRun(text)
        lines = text.stdout.decode().split("\n")
        self.assertEqual(lines[0], MAILQ_HEAD)
        entries = [MAILQ_ENTRY_RE.match(l) for l in lines]
        self.assertEqual([m.group(1) for m in entries if m], ids, lines)
        self.assertEqual([m.group(4) for m in entries if m], ["a@example.test", "MAILER-DAEMON"])
        self.assertEqual(lines[-2], "-- 1 Kbytes in 2 Requests.")
        js = self.hatoctl("queue", "list", "--json")
        self.assertRun(js)
        self.check_json(js.stdout, ids)
        mq = self.sendmail("-bp", input=b"")
        self.assertEqual(mq.stdout, text.stdout)
        self.h.stop()
        off = self.hatoctl("queue", "list")
        self.assertRun(off)
        self.assertEqual(off.stdout, text.stdout)
        offjs = self.hatoctl("queue", "list", "--json")
        self.assertRun(offjs)
        self.check_json(offjs.stdout, ids)

    def test_offline_skips_a_torn_envelope(self):
        ids = self.fill()
        self.h.stop()
        bad = "%016X" % (int(ids[-1], 16) + 1)
        with open(os.path.join(self.h.state, "queue", "env", bad), "w") as f:
            f.write("garbage\n")
        r = self.hatoctl("queue", "list")
        self.assertRun(r)
        self.assertIn(b"warning: ", r.stderr)
        self.assertIn(bad.encode(), r.stderr)
        self.assertEqual([m.group(1) for m in map(MAILQ_ENTRY_RE.match,
                                                  r.stdout.decode().split("\n")) if m], ids)

    def test_json_empty(self):
        r = self.hatoctl("queue", "list", "--json")
        self.assertRun(r)
        self.assertEqual(r.stdout, b"")

    def test_flush(self):
        self.fill()
        self.no_mail("bob@example.test", 0.2)
        r = self.hatoctl("queue", "flush")
        self.assertRun(r)
        self.mail_for("bob@example.test", "one")
        self.mail_for("alice@example.test", "two")
        # the remote recipient stays
        self.assertTrue(wait_for(lambda: len(self.h.queue_ids()) == 1), self.h.queue_ids())
        out = self.hatoctl("queue", "list").stdout.decode()
        self.assertIn("far@remote.test", out)
        self.assertNotIn("bob@example.test", out)

    def test_flush_and_reload_when_stopped_fail(self):
        self.h.stop()
        for args in (("queue", "flush"), ("reload",)):
            r = self.hatoctl(*args)
            self.assertRun(r, 1, args)
            self.assertIn(b"not running", r.stderr)


class Reload(ToolsCase):
    def test_config_from_env_or_f(self):
        r = self.tool([HATOCTL_BIN, "user", "list"])            # HATO_CONFIG
        self.assertRun(r)
        self.assertIn(b"bob@example.test unlimited\n", r.stdout)
        r = self.tool([HATOCTL_BIN, "-f", "/nonexistent.conf", "user", "list"])
        self.assertRun(r, 1)
        self.assertIn(b"/nonexistent.conf", r.stderr)
        r = self.tool([HATOCTL_BIN, "-f" + self.h.conf_path, "reload"],
                      env={"HATO_CONFIG": "/nonexistent.conf"})
        self.assertRun(r)


    def test_reload_picks_up_edited_files(self):
        with open(self.h.users_path, "a") as f:
            f.write("erin@example.test *\n")
        with open(self.h.aliases_path, "a") as f:
            f.write("ops: erin\n")
        self.assertEqual(self.rcpt_code("ops@example.test"), 550)
        r = self.hatoctl("reload")
        self.assertRun(r)
        self.assertEqual(r.stdout + r.stderr, b"")
        self.assertEqual(self.rcpt_code("ops@example.test"), 250)
        self.assertRun(self.sendmail("ops@example.test", input=b"Subject: ops\n\nx\n"))
        self.mail_for("erin@example.test", "ops")

    def test_bad_users_file_refused_old_table_kept(self):
        with open(self.h.users_path, "a") as f:
            f.write("erin@example.test\n")
        r = self.hatoctl("reload")
        self.assertRun(r, 1)
        self.assertIn(b"users", r.stderr)
        self.assertEqual(self.rcpt_code("bob@example.test"), 250)
        self.assertEqual(self.rcpt_code("erin@example.test"), 550)


class Concurrent(ToolsCase):
    def test_parallel_edits_are_not_lost(self):
        n = 12
        cmds = [["user", "add", "u%d@example.test" % i] for i in range(n)]
        cmds += [["alias", "add", "a%d" % i, "bob"] for i in range(n)]
        procs = [subprocess.Popen([HATOCTL_BIN, "-f", self.h.conf_path] + c,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for c in cmds]
        for p, c in zip(procs, cmds):
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, (c, err))
        users = read(self.h.users_path).splitlines()
        aliases = read(self.h.aliases_path).splitlines()
        self.assertEqual(sorted(l for l in users if l.startswith("u")),
                         sorted("u%d@example.test *" % i for i in range(n)))
        self.assertEqual(sorted(l for l in aliases if l.startswith("a")),
                         sorted(["a%d: bob" % i for i in range(n)]))
        self.assertEqual(self.rcpt_code("u%d@example.test" % (n - 1)), 250)
        self.assertEqual(self.rcpt_code("a%d@other.test" % (n - 1)), 550)  # bob@other.test: no
        self.assertEqual(self.rcpt_code("a%d@example.test" % (n - 1)), 250)
