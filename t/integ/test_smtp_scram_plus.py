"""SCRAM-SHA-256-PLUS on submission (issue 8, "Authentication"): offered
only over TLS, with the connection's channel binding — tls-exporter (RFC
9266) over TLS 1.3, tls-server-end-point (RFC 5929) over TLS 1.2 — and a
proof bound to another connection, another binding type or a downgrade flag
refused.  The client side is computed here: the TLS 1.2 binding is the
SHA-256 of the server certificate (hatoctl signs with SHA-256); Python's
ssl module has no keying-material exporter, so the TLS 1.3 one comes from
libssl through ctypes on the SSL handle of the test's own socket."""
import base64
import ctypes
import hashlib
import hmac
import os
import ssl
import unittest

from test_smtp_auth import AuthBase, PASSWORD

USER = "bob@example.test"

_libssl = ctypes.CDLL("libssl.so.3")
_libssl.SSL_export_keying_material.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
    ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
_libssl.SSL_version.argtypes = [ctypes.c_void_p]


def ssl_handle(sock):
    """The SSL * of an ssl.SSLSocket: CPython's PySSLSocket is
    {PyObject_HEAD; PyObject *Socket; SSL *ssl; ...}.  Checked against the
    protocol version the socket reports, so a different layout fails loudly."""
    obj = sock._sslobj
    ptr = ctypes.c_void_p.from_address(id(obj) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
    want = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303}[sock.version()]
    if not ptr or _libssl.SSL_version(ptr) != want:
        raise AssertionError("cannot find the SSL handle of this Python's ssl socket")
    return ptr


def tls_exporter(sock):
    out = ctypes.create_string_buffer(32)
    label = b"EXPORTER-Channel-Binding"
    if _libssl.SSL_export_keying_material(ssl_handle(sock), out, 32, label, len(label),
                                          None, 0, 0) != 1:
        raise AssertionError("SSL_export_keying_material failed")
    return out.raw


def server_end_point(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).digest()


def tls_ctx(maxver=None):
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if maxver:
        c.maximum_version = maxver
    return c


class ScramPlus(AuthBase):
    CONF = {"auth_failure_limit": "20"}      # the refusals below are failures too

    def setUp(self):
        super().setUp()
        r = self.h.hatoctl("user", "passwd", USER, "--with-scram", "--password-stdin",
                           input=(PASSWORD + "\n").encode())
        self.assertEqual(r.returncode, 0, r.stderr)

    def session(self, maxver=None):
        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.h.sub_port, timeout=30)
        s.ehlo("client.test")
        s.starttls(context=tls_ctx(maxver))
        s.ehlo("client.test")
        return s

    def exchange(self, s, gs2, cb, pw=PASSWORD, mech="SCRAM-SHA-256-PLUS"):
        """One SCRAM exchange with gs2 header gs2 ("p=tls-exporter,,") and
        channel-binding data cb.  Returns the final reply code."""
        nonce = base64.b64encode(os.urandom(18)).decode()
        bare = "n=%s,r=%s" % (USER, nonce)
        code, text = s.docmd("AUTH", mech + " " + base64.b64encode(
            (gs2 + bare).encode()).decode())
        if code != 334:
            return code
        first = base64.b64decode(text).decode()
        attrs = dict(a.split("=", 1) for a in first.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", pw.encode(), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        ckey = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored = hashlib.sha256(ckey).digest()
        without = "c=%s,r=%s" % (base64.b64encode(gs2.encode() + cb).decode(), attrs["r"])
        auth_msg = ",".join((bare, first, without)).encode()
        sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(ckey, sig))).decode()
        code, text = s.docmd(base64.b64encode((without + ",p=" + proof).encode()).decode())
        if code != 334:
            return code
        skey = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        want = base64.b64encode(hmac.new(skey, auth_msg, hashlib.sha256).digest()).decode()
        self.assertEqual(base64.b64decode(text).decode(), "v=" + want)
        return s.docmd("")[0]

    def test_tls13_exporter(self):
        s = self.session()
        self.assertEqual(s.sock.version(), "TLSv1.3")
        self.assertIn("SCRAM-SHA-256-PLUS", s.esmtp_features["auth"].split())
        self.assertEqual(self.exchange(s, "p=tls-exporter,,", tls_exporter(s.sock)), 235)
        s.quit()
        # the binding of another connection (a relayed exchange) does not pass
        other = self.session()
        s = self.session()
        self.assertEqual(self.exchange(s, "p=tls-exporter,,", tls_exporter(other.sock)), 535)
        other.close()
        s.close()
        # nor another binding type, nor "y" (client thinks -PLUS is not offered)
        s = self.session()
        self.assertEqual(self.exchange(s, "p=tls-unique,,", s.sock.get_channel_binding()), 535)
        s.close()
        s = self.session()
        self.assertEqual(self.exchange(s, "y,,", b"", mech="SCRAM-SHA-256"), 535)
        s.close()
        # plain SCRAM ("n") still works next to it
        s = self.session()
        self.assertEqual(self.exchange(s, "n,,", b"", mech="SCRAM-SHA-256"), 235)
        s.close()

    def test_tls12_server_end_point(self):
        s = self.session(ssl.TLSVersion.TLSv1_2)
        self.assertEqual(s.sock.version(), "TLSv1.2")
        self.assertIn("SCRAM-SHA-256-PLUS", s.esmtp_features["auth"].split())
        self.assertEqual(self.exchange(s, "p=tls-server-end-point,,", server_end_point(s.sock)),
                         235)
        s.close()
        s = self.session(ssl.TLSVersion.TLSv1_2)
        self.assertEqual(self.exchange(s, "p=tls-exporter,,", os.urandom(32)), 535)
        s.close()


class ScramPlusPlaintext(AuthBase):
    CONF = {"smtpd_tls_auth_only": "no"}

    def test_not_offered_without_tls(self):
        s = self.submission(tls=False)
        mechs = s.esmtp_features["auth"].split()
        self.assertIn("SCRAM-SHA-256", mechs)
        self.assertNotIn("SCRAM-SHA-256-PLUS", mechs)
        code, _ = s.docmd("AUTH", "SCRAM-SHA-256-PLUS " + base64.b64encode(
            b"p=tls-exporter,,n=bob@example.test,r=abcdefgh").decode())
        self.assertEqual(code, 504)
        s.close()


if __name__ == "__main__":
    unittest.main()
