"""Outbound delivery (the smtp agent, mta/remote.c): hatod delivers to
scripted sinks (outsink.py) on 127.0.0.x, found through resolver_config
local-data (MX and A records), all on one smtp_client_port.  Routing
(MX, next MX, implicit MX, null MX), results per recipient (2xx sent, 4xx
deferred then retried, 5xx bounced to the sender with the remote reply),
one transaction per destination, the mid-DATA stall timeout, connection
reuse."""
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from harness import Hatod, wait_for
from outsink import Sink, free_port_on, self_signed, wait_until

ADDRS = ["127.0.0.%d" % i for i in range(2, 10)]


def msg(subject, body="hello\r\n"):
    return ("From: bob@example.test\r\nTo: someone\r\nSubject: %s\r\n\r\n%s"
            % (subject, body)).encode()


class OutboundBase(unittest.TestCase):
    CONF = {}
    DNS = [
        "dom1.test. IN MX 10 mx.dom1.test.",
        "mx.dom1.test. IN A 127.0.0.2",
        "two.test. IN MX 10 mx1.two.test.",
        "two.test. IN MX 20 mx2.two.test.",
        "mx1.two.test. IN A 127.0.0.3",        # nothing listens there
        "mx2.two.test. IN A 127.0.0.2",
        "implicit.test. IN A 127.0.0.2",
        "nullmx.test. IN MX 0 .",
    ]

    def setUp(self):
        self.port = free_port_on(ADDRS)
        self.sinks = []
        self.tmp = tempfile.mkdtemp(prefix="hato-out-")
        self.h = None

    def start(self, conf=None, dns=None, aliases=None):
        c = {"default_transport": "smtp", "smtp_client_port": str(self.port),
             "smtp_tls_security_level": "none"}
        c.update(self.CONF)
        c.update(conf or {})
        self.h = Hatod(conf=c, dns_data=(dns or []) + self.DNS, aliases=aliases)
        self.h.start()
        return self.h

    def sink(self, addr="127.0.0.2", **kw):
        s = Sink(addr, self.port, **kw)
        self.sinks.append(s)
        return s

    def tearDown(self):
        for s in self.sinks:
            s.stop()
        if self.h:
            self.h.stop()
            if not os.environ.get("HATO_KEEP"):
                subprocess.run(["rm", "-rf", self.h.dir])
        shutil.rmtree(self.tmp, ignore_errors=True)

    def send(self, rcpts, subject="test", body="hello\r\n", sender="bob@example.test"):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as c:
            c.sendmail(sender, rcpts, msg(subject, body))

    def wait_log(self, pattern, timeout=15, count=1):
        ok = wait_for(lambda: len(re.findall(pattern, self.h.log())) >= count, timeout)
        self.assertTrue(ok, "%r not in the log:\n%s" % (pattern, self.h.log()))

    def queue_empty(self, timeout=10):
        return wait_for(lambda: not self.h.queue_ids(), timeout)

    def bounce_text(self, timeout=15):
        got = self.h.wait_mail("bob@example.test", 1, timeout)
        self.assertTrue(got, "no bounce for bob:\n" + self.h.log())
        return self.h.read_mail(got[0]).decode("utf-8", "replace")


class Routing(OutboundBase):
    def test_delivery_one_transaction(self):
        s = self.sink()
        self.start()
        self.send(["a@dom1.test", "b@dom1.test"], "first")
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        m = s.messages[0]
        self.assertEqual(sorted(m.rcpts), ["a@dom1.test", "b@dom1.test"])
        self.assertEqual(m.sender, "bob@example.test")
        self.assertIn(b"Subject: first", m.data)
        self.wait_log(r"to=<a@dom1\.test>, relay=mx\.dom1\.test\[127\.0\.0\.2\]:%d, .*"
                      r"dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as S1\)" % self.port)
        self.assertTrue(self.queue_empty(), self.h.log())
        self.assertEqual(len([c for c in s.commands if c.startswith("MAIL")]), 1)

    def test_next_mx_after_refused_connection(self):
        s = self.sink()
        self.start()
        self.send(["x@two.test"])
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.wait_log(r"to=<x@two\.test>, relay=mx2\.two\.test\[127\.0\.0\.2\]")

    def test_implicit_mx(self):
        s = self.sink()
        self.start()
        self.send(["y@implicit.test"])
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.assertEqual(s.messages[0].rcpts, ["y@implicit.test"])

    def test_null_mx_bounces_5_1_10(self):
        self.start()
        self.send(["z@nullmx.test"])
        self.wait_log(r"to=<z@nullmx\.test>.*dsn=5\.1\.10, status=bounced")
        self.assertIn("5.1.10", self.bounce_text())

    def test_alias_to_remote_addresses(self):
        s = self.sink()
        self.start(aliases=["postmaster: bob", "fwd: far1@dom1.test, far2@dom1.test, bob"])
        self.send(["fwd@example.test"], "forwarded")
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.assertEqual(sorted(s.messages[0].rcpts), ["far1@dom1.test", "far2@dom1.test"])
        self.assertTrue(self.h.wait_mail("bob@example.test"), self.h.log())
        self.wait_log(r"to=<far1@dom1\.test>, orig_to=<fwd@example\.test>, relay=mx\.dom1\.test")

    def test_unknown_domain_bounces(self):
        self.start()
        self.send(["z@nowhere.test"])
        self.wait_log(r"to=<z@nowhere\.test>.*dsn=5\.4\.4, status=bounced")


