"""A scripted SMTP server for the remote delivery tests: listens on
ip:25, answers as configured (per recipient, multi-line, malformed, a
dropped connection, silence) and records every transaction."""
import socket
import threading
import time


class FakeSmtp:
    """Options (all optional):
      greeting   reply lines to the connection ("220 ..." by default); None: say nothing
      ehlo       reply lines to EHLO (a 250 with PIPELINING and 8BITMIME by default)
      helo       reply lines to HELO
      rcpt       function(address, attempt) -> reply lines; 250 by default
      mail, data, end   replies to MAIL, DATA and the final dot
      drop_after name of a command ("RCPT", "DATA", "." ...) after which the
                 connection is closed without a reply
      delay      seconds to wait before each reply
    A reply is a string (one line) or a list of lines, without CRLF; a line
    given as bytes is sent as is (for malformed replies)."""

    def __init__(self, ip, port=25, **opts):
        self.ip, self.port = ip, port
        self.opts = opts
        self.transactions = []      # dicts: mail, rcpts (accepted), data (bytes, as on the wire)
        self.commands = []          # every command line received, in order
        self.sessions = []          # per connection: (command line, number of the read it came in)
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.rcpt_attempts = {}
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.stopped = False
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)

    def accept_loop(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    # ------------------------------------------------------------ one connection

    def serve(self, c):
        with self.lock:
            self.connections += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            c.settimeout(30)
            self.session(c)
        except (OSError, ConnectionError):
            pass
        finally:
            with self.lock:
                self.active -= 1
            c.close()

    def reply(self, c, lines):
        if self.opts.get("delay"):
            time.sleep(self.opts["delay"])
        if isinstance(lines, (str, bytes)):
            lines = [lines]
        out = b""
        for i, l in enumerate(lines):
            if isinstance(l, bytes):
                out += l
                continue
            if i < len(lines) - 1 and len(l) > 3 and l[3] == " ":
                l = l[:3] + "-" + l[4:]
            out += l.encode() + b"\r\n"
        c.sendall(out)

    def session(self, c):
        o = self.opts
        buf = b""
        greeting = o.get("greeting", "220 fake.example ESMTP")
        if greeting is None:
            time.sleep(60)          # silence: the client must time out
            return
        self.reply(c, greeting)
        tx = None

        reads = 0
        mine = []
        with self.lock:
            self.sessions.append(mine)

        def lines():
            nonlocal buf, reads
            while True:
                while b"\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    reads += 1
                    buf += d
                line, buf = buf.split(b"\r\n", 1)
                yield line

        it = lines()
        for raw in it:
            line = raw.decode("utf-8", "replace")
            self.commands.append(line)
            mine.append((line, reads))
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            if o.get("drop_after") == verb:
                return
            if verb == "EHLO":
                self.reply(c, o.get("ehlo", ["250-fake.example", "250-PIPELINING", "250-SIZE 10000000",
                                             "250 8BITMIME"]))
            elif verb == "HELO":
                self.reply(c, o.get("helo", "250 fake.example"))
            elif verb == "MAIL":
                tx = {"mail": line[10:], "rcpts": [], "data": b""}
                self.reply(c, o.get("mail", "250 2.1.0 ok"))
            elif verb == "RCPT":
                addr = line[8:].split(">", 1)[0].lstrip("<")
                with self.lock:
                    n = self.rcpt_attempts[addr] = self.rcpt_attempts.get(addr, 0) + 1
                r = o["rcpt"](addr, n) if o.get("rcpt") else "250 2.1.5 ok"
                r0 = r if isinstance(r, str) else r[-1]
                if tx is not None and isinstance(r0, str) and r0.startswith("2"):
                    tx["rcpts"].append(addr)
                self.reply(c, r)
            elif verb == "DATA":
                if tx is None or not tx["rcpts"]:
                    self.reply(c, "554 5.5.1 no valid recipients")
                    continue
                self.reply(c, o.get("data", "354 go ahead"))
                data = b""
                for dl in it:
                    if dl == b".":
                        break
                    data += dl + b"\r\n"
                else:
                    return
                if o.get("drop_after") == ".":
                    return
                tx["data"] = data
                end = o.get("end", "250 2.0.0 accepted")
                if isinstance(end, str) and end.startswith("2"):
                    with self.lock:
                        self.transactions.append(tx)
                tx = None
                self.reply(c, end)
            elif verb == "RSET":
                tx = None
                self.reply(c, "250 ok")
            elif verb == "QUIT":
                self.reply(c, "221 bye")
                return
            else:
                self.reply(c, "502 5.5.1 what")

    def delivered_to(self):
        """Every recipient of every accepted transaction, in order."""
        with self.lock:
            return [r for t in self.transactions for r in t["rcpts"]]
