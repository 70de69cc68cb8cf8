"""hato-sendmail (also as sendmail, mailq): submission over the control
socket, -t/-i/-f/-F, -bs, -bp, -q, -C and HATO_CONFIG, exit codes."""
import os
import re

from harness import wait_for
from test_tools_util import (EX_CONFIG, EX_DATAERR, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE,
                             FOOTER_RE, MAILQ_ENTRY_RE, MAILQ_HEAD, REPO, ToolsCase, body_of,
                             header_of)


class Submit(ToolsCase):
    def test_plain_recipients_as_args(self):
        r = self.sendmail("bob@example.test", "alice", input=b"Subject: plain\n\nhello\n")
        self.assertRun(r)
        self.assertEqual(r.stdout, b"")
        for a in ("bob@example.test", "alice@example.test"):
            data = self.mail_for(a)
            self.assertTrue(data.startswith(b"Return-Path: <root@example.test>\r\n"
                                            b"Delivered-To: %s\r\nReceived: " % a.encode()), data)
            self.assertIn(b"\r\nSubject: plain\r\n\r\nhello\r\n", data)
            self.assertIn(b"from userid 0", data)

    def test_date_and_message_id_added(self):
        # man page: "No Date: or Message-ID: header is added here; hatod
        # adds what is missing"
        self.assertRun(self.sendmail("bob@example.test", input=b"Subject: bare\n\nx\n"))
        hdr = header_of(self.mail_for("bob@example.test")).lower()
        self.assertIn(b"\r\ndate: ", hdr)
        self.assertIn(b"\r\nmessage-id: <", hdr)
        self.assertRun(self.sendmail("bob@example.test", input=b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
                                     b"Message-ID: <given@example.test>\nSubject: full\n\nx\n"))
        hdr = header_of(self.mail_for("bob@example.test", "full")).lower()
        self.assertEqual(hdr.count(b"\r\ndate: "), 1)
        self.assertEqual(hdr.count(b"\r\nmessage-id: "), 1)

    def test_as_sendmail_link(self):
        r = self.sendmail("bob@example.test", name="sendmail", input=b"Subject: link\n\nx\n")
        self.assertRun(r)
        self.assertIn(b"Subject: link", self.mail_for("bob@example.test"))

    def test_address_list_argument(self):
        r = self.sendmail("Bob <bob@example.test>, alice@example.test (Alice)",
                          input=b"Subject: list\n\nx\n")
        self.assertRun(r)
        self.mail_for("bob@example.test")
        self.mail_for("alice@example.test")

    def test_crlf_input_and_mbox_from_line(self):
        r = self.sendmail("bob@example.test",
                          input=b"From someone Mon Jan  1 00:00:00 2024\r\n"
                                b"Subject: crlf\r\n\r\nline1\r\nline2\r\n")
        self.assertRun(r)
        data = self.mail_for("bob@example.test")
        self.assertNotIn(b"From someone", data)
        self.assertTrue(data.endswith(b"\r\nSubject: crlf\r\n\r\nline1\r\nline2\r\n"), data)
        self.assertNotIn(b"\r\r", data)

    def test_body_without_blank_line_gets_separator(self):
        r = self.sendmail("bob@example.test", input=b"Subject: sep\nnot a header line\n")
        self.assertRun(r)
        data = self.mail_for("bob@example.test")
        self.assertIn(b"Subject: sep\r\n\r\nnot a header line\r\n", data)


