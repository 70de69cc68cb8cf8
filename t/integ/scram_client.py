"""The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), and -PLUS with
the channel binding given, computed here so tests check the server's proof and signature
independently of hato's code (SMTP AUTH and POP3 AUTH use it)."""
import base64
import hashlib
import hmac


class ScramClient:
    def __init__(self, user, nonce, gs2="n,,", cb=b""):
        self.bare = "n=%s,r=%s" % (user, nonce)
        self.nonce = nonce
        self.gs2, self.cb = gs2, cb

    def first(self):
        """client-first-message: the gs2 header and the bare part."""
        return self.gs2 + self.bare

    def final(self, password, server_first):
        """client-final-message for server_first; keeps what verify needs."""
        self.attrs = dict(a.split("=", 1) for a in server_first.split(","))
        self.salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                          base64.b64decode(self.attrs["s"]), int(self.attrs["i"]))
        ckey = hmac.new(self.salted, b"Client Key", hashlib.sha256).digest()
        stored = hashlib.sha256(ckey).digest()
        c = base64.b64encode(self.gs2.encode() + self.cb).decode()   # "biws" for "n,,"
        without = "c=%s,r=%s" % (c, self.attrs["r"])
        self.auth_msg = ",".join((self.bare, server_first, without)).encode()
        sig = hmac.new(stored, self.auth_msg, hashlib.sha256).digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(ckey, sig))).decode()
        return without + ",p=" + proof

    def server_final(self):
        """The server-final-message a server that knows the key sends."""
        skey = hmac.new(self.salted, b"Server Key", hashlib.sha256).digest()
        return "v=" + base64.b64encode(hmac.new(skey, self.auth_msg, hashlib.sha256).digest()).decode()
