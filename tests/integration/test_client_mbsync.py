"""Herald against a real client: mbsync (isync), two-way sync between a
local Maildir and the server's INBOX and Work folders.

Each test writes a throw-away .mbsyncrc (implicit TLS or STARTTLS, the
server's self-signed certificate as CertificateFile, no system CAs) and runs
`mbsync -a` several times:

  1. first sync: server messages come down (flags become the Maildir name
     suffix), a local message goes up;
  2. a flag change on each side, a new message on each side, a deletion on
     each side, then sync: each shows on the other side (Maildir names
     locally, FETCH FLAGS / ENVELOPE on the server);
  3. a sync with nothing to do changes nothing.

Needs mbsync (Debian's isync; scripts/deps.sh test installs it); skipped
without it.
"""
import glob
import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import time

import pytest

from helpers import HOST

MBSYNC = shutil.which("mbsync")
pytestmark = pytest.mark.skipif(MBSYNC is None, reason="mbsync not found "
                                "(Debian package isync)")
MBSYNC_TIMEOUT = 60


def mbsync_rc(srv, root, ssl_type, auth_mechs="*"):
    port = srv.imaps_port if ssl_type == "IMAPS" else srv.imap_port
    return """IMAPAccount herald
Host {host}
Port {port}
User alice
Pass {password}
SSLType {ssl_type}
CertificateFile {cert}
SystemCertificates no
AuthMechs {auth}
Timeout 20

IMAPStore herald-remote
Account herald

MaildirStore herald-local
Path {root}/mail/
Inbox {root}/mail/INBOX
SubFolders Verbatim

Channel herald
Far :herald-remote:
Near :herald-local:
Patterns INBOX Work
Create Both
Expunge Both
SyncState *
""".format(host=HOST, port=port, password=srv.users["alice"],
           ssl_type=ssl_type, cert=srv.cert_path, root=root, auth=auth_mechs)


class Sync:
    def __init__(self, srv, root, ssl_type, auth_mechs="*"):
        self.root = str(root)
        self.rc = os.path.join(self.root, "mbsyncrc")
        os.makedirs(os.path.join(self.root, "home"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "mail"), exist_ok=True)
        with open(self.rc, "w") as f:
            f.write(mbsync_rc(srv, self.root, ssl_type, auth_mechs))
        self.outputs = []

    def run(self):
        """mbsync -a; returns its output (protocol included: -Dn)."""
        env = dict(os.environ, HOME=os.path.join(self.root, "home"))
        r = subprocess.run([MBSYNC, "-c", self.rc, "-V", "-Dn", "-a"],
                           capture_output=True, text=True, env=env,
                           timeout=MBSYNC_TIMEOUT, stdin=subprocess.DEVNULL)
        out = r.stdout + r.stderr
        self.outputs.append(out)
        assert r.returncode == 0, "mbsync exited %d:\n%s" % (
            r.returncode, out[-8000:])
        return out

    def folder(self, name):
        return os.path.join(self.root, "mail", name)


# --- the local side ----------------------------------------------------------

def local_messages(folder):
    """{subject: (path, flags)} of a Maildir folder; flags is the info
    suffix after ":2," ("" for none or no suffix)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "new", "*")) +
                       glob.glob(os.path.join(folder, "cur", "*"))):
        with open(path, "rb") as f:
            head = f.read().split(b"\n\n")[0].split(b"\r\n\r\n")[0]
        m = re.search(rb"^Subject: (.*?)\r?$", head, re.M)
        assert m, "no Subject in %s" % path
        subject = m.group(1).decode()
        assert subject not in out, "duplicate %r: %s and %s" % (
            subject, out[subject][0], path)
        name = os.path.basename(path)
        flags = name.split(":2,", 1)[1] if ":2," in name else ""
        out[subject] = (path, flags)
    return out


def write_local(folder, subject, flags=None):
    """A message as a Maildir MUA writes it (LF line ends): new/ without
    flags, cur/ with the given info flags."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    name = "%d.M%dP%d.test" % (time.time(), time.monotonic_ns() % 10**6,
                               os.getpid())
    tmp = os.path.join(folder, "tmp", name)
    with open(tmp, "w") as f:
        f.write("From: Local <local@example.org>\n"
                "To: alice@example.org\n"
                "Subject: %s\n"
                "Message-ID: <%s@local.example.org>\n"
                "\n"
                "Written locally.\n" % (subject, subject))
    if flags is None:
        os.rename(tmp, os.path.join(folder, "new", name))
    else:
        os.rename(tmp, os.path.join(folder, "cur", name + ":2," + flags))