class Extract(ToolsCase):
    def test_t_to_cc_bcc_and_bcc_removed(self):
        msg = (b"From: me@example.test\n"
               b"To: Bob <bob@example.test>\n"
               b"Cc: alice\n"
               b"Bcc: Carol\n"
               b"  <carol@other.test>\n"
               b"Subject: extract\n\nbody\n")
        r = self.sendmail("-t", input=msg)
        self.assertRun(r)
        for a in ("bob@example.test", "alice@example.test", "carol@other.test"):
            data = self.mail_for(a)
            hdr = header_of(data)
            self.assertNotIn(b"Bcc", hdr, a)
            self.assertNotIn(b"Carol", hdr, "Bcc kept")
            self.assertNotIn(b"<carol@other.test>", hdr, "folded Bcc continuation kept")
            self.assertIn(b"\r\nTo: Bob <bob@example.test>\r\nCc: alice\r\n", data)
            self.assertIn(b"\r\nSubject: extract\r\n\r\nbody\r\n", data)

    def test_t_recipients_from_headers_only(self):
        msg = (b"To: bob@example.test\nBcc: carol@other.test\nSubject: x\n\nbody\n")
        r = self.sendmail("-t", input=msg)
        self.assertRun(r)
        self.assertNotIn(b"Bcc", header_of(self.mail_for("carol@other.test")))
        self.assertNotIn(b"Bcc", header_of(self.mail_for("bob@example.test")))

    def test_t_adds_command_line_recipients(self):
        r = self.sendmail("-t", "alice@example.test",
                          input=b"To: bob@example.test\nSubject: x\n\nbody\n")
        self.assertRun(r)
        self.mail_for("bob@example.test")
        self.mail_for("alice@example.test")

    def test_without_t_headers_are_not_recipients(self):
        r = self.sendmail("alice@example.test",
                          input=b"To: bob@example.test\nSubject: x\n\nbody\n")
        self.assertRun(r)
        self.mail_for("alice@example.test")
        self.no_mail("bob@example.test")

    def test_bcc_removed_without_t(self):
        # mutt-style: every recipient as an argument, Bcc left in the header
        r = self.sendmail("bob@example.test", "carol@other.test",
                          input=b"To: bob@example.test\nBcc: carol@other.test\n"
                                b"Resent-Bcc: carol@other.test\nSubject: mutt\n\nx\n")
        self.assertRun(r)
        for a in ("bob@example.test", "carol@other.test"):
            hdr = header_of(self.mail_for(a, "mutt"))
            self.assertNotIn(b"Bcc", hdr)
            self.assertIn(b"\r\nTo: bob@example.test\r\n", hdr)

    def test_t_without_recipients_is_usage_error(self):
        r = self.sendmail("-t", input=b"To: undisclosed-recipients:;\nSubject: x\n\nbody\n")
        self.assertRun(r, EX_USAGE)
        self.assertIn(b"no recipients", r.stderr)


class Dots(ToolsCase):
    MSG = b"Subject: dots\n\nbefore\n.\nafter\n..\n.x\n"

    def test_dot_line_ends_input(self):
        r = self.sendmail("bob@example.test", input=self.MSG)
        self.assertRun(r)
        self.assertEqual(body_of(self.mail_for("bob@example.test")), b"before\r\n")

    def test_i_keeps_dot_lines(self):
        for flag in ("-i", "-oi"):
            r = self.sendmail(flag, "bob@example.test",
                              input=self.MSG.replace(b"dots", flag.encode()))
            self.assertRun(r)
            self.assertEqual(body_of(self.mail_for("bob@example.test", flag)),
                             b"before\r\n.\r\nafter\r\n..\r\n.x\r\n", flag)

    def test_i_dot_as_last_line_without_newline(self):
        r = self.sendmail("-i", "bob@example.test", input=b"Subject: d\n\nx\n.")
        self.assertRun(r)
        self.assertEqual(body_of(self.mail_for("bob@example.test")), b"x\r\n.\r\n")


class SenderOptions(ToolsCase):
    def test_f_sets_envelope_sender(self):
        r = self.sendmail("-f", "owner@remote.test", "bob@example.test")
        self.assertRun(r)
        self.assertTrue(self.mail_for("bob@example.test")
                        .startswith(b"Return-Path: <owner@remote.test>\r\n"))

    def test_f_glued_bracketed_and_bare(self):
        self.assertRun(self.sendmail("-f<list@remote.test>", "bob@example.test",
                                     input=b"Subject: one\n\nx\n"))
        self.assertTrue(self.mail_for("bob@example.test", "one")
                        .startswith(b"Return-Path: <list@remote.test>\r\n"))
        self.assertRun(self.sendmail("-r", "daemon", "bob@example.test",
                                     input=b"Subject: two\n\nx\n"))
        self.assertTrue(self.mail_for("bob@example.test", "two")
                        .startswith(b"Return-Path: <daemon@example.test>\r\n"))

    def test_f_null_sender(self):
        self.assertRun(self.sendmail("-f", "", "bob@example.test"))
        self.assertTrue(self.mail_for("bob@example.test").startswith(b"Return-Path: <>\r\n"))

    def test_F_adds_from_when_missing(self):
        r = self.sendmail("-F", "Full Name", "-f", "me@example.test", "bob@example.test",
                          input=b"Subject: f\n\nx\n")
        self.assertRun(r)
        data = self.mail_for("bob@example.test")
        self.assertIn(b"\r\nFrom: Full Name <me@example.test>\r\n", header_of(data))

    def test_F_quotes_special_characters(self):
        r = self.sendmail("-F", 'Joe "Q." Public', "bob@example.test")
        self.assertRun(r)
        self.assertIn(b'\r\nFrom: "Joe \\"Q.\\" Public" <root@example.test>\r\n',
                      self.mail_for("bob@example.test"))

    def test_F_keeps_existing_from(self):
        r = self.sendmail("-F", "Other Name", "bob@example.test",
                          input=b"From: Real <real@example.test>\nSubject: f\n\nx\n")
        self.assertRun(r)
        hdr = header_of(self.mail_for("bob@example.test"))
        self.assertEqual(hdr.count(b"\r\nFrom:"), 1, hdr)
        self.assertNotIn(b"Other Name", hdr)


