"""APPEND (RFC 3501 6.3.11, RFC 9051 6.3.12) with APPENDUID (RFC 4315) and
MULTIAPPEND (RFC 3502): literals of both kinds, flags, internal dates,
TRYCREATE, the max_message_size limit, streaming to disk (no partial
message after a disconnect, low RSS for a 20 MB message) and binary data.

The results are checked on disk: every message lands in the Maildir's cur/
as "<base>,S=<size>,U=<uid>:2,<flag letters>", its mtime being the internal
date.  Dovecot (2.3.19, checked by hand) answers the same way where noted.
"""
import calendar
import os
import re
import socket

import pytest

from helpers import USERS, assert_rss_bound, imap_quote, wait_until

ALICE = USERS["alice"]
MSG = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
NAME_RE = re.compile(r",S=(\d+),U=(\d+):2,([A-Za-z]*)$")


@pytest.fixture
def srv(herald_server):
    return herald_server(fsync="no", max_message_size="32M")


def maildir(srv, mailbox="INBOX", user="alice"):
    root = os.path.join(srv.data_dir, "users", user, "Maildir")
    return root if mailbox == "INBOX" else os.path.join(root,
                                                        "." + mailbox)


def stored(srv, mailbox="INBOX"):
    """{uid: (flag letters, path)} from the names in cur/."""
    out = {}
    d = os.path.join(maildir(srv, mailbox), "cur")
    if not os.path.isdir(d):
        return out          # the store is created on first use
    for name in os.listdir(d):
        m = NAME_RE.search(name)
        assert m, "unexpected file name %r" % name
        out[int(m.group(2))] = (m.group(3), os.path.join(d, name))
    return out


def leftovers(srv, mailbox="INBOX"):
    """Files in new/ and tmp/ of the Maildir and in data_dir/tmp."""
    out = []
    for sub in ("new", "tmp"):
        d = os.path.join(maildir(srv, mailbox), sub)
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in os.listdir(d)]
    d = os.path.join(srv.data_dir, "tmp")
    if os.path.isdir(d):
        out += [os.path.join(d, n) for n in os.listdir(d)]
    return out


