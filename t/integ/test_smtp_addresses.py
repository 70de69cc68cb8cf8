"""RFC 5321 paths at MAIL and RCPT: quoted local parts, address literals,
the null path, source routes, '%' and '!' as plain characters,
<postmaster>, syntax errors; recipient validation (users, aliases,
plus-addressing)."""
from test_smtp_helpers import SMTPCase


class Addresses(SMTPCase):
    def deliver(self, rcpt_path, mailbox, sender_path="<a@remote.test>"):
        r = self.raw()
        self.expect(r, "MAIL FROM:" + sender_path, 250, "2.1.0")
        self.expect(r, "RCPT TO:" + rcpt_path, 250, "2.1.5")
        self.expect(r, "DATA", 354)
        r.send(b"Subject: addr\r\n\r\nx\r\n.\r\n")
        self.assertEqual(r.reply()[0], 250)
        return self.one_mail(mailbox)

    def test_quoted_local_part(self):
        data = self.deliver('<"bob"@example.test>', "bob@example.test")
        self.assertIn(b"\r\nDelivered-To: bob@example.test\r\n", data)

    def test_quoted_local_part_with_space_is_valid_syntax(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<\"john doe\"@remote.test>", 250, "2.1.0")
        self.expect(r, 'RCPT TO:<"john doe"@example.test>', 550, "5.1.1")
        self.expect(r, 'RCPT TO:<"bob\\"x"@example.test>', 550, "5.1.1")
        self.expect(r, 'RCPT TO:<"b\\ob"@example.test>', 250, "2.1.5")

    def test_quoted_sender_kept_in_return_path(self):
        data = self.deliver("<bob@example.test>", "bob@example.test",
                            sender_path='<"john doe"@remote.test>')
        self.assertTrue(data.startswith(b'Return-Path: <"john doe"@remote.test>\r\n'), data[:80])

    def test_case_of_domain_and_local(self):
        data = self.deliver("<BOB@EXAMPLE.Test>", "bob@example.test")
        self.assertIn(b"\r\nDelivered-To: ", data)

    def test_null_sender(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<>", 501, "5.1.3")
        self.expect(r, "RCPT TO:<bob@example.test>", 250, "2.1.5")
        self.expect(r, "DATA", 354)
        r.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n")
        self.assertEqual(r.reply()[0], 250)
        data = self.one_mail("bob@example.test")
        self.assertTrue(data.startswith(b"Return-Path: <>\r\n"), data[:60])

    def test_source_route(self):
        data = self.deliver("<@a.test,@b.test:bob@example.test>", "bob@example.test",
                            sender_path="<@relay.test:a@remote.test>")
        self.assertTrue(data.startswith(b"Return-Path: <a@remote.test>\r\n"
                                        b"Delivered-To: bob@example.test\r\n"), data[:100])

    def test_percent_and_bang_are_not_routing(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        for path in ("<bob%other.test@example.test>", "<bob%remote.test@example.test>",
                     "<remote.test!bob@example.test>", "<other.test!bob@example.test>",
                     "<carol%other.test@example.test>"):
            self.expect(r, "RCPT TO:" + path, 550, "5.1.1")
        self.expect(r, "DATA", 554, "5.5.1")
        self.assertEqual(self.queue_files(), [])

    def test_postmaster_without_domain(self):
        for path in ("<postmaster>", "<PostMaster>"):
            with self.subTest(path=path):
                r = self.raw()
                self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
                self.expect(r, "RCPT TO:" + path, 250, "2.1.5")
                self.expect(r, "DATA", 354)
                r.send(b"Subject: pm\r\n\r\nx\r\n.\r\n")
                self.assertEqual(r.reply()[0], 250)
        files = self.h.wait_mail("bob@example.test", 2)
        self.assertTrue(files and len(files) == 2, self.h.log())

    def test_other_local_part_without_domain(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<bob>", 501, "5.1.3")
        self.expect(r, "RCPT TO:<postmasterx>", 501, "5.1.3")

    def test_mail_syntax_errors(self):
        r = self.raw()
        for line, code, enh in (
                ("MAIL FROM:a@remote.test", 501, None),
                ("MAIL FROM <a@remote.test>", 501, "5.5.4"),
                ("MAIL TO:<a@remote.test>", 501, "5.5.4"),
                ("MAIL", 501, "5.5.4"),
                ("MAIL FROM:<a@remote.test", 501, None),
                ("MAIL FROM:<a@>", 501, None),
                ("MAIL FROM:<@remote.test>", 501, None),
                ("MAIL FROM:<a b@remote.test>", 501, None),
                ("MAIL FROM:<a@remote..test>", 501, None),
                ("MAIL FROM:<a@remote.test>x", 501, None),
                ("MAIL FROM:<a@remote.test> BODY=9BIT", 501, "5.5.4"),
                ("MAIL FROM:<a@remote.test> FOO=bar", 555, "5.5.4"),
                ("MAIL FROM:<a@[300.1.1.1]>", 501, None),
                ("MAIL FROM:<" + "l" * 65 + "@remote.test>", 501, None)):
            with self.subTest(line=line):
                self.expect(r, line, code, enh)
        # none of them opened a transaction
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")

    def test_mail_with_space_after_colon(self):
        r = self.raw()
        self.expect(r, "MAIL FROM: <a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO: <bob@example.test>", 250, "2.1.5")

    def test_rcpt_syntax_errors(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        for line, code, enh in (
                ("RCPT TO:bob@example.test", 501, None),
                ("RCPT FROM:<bob@example.test>", 501, "5.5.4"),
                ("RCPT TO:<bob@example.test", 501, None),
                ("RCPT TO:<bob@>", 501, None),
                ("RCPT TO:<bob@example.test> NOTIFY=SOMETIMES", 501, "5.5.4"),
                ("RCPT TO:<bob@example.test> RET=FULL", 555, "5.5.4"),
                ("RCPT TO:<bob@@example.test>", 501, None),
                ('RCPT TO:<"bob@example.test>', 501, None)):
            with self.subTest(line=line):
                self.expect(r, line, code, enh)
        self.expect(r, "DATA", 554, "5.5.1")


class RecipientValidation(SMTPCase):
    def test_unknown_user(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<nobody@example.test>", 550, "5.1.1")
        self.expect(r, "RCPT TO:<bob@other.test>", 550, "5.1.1")    # user of another domain
        self.expect(r, "RCPT TO:<carol@other.test>", 250, "2.1.5")

    def test_alias_expands(self):
        r = self.raw()
        self.send_message(r, "a@remote.test", ["info@example.test"],
                          b"Subject: info\r\n\r\nto the team\r\n.\r\n")
        for who in ("bob@example.test", "alice@example.test"):
            data = self.one_mail(who)
            self.assertIn(b"\r\nDelivered-To: " + who.encode() + b"\r\n", data)
            self.assertTrue(data.endswith(b"\r\n\r\nto the team\r\n"))

    def test_alias_and_member_get_one_copy(self):
        r = self.raw()
        self.send_message(r, "a@remote.test", ["info@example.test", "bob@example.test"],
                          b"Subject: info\r\n\r\nonce\r\n.\r\n")
        self.one_mail("alice@example.test")
        self.one_mail("bob@example.test")
        self.assertEqual(len(self.h.maildir("bob@example.test")), 1)

    def test_plus_addressing(self):
        r = self.raw()
        self.send_message(r, "a@remote.test", ["bob+tag@example.test"],
                          b"Subject: plus\r\n\r\nx\r\n.\r\n")
        data = self.one_mail("bob@example.test")
        self.assertIn(b"\r\nDelivered-To: bob+tag@example.test\r\n", data)
        self.assertEqual(self.h.maildir("bob+tag@example.test"), [])

    def test_plus_of_unknown_user(self):
        r = self.raw()
        self.expect(r, "MAIL FROM:<a@remote.test>", 250, "2.1.0")
        self.expect(r, "RCPT TO:<nobody+tag@example.test>", 550, "5.1.1")
