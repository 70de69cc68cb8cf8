"""The login-throttle keys (auth_failure_limit, auth_failure_window,
auth_lockout_time) and the users_file secrets (cram-md5=, scram-sha-256=)
as hatod -n, start and reload read them."""
import subprocess

from harness import HATOD, HatodTestCase

CRAM = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
KEY = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
SCRAM = "4096:W22ZaJ0SNY7soEsUEjb6gQ==:%s:%s" % (KEY, KEY)


class AuthConfig(HatodTestCase):
    USERS = ["bob@example.test * cram-md5=%s scram-sha-256=%s quota=1M" % (CRAM, SCRAM),
             "alice@example.test *"]

    def check(self, **conf):
        self.h.conf.update(conf)
        self.h.write_conf()
        return subprocess.run([HATOD, "-f", self.h.conf_path, "-n"], capture_output=True,
                              timeout=30)

    def test_started_with_secrets(self):
        self.assertEqual(self.rcpt("bob@example.test"), 250)

    def rcpt(self, addr):
        import smtplib
        with smtplib.SMTP("127.0.0.1", self.h.port, timeout=10) as s:
            s.ehlo("client.test")
            s.mail("x@client.test")
            return s.rcpt(addr)[0]

    def test_keys_accepted(self):
        r = self.check(auth_failure_limit="3", auth_failure_window="90s", auth_lockout_time="2h")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.check(auth_failure_limit="0")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_values_refused(self):
        for key, val, why in (("auth_failure_limit", "-1", b"non-negative"),
                              ("auth_failure_limit", "lots", b"auth_failure_limit"),
                              ("auth_failure_window", "0", b"must be > 0"),
                              ("auth_lockout_time", "0s", b"must be > 0"),
                              ("auth_lockout_time", "soon", b"auth_lockout_time")):
            r = self.check(**{key: val})
            self.assertEqual(r.returncode, 1, (key, val, r.stderr))
            self.assertIn(why, r.stderr, (key, val))
            self.assertIn(key.encode(), r.stderr)
            self.h.conf.pop(key)

    def test_bad_secret_refused_with_line(self):
        with open(self.h.users_path, "a") as f:
            f.write("carol@example.test * scram-sha-256=1000:%s\n" % SCRAM.split(":", 1)[1])
        r = self.check()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"users:3: scram-sha-256 iteration count", r.stderr)
