"""A small IMAP4rev1 server on loopback for the bounce-mailbox tests.

It speaks the real wire protocol (RFC 3501 tagged commands, untagged data,
literals for message bodies) well enough for Python's imaplib: CAPABILITY,
LOGIN (a bad password gets "NO [AUTHENTICATIONFAILED]"), LIST, CREATE,
SELECT/EXAMINE, SEARCH and UID SEARCH (ALL, UNSEEN, UID ranges), UID FETCH
(RFC822, BODY[], BODY.PEEK[], RFC822.SIZE, FLAGS), UID MOVE (RFC 6851, only
when `move=True`), UID COPY, UID STORE +FLAGS, EXPUNGE, UID EXPUNGE (UIDPLUS),
CLOSE, NOOP, LOGOUT; implicit TLS or STARTTLS with a self-signed certificate.
Folders live in memory: {name: Folder}. One thread per connection.

    server = ImapServer(user="ada@icloud.com", password="secret")
    server.add("INBOX", raw_bytes)
    ... server.port ... server.folders["Loft/Processed"].messages ...
    server.stop()
"""
import re
import socketserver
import threading

from tests.conftest import free_port


class Message:
    def __init__(self, uid, raw, flags=()):
        self.uid = uid
        self.raw = raw
        self.flags = set(flags)


class Folder:
    def __init__(self, name, uid_validity=1):
        self.name = name
        self.uid_validity = uid_validity
        self.uid_next = 1
        self.messages = []  # in sequence order

    def append(self, raw, flags=()):
        self.messages.append(Message(self.uid_next, raw, flags))
        self.uid_next += 1
        return self.messages[-1].uid

    def uids(self):
        return [m.uid for m in self.messages]


TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\((?:[^()]|\([^()]*\))*\))|([^\s()]+)')


def tokens(text):
    """Arguments of a command line: quoted strings unquoted, parenthesised lists kept whole, atoms."""
    found = []
    for quoted, group, atom in TOKEN.findall(text):
        if group:
            found.append(group)
        elif atom:
            found.append(atom)
        else:
            found.append(re.sub(r"\\(.)", r"\1", quoted))
    return found


def parse_set(spec, highest):
    """A sequence set ("1:3,7,9:*") as a set of numbers; '*' is the highest number in use."""
    numbers = set()
    for part in spec.split(","):
        if ":" in part:
            low, high = part.split(":", 1)
            low = highest if low == "*" else int(low)
            high = highest if high == "*" else int(high)
            low, high = min(low, high), max(low, high)
            numbers.update(range(low, high + 1))
        else:
            numbers.add(highest if part == "*" else int(part))
    return numbers


