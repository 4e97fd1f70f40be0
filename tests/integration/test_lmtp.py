"""LMTP delivery (RFC 2033) and `herald deliver`.

The module's server listens for LMTP on a TCP port and on a UNIX socket,
with a 64 KiB max_message_size.  Every test uses its own subject line (or
its own user) so that tests do not depend on each other's mail.
"""
import glob
import imaplib
import os
import signal
import smtplib
import socket
import stat
import subprocess
import time
import uuid

import pytest

import helpers
from helpers import HOST, IO_TIMEOUT, RawConn, Server

MAX_SIZE = 64 * 1024
HOSTNAME = socket.gethostname()
USERS = dict(helpers.USERS, carol="carol-pw", dave="dave-pw")


def _start_timeout(signum, frame):
    raise helpers.TestTimeout("server start exceeded 60 s")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    import conftest
    root = tmp_path_factory.mktemp("lmtp")
    sock_path = os.path.join(str(root), "lmtp.sock")
    s = Server(root / "srv", users=USERS, settings={
        "fsync": "no",
        "max_message_size": "64K",
    })
    s.lmtp_sock = sock_path
    s.write_config(lmtp_listen="%s:%d, %s" % (HOST, s.lmtp_port,
                                               sock_path))
    old = signal.signal(signal.SIGALRM, _start_timeout)
    signal.setitimer(signal.ITIMER_REAL, 60)
    try:
        s.start()
    except BaseException:
        if s.running():
            s.stop()
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    yield s
    conftest._finish([s])


# --- helpers

def lmtp_raw(srv, greeting=True):
    """A raw LMTP connection (RawConn reads CRLF lines)."""
    sock = socket.create_connection((HOST, srv.lmtp_port),
                                    timeout=IO_TIMEOUT)
    c = RawConn(sock)
    if greeting:
        c.greeting = c.readline()
    return c


def lhlo(c):
    c.send("LHLO client.example\r\n")
    return [c.readline() for _ in range(5)]


def replies(c, n):
    return [c.readline() for _ in range(n)]


def maildir_files(srv, user, folder=""):
    """Message files of a user's mailbox (folder "" = INBOX, or the
    Maildir++ name like ".Archive")."""
    base = os.path.join(srv.data_dir, "users", user, "Maildir", folder)
    return sorted(glob.glob(os.path.join(base, "cur", "*")) +
                  glob.glob(os.path.join(base, "new", "*")))


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def files_with(srv, user, needle, folder=""):
    """The message files of user's mailbox containing needle (bytes)."""
    return [p for p in maildir_files(srv, user, folder)
            if needle in read_file(p)]


def subject():
    return "lmtp-test-%s" % uuid.uuid4().hex


def message(subj, body="Hello.\r\n"):
    return ("From: sender@example.org\r\nTo: rcpt@example.org\r\n"
            "Subject: %s\r\n\r\n%s" % (subj, body)).encode()


def imap_exists(srv, user, mailbox="INBOX"):
    c = imaplib.IMAP4(HOST, srv.imap_port, timeout=IO_TIMEOUT)
    try:
        c.login(user, srv.users[user])
        typ, data = c.select(mailbox)
        assert typ == "OK", (typ, data)
        return int(data[0])
    finally:
        try:
            c.logout()
        except Exception:
            pass


def deliver(srv, *args, input=b"", conf=True):
    cmd = [srv.binary, "deliver"] + list(args)
    if conf:
        cmd += ["-c", srv.conf_path]
    return subprocess.run(cmd, input=input, capture_output=True,
                          timeout=helpers.CMD_TIMEOUT, cwd=srv.root)


# --- greeting and LHLO

def test_greeting_and_lhlo(srv):
    c = lmtp_raw(srv)
    with c:
        assert c.greeting == "220 %s Herald LMTP ready" % HOSTNAME
        assert lhlo(c) == [
            "250-%s" % HOSTNAME,
            "250-PIPELINING",
            "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES",
            "250 SIZE %d" % MAX_SIZE,
        ]
        c.send("QUIT\r\n")
        assert c.readline() == "221 2.0.0 Bye"
        assert c.expect_eof() == []


# --- transactions