def set_local_flags(path, flags):
    """What a MUA does to change flags: rename into cur/ with a new info
    suffix."""
    folder = os.path.dirname(os.path.dirname(path))
    base = os.path.basename(path).split(":2,", 1)[0]
    new = os.path.join(folder, "cur", base + ":2," + flags)
    os.rename(path, new)
    return new


# --- the server side --------------------------------------------------------

FETCH_RE = re.compile(r'^\d+ \(UID (\d+) FLAGS \(([^)]*)\) ENVELOPE '
                      r'\((?:NIL|"[^"]*") "([^"]*)"')


def imap(srv):
    c = imaplib.IMAP4_SSL(HOST, srv.imaps_port,
                          ssl_context=srv.ssl_context(), timeout=10)
    c.login("alice", srv.users["alice"])
    return c


def server_messages(srv, mailbox):
    """{subject: (uid, set of flags)} as FETCH reports them."""
    c = imap(srv)
    try:
        typ, data = c.select(mailbox, readonly=True)
        assert typ == "OK", data
        if int(data[0]) == 0:
            return {}
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS ENVELOPE)")
        assert typ == "OK", data
        out = {}
        for line in data:
            assert isinstance(line, bytes), "literal in %r" % (data,)
            m = FETCH_RE.match(line.decode())
            assert m, line
            flags = set(m.group(2).split()) - {"\\Recent"}
            assert m.group(3) not in out, data
            out[m.group(3)] = (int(m.group(1)), flags)
        return out
    finally:
        c.logout()


def server_append(srv, mailbox, subject, flags=""):
    msg = ("From: Server <server@example.org>\r\n"
           "To: alice@example.org\r\n"
           "Subject: %s\r\n"
           "Message-ID: <%s@server.example.org>\r\n"
           "\r\n"
           "On the server.\r\n" % (subject, subject))
    c = imap(srv)
    try:
        typ, data = c.append(mailbox, flags and "(%s)" % flags, None,
                             msg.encode())
        assert typ == "OK", data
    finally:
        c.logout()


def server_store(srv, mailbox, uid, op, flags, expunge=False):
    c = imap(srv)
    try:
        typ, data = c.select(mailbox)
        assert typ == "OK", data
        typ, data = c.uid("STORE", str(uid), op, "(%s)" % flags)
        assert typ == "OK", data
        if expunge:
            typ, data = c.expunge()
            assert typ == "OK", data
    finally:
        c.logout()


def lmtp_deliver(srv, subject):
    lmtp = smtplib.LMTP(HOST, srv.lmtp_port, timeout=10)
    try:
        refused = lmtp.sendmail(
            "sender@example.org", ["alice@example.org"],
            "From: Sender <sender@example.org>\r\nTo: alice@example.org\r\n"
            "Subject: %s\r\nMessage-ID: <%s@lmtp.example.org>\r\n\r\n"
            "Delivered.\r\n" % (subject, subject))
        assert refused == {}, refused
    finally:
        lmtp.quit()


def local_view(sync):
    return {box: {s: flags for s, (_, flags) in
                  local_messages(sync.folder(box)).items()}
            for box in ("INBOX", "Work")}


def server_view(srv):
    return {box: {s: flags for s, (_, flags) in
                  server_messages(srv, box).items()}
            for box in ("INBOX", "Work")}


# --- the tests -------------------------------------------------------------

@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("ssl_type,auth", [("IMAPS", "*"),
                                           ("STARTTLS", "LOGIN")])