class Session(socketserver.StreamRequestHandler):
    """One client connection."""

    def setup(self):
        super().setup()
        self.state = "not authenticated"
        self.folder = None
        self.readonly = False
        self.secure = self.imap.tls == "ssl"

    @property
    def imap(self):
        return self.server.imap

    def send(self, line):
        self.wfile.write(line if isinstance(line, bytes) else line.encode() + b"\r\n")

    def handle(self):
        imap = self.imap
        with imap.lock:
            imap.connections += 1
        self.send(f"* OK [CAPABILITY {imap.capabilities(self.secure)}] Loft test IMAP ready")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            parts = text.split(" ", 2)
            if len(parts) < 2:
                self.send("* BAD missing tag or command")
                continue
            tag, command = parts[0], parts[1].upper()
            rest = parts[2] if len(parts) > 2 else ""
            with imap.lock:
                imap.log.append(f"{command} {rest}" if command != "LOGIN" else "LOGIN")
                try:
                    done = self.dispatch(tag, command, rest)
                except Exception as exc:  # noqa: BLE001 - a test server answers BAD instead of dying
                    self.send(f"{tag} BAD {type(exc).__name__}: {exc}")
                    done = False
            if done:
                return

    def dispatch(self, tag, command, rest):
        args = tokens(rest)
        if command == "STARTTLS" and self.imap.tls == "starttls" and not self.secure:
            self.send(f"{tag} OK Begin TLS negotiation now")
            self.wfile.flush()
            self.request = self.imap.context.wrap_socket(self.request, server_side=True)
            self.rfile = self.request.makefile("rb")
            self.wfile = socketserver._SocketWriter(self.request)
            self.secure = True
        elif command == "CAPABILITY":
            self.send(f"* CAPABILITY {self.imap.capabilities(self.secure)}")
            self.send(f"{tag} OK CAPABILITY completed")
        elif command == "NOOP":
            self.send(f"{tag} OK NOOP completed")
        elif command == "LOGOUT":
            self.send("* BYE Loft test IMAP logging out")
            self.send(f"{tag} OK LOGOUT completed")
            return True
        elif command == "LOGIN":
            if len(args) != 2:
                self.send(f"{tag} BAD LOGIN needs a user name and a password")
            elif (args[0], args[1]) == (self.imap.user, self.imap.password):
                self.state = "authenticated"
                self.send(f"{tag} OK [CAPABILITY {self.imap.capabilities(True)}] Logged in")
            else:
                self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
        elif self.state == "not authenticated":
            self.send(f"{tag} BAD Log in first")
        elif command == "LIST":
            self.list(tag, args)
        elif command == "CREATE":
            name = args[0]
            if name in self.imap.folders:
                self.send(f"{tag} NO [ALREADYEXISTS] Mailbox already exists")
            else:
                self.imap.folders[name] = Folder(name)
                self.send(f"{tag} OK CREATE completed")
        elif command in ("SELECT", "EXAMINE"):
            self.select(tag, command, args[0])
        elif self.folder is None:
            self.send(f"{tag} BAD Select a mailbox first")
        elif command == "UID":
            self.uid_command(tag, args)
        elif command == "SEARCH":
            self.search(tag, args, by_uid=False)
        elif command == "EXPUNGE":
            self.expunge()
            self.send(f"{tag} OK EXPUNGE completed")
        elif command == "CLOSE":
            if not self.readonly:
                self.folder.messages = [m for m in self.folder.messages if "\\Deleted" not in m.flags]
            self.folder = None
            self.send(f"{tag} OK CLOSE completed")
        else:
            self.send(f"{tag} BAD Unknown command {command}")
        return False

    def list(self, tag, args):
        reference, pattern = (args + ["", ""])[:2]
        if pattern == "":
            self.send('* LIST (\\Noselect) "/" ""')
        else:
            regex = re.compile("^" + re.escape(reference + pattern).replace(r"\*", ".*").replace("%", "[^/]*") + "$")
            for name in sorted(self.imap.folders):
                if regex.match(name):
                    self.send(f'* LIST (\\HasNoChildren) "/" "{name}"')
        self.send(f"{tag} OK LIST completed")

    def select(self, tag, command, name):
        folder = self.imap.folders.get(name)
        if folder is None:
            self.folder = None
            self.send(f"{tag} NO [NONEXISTENT] Unknown Mailbox: {name}")
            return
        self.folder, self.readonly = folder, command == "EXAMINE"
        unseen = sum(1 for m in folder.messages if "\\Seen" not in m.flags)
        self.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
        self.send(f"* {len(folder.messages)} EXISTS")
        self.send("* 0 RECENT")
        self.send(f"* OK [UNSEEN {unseen}] unseen messages" if unseen else "* OK no unseen messages")
        self.send(f"* OK [UIDVALIDITY {folder.uid_validity}] UIDs valid")
        self.send(f"* OK [UIDNEXT {folder.uid_next}] Predicted next UID")
        mode = "READ-ONLY" if self.readonly else "READ-WRITE"
        self.send(f"{tag} OK [{mode}] {command} completed")

    def uid_command(self, tag, args):
        sub, rest = args[0].upper(), args[1:]
        if sub == "SEARCH":
            return self.search(tag, rest, by_uid=True)
        highest = max(self.folder.uids(), default=0)
        wanted = parse_set(rest[0], highest) if rest else set()
        chosen = [(seq, m) for seq, m in enumerate(self.folder.messages, 1) if m.uid in wanted]
        if sub == "FETCH":
            items = rest[1].strip("()").upper()
            for seq, message in chosen:
                self.fetch(seq, message, items)
            self.send(f"{tag} OK UID FETCH completed")
        elif sub in ("COPY", "MOVE"):
            if sub == "MOVE" and not self.imap.move:
                self.send(f"{tag} BAD Unknown command UID MOVE")
                return
            target = self.imap.folders.get(rest[1])
            if target is None:
                self.send(f"{tag} NO [TRYCREATE] Mailbox doesn't exist: {rest[1]}")
                return
            for _, message in chosen:
                target.append(message.raw, message.flags - {"\\Deleted", "\\Recent"})
            if sub == "MOVE":
                for seq, message in reversed(chosen):
                    self.folder.messages.remove(message)
                    self.send(f"* {seq} EXPUNGE")
            self.send(f"{tag} OK UID {sub} completed")
        elif sub == "STORE":
            mode, flags = rest[1].upper(), set(rest[2].strip("()").split())
            for seq, message in chosen:
                if mode.startswith("+FLAGS"):
                    message.flags |= flags
                elif mode.startswith("-FLAGS"):
                    message.flags -= flags
                else:
                    message.flags = set(flags)
                if ".SILENT" not in mode:
                    self.send(f"* {seq} FETCH (UID {message.uid} FLAGS ({' '.join(sorted(message.flags))}))")
            self.send(f"{tag} OK UID STORE completed")
        elif sub == "EXPUNGE":  # UIDPLUS: only the given UIDs
            for seq, message in reversed(chosen):
                if "\\Deleted" in message.flags:
                    self.folder.messages.remove(message)
                    self.send(f"* {seq} EXPUNGE")
            self.send(f"{tag} OK UID EXPUNGE completed")
        else:
            self.send(f"{tag} BAD Unknown UID command {sub}")

    def search(self, tag, criteria, by_uid):
        messages = list(enumerate(self.folder.messages, 1))
        words = [c.upper() for c in criteria]
        i = 0
        while i < len(words):
            word = words[i]
            if word == "ALL":
                pass
            elif word == "UNSEEN":
                messages = [(s, m) for s, m in messages if "\\Seen" not in m.flags]
            elif word == "SEEN":
                messages = [(s, m) for s, m in messages if "\\Seen" in m.flags]
            elif word == "UID":
                i += 1
                wanted = parse_set(words[i], max(self.folder.uids(), default=0))
                messages = [(s, m) for s, m in messages if m.uid in wanted]
            else:
                self.send(f"{tag} BAD Unsupported search key {word}")
                return
            i += 1
        found = " ".join(str(m.uid if by_uid else s) for s, m in messages)
        self.send(f"* SEARCH {found}".rstrip())
        self.send(f"{tag} OK SEARCH completed")

    def fetch(self, seq, message, items):
        parts = [f"UID {message.uid}"]
        body = None
        if "RFC822.SIZE" in items:
            parts.append(f"RFC822.SIZE {len(message.raw)}")
        if re.search(r"\bRFC822\b(?!\.)", items):
            body = ("RFC822", message.raw)
            if not self.readonly:
                message.flags.add("\\Seen")
        elif "BODY.PEEK[]" in items:
            body = ("BODY[]", message.raw)
        elif "BODY[]" in items:
            body = ("BODY[]", message.raw)
            if not self.readonly:
                message.flags.add("\\Seen")
        if "FLAGS" in items.replace("+FLAGS", ""):
            parts.append(f"FLAGS ({' '.join(sorted(message.flags))})")
        head = f"* {seq} FETCH ({' '.join(parts)}"
        if body is None:
            self.send(head + ")")
            return
        self.send(f"{head} {body[0]} {{{len(body[1])}}}\r\n".encode() + body[1] + b")\r\n")

    def expunge(self):
        kept = []
        for seq, message in reversed(list(enumerate(self.folder.messages, 1))):
            if "\\Deleted" in message.flags:
                self.send(f"* {seq} EXPUNGE")
            else:
                kept.append(message)
        self.folder.messages = list(reversed(kept))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        sock, address = super().get_request()
        if self.imap.tls == "ssl":  # implicit TLS; the handshake happens in the connection's own thread
            sock = self.imap.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class ImapServer:
    """A started server: .port, .folders, .log (commands received), .stop()."""

    def __init__(self, user="bounces@example.com", password="app-password", move=True, folders=("INBOX",),
                 tls=None):
        """tls: None (plain), "ssl" (implicit TLS) or "starttls", with a fresh self-signed certificate."""
        self.user, self.password, self.move, self.tls = user, password, move, tls
        self.context = None
        if tls:
            from tests.sending_support import tls_context
            self.context = tls_context()
        self.folders = {name: Folder(name) for name in folders}
        self.lock = threading.RLock()
        self.log = []
        self.connections = 0
        self.port = free_port()
        self.server = _Server(("127.0.0.1", self.port), Session)
        self.server.imap = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def capabilities(self, secure=True):
        starttls = " STARTTLS" if self.tls == "starttls" and not secure else ""
        return "IMAP4rev1 AUTH=PLAIN LITERAL+ UIDPLUS" + (" MOVE" if self.move else "") + starttls

    def add(self, raw, folder="INBOX", flags=()):
        with self.lock:
            return self.folders[folder].append(raw, flags)

    def raw_messages(self, folder):
        with self.lock:
            return [m.raw for m in self.folders[folder].messages] if folder in self.folders else []

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
