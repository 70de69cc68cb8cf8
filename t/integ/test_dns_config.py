"""resolver_config: an unbound.conf for libunbound.  A file that starts
directly with options (`local-zone: "." static`, no `server:` line) works;
one libunbound rejects stops hatod at start with libunbound's message."""
import subprocess

from harness import HATOD, Hatod, HatodTestCase


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class ResolverConfig(HatodTestCase):
    def test_options_without_server_clause(self):
        self.h.stop()
        write(self.h.resolver_path,
              'local-zone: "." static\n'
              'local-data: "example.test. IN MX 10 mx.example.test."\n'
              'local-data: "example.test. IN TXT \\"v=spf1 \\" \\"-all\\""\n')
        r = subprocess.run([HATOD, "-f", self.h.conf_path, "-n"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.h.start()

    def test_rejected_option_stops_startup(self):
        self.h.stop()
        write(self.h.resolver_path, 'local-zone: "." nonsense\n')
        r = subprocess.run([HATOD, "-f", self.h.conf_path, "-d"], capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"resolver_config", r.stderr)
        self.assertIn(b"local-zone type", r.stderr)   # libunbound's own words
