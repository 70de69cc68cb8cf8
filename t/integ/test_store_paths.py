"""Mailbox paths from hostile addresses (issue 9 "Mailbox store": paths
only from validated local parts and domains — no '/', no '..', no leading
'.', whatever the address syntax allows).  Quoted local parts may hold '/'
and '.' runs, users_file may hold such names, '%' and UTF-8 are plain
characters: each either reaches a mailbox directly under mail/DOMAIN/ or
is "user unknown", and nothing is ever made outside mail/DOMAIN/LOCAL/."""
import os

from harness import HatodTestCase, RawSMTP, wait_for


HOSTILE_USERS = ["../escape@example.test", "..@example.test", ".hidden@example.test",
                 "a/b@example.test", "x@../example.test", "x@.example.test"]
OK_USERS = ["%2e%2e@example.test", "j\u00f6rg@example.test", "o'neil@example.test",
            "bob@example.test", "a.@example.test"]


class HostileAddresses(HatodTestCase):
    USERS = [u + " *" for u in HOSTILE_USERS + OK_USERS]

    def rcpt(self, path, utf8=False):
        r = RawSMTP(self.h.port)
        r.reply()
        r.cmd("EHLO client.test")
        r.cmd("MAIL FROM:<a@remote.test>" + (" SMTPUTF8" if utf8 else ""))
        code, lines = r.cmd(("RCPT TO:" + path).encode("utf-8") + b"\r\n")
        if code == 250:
            self.assertEqual(r.cmd("DATA")[0], 354)
            r.send(b"Subject: path\r\n\r\nx\r\n.\r\n")
            self.assertEqual(r.reply()[0], 250)
        r.cmd("QUIT")
        return code

    def all_paths(self):
        out = []
        for top, dirs, files in os.walk(self.h.state):
            for n in dirs + files:
                out.append(os.path.relpath(os.path.join(top, n), self.h.state))
        return out

    def test_hostile_never_leave_mail_dir(self):
        h = self.h
        for path in ('<"../escape"@example.test>', '<"../../etc"@example.test>',
                     '<".."@example.test>', '<".hidden"@example.test>', '<"a/b"@example.test>',
                     '<"..\\/x"@example.test>', '<".Sent"@example.test>',
                     '<bob+a/b@example.test>', '<a/b@example.test>', '<"bob/"@example.test>'):
            code = self.rcpt(path)
            # unknown, never a path (a '/' in a plus tag too: mta/router.c
            # checks the whole local part before it splits the tag off)
            self.assertEqual(code, 550, path)
        for path in ("<%2e%2e@example.test>", "<o'neil@example.test>", '<"a."@example.test>'):
            self.assertEqual(self.rcpt(path), 250, path)
        self.assertEqual(self.rcpt("<j\u00f6rg@example.test>", utf8=True), 250)
        mail = os.path.join(h.state, "mail", "example.test")
        want = {"%2e%2e", "j\u00f6rg", "o'neil", "a."}

        def delivered():
            try:
                return all(os.listdir(os.path.join(mail, w, "new")) for w in want)
            except FileNotFoundError:
                return False
        self.assertTrue(wait_for(delivered, 10), h.log())
        self.assertEqual(set(os.listdir(mail)), want)
        self.assertEqual(sorted(os.listdir(os.path.join(h.state, "mail"))), ["example.test"])
        for p in self.all_paths():
            parts = p.split(os.sep)
            self.assertNotIn("..", parts, p)
            if parts[0] == "mail" and len(parts) >= 3:
                self.assertEqual(parts[1], "example.test", p)
                self.assertFalse(parts[2].startswith("."), p)
        self.assertFalse(os.path.exists(os.path.join(h.dir, "escape")))
        self.assertFalse(os.path.exists(os.path.join(h.state, "escape")))

    def test_quota_tools_touch_no_hostile_path(self):
        """hatoctl quota show reads usage only through validated paths: a
        hostile user shows no usage and nothing is read or made for it."""
        h = self.h
        os.makedirs(os.path.join(h.state, "escape", "new"))      # bait outside mail/
        with open(os.path.join(h.state, "escape", "new", "1.x,S=999"), "w") as f:
            f.write("x")
        r = h.hatoctl("quota", "show", "--all", "--json")
        import json
        rows = {x["user"]: x for x in json.loads(r.stdout or b"[]")}
        for u in HOSTILE_USERS:
            self.assertNotEqual(rows.get(u, {}).get("usage"), 999, (u, r.stdout))
        self.assertEqual(rows["bob@example.test"]["usage"], 0)
        self.assertEqual([p for p in self.all_paths() if p.startswith("mail" + os.sep)], [])