class SMTPMode(ToolsCase):
    def test_bs_scripted_session(self):
        script = (b"EHLO client\r\n"
                  b"MAIL FROM:<script@remote.test>\r\n"
                  b"RCPT TO:<bob@example.test>\r\n"
                  b"RCPT TO:<nobody-here@example.test>\r\n"
                  b"DATA\r\n"
                  b"Subject: bs\r\n\r\nvia -bs\r\n..dot\r\n.\r\n"
                  b"QUIT\r\n")
        r = self.sendmail("-bs", input=script)
        self.assertRun(r)
        lines = r.stdout.decode().split("\r\n")
        self.assertEqual(lines[-1], "", "replies must end in CRLF: %r" % r.stdout)
        codes = [l[:4] for l in lines[:-1]]
        self.assertTrue(lines[0].startswith("220 "), lines)
        finals = [c for c in codes if c[3] == " "]
        self.assertEqual(finals, ["220 ", "250 ", "250 ", "250 ", "550 ", "354 ", "250 ",
                                  "221 "], lines)
        self.assertTrue(any(re.match(r"250 2\.0\.0 Ok: queued as [0-9A-F]{16}$", l)
                            for l in lines), lines)
        data = self.mail_for("bob@example.test")
        self.assertTrue(data.startswith(b"Return-Path: <script@remote.test>\r\n"))
        self.assertTrue(data.endswith(b"\r\n\r\nvia -bs\r\n.dot\r\n"), data)

    def test_bs_long_pipeline_does_not_deadlock(self):
        # far more than the socket buffers hold, in one go: the relay must
        # keep reading hatod's replies while hatod is not reading
        n = 60000
        r = self.sendmail("-bs", input=b"EHLO x\r\n" + b"NOOP\r\n" * n + b"QUIT\r\n")
        self.assertRun(r)
        self.assertEqual(r.stdout.count(b"250 2.0.0 Ok\r\n"), n)
        self.assertTrue(r.stdout.endswith(b"\r\n221 2.0.0 Bye\r\n"), r.stdout[-100:])

    def test_bs_without_quit_gets_final_reply(self):
        # a script that ends after the dot: stdin EOF half-closes the
        # session; the message is queued and its 250 must still arrive
        r = self.sendmail("-bs", input=b"HELO x\r\nMAIL FROM:<a@remote.test>\r\n"
                                        b"RCPT TO:<bob@example.test>\r\nDATA\r\n"
                                        b"Subject: noquit\r\n\r\nx\r\n.\r\n")
        self.assertRun(r)
        self.mail_for("bob@example.test", "noquit")
        self.assertIn(b"\r\n250 2.0.0 Ok: queued as ", r.stdout)

    def test_bs_when_hatod_is_down(self):
        self.h.stop()
        r = self.sendmail("-bs", input=b"EHLO x\r\nQUIT\r\n")
        self.assertRun(r, EX_TEMPFAIL)
        self.assertEqual(r.stdout, b"421 4.3.0 mail system not running\r\n")