def test_smtplib_several_recipients_one_unknown(srv):
    """Per-recipient replies at RCPT and after DATA; the message lands
    once in each known user's INBOX, visible to IMAP."""
    subj = subject()
    before = {u: imap_exists(srv, u) for u in ("alice", "bob")}
    c = smtplib.LMTP(HOST, srv.lmtp_port, timeout=IO_TIMEOUT)
    try:
        code, msg = c.ehlo("client.example")  # smtplib sends LHLO
        assert code == 250
        assert c.has_extn("pipelining") and c.has_extn("8bitmime")
        assert c.has_extn("enhancedstatuscodes")
        assert c.esmtp_features["size"] == str(MAX_SIZE)
        assert c.mail("sender@example.org") == (250, b"2.1.0 OK")
        assert c.rcpt("alice@example.org") == (250, b"2.1.5 OK")
        assert c.rcpt("nobody@example.org") == (
            550, b"5.1.1 <nobody@example.org> User doesn't exist: "
                 b"nobody@example.org")
        assert c.rcpt("bob@example.org") == (250, b"2.1.5 OK")
        # smtplib reads the first reply after the final dot; LMTP sends
        # one per accepted recipient, in RCPT order.
        assert c.data(message(subj)) == (
            250, b"2.0.0 <alice@example.org> Saved")
        assert c.getreply() == (250, b"2.0.0 <bob@example.org> Saved")
        assert c.noop() == (250, b"2.0.0 OK")
        c.quit()
    finally:
        c.close()
    for u in ("alice", "bob"):
        found = files_with(srv, u, subj.encode())
        assert len(found) == 1, (u, found)
        data = read_file(found[0])
        lines = data.split(b"\r\n")
        assert lines[0] == b"Return-Path: <sender@example.org>"
        assert lines[1] == b"Delivered-To: %s@example.org" % u.encode()
        assert lines[2].startswith(b"Received: from client.example "
                                   b"(127.0.0.1)")
        assert data.endswith(message(subj))
        assert imap_exists(srv, u) == before[u] + 1
    assert files_with(srv, "carol", subj.encode()) == []


def test_pipelining_in_one_write(srv):
    """MAIL/RCPT/DATA in one write; then the message, a second whole
    transaction and QUIT in one write.  Replies come in command order."""
    s1, s2 = subject(), subject()
    c = lmtp_raw(srv)
    with c:
        c.send("LHLO x\r\nMAIL FROM:<a@example.org>\r\n"
               "RCPT TO:<carol@example.org>\r\nRCPT TO:<ghost>\r\n"
               "RCPT TO:<carol@example.org>\r\nDATA\r\n")
        assert replies(c, 5) == [
            "250-%s" % HOSTNAME, "250-PIPELINING", "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES", "250 SIZE %d" % MAX_SIZE]
        assert replies(c, 5) == [
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "550 5.1.1 <ghost> User doesn't exist: ghost",
            "250 2.1.5 OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
        ]
        c.send(message(s1) + b".\r\n" +
               b"MAIL FROM:<>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n" +
               message(s2) + b".\r\nNOOP\r\nQUIT\r\n")
        assert replies(c, 8) == [
            # Two accepted RCPTs for carol: two replies (RFC 2033 4.2).
            "250 2.0.0 <carol@example.org> Saved",
            "250 2.0.0 <carol@example.org> Saved",
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
            "250 2.0.0 <dave@example.org> Saved",
            "250 2.0.0 OK",
            "221 2.0.0 Bye",
        ]
        assert c.expect_eof() == []
    assert len(files_with(srv, "carol", s1.encode())) == 2
    found = files_with(srv, "dave", s2.encode())
    assert len(found) == 1
    assert read_file(found[0]).startswith(
        b"Return-Path: <>\r\nDelivered-To: dave@example.org\r\n")


def transaction(c, rcpts, mail="MAIL FROM:<sender@example.org>"):
    """MAIL + RCPTs + DATA, each answered positively."""
    c.send(mail + "\r\n")
    assert c.readline() == "250 2.1.0 OK"
    for r in rcpts:
        c.send("RCPT TO:<%s>\r\n" % r)
        assert c.readline() == "250 2.1.5 OK"
    c.send("DATA\r\n")
    assert c.readline() == "354 Start mail input; end with <CRLF>.<CRLF>"