class Replies(OutboundBase):
    CONF = {"minimal_backoff_time": "1s", "maximal_backoff_time": "1s"}

    def test_4xx_then_success(self):
        s = self.sink()
        self.start()
        self.send(["once1@dom1.test"])
        self.wait_log(r"to=<once1@dom1\.test>, relay=mx\.dom1\.test\[127\.0\.0\.2\]:\d+, .*"
                      r"dsn=4\.2\.0, status=deferred \(host mx\.dom1\.test\[127\.0\.0\.2\] said: "
                      r"451 4\.2\.0 once1@dom1\.test: greylisted")
        self.assertTrue(wait_until(lambda: s.count() == 1, 20), self.h.log())
        self.wait_log(r"to=<once1@dom1\.test>.*status=sent")
        self.assertTrue(self.queue_empty(), self.h.log())

    def test_5xx_bounces_with_the_remote_reply(self):
        self.sink()
        self.start()
        self.send(["perm1@dom1.test"])
        self.wait_log(r"to=<perm1@dom1\.test>.*dsn=5\.1\.1, status=bounced \(host mx\.dom1\.test"
                      r"\[127\.0\.0\.2\] said: 550 5\.1\.1 perm1@dom1\.test: no such user")
        text = self.bounce_text()
        self.assertIn("550 5.1.1", text)
        self.assertIn("perm1@dom1.test", text)

    def test_partial_failure_in_one_transaction(self):
        s = self.sink()
        self.start()
        self.send(["ok1@dom1.test", "temp1@dom1.test", "perm1@dom1.test"])
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.assertEqual(s.messages[0].rcpts, ["ok1@dom1.test"])
        self.wait_log(r"to=<perm1@dom1\.test>.*status=bounced")
        self.wait_log(r"to=<temp1@dom1\.test>.*status=deferred")
        self.assertIn("perm1@dom1.test", self.bounce_text())
        self.assertTrue(wait_for(lambda: len(self.h.queue_ids()) == 1),
                        "the deferred recipient keeps the message queued")
        # first attempt: one MAIL with all three recipients
        first = s.commands[:s.commands.index("DATA") + 1]
        self.assertEqual(len([c for c in first if c.startswith("RCPT")]), 3)
        self.assertEqual(len([c for c in first if c.startswith("MAIL")]), 1)

    def test_larger_than_the_servers_size_bounces_5_3_4(self):
        s = self.sink(size=1000)
        self.start()
        self.send(["big@dom1.test"], "big", body="x" * 3000 + "\r\n")
        self.wait_log(r"to=<big@dom1\.test>.*dsn=5\.3\.4, status=bounced \(message size \d+ "
                      r"exceeds size limit 1000 of server mx\.dom1\.test\[127\.0\.0\.2\]")
        self.assertFalse([c for c in s.commands if c.startswith("MAIL")])
        self.assertIn("5.3.4", self.bounce_text())

    def test_4_7_x_reply_defers_that_recipient(self):
        s = self.sink()
        self.start()
        self.send(["throttle1@dom1.test", "ok1@dom1.test"], "slow down")
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.wait_log(r"to=<throttle1@dom1\.test>.*dsn=4\.7\.1, status=deferred \(host "
                      r"mx\.dom1\.test\[127\.0\.0\.2\] said: 451 4\.7\.1")
        self.assertEqual(s.messages[0].rcpts, ["ok1@dom1.test"])

    def test_recipient_limit_splits_transactions(self):
        s = self.sink()
        self.start({"smtp_destination_recipient_limit": "2"})
        self.send(["r%d@dom1.test" % i for i in range(5)])
        self.assertTrue(wait_until(lambda: len(s.rcpts()) == 5), self.h.log())
        self.assertEqual(sorted(len(m.rcpts) for m in s.messages), [1, 2, 2])

    def test_stall_mid_data_times_out_others_unaffected(self):
        slow = self.sink()
        fast = self.sink("127.0.0.4")
        self.start({"smtp_data_done_timeout": "2s"},
                   dns=["fast.test. IN A 127.0.0.4"])
        self.send(["stall1@dom1.test"], "slow")
        time.sleep(0.3)
        self.send(["f@fast.test"], "fast")
        self.assertTrue(wait_until(lambda: fast.count() == 1, 5), self.h.log())
        self.assertEqual(slow.count(), 0)
        self.wait_log(r"to=<stall1@dom1\.test>.*status=deferred \(.*timeout", 15)

    def test_connection_reused_with_rset(self):
        s = self.sink()
        self.start({"smtp_connection_cache_time_limit": "30s"})
        self.send(["a@dom1.test"], "one")
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.send(["b@dom1.test"], "two")
        self.assertTrue(wait_until(lambda: s.count() == 2), self.h.log())
        self.assertEqual(s.sessions, 1, s.commands)
        self.assertIn("RSET", s.commands)

    def test_cached_session_closed_by_server_is_dropped(self):
        s = self.sink()
        self.start({"smtp_connection_cache_time_limit": "30s"})
        self.send(["a@dom1.test"], "one")
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        s.stop()                     # closes the cached session
        self.sinks.remove(s)
        s2 = self.sink()
        time.sleep(0.3)
        self.send(["b@dom1.test"], "two")
        self.assertTrue(wait_until(lambda: s2.count() == 1), self.h.log())


