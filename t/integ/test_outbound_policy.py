"""Outbound policy (mta/remote.c, mta/transport.c, mta/dest.c): STARTTLS
to a sink with a self-signed certificate under each smtp_tls_security_level
and smtp_tls_fallback; relayhost and transport_maps with AUTH from
smtp_sasl_password_maps (only over TLS unless smtp_sasl_tls_required =
no); the global cap smtp_client_concurrency and the per-destination window
as the sink sees them; a dead site that is not connected to again until its
backoff passes."""
import os
import time

from outsink import self_signed, wait_until
from test_outbound import OutboundBase


class Tls(OutboundBase):
    def tls_sink(self, **kw):
        cert, key = self_signed(self.tmp, "mx.dom1.test")
        return self.sink(starttls=(cert, key), **kw)

    def test_may_uses_starttls_and_logs_the_cipher(self):
        s = self.tls_sink()
        self.start({"smtp_tls_security_level": "may"})
        self.send(["a@dom1.test"])
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.assertTrue(s.messages[0].tls)
        self.wait_log(r"to=<a@dom1\.test>, relay=mx\.dom1\.test\[127\.0\.0\.2\]:\d+, .*"
                      r"tls=TLSv1\.3 TLS_\w+, status=sent")

    def test_encrypt_without_starttls_defers(self):
        s = self.sink()
        self.start({"smtp_tls_security_level": "encrypt"})
        self.send(["a@dom1.test"])
        self.wait_log(r"to=<a@dom1\.test>.*dsn=4\.7\.4, status=deferred \(.*TLS is required")
        self.assertEqual(s.count(), 0)

    def broken(self, fallback):
        s = self.sink(tls_broken=True)
        self.start({"smtp_tls_security_level": "may", "smtp_tls_fallback": fallback,
                    "minimal_backoff_time": "1s", "maximal_backoff_time": "1s"})
        self.send(["a@dom1.test"])
        return s

    def test_fallback_plaintext_retries_at_once(self):
        s = self.broken("plaintext")
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.assertFalse(s.messages[0].tls)
        self.assertEqual(s.sessions, 2)          # the failed handshake, then plaintext
        self.assertNotIn("status=deferred", self.h.log())

    def test_fallback_next_attempt(self):
        s = self.broken("next_attempt")
        self.wait_log(r"to=<a@dom1\.test>.*dsn=4\.7\.5, status=deferred")
        self.assertTrue(wait_until(lambda: s.count() == 1, 15), self.h.log())
        self.assertFalse(s.messages[0].tls)

    def test_fallback_none_keeps_deferring(self):
        s = self.broken("none")
        self.wait_log(r"to=<a@dom1\.test>.*dsn=4\.7\.5, status=deferred", count=2)
        self.assertEqual(s.count(), 0)


class Relay(OutboundBase):
    def maps(self, name, lines):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n")
        return p

    def test_relayhost_with_auth_over_tls(self):
        cert, key = self_signed(self.tmp, "relay.test")
        s = self.sink("127.0.0.5", starttls=(cert, key), auth={"relayuser": "se cret"})
        pw = self.maps("sasl", ["[127.0.0.5]:%d relayuser:se cret" % self.port])
        self.start({"relayhost": "[127.0.0.5]:%d" % self.port, "smtp_tls_security_level": "may",
                    "smtp_sasl_password_maps": pw})
        self.send(["a@dom1.test", "b@elsewhere.test"])
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        m = s.messages[0]
        self.assertEqual(sorted(m.rcpts), ["a@dom1.test", "b@elsewhere.test"])
        self.assertEqual(m.auth, "relayuser")
        self.assertTrue(m.tls)
        self.wait_log(r"to=<b@elsewhere\.test>, relay=127\.0\.0\.5\[127\.0\.0\.5\]:%d" % self.port)

    def test_no_password_without_tls(self):
        s = self.sink("127.0.0.5", auth={"relayuser": "secret"})
        pw = self.maps("sasl", ["[127.0.0.5]:%d relayuser:secret" % self.port])
        self.start({"relayhost": "[127.0.0.5]:%d" % self.port, "smtp_sasl_password_maps": pw})
        self.send(["a@dom1.test"])
        self.wait_log(r"to=<a@dom1\.test>.*dsn=4\.7\.0, status=deferred \(.*without TLS")
        self.assertFalse([c for c in s.commands if c.upper().startswith("AUTH")], s.commands)

    def test_auth_in_plaintext_when_allowed(self):
        s = self.sink("127.0.0.5", auth={"relayuser": "secret"})
        pw = self.maps("sasl", ["[127.0.0.5]:%d relayuser:secret" % self.port])
        self.start({"relayhost": "[127.0.0.5]:%d" % self.port, "smtp_sasl_password_maps": pw,
                    "smtp_sasl_tls_required": "no"})
        self.send(["a@dom1.test"])
        self.assertTrue(wait_until(lambda: s.count() == 1), self.h.log())
        self.assertEqual(s.messages[0].auth, "relayuser")

    def test_transport_maps_per_domain_and_subdomains(self):
        mx = self.sink()
        special = self.sink("127.0.0.6")
        relay = self.sink("127.0.0.5")
        tm = self.maps("transport", [
            "# the seed's example, on loopback",
            "special.test [127.0.0.6]:%d" % self.port,
            ".sub.test    smtp:[127.0.0.6]:%d" % self.port,
            "dom1.test    smtp:",
            "held.test    retry:4.3.5 held by the operator",
            "gone.test    error:5.1.2 that domain is gone",
        ])
        self.start({"transport_maps": tm, "relayhost": "[127.0.0.5]:%d" % self.port})
        self.send(["x@special.test", "y@a.sub.test", "z@dom1.test", "w@other.example",
                   "h@held.test", "g@gone.test"])
        self.assertTrue(wait_until(lambda: len(special.rcpts()) == 2), self.h.log())
        self.assertEqual(sorted(special.rcpts()), ["x@special.test", "y@a.sub.test"])
        self.assertTrue(wait_until(lambda: mx.rcpts() == ["z@dom1.test"]), self.h.log())
        self.assertTrue(wait_until(lambda: relay.rcpts() == ["w@other.example"]), self.h.log())
        self.wait_log(r"to=<h@held\.test>.*dsn=4\.3\.5, status=deferred \(held by the operator\)")
        self.wait_log(r"to=<g@gone\.test>.*dsn=5\.1\.2, status=bounced \(that domain is gone\)")

    def test_bad_transport_map_stops_startup(self):
        tm = self.maps("transport", ["x.test lmtp:unix:/x"])
        from harness import Hatod, HATOD
        import subprocess
        h = Hatod(conf={"transport_maps": tm})
        try:
            r = subprocess.run([HATOD, "-f", h.conf_path, "-n"], capture_output=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"unknown transport", r.stderr + r.stdout)
        finally:
            h.cleanup()