def test_dot_stuffing_byte_by_byte(srv):
    """Leading dots are unstuffed, other dots kept, and the end of data
    is found when every byte arrives in its own write."""
    subj = subject()
    body = (b"..one leading dot\r\n"
            b"....three\r\n"
            b"middle . dot\r\n"
            b".\rnot the end\r\n"
            b" .\r\n"
            b"last\r\n")
    stored = (b".one leading dot\r\n"
              b"...three\r\n"
              b"middle . dot\r\n"
              b"\rnot the end\r\n"
              b" .\r\n"
              b"last\r\n")
    c = lmtp_raw(srv)
    with c:
        lhlo(c)
        transaction(c, ["alice"])
        c.send_slowly(message(subj, "") + body + b".\r\n", delay=0)
        assert c.readline() == "250 2.0.0 <alice> Saved"
        c.send("QUIT\r\n")
        assert c.readline() == "221 2.0.0 Bye"
    found = files_with(srv, "alice", subj.encode())
    assert len(found) == 1
    assert read_file(found[0]).endswith(message(subj, "") + stored)


def test_bare_lf_does_not_end_data(srv):
    """Only CRLF.CRLF ends the data: "\\n.\\n" is content, so no command
    can be smuggled inside a message."""
    subj = subject()
    body = (b"line one\n.\nMAIL FROM:<evil@example.org>\r\n"
            b"RCPT TO:<bob>\r\n.\n\r\nend\r\n")
    # The line ".\n" (before a CRLF) loses its leading dot like any
    # other line starting with one (RFC 5321 4.5.2).
    stored = body.replace(b"\r\n.\n\r\n", b"\r\n\n\r\n")
    c = lmtp_raw(srv)
    with c:
        lhlo(c)
        transaction(c, ["alice"])
        c.send(message(subj, "") + body + b".\r\nNOOP\r\n")
        assert replies(c, 2) == ["250 2.0.0 <alice> Saved", "250 2.0.0 OK"]
    found = files_with(srv, "alice", subj.encode())
    assert len(found) == 1
    assert read_file(found[0]).endswith(message(subj, "") + stored)
    assert files_with(srv, "bob", subj.encode()) == []


def test_empty_message(srv):
    c = lmtp_raw(srv)
    with c:
        lhlo(c)
        transaction(c, ["dave"], mail="MAIL FROM:<empty-%s@x>" %
                    uuid.uuid4().hex)
        c.send(".\r\n")
        assert c.readline() == "250 2.0.0 <dave> Saved"


def test_size_limit(srv):
    subj = subject()
    c = lmtp_raw(srv)
    with c:
        lhlo(c)
        # RFC 1870: a declared size over the limit is refused at MAIL.
        c.send("MAIL FROM:<a@example.org> SIZE=%d\r\n" % (MAX_SIZE + 1))
        assert c.readline() == ("552 5.3.4 Message size exceeds fixed "
                                "maximum message size")
        c.send("MAIL FROM:<a@example.org> SIZE=%d BODY=8BITMIME\r\n"
               % MAX_SIZE)
        assert c.readline() == "250 2.1.0 OK"
        c.send("RSET\r\n")
        assert c.readline() == "250 2.0.0 OK"
        # Undeclared: the data is read to its end, then refused for
        # each recipient.
        transaction(c, ["alice", "bob"])
        big = message(subj, "x" * 998 + "\r\n") + \
            (b"y" * 998 + b"\r\n") * 70
        assert len(big) > MAX_SIZE
        c.send(big + b".\r\n")
        assert replies(c, 2) == [
            "552 5.3.4 <alice> Message too big for system",
            "552 5.3.4 <bob> Message too big for system",
        ]
        c.send("NOOP\r\n")
        assert c.readline() == "250 2.0.0 OK"
        # Exactly at the limit is fine.
        transaction(c, ["bob"])
        msg = message(subj, "")
        msg += b"z" * (MAX_SIZE - len(msg) - 2) + b"\r\n"
        assert len(msg) == MAX_SIZE
        c.send(msg + b".\r\n")
        assert c.readline() == "250 2.0.0 <bob> Saved"
    assert files_with(srv, "alice", subj.encode()) == []
    found = files_with(srv, "bob", subj.encode())
    assert len(found) == 1 and read_file(found[0]).endswith(msg)