class MailQ(ToolsCase):
    def deferred_remote(self):
        r = self.sendmail("-f", "sender@example.test", "far@remote.test",
                          input=b"Subject: q\n\n" + b"x" * 1500 + b"\n")
        self.assertRun(r)
        self.wait_log("status=deferred (remote delivery off in this test)")

    def check_listing(self, out):
        lines = out.split("\n")
        self.assertEqual(lines[0], MAILQ_HEAD, out)
        m = MAILQ_ENTRY_RE.match(lines[1])
        self.assertTrue(m, out)
        qid, flag, size, sender = m.groups()
        self.assertEqual(self.h.queue_ids(), [qid])
        self.assertEqual(sender, "sender@example.test")
        self.assertGreater(int(size), 1500)
        self.assertEqual(lines[2], "(remote delivery off in this test)", out)
        self.assertEqual(lines[3].strip(), "far@remote.test", out)
        self.assertTrue(lines[3].startswith(" " * 20), out)
        self.assertEqual(lines[4], "", out)
        self.assertEqual(lines[5], "-- 2 Kbytes in 1 Request.", out)
        self.assertTrue(FOOTER_RE.match(lines[5]))
        self.assertEqual(lines[6:], [""], out)

    def test_empty(self):
        for r in (self.sendmail("-bp", input=b""), self.tool([self.link("mailq")])):
            self.assertRun(r)
            self.assertEqual(r.stdout, b"Mail queue is empty\n")

    def test_bp_and_mailq_list_remote_recipient(self):
        self.deferred_remote()
        a = self.sendmail("-bp", input=b"")
        b = self.tool([self.link("mailq")])
        self.assertRun(a)
        self.assertRun(b)
        self.check_listing(a.stdout.decode())
        self.assertEqual(a.stdout, b.stdout)

    def test_mailq_with_hatod_stopped(self):
        self.deferred_remote()
        online = self.tool([self.link("mailq")])
        self.h.stop()
        offline = self.tool([self.link("mailq")])
        self.assertRun(offline)
        self.check_listing(offline.stdout.decode())
        self.assertEqual(online.stdout, offline.stdout)

    def test_requests_plural(self):
        for i in range(2):
            self.assertRun(self.sendmail("far%d@remote.test" % i))
        wait_for(lambda: self.h.log().count("remote delivery off in this test") >= 2)
        out = self.sendmail("-bp", input=b"").stdout.decode()
        total = sum(int(m.group(3)) for m in map(MAILQ_ENTRY_RE.match, out.split("\n")) if m)
        m = FOOTER_RE.match(out.split("\n")[-2])
        self.assertTrue(m, out)
        self.assertEqual(m.group(2), "2", out + self.h.log())
        self.assertIn(int(m.group(1)), (total // 1024, (total + 1023) // 1024), out)


class Flush(ToolsCase):
    CONF = {"defer_transports": "local", "minimal_backoff_time": "1h",
            "maximal_backoff_time": "2h"}

    def test_q_delivers_deferred_mail(self):
        self.assertRun(self.sendmail("bob@example.test", input=b"Subject: wait\n\nx\n"))
        self.wait_log("status=deferred (deferred transport)")
        self.no_mail("bob@example.test", 0.3)
        self.assertEqual(len(self.h.queue_ids()), 1)
        listing = self.sendmail("-bp", input=b"").stdout.decode()
        self.assertIn("(deferred transport)", listing)
        self.assertRun(self.sendmail("-q", input=b""))
        self.mail_for("bob@example.test", "wait")
        self.assertTrue(wait_for(lambda: self.h.queue_ids() == []), self.h.queue_ids())

    def test_q_when_hatod_is_down(self):
        self.h.stop()
        r = self.sendmail("-q", input=b"")
        self.assertRun(r, EX_UNAVAILABLE)


class ConfigSelection(ToolsCase):
    """-C and HATO_CONFIG pick the config: a second config whose state
    directory has no hatod makes the submission land in its maildrop."""

    def other_conf(self):
        state = os.path.join(self.h.dir, "state2")
        os.makedirs(os.path.join(state, "maildrop"))
        os.chmod(os.path.join(state, "maildrop"), 0o1733)
        path = os.path.join(self.h.dir, "hato2.conf")
        with open(self.h.conf_path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("state_directory = %s\n" % self.h.state,
                                 "state_directory = %s\n" % state))
        return path, os.path.join(state, "maildrop")

    def test_C_selects_config(self):
        conf2, drop2 = self.other_conf()
        r = self.sendmail("-C", conf2, "bob@example.test")   # HATO_CONFIG = first conf
        self.assertRun(r)
        self.assertEqual(len(os.listdir(drop2)), 1)
        self.no_mail("bob@example.test", 0.3)

    def test_env_selects_config(self):
        conf2, drop2 = self.other_conf()
        r = self.sendmail("bob@example.test", env={"HATO_CONFIG": conf2})
        self.assertRun(r)
        self.assertEqual(len(os.listdir(drop2)), 1)
        r = self.sendmail("bob@example.test")
        self.assertRun(r)
        self.mail_for("bob@example.test")
        self.assertEqual(len(os.listdir(drop2)), 1)

    def test_C_overrides_env_and_bad_config(self):
        r = self.sendmail("-C", self.h.conf_path, "bob@example.test",
                          env={"HATO_CONFIG": "/nonexistent/hato.conf"})
        self.assertRun(r)
        self.mail_for("bob@example.test")
        r = self.sendmail("bob@example.test", env={"HATO_CONFIG": "/nonexistent/hato.conf"})
        self.assertRun(r, EX_CONFIG)
        self.assertIn(b"/nonexistent/hato.conf", r.stderr)
        r = self.sendmail("-bs", env={"HATO_CONFIG": "/nonexistent/hato.conf"}, input=b"")
        self.assertRun(r, EX_CONFIG)
        self.assertTrue(r.stdout.startswith(b"421 "), r.stdout)


class ExitCodes(ToolsCase):
    def test_unknown_local_recipient_is_dataerr(self):
        r = self.sendmail("nosuch@example.test")
        self.assertRun(r, EX_DATAERR)
        self.assertIn(b"550", r.stderr)
        self.assertIn(b"nosuch@example.test", r.stderr)

    def test_all_or_nothing(self):
        r = self.sendmail("bob@example.test", "nosuch@example.test")
        self.assertRun(r, EX_DATAERR)
        self.no_mail("bob@example.test")
        self.assertEqual(self.h.queue_ids(), [])

    def test_no_recipients(self):
        r = self.sendmail()
        self.assertRun(r, EX_USAGE)
        self.assertIn(b"no recipients", r.stderr)

    def test_bad_address_and_bad_option(self):
        self.assertRun(self.sendmail("bad@@example.test"), EX_DATAERR)
        self.assertRun(self.sendmail("-Z", "bob@example.test"), EX_USAGE)
        self.assertRun(self.sendmail("-bz", "bob@example.test"), EX_USAGE)
        self.assertRun(self.sendmail("-f"), EX_USAGE)
        self.no_mail("bob@example.test", 0.2)

    def test_man_page_matches(self):
        with open(os.path.join(REPO, "man", "hato-sendmail.8")) as f:
            man = f.read()
        status = man.split(".SH EXIT STATUS", 1)[1].split(".SH ", 1)[0]
        items = {}
        for chunk in status.split(".TP\n")[1:]:
            head, _, text = chunk.partition("\n")
            items[head] = " ".join(text.split())
        self.assertIn("no recipients", items[".B EX_USAGE (64)"])
        self.assertIn("refused the sender or a recipient (5xx)", items[".B EX_DATAERR (65)"])
        self.assertIn("-bp", items[".B EX_UNAVAILABLE (69)"].replace("\\-", "-"))
        self.assertIn("not running", items[".B EX_CANTCREAT (73)"])
        self.assertIn("alias file", items[".B EX_CONFIG (78)"])
        self.assertIn("421 4.3.0 mail system not running", man)


class AddressLists(ToolsCase):
    def test_good_lists(self):
        r = self.sendmail('"Doe, John" <bob@example.test>, Team: alice, carol@other.test;',
                          input=b"Subject: lists\n\nx\n")
        self.assertRun(r)
        for a in ("bob@example.test", "alice@example.test", "carol@other.test"):
            self.mail_for(a, "lists")

    def test_bad_lists_are_errors_not_guesses(self):
        for arg in ("bob@example.test>, alice",          # '>' alone
                    "<bob@example.test",                 # '<' alone
                    "A <bob@example.test> <alice@example.test>",
                    "bob@example.test RCPT TO: alice@example.test",
                    "alice, bob@example.test (Bob, carol@other.test",
                    '"alice, bob@example.test'):
            r = self.sendmail(arg)
            self.assertRun(r, EX_DATAERR, arg)
            self.assertIn(b"bad address", r.stderr)
        r = self.sendmail("-t", input=b"To: <bob@example.test\nCc: alice\nSubject: x\n\nx\n")
        self.assertRun(r, EX_DATAERR)
        self.no_mail("alice@example.test", 0.2)
        self.assertEqual(self.h.queue_ids(), [])


class SizeLimit(ToolsCase):
    CONF = {"message_size_limit": "1000"}

    def test_size_counts_crlf_and_refuses_at_mail(self):
        msg = b"Subject: s\n\n" + b"x\n" * 450          # 912 octets with LF, 1364 with CRLF
        r = self.sendmail("bob@example.test", input=msg)
        self.assertRun(r, EX_DATAERR)
        self.assertIn(b"MAIL FROM: 552 5.3.4", r.stderr)
        self.assertEqual(self.h.queue_ids(), [])
        self.assertRun(self.sendmail("bob@example.test", input=b"Subject: small\n\n" +
                                     b"x\n" * 200))
        self.mail_for("bob@example.test", "small")