def test_mbsync_two_way(herald_server, tmp_path, ssl_type, auth):
    srv = herald_server(fsync="no")
    sync = Sync(srv, tmp_path / "mbsync", ssl_type, auth)

    # Before the first sync: two messages in INBOX and one in Work on the
    # server, one local message in INBOX.
    c = imap(srv)
    assert c.create("Work")[0] == "OK"
    c.logout()
    server_append(srv, "INBOX", "srv-a")
    server_append(srv, "INBOX", "srv-b", "\\Seen")
    server_append(srv, "Work", "srv-c", "\\Flagged")
    write_local(sync.folder("INBOX"), "loc-l")

    out = sync.run()
    if ssl_type == "STARTTLS":
        assert re.search(r"^>>> \d+ STARTTLS$", out, re.M), out
    if auth == "*":
        assert re.search(r"^>>> \d+ AUTHENTICATE PLAIN", out, re.M), out
    else:
        assert re.search(r"^>>> \d+ LOGIN ", out, re.M), out
    assert "Connection is now encrypted" in out, out

    # 1. Everything is on both sides, flags included.
    local = local_view(sync)
    assert local == {
        "INBOX": {"srv-a": "", "srv-b": "S", "loc-l": ""},
        "Work": {"srv-c": "F"},
    }, (local, out[-6000:])
    server = server_view(srv)
    assert server == {
        "INBOX": {"srv-a": set(), "srv-b": {"\\Seen"}, "loc-l": set()},
        "Work": {"srv-c": {"\\Flagged"}},
    }, (server, out[-6000:])

    # 2. Changes on both sides.
    loc_inbox = local_messages(sync.folder("INBOX"))
    loc_work = local_messages(sync.folder("Work"))
    srv_inbox = server_messages(srv, "INBOX")
    #   local: srv-a read and answered, srv-c deleted (the file removed),
    #   a new message in Work
    set_local_flags(loc_inbox["srv-a"][0], "RS")
    os.unlink(loc_work["srv-c"][0])
    write_local(sync.folder("Work"), "loc-w", "F")
    #   server: srv-b flagged, loc-l expunged, a new message by LMTP
    server_store(srv, "INBOX", srv_inbox["srv-b"][0], "+FLAGS",
                 "\\Flagged")
    server_store(srv, "INBOX", srv_inbox["loc-l"][0], "+FLAGS",
                 "\\Deleted", expunge=True)
    lmtp_deliver(srv, "srv-new")

    out = sync.run()
    local = local_view(sync)
    assert local == {
        "INBOX": {"srv-a": "RS", "srv-b": "FS", "srv-new": ""},
        "Work": {"loc-w": "F"},
    }, (local, out[-6000:])
    server = server_view(srv)
    assert server == {
        "INBOX": {"srv-a": {"\\Seen", "\\Answered"},
                  "srv-b": {"\\Seen", "\\Flagged"},
                  "srv-new": set()},
        "Work": {"loc-w": {"\\Flagged"}},
    }, (server, out[-6000:])

    # 3. Nothing to do: nothing changes, nothing is uploaded or fetched.
    before_files = sorted(
        os.path.relpath(p, sync.root) for p in
        glob.glob(os.path.join(sync.root, "mail", "*", "*", "*")))
    out = sync.run()
    assert not re.search(r"^>>> \d+ (UID STORE|APPEND|UID FETCH \d+ "
                         r"\(BODY)", out, re.M), out[-6000:]
    after_files = sorted(
        os.path.relpath(p, sync.root) for p in
        glob.glob(os.path.join(sync.root, "mail", "*", "*", "*")))
    assert after_files == before_files
    assert server_view(srv) == server


@pytest.mark.timeout_s(60)
def test_mbsync_sees_recent_in_fresh_inbox(herald_server, tmp_path):
    srv = herald_server(fsync="no")
    sync = Sync(srv, tmp_path / "mbsync", "IMAPS")
    server_append(srv, "INBOX", "srv-a")
    server_append(srv, "INBOX", "srv-b")
    out = sync.run()
    assert "far side: 2 messages, 2 recent" in out, out[-4000:]
