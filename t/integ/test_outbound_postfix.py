"""hatod delivers to a real MTA: a private Postfix instance (Debian's
postfix package, its own config, queue and data directories under the
test's temp dir, as ../shared/peers/peers-setup.sh does) listening on
127.0.0.7 at smtp_client_port, offering STARTTLS with a self-signed
certificate and delivering pf.test into one Maildir; and the other way, a
second instance on 127.0.0.8 whose relayhost is hatod, which sends on by
MX to a sink.  Skipped (counted as a failure by run.py) when Postfix is not
installed."""
import glob
import os
import pwd
import shutil
import subprocess
import unittest

from outsink import self_signed, wait_until
from test_outbound import OutboundBase

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"


class PostfixPeer:
    def __init__(self, root, port, cert, key, addr="127.0.0.7", extra=""):
        self.etc = os.path.join(root, "pf-etc")
        self.spool = os.path.join(root, "pf-spool")
        self.data = os.path.join(root, "pf-data")
        self.mail = os.path.join(root, "pf-mail")
        self.log = os.path.join(root, "pf.log")
        for d in (self.etc, self.spool, self.data, os.path.join(self.mail, "box")):
            os.makedirs(d, exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        os.chmod(root, 0o755)        # postfix and nobody walk into it
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.mail, "box", sub), exist_ok=True)
        subprocess.run(["chown", "-R", "%d:%d" % (nobody.pw_uid, nobody.pw_gid), self.mail],
                       check=True)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("""compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
myhostname = postfix.pf.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
virtual_mailbox_domains = pf.test
virtual_mailbox_base = {mail}
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
maillog_file = {log}
maillog_file_prefixes = /var, /dev/stdout, {root}
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
{extra}
""".format(extra=extra, root=root, etc=self.etc, spool=self.spool, data=self.data, mail=self.mail, log=self.log,
           uid=nobody.pw_uid, gid=nobody.pw_gid, cert=cert, key=key))
        shutil.copy("/usr/share/postfix/master.cf.dist", os.path.join(self.etc, "master.cf"))
        for f in ("/usr/share/postfix/dynamicmaps.cf", "/etc/postfix/dynamicmaps.cf"):
            if os.path.exists(f):
                shutil.copy(f, os.path.join(self.etc, "dynamicmaps.cf"))
                break
        os.makedirs(os.path.join(self.etc, "dynamicmaps.cf.d"), exist_ok=True)
        os.makedirs(os.path.join(self.etc, "postfix-files.d"), exist_ok=True)
        pc = ["postconf", "-c", self.etc]
        subprocess.run(pc + ["-MX", "smtp/inet"], check=True)
        subprocess.run(pc + ["-M", "%s:%d/inet=%s:%d inet n - n - - smtpd"
                             % (addr, port, addr, port)], check=True)
        subprocess.run(pc + ["-F", "*/*/chroot = n"], check=True)
        subprocess.run(["chown", "postfix:postfix", self.data], check=True)
        subprocess.run([POSTFIX, "-c", self.etc, "start"], capture_output=True, timeout=60)

    def messages(self):
        return sorted(glob.glob(os.path.join(self.mail, "box", "new", "*")))

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return "(no postfix log)"

    def stop(self):
        subprocess.run([POSTFIX, "-c", self.etc, "stop"], capture_output=True, timeout=60)


@unittest.skipUnless(os.path.exists(POSTFIX) and os.getuid() == 0, "needs postfix and root")
class ToPostfix(OutboundBase):
    def test_delivery_to_postfix_over_starttls(self):
        cert, key = self_signed(self.tmp, "postfix.pf.test")
        pf = PostfixPeer(self.tmp, self.port, cert, key)
        try:
            self.start({"smtp_tls_security_level": "may"},
                       dns=["pf.test. IN MX 10 postfix.pf.test.",
                            "postfix.pf.test. IN A 127.0.0.7"])
            self.send(["one@pf.test", "two@pf.test"], "to postfix",
                      body=".leading dot\r\n" + "x" * 2000 + "\r\nend\r\n")
            self.assertTrue(wait_until(lambda: len(pf.messages()) >= 1, 30),
                            self.h.log() + pf.read_log())
            self.wait_log(r"to=<one@pf\.test>, relay=postfix\.pf\.test\[127\.0\.0\.7\]:%d, .*"
                          r"tls=TLSv1\.3 \S+, status=sent \(250 2\.0\.0 Ok: queued as "
                          % self.port, 20)
            self.wait_log(r"to=<two@pf\.test>.*status=sent", 20)
            with open(pf.messages()[0], "rb") as f:
                data = f.read()
            self.assertIn(b"Subject: to postfix", data)
            self.assertIn(b"\n.leading dot\n", data)        # unstuffed by Postfix
            self.assertIn(b"x" * 998, data)
            self.assertTrue(self.queue_empty(), self.h.log())
        finally:
            pf.stop()


    def test_postfix_relays_through_hatod(self):
        """The other way: Postfix's relayhost is hatod, which sends on by MX."""
        s = self.sink()
        self.start(dns=[])
        cert, key = self_signed(self.tmp, "postfix.pf.test")
        pf = PostfixPeer(self.tmp, self.port, cert, key, addr="127.0.0.8",
                         extra="relayhost = [127.0.0.1]:%d\nsmtp_tls_security_level = none\n"
                               "virtual_mailbox_domains =\nsmtp_host_lookup = native"
                               % self.h.port)
        try:
            import smtplib
            from test_outbound import msg
            c = smtplib.SMTP("127.0.0.8", self.port, timeout=20)
            c.sendmail("someone@pf.test", ["far@dom1.test"], msg("via postfix"))
            c.quit()
            self.assertTrue(wait_until(lambda: s.count() == 1, 30), self.h.log() + pf.read_log())
            m = s.messages[0]
            self.assertEqual(m.rcpts, ["far@dom1.test"])
            self.assertEqual(m.sender, "someone@pf.test")
            self.assertIn(b"by mx.example.test", m.data)         # hatod's Received:
            self.assertIn(b"by postfix.pf.test", m.data)         # Postfix's
            self.assertIn("status=sent", pf.read_log())
            self.wait_log(r"to=<far@dom1\.test>, relay=mx\.dom1\.test\[127\.0\.0\.2\]")
        finally:
            pf.stop()


if __name__ == "__main__":
    unittest.main()
