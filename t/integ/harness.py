"""t/integ/harness.py — runs a real hatod for integration tests.

Each Hatod gets a temp state directory, a config with ephemeral loopback
ports, a users file, an aliases file and a resolver config that starts with
`local-zone: "." static` (no DNS query leaves the machine).  Binaries come
from $HATO_BUILD (default: <repo>/build).
"""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("HATO_BUILD", os.path.join(REPO, "build"))
HATOD = os.path.join(BUILD, "mta", "hatod")
HATOCTL = os.path.join(BUILD, "tools", "hatoctl")
SENDMAIL = os.path.join(BUILD, "tools", "hato-sendmail")
TMPROOT = os.environ.get("HATO_TEST_TMP", "/tmp")


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=10.0, step=0.02):
    """Poll pred() until it returns something true; return it (or None)."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Hatod:
    """A hatod instance.  conf: extra/overriding config lines (dict)."""

    def __init__(self, conf=None, users=None, aliases=None, state_dir=None, dns_data=None):
        self.dir = tempfile.mkdtemp(prefix="hato-integ-", dir=TMPROOT)
        self.state = state_dir or os.path.join(self.dir, "state")
        self.port = free_port()
        self.sub_port = free_port()
        self.conf_path = os.path.join(self.dir, "hato.conf")
        self.users_path = os.path.join(self.dir, "users")
        self.aliases_path = os.path.join(self.dir, "aliases")
        self.resolver_path = os.path.join(self.dir, "unbound.conf")
        self.log_path = os.path.join(self.dir, "hatod.log")
        self.proc = None
        self.env = None          # hatod's environment (None: the tests' own)
        self.conf = {
            "myhostname": "mx.example.test",
            "state_directory": self.state,
            "run_user": "",
            "local_domains": "example.test, other.test",
            "smtp_listen": "127.0.0.1:%d" % self.port,
            "submission_listen": "127.0.0.1:%d" % self.sub_port,
            "users_file": self.users_path,
            "alias_maps": self.aliases_path,
            "resolver_config": self.resolver_path,
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
            # remote mail waits in the queue unless a test routes it out
            # (the outbound tests set default_transport = smtp)
            "default_transport": "retry:4.4.0 remote delivery off in this test",
        }
        self.conf.update(conf or {})
        if users is None:
            users = ["bob@example.test *", "alice@example.test *",
                     "carol@other.test * quota=20K"]
        if aliases is None:
            aliases = ["postmaster: bob", "info: bob, alice"]
        with open(self.users_path, "w") as f:
            f.write("\n".join(users) + "\n")
        with open(self.aliases_path, "w") as f:
            f.write("\n".join(aliases) + "\n")
        with open(self.resolver_path, "w") as f:
            f.write('server:\n    local-zone: "." static\n')
            for line in dns_data or []:
                f.write('    local-data: "%s"\n' % line)
        self.write_conf()

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            for k, v in self.conf.items():
                f.write("%s = %s\n" % (k, v))

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([HATOD, "-f", self.conf_path, "-d"],
                                     stdout=self.logf, stderr=self.logf, env=self.env)
        # the port is bound before queue recovery: wait for the start line too
        if wait and not wait_for(lambda: self.listening() and "hatod started" in self.log(), 15):
            raise RuntimeError("hatod did not start:\n" + self.log())
        return self

    def listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("hatod exited %s:\n%s" % (self.proc.returncode, self.log()))
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            return True
        except OSError:
            return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def maildir(self, address, sub="new"):
        local, domain = address.split("@")
        d = os.path.join(self.state, "mail", domain, local, sub)
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            return []

    def wait_mail(self, address, count=1, timeout=10):
        return wait_for(lambda: len(self.maildir(address)) >= count and self.maildir(address),
                        timeout)

    def read_mail(self, path):
        with open(path, "rb") as f:
            return f.read()

    def queue_ids(self):
        d = os.path.join(self.state, "queue", "env")
        try:
            return sorted(os.listdir(d))
        except FileNotFoundError:
            return []

    def run_tool(self, argv, input=None, env=None):
        e = dict(os.environ)
        e["HATO_CONFIG"] = self.conf_path
        e.update(env or {})
        return subprocess.run(argv, input=input, capture_output=True, env=e, timeout=60)

    def hatoctl(self, *args, input=None):
        return self.run_tool([HATOCTL, "-f", self.conf_path] + list(args), input=input)

    def cleanup(self):
        self.stop()
        subprocess.run(["rm", "-rf", self.dir])


class RawSocket:
    """What the byte-exact clients share: self.s (the socket), self.buf
    (what was received and not yet consumed)."""

    def send(self, data):
        self.s.sendall(data)

    def closed(self, timeout=5):
        """True if the server closed the connection (EOF) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


class RawSMTP(RawSocket):
    """A byte-exact SMTP client over a socket, for what smtplib won't send."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.s = socket.create_connection((host, port), timeout)
        self.buf = b""

    def reply(self):
        """One whole (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; got %r" % (lines,))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("latin-1"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def cmd(self, line):
        self.send(line if isinstance(line, bytes) else line.encode() + b"\r\n")
        return self.reply()


class HatodTestCase(unittest.TestCase):
    """Starts one hatod per test (override CONF/USERS/ALIASES on the class)."""
    CONF = None
    USERS = None
    ALIASES = None

    def setUp(self):
        self.h = Hatod(conf=self.CONF, users=self.USERS, aliases=self.ALIASES)
        self.h.start()

    def tearDown(self):
        ok = self.h.stop()
        if os.environ.get("HATO_KEEP"):
            print("kept", self.h.dir)
        else:
            subprocess.run(["rm", "-rf", self.h.dir])