MALFORMED = [
    ("FOO", "500 5.5.1 Unknown command"),
    ("HELO client.example", "500 5.5.1 Unknown command"),
    ("EHLO client.example", "500 5.5.1 Unknown command"),
    ("", "500 5.5.1 Unknown command"),
    (".x", "500 5.5.2 Invalid command syntax"),
    ("\tNOOP", "500 5.5.2 Invalid command syntax"),
    ("NOOP anything", "250 2.0.0 OK"),
    ("LHLO", "501 5.5.4 Missing hostname"),
    ("RCPT TO:<alice>", "503 5.5.0 MAIL needed first"),
    ("DATA", "503 5.5.0 MAIL needed first"),
    ("MAIL TO:<a@b>", "501 5.5.4 Invalid parameters"),
    ("MAIL FROM:a@b", "501 5.5.4 Invalid FROM: Missing '<' at beginning "
     "of path"),
    ("MAIL FROM:<a@b", "501 5.5.4 Invalid FROM: Missing '>' at end of path"),
    ("MAIL FROM:<a@b>x", "501 5.5.4 Invalid FROM: Invalid character in "
     "path"),
    ("MAIL FROM:<a@>", "501 5.5.4 Invalid FROM: Missing domain after '@'"),
    ("MAIL FROM:<a@b> FOO=bar", "555 5.5.4 Unsupported parameters"),
    ("MAIL FROM:<a@b> BODY=BINARYMIME",
     "501 5.5.4 Unsupported BODY= parameter value"),
    ("MAIL FROM:<a@b> BODY", "501 5.5.4 Missing BODY= parameter value"),
    ("MAIL FROM:<a@b> SIZE=12x", "501 5.5.4 Invalid SIZE= parameter value"),
    ("MAIL FROM:<a@b> SIZE=1 SIZE=2", "501 5.5.4 Duplicate SIZE= parameter"),
    ("VRFY", "501 5.5.4 Invalid parameters"),
    ("VRFY alice", "252 2.3.3 Try RCPT instead"),
    ("RSET x", "501 5.5.4 Invalid parameters"),
    ("mail from:<> body=7bit", "250 2.1.0 OK"),
    ("MAIL FROM:<a@b>", "503 5.5.0 MAIL already given"),
    ("DATA", "503 5.5.0 No valid recipients"),
    ("DATA now", "501 5.5.4 Invalid parameters"),
    ("RCPT TO:<>", "501 5.5.4 Invalid TO: Null path not allowed"),
    ("RCPT TO:alice", "501 5.5.4 Invalid TO: Missing '<' at beginning "
     "of path"),
    ("RCPT TO:<a b@x>", "501 5.5.4 Invalid TO: Missing '>' at end of path"),
    ("RCPT TO:<alice@x> NOTIFY=NEVER", "555 5.5.4 Unsupported parameters"),
    ("RCPT TO:<nobody@x>", "550 5.1.1 <nobody@x> User doesn't exist: "
     "nobody@x"),
    ("RCPT TO:<../alice>", "550 5.1.1 <../alice> User doesn't exist: "
     "../alice"),
    ("RCPT TO:<\"alice\"@x>", "250 2.1.5 OK"),
    ("RCPT TO:<@relay.example:Alice+box@x>", "250 2.1.5 OK"),
    ("RSET", "250 2.0.0 OK"),
    ("RCPT TO:<alice>", "503 5.5.0 MAIL needed first"),
]


def test_malformed_commands(srv):
    """Every error gets a reply with an enhanced code (compared with
    Dovecot 2.3's lmtp) and the session carries on."""
    c = lmtp_raw(srv)
    with c:
        lhlo(c)
        for cmd, want in MALFORMED:
            c.send(cmd + "\r\n")
            assert (cmd, c.readline()) == (cmd, want)
        # An overlong line is refused as a whole, then the next works.
        c.send("NOOP " + "a" * 5000 + "\r\nNOOP\r\n")
        assert replies(c, 2) == ["500 5.5.2 Line too long", "250 2.0.0 OK"]
        c.send("QUIT\r\n")
        assert c.readline() == "221 2.0.0 Bye"
        assert c.expect_eof() == []


def test_too_many_bad_commands(srv):
    c = lmtp_raw(srv)
    with c:
        c.send("BAD\r\n" * 20)
        lines = c.expect_eof()
        assert lines == ["500 5.5.1 Unknown command"] * 20 + [
            "421 4.7.0 %s Too many invalid commands" % HOSTNAME]