def workers(srv):
    """PIDs of the master's child processes."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == srv.pid:
            pids.append(int(p))
    assert pids, "no worker processes"
    return pids


def open_tmp_files(srv):
    """(pid, fd path) of every file under data_dir/tmp the workers hold
    open (an O_TMPFILE shows as 'DIR/#N (deleted)')."""
    tmp = os.path.join(srv.data_dir, "tmp")
    out = []
    for pid in workers(srv):
        d = "/proc/%d/fd" % pid
        for fd in os.listdir(d):
            try:
                target = os.readlink(os.path.join(d, fd))
            except OSError:
                continue
            if target.startswith(tmp + "/"):
                out.append(os.path.join(d, fd))
    return out


def select(c, mailbox="INBOX"):
    untagged, tagged = c.command("SEL", "SELECT %s" % mailbox)
    assert tagged.startswith("SEL OK"), tagged
    info = {}
    for line in untagged:
        m = re.match(r"\* (\d+) EXISTS$", line)
        if m:
            info["exists"] = int(m.group(1))
        m = re.search(r"\[(UIDVALIDITY|UIDNEXT) (\d+)\]", line)
        if m:
            info[m.group(1).lower()] = int(m.group(2))
    return info


def append(c, tag, msg, extra="", mailbox="INBOX", sync=False):
    """APPEND one message; returns (untagged, tagged)."""
    head = "%s APPEND %s %s" % (tag, mailbox, extra + " " if extra else "")
    if sync:
        c.send("%s{%d}\r\n" % (head, len(msg)))
        line = c.readline()
        assert line.startswith("+ "), line
        c.send(msg + b"\r\n")
    else:
        c.send(head.encode() + b"{%d+}\r\n" % len(msg) + msg + b"\r\n")
    return c.read_tagged(tag)


def appenduid(tagged):
    m = re.match(r"\S+ OK \[APPENDUID (\d+) (\d+)(?::(\d+))?\] "
                 r"Append completed\.$", tagged)
    assert m, tagged
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or m.group(2))


# --- literals, APPENDUID, flags ------------------------------------------

def test_append_sync_and_nonsync_literals(srv):
    c = srv.login()
    info = select(c)
    assert info["exists"] == 0
    _, tagged = c.command("U", "UNSELECT")
    assert tagged == "U OK Unselect completed."
    _, t1 = append(c, "A1", MSG, sync=True)
    _, t2 = append(c, "A2", MSG + b"second\r\n")
    assert t1 == "A1 OK [APPENDUID %d %d] Append completed." % (
        info["uidvalidity"], info["uidnext"])
    assert t2 == "A2 OK [APPENDUID %d %d] Append completed." % (
        info["uidvalidity"], info["uidnext"] + 1)
    files = stored(srv)
    assert sorted(files) == [info["uidnext"], info["uidnext"] + 1]
    with open(files[info["uidnext"]][1], "rb") as f:
        assert f.read() == MSG
    with open(files[info["uidnext"] + 1][1], "rb") as f:
        assert f.read() == MSG + b"second\r\n"
    # No flags: an empty suffix, in cur/ (not new/).
    assert files[info["uidnext"]][0] == ""
    assert leftovers(srv) == []
    info2 = select(c)
    assert info2["exists"] == 2
    assert info2["uidnext"] == info["uidnext"] + 2
    c.close()


def test_append_flags_suffix(srv):
    c = srv.login()
    _, t = append(c, "A1", MSG, "(\\Seen \\Flagged \\Answered \\Draft "
                  "\\Deleted)")
    _, _, uid = appenduid(t)
    _, t = append(c, "A2", MSG, "(\\Seen $Forwarded custom)", sync=True)
    _, _, uid2 = appenduid(t)
    _, t = append(c, "A3", MSG, "()")
    _, _, uid3 = appenduid(t)
    files = stored(srv)
    # Maildir letters, sorted: Draft, Flagged, Replied, Seen, Trashed.
    assert files[uid][0] == "DFRST"
    assert files[uid2][0] == "S"
    assert files[uid3][0] == ""
    # The keywords are in the index: a SELECT lists them.
    untagged, tagged = c.command("S", "SELECT INBOX")
    assert tagged == "S OK [READ-WRITE] Select completed."
    assert untagged[0] == ("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen "
                           "\\Draft $Forwarded custom)")
    c.close()


def test_append_bad_flags(srv):
    c = srv.login()
    # \Recent cannot be set (as Dovecot), nor unknown system flags.
    _, t = append(c, "A1", MSG, "(\\Recent)")
    assert t == "A1 BAD Invalid system flag."
    _, t = append(c, "A2", MSG, "(\\Bogus)")
    assert t == "A2 BAD Invalid system flag."
    _, t = append(c, "A3", MSG, "(a%b)", sync=True)
    assert t == "A3 BAD Invalid keyword."
    assert stored(srv) == {}
    assert leftovers(srv) == []
    c.close()


# --- internal date -----------------------------------------------------------

@pytest.mark.parametrize("date,utc", [
    ("17-Jul-1996 02:44:25 -0700", (1996, 7, 17, 9, 44, 25)),
    (" 1-Jan-2020 10:00:00 +0100", (2020, 1, 1, 9, 0, 0)),
    ("01-jan-2020 10:00:00 +0000", (2020, 1, 1, 10, 0, 0)),
    # A single-digit day, as Dovecot also accepts.
    ("1-Feb-2020 23:59:59 -1130", (2020, 2, 2, 11, 29, 59)),
    ("29-Feb-2024 00:00:00 +0000", (2024, 2, 29, 0, 0, 0)),
])
def test_append_internal_date(srv, date, utc):
    c = srv.login()
    _, t = append(c, "A1", MSG, "(\\Seen) " + imap_quote(date))
    _, _, uid = appenduid(t)
    flags, path = stored(srv)[uid]
    assert flags == "S"
    assert int(os.stat(path).st_mtime) == calendar.timegm(utc + (0, 0, 0))
    _, t = append(c, "A2", MSG, imap_quote(date), sync=True)
    _, _, uid = appenduid(t)
    assert int(os.stat(stored(srv)[uid][1]).st_mtime) == \
        calendar.timegm(utc + (0, 0, 0))
    c.close()


@pytest.mark.parametrize("date", [
    "31-Feb-2020 10:00:00 +0100",       # no such day (Dovecot takes it)
    "29-Feb-2023 10:00:00 +0100",
    "00-Jan-2020 10:00:00 +0100",
    "01-Jan-2020 24:00:00 +0100",
    "01-Jan-2020 10:60:00 +0100",
    "01-Jan-2020 10:00:61 +0100",
    "01-Jan-2020 10:00:00 0100",        # no sign (Dovecot takes it)
    "01-Jan-2020 10:00:00 +01",
    "01-Jan-2020 10:00:00 +0160",
    "01-Jan-20 10:00:00 +0100",
    "01-Foo-2020 10:00:00 +0100",
    "01-Jan-2020 10:00 +0100",
    "01-Jan-2020  10:00:00 +0100",
    "01-Jan-2020 10:00:00 +0100 ",
    "",
])
def test_append_invalid_date_is_bad(srv, date):
    c = srv.login()
    _, t = append(c, "A1", MSG, imap_quote(date))
    assert t == "A1 BAD Invalid internal date."
    # The literal was read in full: the connection is in sync.
    _, t = c.command("N", "NOOP")
    assert t == "N OK NOOP completed."
    assert stored(srv) == {}
    wait_until(lambda: open_tmp_files(srv) == [], 5,
               what="temporary files closed")
    c.close()


def test_append_syntax_errors(srv):
    c = srv.login()
    for tag, args in [("B1", ""), ("B2", "INBOX"),
                      ("B3", 'INBOX "x"'),
                      ("B4", "INBOX (\\Seen)"),
                      ("B5", "INBOX abc")]:
        _, t = c.command(tag, "APPEND %s" % args)
        assert t.startswith(tag + " BAD "), t
    # A string where the message should be (as Dovecot: BAD).
    _, t = append(c, "B6", b"abc", '(\\Seen) "x" "y"', sync=True)
    assert t.startswith("B6 BAD "), t
    _, t = append(c, "B7", b"abc", 'garbage')
    assert t.startswith("B7 BAD "), t
    # A syntax error after the literal: the file is dropped.
    c.send(b"B8 APPEND INBOX {3+}\r\nabc (\r\n")
    _, t = c.read_tagged("B8")
    assert t.startswith("B8 BAD "), t
    _, t = c.command("N", "NOOP")
    assert t == "N OK NOOP completed."
    assert stored(srv) == {}
    assert leftovers(srv) == []
    c.close()


# --- mailboxes ------------------------------------------------------------

def test_append_trycreate(srv):
    c = srv.login()
    _, t = append(c, "A1", MSG, mailbox="Nope")
    assert t == "A1 NO [TRYCREATE] Mailbox doesn't exist."
    _, t = append(c, "A2", MSG, mailbox="Nope", sync=True)
    assert t == "A2 NO [TRYCREATE] Mailbox doesn't exist."
    # Into an existing folder (created for every user).
    _, t = append(c, "A3", MSG, "(\\Seen)", mailbox="Trash")
    uv, uid, _ = appenduid(t)
    assert stored(srv, "Trash")[uid][0] == "S"
    info = select(c, "Trash")
    assert info["uidvalidity"] == uv and info["exists"] == 1
    wait_until(lambda: open_tmp_files(srv) == [], 5,
               what="temporary files closed")
    assert leftovers(srv) == [] and leftovers(srv, "Trash") == []
    c.close()


def test_append_to_selected_mailbox_sends_exists(srv):
    c = srv.login()
    append(c, "A0", MSG)
    info = select(c)
    assert info["exists"] == 1
    untagged, t = append(c, "A1", MSG)
    assert t == "A1 OK [APPENDUID %d %d] Append completed." % (
        info["uidvalidity"], info["uidnext"])
    assert "* 2 EXISTS" in untagged, untagged
    # Another session sees it at its next command.
    c2 = srv.login()
    select(c2)
    untagged, t = append(c, "A2", MSG)
    assert "* 3 EXISTS" in untagged, untagged
    untagged, t = c2.command("N", "NOOP")
    assert t == "N OK NOOP completed."
    assert "* 3 EXISTS" in untagged, untagged
    c.close()
    c2.close()


def test_append_not_authenticated(srv):
    c = srv.raw()
    c.send("A1 APPEND INBOX {3}\r\n")
    assert c.readline().startswith("+ ")
    c.send("abc\r\n")
    _, t = c.read_tagged("A1")
    assert t == "A1 NO Not authenticated."
    assert not os.path.exists(os.path.join(srv.data_dir, "tmp")) or \
        leftovers(srv) == []
    c.close()


# --- empty, binary and MULTIAPPEND -------------------------------------------

def test_append_zero_bytes_is_no(srv):
    c = srv.login()
    # As Dovecot: "NO Can't save a zero byte message."
    c.send("A1 APPEND INBOX {0+}\r\n\r\n")
    _, t = c.read_tagged("A1")
    assert t == "A1 NO Can't save a zero byte message."
    c.send("A2 APPEND INBOX {0}\r\n")
    assert c.readline().startswith("+ ")
    c.send("\r\n")
    _, t = c.read_tagged("A2")
    assert t == "A2 NO Can't save a zero byte message."
    assert stored(srv) == {}
    c.close()


def test_append_binary_with_nul_bytes(srv):
    """Dovecot 2.3.19 stores NUL bytes from both {n} and ~{n} (literal8)
    literals as they are; so do we."""
    c = srv.login()
    data = b"Subject: bin\r\n\r\n" + bytes(range(256)) * 4 + b"\0\0\r\n"
    _, t = append(c, "A1", data)
    _, _, uid1 = appenduid(t)
    c.send(b"A2 APPEND INBOX ~{%d}\r\n" % len(data))
    assert c.readline().startswith("+ ")
    c.send(data + b"\r\n")
    _, t = c.read_tagged("A2")
    _, _, uid2 = appenduid(t)
    files = stored(srv)
    for uid in (uid1, uid2):
        with open(files[uid][1], "rb") as f:
            assert f.read() == data
        assert ",S=%d," % len(data) in files[uid][1]
    c.close()


def test_multiappend(srv):
    c = srv.login()
    info = select(c)
    c.command("U", "UNSELECT")
    msgs = [MSG + b"%d\r\n" % i for i in range(3)]
    c.send(b"M1 APPEND INBOX (\\Seen) {%d+}\r\n%s "
           b"(\\Flagged) \"01-Jan-2020 00:00:00 +0000\" {%d}\r\n"
           % (len(msgs[0]), msgs[0], len(msgs[1])))
    assert c.readline().startswith("+ ")
    c.send(b"%s {%d+}\r\n%s\r\n" % (msgs[1], len(msgs[2]), msgs[2]))
    _, t = c.read_tagged("M1")
    first = info["uidnext"]
    assert t == "M1 OK [APPENDUID %d %d:%d] Append completed." % (
        info["uidvalidity"], first, first + 2)
    files = stored(srv)
    assert [files[first + i][0] for i in range(3)] == ["S", "F", ""]
    for i in range(3):
        with open(files[first + i][1], "rb") as f:
            assert f.read() == msgs[i]
    assert int(os.stat(files[first + 1][1]).st_mtime) == 1577836800
    # All or nothing (RFC 3502): an empty third message fails them all.
    c.send(b"M2 APPEND INBOX {3+}\r\nabc {3+}\r\ndef {0+}\r\n\r\n")
    _, t = c.read_tagged("M2")
    assert t == "M2 NO Can't save a zero byte message."
    c.send(b"M3 APPEND INBOX {3+}\r\nabc {3+}\r\ndef Nope\r\n")
    _, t = c.read_tagged("M3")
    assert t.startswith("M3 BAD "), t
    assert len(stored(srv)) == 3
    wait_until(lambda: open_tmp_files(srv) == [], 5,
               what="temporary files closed")
    c.close()


def test_multiappend_message_limit(srv):
    c = srv.login()
    # 100 messages in one APPEND are fine ...
    c.send(b"M1 APPEND INBOX" + b" {1+}\r\nx" * 100 + b"\r\n")
    _, t = c.read_tagged("M1")
    uv, first, last = appenduid(t)
    assert last - first == 99
    # ... the 101st literal is refused before its continuation.
    c.send(b"M2 APPEND INBOX" + b" {1+}\r\nx" * 100 + b" {1}\r\n")
    _, t = c.read_tagged("M2")
    assert t == "M2 BAD [LIMIT] Too many messages in one APPEND"
    _, t = c.command("N", "NOOP")
    assert t == "N OK NOOP completed."
    assert len(stored(srv)) == 100
    assert open_tmp_files(srv) == []
    c.close()


# --- limits ------------------------------------------------------------------

def test_append_too_large_sync_literal(srv):
    c = srv.login()
    c.send("A1 APPEND INBOX {%d}\r\n" % (32 * 1024 * 1024 + 1))
    # Refused before the continuation; the connection goes on.
    _, t = c.read_tagged("A1")
    assert t == "A1 BAD [TOOBIG] Message too large"
    _, t = c.command("N", "NOOP")
    assert t == "N OK NOOP completed."
    # Exactly the limit is accepted (announced only: then we give up).
    c.send("A2 APPEND INBOX {%d}\r\n" % (32 * 1024 * 1024))
    assert c.readline().startswith("+ ")
    c.close()
    wait_until(lambda: open_tmp_files(srv) == [], 5,
               what="temporary files closed")
    assert stored(srv) == {}


def test_append_too_large_nonsync_literal_closes(srv):
    c = srv.login()
    # RFC 7888 section 4: the data of a refused {n+} is already on its
    # way, so the server must close the connection.
    c.send("A1 APPEND INBOX {%d+}\r\n" % (32 * 1024 * 1024 + 1))
    c.send(b"x" * 65536)
    lines = c.expect_eof()
    assert lines == ["* BYE [TOOBIG] Message too large"], lines
    assert stored(srv) == {}
    assert open_tmp_files(srv) == []


def test_append_limit_is_configurable(herald_server):
    srv = herald_server(fsync="no", max_message_size="100")
    c = srv.login()
    _, t = append(c, "A1", b"x" * 100, sync=True)
    appenduid(t)
    c.send("A2 APPEND INBOX {101}\r\n")
    _, t = c.read_tagged("A2")
    assert t == "A2 BAD [TOOBIG] Message too large"
    c.close()


# --- streaming and disconnects ----------------------------------------------

def test_disconnect_mid_literal_leaves_nothing(srv):
    c = srv.login()
    select(c)
    c.command("U", "UNSELECT")
    size = 4 * 1024 * 1024
    c.send("A1 APPEND INBOX (\\Seen) {%d}\r\n" % size)
    assert c.readline().startswith("+ ")
    c.send(b"x" * (size // 2))
    # The bytes go to an unlinked temporary file as they arrive.
    files = wait_until(lambda: [f for f in open_tmp_files(srv)
                                if os.stat(f).st_size == size // 2], 10,
                       what="half the literal in a temporary file")
    assert len(files) == 1
    assert os.readlink(files[0]).endswith("(deleted)")
    c.close()
    wait_until(lambda: open_tmp_files(srv) == [], 10,
               what="temporary file closed")
    assert leftovers(srv) == []
    assert stored(srv) == {}
    c2 = srv.login()
    assert select(c2)["exists"] == 0
    c2.close()


def test_disconnect_after_literal_before_line_end(srv):
    """A literal received in full whose command never ends: the session
    must drop the file when it goes away."""
    c = srv.login()
    c.send(b"A1 APPEND INBOX {3+}\r\nabc")
    wait_until(lambda: len(open_tmp_files(srv)) == 1, 10,
               what="the temporary file")
    c.close()
    wait_until(lambda: open_tmp_files(srv) == [], 10,
               what="temporary file closed")
    assert stored(srv) == {}
    assert leftovers(srv) == []


def test_disconnect_mid_multiappend(srv):
    c = srv.login()
    c.send(b"M1 APPEND INBOX {3+}\r\nabc {3+}\r\ndef {100+}\r\nxyz")
    wait_until(lambda: len(open_tmp_files(srv)) == 3, 10,
               what="three temporary files")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    wait_until(lambda: open_tmp_files(srv) == [], 10,
               what="temporary files closed")
    assert stored(srv) == {}
    assert leftovers(srv) == []


def _vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s for %d" % (key, pid))


@pytest.mark.timeout_s(120)
def test_append_20mb_is_streamed(srv):
    c = srv.login()
    pids = workers(srv)
    before = {p: _vm(p, "VmHWM") for p in pids}
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" \
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ+/\r\n"
    body = line * (20 * 1024 * 1024 // len(line))
    msg = b"Subject: big\r\n\r\n" + body
    c.send(b"A1 APPEND INBOX (\\Seen) {%d+}\r\n" % len(msg))
    for i in range(0, len(msg), 1 << 20):
        c.send(msg[i:i + (1 << 20)])
    c.send(b"\r\n")
    _, t = c.read_tagged("A1", timeout=60)
    _, _, uid = appenduid(t)
    flags, path = stored(srv)[uid]
    assert flags == "S"
    assert os.path.getsize(path) == len(msg)
    with open(path, "rb") as f:
        assert f.read() == msg
    # The message never sat in memory: the peak RSS of every worker grew
    # by much less than its size.
    for p in pids:
        grew = _vm(p, "VmHWM") - before[p]
        assert_rss_bound(grew < 8 * 1024 * 1024,
                         "worker %d peak RSS grew by %d bytes" % (p, grew))
    assert open_tmp_files(srv) == []
    c.close()


def test_append_pipelined(srv):
    c = srv.login()
    c.send(b"A1 APPEND INBOX {3+}\r\nabc\r\nA2 APPEND INBOX {3+}\r\ndef\r\n"
           b"N NOOP\r\n")
    _, t1 = c.read_tagged("A1")
    _, t2 = c.read_tagged("A2")
    _, t3 = c.read_tagged("N")
    assert appenduid(t1)[1] + 1 == appenduid(t2)[1]
    assert t3 == "N OK NOOP completed."
    c.close()


def test_append_mailbox_name_as_literal(srv):
    c = srv.login()
    # The mailbox literal (argument 0) stays in memory; the message is
    # the next one.
    c.send(b"A1 APPEND {5+}\r\nTrash {3+}\r\nabc\r\n")
    _, t = c.read_tagged("A1")
    _, uid, _ = appenduid(t)
    assert list(stored(srv, "Trash")) == [uid]
    c.close()