if __name__ == "__main__":
    unittest.main()


class Crash(OutboundBase):
    CONF = {"minimal_backoff_time": "1s", "maximal_backoff_time": "1s"}

    def test_kill9_during_a_burst_loses_nothing(self):
        n = 150
        self.start()
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as c:
            for i in range(n):            # nothing listens yet: all deferred
                c.sendmail("bob@example.test", ["u%d@dom1.test" % (i % 7)], msg("burst %d" % i))
        s = self.sink(slow=0.1)
        self.assertTrue(wait_until(lambda: s.count() >= 15, 30), self.h.log())
        self.h.kill9()
        at_kill = s.count()
        self.h.start()
        subjects = lambda: {re.search(rb"Subject: (burst \d+)", m.data).group(1)
                            for m in list(s.messages)}
        self.assertTrue(wait_until(lambda: len(subjects()) == n, 60),
                        "%d of %d arrived:\n%s" % (len(subjects()), n, self.h.log()[-3000:]))
        self.assertTrue(self.queue_empty(20), self.h.log()[-3000:])
        copies = {}
        for m in list(s.messages):
            k = re.search(rb"Subject: (burst \d+)", m.data).group(1)
            copies[k] = copies.get(k, 0) + 1
        self.assertLessEqual(max(copies.values()), 2, "a message arrived more than twice")
        print("# kill -9 after %d delivered; %d duplicate(s)" % (at_kill, s.count() - n))


class Extensions(OutboundBase):
    def send_opts(self, rcpts, mail_options=(), rcpt_options=(), subject="ext"):
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as c:
            c.ehlo("client.test")
            c.sendmail("bob@example.test", rcpts, msg(subject), list(mail_options),
                       list(rcpt_options))

    def test_smtputf8_only_to_a_server_that_offers_it(self):
        plain = self.sink()
        utf8 = self.sink("127.0.0.4", smtputf8=True)
        self.start(dns=["utf8.test. IN A 127.0.0.4"])
        self.send_opts(["a@dom1.test", "b@utf8.test"], ["SMTPUTF8"])
        self.assertTrue(wait_until(lambda: utf8.count() == 1), self.h.log())
        self.assertIn("SMTPUTF8", utf8.messages[0].mail_line)
        self.wait_log(r"to=<a@dom1\.test>.*dsn=5\.6\.7, status=bounced \(SMTPUTF8 is required")
        self.assertEqual(plain.count(), 0)
        self.assertFalse([c for c in plain.commands if c.startswith("MAIL")])

    def test_dsn_parameters_passed_to_a_next_hop_that_offers_dsn(self):
        s = self.sink(dsn=True)
        self.start()
        self.send_opts(["a@dom1.test"], ["RET=HDRS", "ENVID=abc+2B123"],
                       ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;A+40orig.test"])
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.assertIn("RET=HDRS", s.messages[0].mail_line)
        self.assertIn("ENVID=abc+2B123", s.messages[0].mail_line)
        rcpt = [c for c in s.commands if c.startswith("RCPT")][0]
        self.assertIn("NOTIFY=SUCCESS,FAILURE", rcpt)
        self.assertIn("ORCPT=rfc822;A@orig.test", rcpt)     # xtext, "@" needs no escape
        self.assertTrue(self.queue_empty(), self.h.log())
        self.assertNotIn("success notification", self.h.log())   # the next hop reports

    def test_success_notice_relayed_when_the_next_hop_has_no_dsn(self):
        s = self.sink()
        self.start()
        self.send_opts(["a@dom1.test"], [], ["NOTIFY=SUCCESS"])
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.assertFalse([c for c in s.commands if "NOTIFY" in c])
        self.assertIn("relayed", self.bounce_text())
