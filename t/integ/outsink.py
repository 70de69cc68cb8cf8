"""t/integ/outsink.py — a scripted SMTP server (asyncio, in a thread) for the
outbound tests: hatod delivers to it on 127.0.0.x.  What it answers is set
per sink: the greeting, the EHLO keywords (PIPELINING, SIZE, STARTTLS with a
self-signed certificate, SMTPUTF8, AUTH), per recipient by local part
("temp..." 451 4.2.0, "perm..." 550 5.1.1, "throttle..." 451 4.7.1,
"once..." 451 the first time only), a stall
after the 354 ("stall..." recipient), a close after MAIL.  It records every
message (sender, recipients, data, TLS, AUTH user) and the highest number of
sessions it had open at once.
"""
import asyncio
import base64
import os
import socket
import ssl
import subprocess
import threading

from harness import wait_for


def free_port_on(addrs):
    """A TCP port free on every address in addrs."""
    for _ in range(200):
        s = socket.socket()
        s.bind((addrs[0], 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for a in addrs[1:]:
            t = socket.socket()
            try:
                t.bind((a, port))
            except OSError:
                ok = False
            t.close()
        if ok:
            return port
    raise RuntimeError("no common free port")


def self_signed(dirname, cn="mx.test"):
    cert = os.path.join(dirname, "sink-cert.pem")
    key = os.path.join(dirname, "sink-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn,
                    "-days", "2", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


class Message:
    def __init__(self, sender, rcpts, data, tls, auth, mail_line):
        self.sender, self.rcpts, self.data = sender, rcpts, data
        self.tls, self.auth, self.mail_line = tls, auth, mail_line


class Sink:
    def __init__(self, addr, port, pipelining=True, size=0, starttls=None, smtputf8=False,
                 auth=None, greeting="220 sink.test ESMTP", close_after_mail=False,
                 tls_broken=False, dsn=False, slow=0):
        self.addr, self.port = addr, port
        self.pipelining, self.size, self.smtputf8 = pipelining, size, smtputf8
        self.starttls = starttls          # (cert, key) or None
        self.tls_broken = tls_broken      # 220 to STARTTLS, then garbage
        self.auth = auth                  # {"user": "pass"} or None
        self.greeting = greeting
        self.close_after_mail = close_after_mail
        self.dsn = dsn
        self.slow = slow                  # seconds before answering the end of data
        self.messages = []
        self.commands = []
        self.writers = set()
        self.seen = set()                 # "once..." recipients already told 451
        self.sessions = 0
        self.open = 0
        self.max_open = 0
        self.lock = threading.Lock()
        self.loop = None
        self.server = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.started.wait(10):
            raise RuntimeError("sink did not start")

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._session, self.addr, self.port, reuse_address=True))
        self.started.set()
        self.loop.run_forever()

    def stop(self):
        """Close the listener and every session (the peer sees the close)."""
        async def _stop():
            self.server.close()
            for w in list(self.writers):
                w.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()
        if self.loop and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(_stop(), self.loop)
            self.thread.join(5)

    def count(self):
        with self.lock:
            return len(self.messages)

    def rcpts(self):
        with self.lock:
            return [r for m in self.messages for r in m.rcpts]

    async def _session(self, reader, writer):
        self.writers.add(writer)
        with self.lock:
            self.sessions += 1
            self.open += 1
            self.max_open = max(self.max_open, self.open)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError,
                ssl.SSLError, OSError):
            pass
        finally:
            with self.lock:
                self.open -= 1
            self.writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass

    async def _serve(self, reader, writer):
        def say(line):
            writer.write(line.encode() + b"\r\n")
        say(self.greeting)
        await writer.drain()
        if not self.greeting.startswith("220"):
            return
        tls = False
        auth_user = None
        sender, rcpts, mail_line = None, [], ""
        while True:
            raw = await reader.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.lock:
                self.commands.append(line)
            cmd = line[:4].upper()
            if cmd in ("EHLO", "HELO"):
                kw = ["sink.test"]
                if self.pipelining:
                    kw.append("PIPELINING")
                kw.append("SIZE %d" % self.size if self.size else "SIZE")
                if (self.starttls or self.tls_broken) and not tls:
                    kw.append("STARTTLS")
                if self.smtputf8:
                    kw.append("SMTPUTF8")
                if self.dsn:
                    kw.append("DSN")
                if self.auth:
                    kw.append("AUTH PLAIN LOGIN")
                kw += ["ENHANCEDSTATUSCODES", "8BITMIME"]
                for k in kw[:-1]:
                    say("250-" + k)
                say("250 " + kw[-1])
            elif line.upper() == "STARTTLS":
                say("220 2.0.0 go ahead")
                await writer.drain()
                if self.tls_broken:
                    say("this is not a TLS server hello")
                    await writer.drain()
                    return
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(*self.starttls)
                await writer.start_tls(ctx)
                tls = True
                sender, rcpts = None, []
            elif line.upper().startswith("AUTH PLAIN "):
                parts = base64.b64decode(line[11:]).split(b"\0")
                u, p = parts[1].decode(), parts[2].decode()
                if self.auth and self.auth.get(u) == p:
                    auth_user = u
                    say("235 2.7.0 Authentication successful")
                else:
                    say("535 5.7.8 Error: authentication failed")
            elif cmd == "MAIL":
                sender = line[10:].split(">")[0].lstrip("<")
                mail_line = line
                rcpts = []
                if self.auth and not auth_user:
                    say("530 5.7.0 Authentication required")
                    continue
                say("250 2.1.0 Ok")
                if self.close_after_mail:
                    await writer.drain()
                    return
            elif cmd == "RCPT":
                addr = line[8:].split(">")[0].lstrip("<")
                local = addr.split("@")[0]
                if local.startswith("temp"):
                    say("451 4.2.0 " + addr + ": try again later")
                elif local.startswith("perm"):
                    say("550 5.1.1 " + addr + ": no such user")
                elif local.startswith("once") and addr not in self.seen:
                    self.seen.add(addr)
                    say("451 4.2.0 " + addr + ": greylisted, come back later")
                elif local.startswith("throttle"):
                    say("451 4.7.1 " + addr + ": slow down")
                else:
                    rcpts.append(addr)
                    say("250 2.1.5 Ok")
            elif cmd == "DATA":
                if not rcpts:
                    say("554 5.5.1 Error: no valid recipients")
                    continue
                say("354 End data with <CR><LF>.<CR><LF>")
                await writer.drain()
                data = b""
                while True:
                    chunk = await reader.readline()
                    if not chunk:
                        return
                    if chunk == b".\r\n":
                        break
                    data += chunk
                if any(r.split("@")[0].startswith("stall") for r in rcpts):
                    await asyncio.sleep(3600)
                if self.slow:
                    await asyncio.sleep(self.slow)
                with self.lock:
                    self.messages.append(Message(sender, list(rcpts), data, tls, auth_user,
                                                 mail_line))
                say("250 2.0.0 Ok: queued as S%d" % len(self.messages))
            elif cmd == "RSET":
                sender, rcpts = None, []
                say("250 2.0.0 Ok")
            elif cmd == "QUIT":
                say("221 2.0.0 Bye")
                await writer.drain()
                return
            elif cmd == "NOOP":
                say("250 2.0.0 Ok")
            else:
                say("502 5.5.2 Error: command not recognized")
            await writer.drain()


def wait_until(pred, timeout=15.0, step=0.05):
    """harness.wait_for with the outbound tests' longer default wait."""
    return wait_for(pred, timeout, step)