class ConfigChecks(OutboundBase):
    def check(self, conf):
        from harness import Hatod, HATOD
        import subprocess
        h = Hatod(conf=conf)
        try:
            return subprocess.run([HATOD, "-f", h.conf_path, "-n"], capture_output=True, timeout=30)
        finally:
            h.cleanup()

    def test_bad_outbound_values_name_their_key(self):
        for conf, words in [({"smtp_data_done_timeout": "0"}, b"smtp_data_done_timeout: must be"),
                            ({"smtp_client_concurrency": "0"}, b"smtp_client_concurrency: must be"),
                            ({"smtp_tls_fallback": "sometimes"}, b"smtp_tls_fallback"),
                            ({"relayhost": "[relay.test"}, b"relayhost: bad next hop")]:
            r = self.check(conf)
            self.assertNotEqual(r.returncode, 0, conf)
            self.assertIn(words, r.stderr + r.stdout, conf)


class Concurrency(OutboundBase):
    def test_global_cap_seen_by_the_sink(self):
        s = self.sink(slow=0.3)
        dns = []
        for i in range(10):
            dns += ["c%d.test. IN A 127.0.0.2" % i]
        self.start({"smtp_client_concurrency": "3"}, dns=dns)
        for i in range(30):
            self.send(["u@c%d.test" % (i % 10)], "m%d" % i)
        self.assertTrue(wait_until(lambda: s.count() == 30, 60), self.h.log())
        self.assertLessEqual(s.max_open, 3)
        self.assertGreaterEqual(s.max_open, 2)

    def test_destination_window(self):
        s = self.sink(slow=0.3)
        self.start({"initial_destination_concurrency": "2",
                    "default_destination_concurrency_limit": "2"})
        for i in range(12):
            self.send(["u%d@dom1.test" % i], "m%d" % i)
        self.assertTrue(wait_until(lambda: s.count() == 12, 60), self.h.log())
        self.assertLessEqual(s.max_open, 2)

    def test_dead_site_is_not_hammered(self):
        s = self.sink(greeting="421 4.3.2 too busy, go away")
        self.start({"initial_destination_concurrency": "1",
                    "minimal_backoff_time": "60s", "maximal_backoff_time": "120s"})
        self.send(["a@dom1.test"], "one")
        self.wait_log(r"to=<a@dom1\.test>.*status=deferred \(.*421 4\.3\.2")
        self.wait_log(r"dom1\.test: destination dead for now")
        self.send(["b@dom1.test"], "two")
        self.wait_log(r"to=<b@dom1\.test>.*dsn=4\.4\.1, status=deferred \(delivery temporarily "
                      r"suspended: .*421 4\.3\.2")
        self.assertEqual(s.sessions, 1, "the dead site was connected to again")


class Reload(OutboundBase):
    def test_reload_switches_routes_and_keeps_deliveries(self):
        import signal
        a = self.sink("127.0.0.5")
        b = self.sink("127.0.0.6")
        tm = os.path.join(self.tmp, "transport")
        with open(tm, "w") as f:
            f.write("moved.test [127.0.0.5]:%d\n" % self.port)
        self.start({"transport_maps": tm, "smtp_connection_cache_time_limit": "30s"})
        self.send(["x@moved.test"], "before")
        self.assertTrue(wait_until(lambda: a.count() == 1), self.h.log())
        with open(tm, "w") as f:
            f.write("moved.test [127.0.0.6]:%d\n" % self.port)
        self.h.signal(signal.SIGHUP)
        self.wait_log(r"reloaded")
        self.send(["y@moved.test"], "after")
        self.assertTrue(wait_until(lambda: b.count() == 1), self.h.log())
        self.assertEqual(a.count(), 1)