def test_rset(srv):
    subj = subject()
    c = lmtp_raw(srv)
    with c:
        lhlo(c)
        c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<alice>\r\nRSET\r\n"
               "RCPT TO:<alice>\r\nDATA\r\n")
        assert replies(c, 5) == [
            "250 2.1.0 OK", "250 2.1.5 OK", "250 2.0.0 OK",
            "503 5.5.0 MAIL needed first", "503 5.5.0 MAIL needed first"]
        # LHLO resets too.
        c.send("MAIL FROM:<a@example.org>\r\nLHLO again\r\nRCPT TO:<x>\r\n")
        assert replies(c, 7)[-1] == "503 5.5.0 MAIL needed first"
        transaction(c, ["bob"])
        c.send(message(subj) + b".\r\n")
        assert c.readline() == "250 2.0.0 <bob> Saved"
    assert len(files_with(srv, "bob", subj.encode())) == 1
    assert files_with(srv, "alice", subj.encode()) == []


def test_unix_socket(srv):
    st = os.stat(srv.lmtp_sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    subj = subject()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(IO_TIMEOUT)
    sock.connect(srv.lmtp_sock)
    c = RawConn(sock)
    with c:
        assert c.readline() == "220 %s Herald LMTP ready" % HOSTNAME
        lhlo(c)
        transaction(c, ["carol@example.org"])
        c.send(message(subj) + b".\r\nQUIT\r\n")
        assert replies(c, 2) == ["250 2.0.0 <carol@example.org> Saved",
                                 "221 2.0.0 Bye"]
    found = files_with(srv, "carol", subj.encode())
    assert len(found) == 1
    assert b"Received: from client.example (local)\r\n" in \
        read_file(found[0])
    # Several connections at once, spread over the workers.
    conns = []
    try:
        for _ in range(6):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(IO_TIMEOUT)
            s.connect(srv.lmtp_sock)
            conns.append(RawConn(s))
        for c in conns:
            assert c.readline().startswith("220 ")
            c.send("NOOP\r\n")
            assert c.readline() == "250 2.0.0 OK"
    finally:
        for c in conns:
            c.close()


def test_delivery_seen_by_idle(srv):
    """An IMAP client in IDLE sees the LMTP delivery as EXISTS."""
    c = srv.login("dave")
    with c:
        untagged, tagged = c.command("S1", "SELECT INBOX")
        assert tagged.startswith("S1 OK"), tagged
        exists = [int(l.split()[1]) for l in untagged
                  if l.endswith(" EXISTS")][0]
        c.send("I1 IDLE\r\n")
        assert c.readline().startswith("+ ")
        lm = lmtp_raw(srv)
        with lm:
            lhlo(lm)
            transaction(lm, ["dave"])
            lm.send(message(subject()) + b".\r\n")
            assert lm.readline() == "250 2.0.0 <dave> Saved"
        deadline = time.monotonic() + 5
        while True:
            line = c.readline(timeout=max(0.1, deadline -
                                          time.monotonic()))
            if line == "* %d EXISTS" % (exists + 1):
                break
        c.send("DONE\r\n")
        c.read_tagged("I1")


def test_shutdown_says_421(herald_server):
    s = herald_server(users={"alice": "pw"})
    c = lmtp_raw(s)
    with c:
        lhlo(c)
        s.stop()
        assert c.expect_eof() == [
            "421 4.3.2 %s Server shutting down" % HOSTNAME]


# --- herald deliver

def test_deliver_cli(srv):
    subj = subject()
    before = imap_exists(srv, "bob")
    r = deliver(srv, "-u", "bob", input=message(subj))
    assert r.returncode == 0, r.stderr
    found = files_with(srv, "bob", subj.encode())
    assert len(found) == 1
    # Stored unchanged: no envelope fields without -f/-a.
    assert read_file(found[0]) == message(subj)
    assert imap_exists(srv, "bob") == before + 1


def test_deliver_cli_mailbox_and_envelope(srv):
    subj = subject()
    # An mbox "From " line (Postfix local(8) writes one) is dropped; LF
    # line ends are kept and used for the added fields.
    msg = ("From sender@example.org  Sat Nov 28 07:00:00 2026\n"
           "Subject: %s\n\nbody\n" % subj).encode()
    before = imap_exists(srv, "alice", "Archive")
    r = deliver(srv, "-u", "alice", "-m", "Archive", "-f",
                "sender@example.org", "-a", "alice@example.org",
                input=msg)
    assert r.returncode == 0, r.stderr
    found = files_with(srv, "alice", subj.encode(), ".Archive")
    assert len(found) == 1
    assert read_file(found[0]) == (
        b"Return-Path: <sender@example.org>\n"
        b"Delivered-To: alice@example.org\n"
        b"Subject: %s\n\nbody\n" % subj.encode())
    assert imap_exists(srv, "alice", "Archive") == before + 1
    assert files_with(srv, "alice", subj.encode()) == []

    # A mailbox that does not exist: INBOX, as dovecot-lda does.
    subj = subject()
    r = deliver(srv, "-u", "alice", "-m", "No/Such/Box",
                input=message(subj))
    assert r.returncode == 0, r.stderr
    assert len(files_with(srv, "alice", subj.encode())) == 1
    assert not os.path.exists(os.path.join(
        srv.data_dir, "users", "alice", "Maildir", ".No.Such.Box"))


def test_deliver_cli_exit_codes(srv):
    msg = message(subject())
    r = deliver(srv, "-u", "nobody", input=msg)
    assert (r.returncode, r.stderr) == (
        67, b"herald deliver: nobody: no such user\n")
    r = deliver(srv, "-u", "../alice", input=msg)
    assert r.returncode == 67
    r = deliver(srv, input=msg)
    assert r.returncode == 64
    assert r.stderr.startswith(b"usage: herald deliver -u USER")
    r = deliver(srv, "-u", "alice", "-x", input=msg)
    assert r.returncode == 64
    r = deliver(srv, "-u", "alice", "extra", input=msg)
    assert r.returncode == 64
    r = deliver(srv, "-u", "alice", input=b"")
    assert (r.returncode, r.stderr) == (
        65, b"herald deliver: empty message\n")
    r = deliver(srv, "-u", "alice", input=b"x" * (MAX_SIZE + 1))
    assert (r.returncode, r.stderr) == (
        65, b"herald deliver: message larger than max_message_size "
            b"(65536 bytes)\n")
    # A broken config must defer, not bounce.
    r = deliver(srv, "-u", "alice", "-o", "no_such_key=1", input=msg)
    assert r.returncode == 75
    # The store failing: the user's storage cannot be created.
    blocker = os.path.join(srv.data_dir, "users", "ghost")
    os.makedirs(os.path.dirname(blocker), exist_ok=True)
    srv.add_user("ghost", "pw")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    r = deliver(srv, "-u", "ghost", input=msg)
    assert r.returncode == 75
    assert b"\nherald deliver: ghost: Internal error occurred." in r.stderr


def test_lmtp_store_failure_is_temporary(srv):
    """A recipient whose storage is broken gets 451, the others 250."""
    blocker = os.path.join(srv.data_dir, "users", "broken")
    srv.add_user("broken", "pw")
    os.makedirs(os.path.dirname(blocker), exist_ok=True)
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    subj = subject()
    c = lmtp_raw(srv)
    with c:
        lhlo(c)
        transaction(c, ["broken", "alice"])
        c.send(message(subj) + b".\r\n")
        first, second = replies(c, 2)
        assert first.startswith("451 4.3.0 <broken> Temporary internal "
                                "error"), first
        assert second == "250 2.0.0 <alice> Saved"
    assert len(files_with(srv, "alice", subj.encode())) == 1



def test_full_worker_refuses_lmtp_with_421(herald_server):
    """Past max_connections an LMTP client gets an LMTP 421 reply (RFC
    5321 3.8), not IMAP's BYE; an IMAPS client gets no plain text."""
    srv = herald_server(workers=1, max_connections=2)
    time.sleep(0.3)     # the start-up probes are gone
    held = [srv.raw(), srv.raw()]
    try:
        srv_lmtp = socket.create_connection(("127.0.0.1", srv.lmtp_port),
                                            timeout=5)
        data = b""
        while not data.endswith(b"\n"):
            chunk = srv_lmtp.recv(512)
            if not chunk:
                break
            data += chunk
        srv_lmtp.close()
        assert data.startswith(b"421 4.3.2 "), data
        s = socket.create_connection(("127.0.0.1", srv.imaps_port),
                                     timeout=5)
        s.settimeout(5)
        assert s.recv(512) == b""   # closed, nothing sent
        s.close()
        srv.wait_log(r"connection limit 2 reached")
    finally:
        for c in held:
            c.close()
