"""TLS configuration: `hatoctl tls selfsigned` (files, modes, what openssl
sees in the certificate, no overwrite without --force), `hatod -n` and
start-up with a bad certificate, a missing one, a mismatched key, a key
others can read, bad tls_* settings; a reload with a broken certificate
keeps the old configuration."""
import os
import pwd
import re
import signal
import subprocess
import unittest
from datetime import datetime

from harness import HATOCTL, HATOD, Hatod, wait_for

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout.decode()


def mode(path):
    return os.stat(path).st_mode & 0o7777


def read(path):
    with open(path, "rb") as f:
        return f.read()


class TLSCase(unittest.TestCase):
    """A Hatod that is configured but not started; self.h.dir is 0755 so
    that file modes alone decide who can read a key."""
    CONF = None

    def setUp(self):
        self.h = Hatod(conf=self.CONF)
        os.chmod(self.h.dir, 0o755)

    def tearDown(self):
        self.h.cleanup()

    def path(self, name):
        return os.path.join(self.h.dir, name)

    def selfsigned(self, *args):
        return self.h.hatoctl("tls", "selfsigned", *args)

    def set_conf(self, **kv):
        self.h.conf.update(kv)
        self.h.write_conf()

    def check(self):
        return subprocess.run([HATOD, "-f", self.h.conf_path, "-n"], capture_output=True,
                              timeout=30)

    def make_pair(self, name, host="mx.example.test", *extra):
        key, cert = self.path(name + ".key"), self.path(name + ".crt")
        r = self.selfsigned(host, "--key", key, "--cert", cert, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return key, cert


class SelfSigned(TLSCase):
    def test_default_paths_modes_and_certificate(self):
        r = self.selfsigned("mx.example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        key = os.path.join(self.h.state, "keys", "tls.key")
        cert = os.path.join(self.h.state, "keys", "tls.crt")
        self.assertEqual(mode(key), 0o600)
        self.assertEqual(mode(cert), 0o644)
        self.assertEqual(mode(os.path.dirname(key)), 0o700)
        out = r.stdout.decode()
        self.assertIn("tls_cert_file = %s" % cert, out)
        self.assertIn("tls_key_file = %s" % key, out)
        text = openssl("x509", "-in", cert, "-noout", "-text")
        self.assertIn("DNS:mx.example.test", text)
        self.assertIn("TLS Web Server Authentication", text)
        self.assertIn("CA:FALSE", text)
        self.assertIn("rsaEncryption", text)
        self.assertIn("Public-Key: (2048 bit)", text)
        self.assertIn("Subject: CN = mx.example.test", text)
        # the key is the certificate's
        self.assertEqual(openssl("pkey", "-in", key, "-pubout"),
                         openssl("x509", "-in", cert, "-noout", "-pubkey"))
        self.assertEqual(sorted(os.listdir(os.path.dirname(key))), ["tls.crt", "tls.key"],
                         "a temporary file was left behind")

    def test_refuses_to_overwrite_without_force(self):
        key, cert = self.make_pair("a")
        before = (read(key), read(cert))
        r = self.selfsigned("mx.example.test", "--key", key, "--cert", cert)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"exists; --force replaces it", r.stderr)
        self.assertEqual((read(key), read(cert)), before)
        # only the certificate exists: still refused, and no key written
        os.unlink(key)
        r = self.selfsigned("mx.example.test", "--key", key, "--cert", cert)
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(key))
        self.assertEqual(read(cert), before[1])

    def test_force_replaces_and_narrows_the_key_mode(self):
        key, cert = self.make_pair("a")
        os.chmod(key, 0o644)
        before = read(key)
        r = self.selfsigned("mx.example.test", "--key", key, "--cert", cert, "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(read(key), before)
        self.assertEqual(mode(key), 0o600)
        self.assertEqual(openssl("pkey", "-in", key, "-pubout"),
                         openssl("x509", "-in", cert, "-noout", "-pubkey"))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to give the files away")
    def test_files_belong_to_run_user(self):
        nobody = pwd.getpwnam("nobody")
        self.set_conf(run_user="nobody")
        r = self.selfsigned("mx.example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        keys = os.path.join(self.h.state, "keys")
        for p in [keys, os.path.join(keys, "tls.key"), os.path.join(keys, "tls.crt")]:
            st = os.stat(p)
            self.assertEqual((st.st_uid, st.st_gid), (nobody.pw_uid, nobody.pw_gid), p)
        self.set_conf(run_user="no-such-user-here")
        r = self.selfsigned("mx.example.test", "--force")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"run_user no-such-user-here does not exist", r.stderr)

    def test_ec_and_days(self):
        key, cert = self.make_pair("ec", "mail.other.test", "--type", "ec", "--days", "10")
        text = openssl("x509", "-in", cert, "-noout", "-text")
        self.assertIn("id-ecPublicKey", text)
        self.assertIn("prime256v1", text)
        self.assertIn("DNS:mail.other.test", text)
        dates = dict(l.split("=", 1) for l in
                     openssl("x509", "-in", cert, "-noout", "-startdate", "-enddate").split("\n")
                     if "=" in l)
        def when(s):
            return datetime.strptime(re.sub(" +", " ", s.strip()), "%b %d %H:%M:%S %Y GMT")
        span = when(dates["notAfter"]) - when(dates["notBefore"])
        self.assertEqual(span.days, 10)

    def test_configured_paths(self):
        key, cert = self.path("conf.key"), self.path("conf.crt")
        self.set_conf(tls_cert_file=cert, tls_key_file=key)
        r = self.selfsigned("mx.example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(mode(key), 0o600)
        self.assertNotIn(b"to use them", r.stdout)
        self.assertEqual(self.check().returncode, 0)

    def test_bad_arguments(self):
        for host in ["a,DNS:evil.test", "-x", "bad..name", "a b"]:
            r = self.selfsigned(host, "--key", self.path("x.key"), "--cert", self.path("x.crt"))
            self.assertIn(r.returncode, (1, 2), host)
            self.assertFalse(os.path.exists(self.path("x.key")), host)
        self.assertEqual(self.selfsigned().returncode, 2)
        self.assertEqual(self.selfsigned("a.test", "--days", "0").returncode, 2)
        self.assertEqual(self.selfsigned("a.test", "--type", "dsa").returncode, 2)


class CheckConfig(TLSCase):
    """hatod -n and start-up."""

    def test_good_pair(self):
        key, cert = self.make_pair("good")
        self.set_conf(tls_cert_file=cert, tls_key_file=key)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"configuration OK", r.stdout)
        self.assertNotIn(b"TLS", r.stderr)

    def test_bad_certificate(self):
        key, cert = self.make_pair("good")
        junk = self.path("junk.crt")
        with open(junk, "w") as f:
            f.write("this is not a certificate\n")
        self.set_conf(tls_cert_file=junk, tls_key_file=key)
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(("TLS: %s: cannot load the certificate chain" % junk).encode(), r.stderr)
        self.set_conf(tls_cert_file=self.path("missing.crt"))
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"missing.crt: No such file or directory", r.stderr)

    def test_mismatched_key(self):
        key, cert = self.make_pair("a")
        key2, _ = self.make_pair("b")
        self.set_conf(tls_cert_file=cert, tls_key_file=key2)
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(key2.encode(), r.stderr)
        self.assertIn(b"match", r.stderr)
        # a key of another type (EC key, RSA certificate)
        key3, _ = self.make_pair("c", "mx.example.test", "--type", "ec")
        self.set_conf(tls_key_file=key3)
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"does not match", r.stderr)

    def test_world_readable_key_warns(self):
        key, cert = self.make_pair("a")
        self.set_conf(tls_cert_file=cert, tls_key_file=key)
        os.chmod(key, 0o644)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(("hatod: warning: TLS: private key %s is readable by every user "
                       "(mode 0644)" % key).encode(), r.stderr)
        os.chmod(key, 0o600)
        r = self.check()
        self.assertNotIn(b"readable", r.stderr)

    @unittest.skipUnless(os.path.exists(FAKETIME_LIB), "libfaketime not installed")
    def test_expired_certificate_warns(self):
        key, cert = self.path("old.key"), self.path("old.crt")
        # made in 2020 for 30 days (libfaketime; ASan need not come first)
        env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "2020-01-01 00:00:00",
               "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
        r = self.h.run_tool([HATOCTL, "-f", self.h.conf_path, "tls", "selfsigned",
                             "mx.example.test", "--days", "30", "--key", key, "--cert", cert],
                            env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.set_conf(tls_cert_file=cert, tls_key_file=key)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(("hatod: warning: TLS: certificate %s has expired" % cert).encode(),
                      r.stderr)

    def test_bad_settings(self):
        key, cert = self.make_pair("a")
        self.set_conf(tls_cert_file=cert, tls_key_file=key, tls_protocols="TLSv1 TLSv1.2")
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr.decode(), r"hato\.conf:\d+: tls_protocols: .*unbroken range")
        self.set_conf(tls_protocols="!SSLv2, !SSLv3, !TLSv1, !TLSv1.1")
        self.assertEqual(self.check().returncode, 0)
        self.set_conf(tls_ciphers="NOTHING-AT-ALL")
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"tls_ciphers", r.stderr)
        del self.h.conf["tls_ciphers"]
        del self.h.conf["tls_key_file"]
        self.h.write_conf()
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"tls_key_file", r.stderr)

    def test_sni_map_errors_name_the_line(self):
        key, cert = self.make_pair("a")
        k2, c2 = self.make_pair("b", "mail.other.test")
        sni = self.path("sni")
        with open(sni, "w") as f:
            f.write("# per-name certificates\nmail.other.test b.crt b.key\n"
                    "*.other.test %s %s\n" % (c2, k2))
        self.set_conf(tls_cert_file=cert, tls_key_file=key, tls_sni_maps=sni)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(sni, "a") as f:
            f.write("imap.other.test b.crt a.key\n")
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn(("%s:4:" % sni).encode(), r.stderr)
        self.assertIn(b"does not match", r.stderr)

    def test_start_refuses_a_bad_certificate(self):
        key, _ = self.make_pair("a")
        _, cert2 = self.make_pair("b")
        self.set_conf(tls_cert_file=cert2, tls_key_file=key)
        self.h.start(wait=False)
        self.assertEqual(self.h.proc.wait(30), 1)
        self.assertIn("TLS: %s: cannot load the private key" % key, self.h.log())
        self.assertNotIn("hatod started", self.h.log())

    def test_start_warns_and_reload_keeps_the_old_certificate(self):
        key, cert = self.make_pair("a")
        os.chmod(key, 0o640)
        self.set_conf(tls_cert_file=cert, tls_key_file=key)
        self.h.start()
        self.assertIn("TLS: private key %s is readable by its group (mode 0640)" % key,
                      self.h.log())
        os.chmod(key, 0o600)
        with open(cert, "w") as f:
            f.write("garbage\n")
        self.h.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "reload failed, old configuration kept" in self.h.log()),
                        self.h.log())
        self.assertIn("cannot load the certificate chain", self.h.log())
        self.assertTrue(self.h.listening())
        # a new pair at the configured paths: hatoctl asks for the reload itself
        r = self.selfsigned("mx.example.test", "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"hatod reloaded", r.stdout)
        self.assertTrue(wait_for(lambda: "reloaded " in self.h.log()), self.h.log())


if __name__ == "__main__":
    unittest.main()
