"""STORE, COPY, MOVE and EXPUNGE with their UID forms (RFC 9051 6.4.3,
6.4.6, 6.4.7, 6.4.9; UIDPLUS, RFC 4315; MOVE, RFC 6851).

Results are checked on disk where possible: the Maildir file of a message
is "<base>,S=<size>,U=<uid>:2,<letters>" with the system flags as letters
(D=\\Draft, F=\\Flagged, R=\\Answered, S=\\Seen, T=\\Deleted), so flags,
copies and expunges are visible without FETCH.  Responses are compared
exactly; Dovecot 2.3.19 gives the same lines (its own texts aside) except
where noted.
"""
import os
import re

import pytest

NAME_RE = re.compile(r",S=(\d+),U=(\d+):2,([A-Za-z]*)$")
SYSFLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


@pytest.fixture
def srv(herald_server):
    return herald_server(fsync="no")


def maildir(srv, mailbox="INBOX", user="alice"):
    root = os.path.join(srv.data_dir, "users", user, "Maildir")
    return root if mailbox == "INBOX" else os.path.join(root,
                                                        "." + mailbox)


def files(srv, mailbox="INBOX"):
    """{uid: flag letters} from the names in cur/."""
    out = {}
    d = os.path.join(maildir(srv, mailbox), "cur")
    for name in os.listdir(d):
        m = NAME_RE.search(name)
        assert m, "unexpected file name %r" % name
        out[int(m.group(2))] = m.group(3)
    return out


def content(srv, uid, mailbox="INBOX"):
    d = os.path.join(maildir(srv, mailbox), "cur")
    for name in os.listdir(d):
        m = NAME_RE.search(name)
        if m and int(m.group(2)) == uid:
            with open(os.path.join(d, name), "rb") as f:
                return f.read()
    raise AssertionError("no file for uid %d" % uid)


def message(i):
    return b"Subject: message %d\r\n\r\nbody %d\r\n" % (i, i)


def populate(srv, n, mailbox="INBOX", flags=None):
    """Append n messages (flags[i] as their flag lists) from a session of
    its own, which then selects the mailbox so that no message is left
    \\Recent for the sessions of the test.  Returns their UIDs."""
    c = srv.login()
    uids = []
    for i in range(n):
        fl = "(%s) " % flags[i] if flags else ""
        msg = message(i)
        c.send(b"P%d APPEND %s %s{%d+}\r\n" % (i, mailbox.encode(),
                                               fl.encode(), len(msg))
               + msg + b"\r\n")
        _, t = c.read_tagged("P%d" % i)
        m = re.match(r"P\d+ OK \[APPENDUID \d+ (\d+)\]", t)
        assert m, t
        uids.append(int(m.group(1)))
    _, t = c.command("PS", "SELECT %s" % mailbox)
    assert t.startswith("PS OK"), t
    c.command("PL", "LOGOUT")
    c.close()
    return uids


def select(c, mailbox="INBOX", cmd="SELECT"):
    untagged, tagged = c.command("SEL", "%s %s" % (cmd, mailbox))
    assert tagged.startswith("SEL OK"), tagged
    info = {"untagged": untagged}
    for line in untagged:
        m = re.match(r"\* (\d+) EXISTS$", line)
        if m:
            info["exists"] = int(m.group(1))
        m = re.search(r"\[(UIDVALIDITY|UIDNEXT) (\d+)\]", line)
        if m:
            info[m.group(1).lower()] = int(m.group(2))
    return info


def ok(c, tag, text, done="Store completed."):
    """Run a command that must succeed; returns its untagged lines."""
    untagged, tagged = c.command(tag, text)
    assert tagged == "%s OK %s" % (tag, done), tagged
    return untagged


# --- STORE -----------------------------------------------------------------

def test_store_all_forms(srv):
    uids = populate(srv, 4)
    c = srv.login()
    assert select(c)["exists"] == 4
    # Flags without parentheses, and with.
    assert ok(c, "S1", "STORE 1 +FLAGS \\Seen") == \
        ["* 1 FETCH (FLAGS (\\Seen))"]
    # Nothing changes: no FETCH (as Dovecot).
    assert ok(c, "S2", "STORE 1 +FLAGS (\\Seen)") == []
    assert ok(c, "S3", "STORE 1:2 FLAGS (\\Flagged \\Draft)") == [
        "* 1 FETCH (FLAGS (\\Flagged \\Draft))",
        "* 2 FETCH (FLAGS (\\Flagged \\Draft))"]
    assert files(srv) == {uids[0]: "DF", uids[1]: "DF", uids[2]: "",
                          uids[3]: ""}
    assert ok(c, "S4", "STORE 2 -FLAGS (\\Draft)") == \
        ["* 2 FETCH (FLAGS (\\Flagged))"]
    assert ok(c, "S5", "STORE 2:3 +FLAGS \\Answered \\Seen") == [
        "* 2 FETCH (FLAGS (\\Answered \\Flagged \\Seen))",
        "* 3 FETCH (FLAGS (\\Answered \\Seen))"]
    # The .SILENT forms answer nothing.
    assert ok(c, "S6", "STORE 3 -FLAGS.SILENT (\\Answered)") == []
    assert ok(c, "S7", "STORE 4 FLAGS.SILENT (\\Seen \\Deleted)") == []
    assert ok(c, "S8", "STORE 1 +FLAGS.SILENT \\Answered") == []
    assert files(srv) == {uids[0]: "DFR", uids[1]: "FRS", uids[2]: "S",
                          uids[3]: "ST"}
    assert ok(c, "S9", "STORE 4 FLAGS ()") == ["* 4 FETCH (FLAGS ())"]
    # Case does not matter; "*" is the last message.
    assert ok(c, "S10", "store * +flags.silent (\\seen \\DRAFT)") == []
    # No flags at all is allowed (as Dovecot).
    assert ok(c, "S11", "STORE 1 +FLAGS") == []
    assert files(srv) == {uids[0]: "DFR", uids[1]: "FRS", uids[2]: "S",
                          uids[3]: "DS"}
    # UID STORE names the UID in its FETCH responses.
    assert ok(c, "S12", "UID STORE %d,%d +FLAGS (\\Flagged)"
              % (uids[2], uids[3])) == [
        "* 3 FETCH (UID %d FLAGS (\\Flagged \\Seen))" % uids[2],
        "* 4 FETCH (UID %d FLAGS (\\Flagged \\Seen \\Draft))" % uids[3]]
    assert ok(c, "S13", "UID STORE %d:* FLAGS.SILENT ()" % uids[1]) == []
    assert files(srv) == {uids[0]: "DFR", uids[1]: "", uids[2]: "",
                          uids[3]: ""}
    # A UID that does not exist is no error.
    assert ok(c, "S14", "UID STORE 999 +FLAGS (\\Seen)") == []
    # The change was not repeated at the end of the command, nor later.
    assert ok(c, "N", "NOOP", "NOOP completed.") == []
    c.close()


def test_store_keywords(srv):
    uids = populate(srv, 2)
    c = srv.login()
    info = select(c)
    assert info["untagged"][0] == "* FLAGS (%s)" % SYSFLAGS
    assert ok(c, "S1", "STORE 1 +FLAGS (foo $Label1 \\Seen)") == [
        "* FLAGS (%s foo $Label1)" % SYSFLAGS,
        "* OK [PERMANENTFLAGS (%s foo $Label1 \\*)] Flags permitted."
        % SYSFLAGS,
        "* 1 FETCH (FLAGS (\\Seen foo $Label1))"]
    # A new keyword is announced even by a silent STORE (as Dovecot).
    assert ok(c, "S2", "STORE 2 +FLAGS.SILENT (bar)") == [
        "* FLAGS (%s foo $Label1 bar)" % SYSFLAGS,
        "* OK [PERMANENTFLAGS (%s foo $Label1 bar \\*)] Flags permitted."
        % SYSFLAGS]
    assert ok(c, "S3", "STORE 1 -FLAGS (FOO)") == \
        ["* 1 FETCH (FLAGS (\\Seen $Label1))"]
    assert ok(c, "S4", "UID STORE %d FLAGS (bar)" % uids[0]) == \
        ["* 1 FETCH (UID %d FLAGS (bar))" % uids[0]]
    # System flags in the file name, keywords in the index only.
    assert files(srv) == {uids[0]: "", uids[1]: ""}
    # Another session sees the keywords at SELECT.
    c2 = srv.login()
    assert select(c2)["untagged"][0] == \
        "* FLAGS (%s foo $Label1 bar)" % SYSFLAGS
    c.close()
    c2.close()


def test_store_errors(srv):
    uids = populate(srv, 2)
    c = srv.login()
    select(c)
    for tag, args, text in [
        ("B1", "3 +FLAGS (\\Seen)", "Invalid message sequence number."),
        ("B2", "1 XFLAGS (\\Seen)", "Invalid STORE item."),
        ("B3", "1 FLAGS.SILENTLY (\\Seen)", "Invalid STORE item."),
        ("B4", "1 +FLAGS (\\Recent)", "Invalid system flag."),
        ("B5", "1 +FLAGS (\\Bogus)", "Invalid system flag."),
        ("B6", "1 +FLAGS (a%b)", "Invalid keyword."),
        ("B7", "1", "STORE needs a message set, an item and flags."),
        ("B8", "1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)",
         "STORE modifiers are not supported."),
        ("B9", "0 +FLAGS (\\Seen)", None),
        ("B10", "1 +FLAGS (\\Seen) (\\Draft)", "Invalid flag."),
    ]:
        untagged, tagged = c.command(tag, "STORE " + args)
        assert untagged == []
        if text is None:
            assert tagged.startswith(tag + " BAD "), tagged
        else:
            assert tagged == "%s BAD %s" % (tag, text)
    assert files(srv) == {uids[0]: "", uids[1]: ""}
    # STORE needs a selected mailbox.
    c.command("U", "UNSELECT")
    _, t = c.command("B11", "STORE 1 +FLAGS (\\Seen)")
    assert t == "B11 NO No mailbox selected."
    c.close()


def test_store_seen_by_other_session(srv):
    uids = populate(srv, 3)
    c1 = srv.login()
    c2 = srv.login()
    select(c1)
    select(c2)
    ok(c1, "S1", "STORE 2 +FLAGS (\\Seen foo)")
    ok(c1, "S2", "STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert ok(c2, "N", "NOOP", "NOOP completed.") == [
        "* FLAGS (%s foo)" % SYSFLAGS,
        "* OK [PERMANENTFLAGS (%s foo \\*)] Flags permitted." % SYSFLAGS,
        "* 2 FETCH (FLAGS (\\Seen foo))",
        "* 3 FETCH (FLAGS (\\Flagged))"]
    # c2's own STORE reports c1's later change too, once.
    ok(c1, "S3", "STORE 1 +FLAGS.SILENT (\\Answered)")
    assert ok(c2, "S4", "UID STORE %d +FLAGS (\\Draft)" % uids[2]) == [
        "* 1 FETCH (UID %d FLAGS (\\Answered))" % uids[0],
        "* 3 FETCH (UID %d FLAGS (\\Flagged \\Draft))" % uids[2]]
    assert ok(c2, "N2", "NOOP", "NOOP completed.") == []
    assert ok(c1, "N3", "NOOP", "NOOP completed.") == [
        "* 3 FETCH (FLAGS (\\Flagged \\Draft))"]
    assert files(srv) == {uids[0]: "R", uids[1]: "S", uids[2]: "DF"}
    c1.close()
    c2.close()


def test_read_only_mailbox(srv):
    uids = populate(srv, 2, flags=["\\Deleted", ""])
    c = srv.login()
    info = select(c, cmd="EXAMINE")
    assert info["exists"] == 2
    for tag, cmd in [("R1", "STORE 1 +FLAGS (\\Seen)"),
                     ("R2", "UID STORE %d FLAGS.SILENT ()" % uids[0]),
                     ("R3", "EXPUNGE"),
                     ("R4", "UID EXPUNGE %d" % uids[0]),
                     ("R5", "MOVE 1 Trash"),
                     ("R6", "UID MOVE %d Trash" % uids[1])]:
        untagged, tagged = c.command(tag, cmd)
        assert untagged == []
        # Dovecot answers OK to STORE and EXPUNGE and moves anyway.
        assert tagged == "%s NO [READ-ONLY] Mailbox is read-only." % tag
    assert files(srv) == {uids[0]: "T", uids[1]: ""}
    assert not os.listdir(os.path.join(maildir(srv, "Trash"), "cur"))
    # COPY reads only.
    _, tagged = c.command("C1", "COPY 1:2 Trash")
    assert re.match(r"C1 OK \[COPYUID \d+ %d:%d 1:2\] Copy completed\.$"
                    % (uids[0], uids[1]), tagged), tagged
    assert files(srv, "Trash") == {1: "T", 2: ""}
    c.close()


# --- COPY and MOVE -----------------------------------------------------------

def test_copy_copyuid(srv):
    uids = populate(srv, 4, flags=["\\Seen", "", "\\Flagged \\Answered",
                                   "\\Draft"])
    c = srv.login()
    select(c)
    trash = select(c, "Trash", "EXAMINE")
    select(c)
    untagged, tagged = c.command("C1", "COPY 1,3:4 Trash")
    assert untagged == []
    assert tagged == ("C1 OK [COPYUID %d %d,%d:%d %d:%d] Copy completed."
                      % (trash["uidvalidity"], uids[0], uids[2], uids[3],
                         trash["uidnext"], trash["uidnext"] + 2))
    n = trash["uidnext"]
    assert files(srv, "Trash") == {n: "S", n + 1: "FR", n + 2: "D"}
    assert content(srv, n + 1, "Trash") == message(2)
    _, tagged = c.command("C2", "UID COPY %d Trash" % uids[1])
    assert tagged == "C2 OK [COPYUID %d %d %d] Copy completed." % (
        trash["uidvalidity"], uids[1], n + 3)
    assert content(srv, n + 3, "Trash") == message(1)
    # The source is untouched.
    assert files(srv) == {uids[0]: "S", uids[1]: "", uids[2]: "FR",
                          uids[3]: "D"}
    # Nothing to copy: OK without COPYUID (as Dovecot).
    _, tagged = c.command("C3", "UID COPY 900:999 Trash")
    assert tagged == "C3 OK No messages found."
    _, tagged = c.command("C4", "COPY 1 Nope")
    assert tagged == "C4 NO [TRYCREATE] Mailbox doesn't exist."
    _, tagged = c.command("C5", "COPY 5 Trash")
    assert tagged == "C5 BAD Invalid message sequence number."
    _, tagged = c.command("C6", "COPY 1")
    assert tagged == "C6 BAD COPY needs a message set and a mailbox."
    # Into the selected mailbox: the copy shows up at once.
    inbox = select(c)
    untagged, tagged = c.command("C7", "COPY 2 INBOX")
    assert tagged == "C7 OK [COPYUID %d %d %d] Copy completed." % (
        inbox["uidvalidity"], uids[1], inbox["uidnext"])
    assert untagged[0] == "* 5 EXISTS", untagged
    assert files(srv, "Trash") == {n: "S", n + 1: "FR", n + 2: "D",
                                   n + 3: ""}
    c.close()


def test_move(srv):
    uids = populate(srv, 5, flags=["", "\\Seen", "", "\\Flagged", ""])
    c = srv.login()
    other = srv.login()
    arch = select(c, "Archive", "EXAMINE")
    select(c)
    select(other)
    untagged, tagged = c.command("M1", "MOVE 2,4 Archive")
    # RFC 6851: COPYUID in an untagged OK, then the expunges, each once.
    assert untagged == [
        "* OK [COPYUID %d %d,%d %d:%d] Moved UIDs." % (
            arch["uidvalidity"], uids[1], uids[3], arch["uidnext"],
            arch["uidnext"] + 1),
        "* 4 EXPUNGE",
        "* 2 EXPUNGE"]
    assert tagged == "M1 OK Move completed."
    n = arch["uidnext"]
    assert files(srv, "Archive") == {n: "S", n + 1: "F"}
    assert content(srv, n + 1, "Archive") == message(3)
    assert files(srv) == {uids[0]: "", uids[2]: "", uids[4]: ""}
    assert ok(c, "N1", "NOOP", "NOOP completed.") == []
    # The numbers are those after the expunges: 2 is now the third UID.
    assert ok(c, "S1", "STORE 2 +FLAGS (\\Seen)") == \
        ["* 2 FETCH (FLAGS (\\Seen))"]
    assert files(srv)[uids[2]] == "S"
    untagged, tagged = c.command("M2", "UID MOVE %d Archive" % uids[4])
    assert untagged == [
        "* OK [COPYUID %d %d %d] Moved UIDs." % (arch["uidvalidity"],
                                                 uids[4], n + 2),
        "* 3 EXPUNGE"]
    assert tagged == "M2 OK Move completed."
    # Failures expunge nothing.
    _, tagged = c.command("M3", "MOVE 1 Nope")
    assert tagged == "M3 NO [TRYCREATE] Mailbox doesn't exist."
    _, tagged = c.command("M4", "UID MOVE 900 Archive")
    assert tagged == "M4 OK No messages found."
    assert files(srv) == {uids[0]: "", uids[2]: "S"}
    # The other session learns of it all at its next command.
    assert ok(other, "N2", "NOOP", "NOOP completed.") == [
        "* 5 EXPUNGE", "* 4 EXPUNGE", "* 2 EXPUNGE",
        "* 2 FETCH (FLAGS (\\Seen))"]
    assert select(other, "Archive")["exists"] == 3
    c.close()
    other.close()


def test_move_within_mailbox(srv):
    uids = populate(srv, 2)
    c = srv.login()
    info = select(c)
    untagged, tagged = c.command("M1", "MOVE 1 INBOX")
    assert tagged == "M1 OK Move completed."
    assert untagged[:3] == [
        "* OK [COPYUID %d %d %d] Moved UIDs." % (
            info["uidvalidity"], uids[0], info["uidnext"]),
        "* 1 EXPUNGE",
        "* 2 EXISTS"], untagged
    assert files(srv) == {uids[1]: "", info["uidnext"]: ""}
    c.close()


# --- EXPUNGE ----------------------------------------------------------------

def test_expunge_numbering(srv):
    uids = populate(srv, 7)
    c = srv.login()
    select(c)
    assert ok(c, "S1", "STORE 2,4:5,7 +FLAGS.SILENT (\\Deleted)") == []
    assert files(srv)[uids[3]] == "T"
    # Highest first, so every number is valid when the client reads it
    # (Dovecot sends them in this order too).
    assert ok(c, "E1", "EXPUNGE", "Expunge completed.") == [
        "* 7 EXPUNGE", "* 5 EXPUNGE", "* 4 EXPUNGE", "* 2 EXPUNGE"]
    assert files(srv) == {uids[0]: "", uids[2]: "", uids[5]: ""}
    assert ok(c, "E2", "EXPUNGE", "Expunge completed.") == []
    assert ok(c, "S2", "STORE 3 +FLAGS (\\Deleted)") == \
        ["* 3 FETCH (FLAGS (\\Deleted))"]
    assert ok(c, "E3", "EXPUNGE", "Expunge completed.") == ["* 3 EXPUNGE"]
    assert files(srv) == {uids[0]: "", uids[2]: ""}
    _, tagged = c.command("B1", "EXPUNGE 1")
    assert tagged == "B1 BAD EXPUNGE takes no arguments."
    assert select(c)["exists"] == 2
    c.close()


def test_uid_expunge_only_given_uids(srv):
    uids = populate(srv, 5, flags=["\\Deleted", "\\Deleted", "\\Deleted",
                                   "\\Deleted", ""])
    c = srv.login()
    select(c)
    # uids[4] is not \Deleted: UID EXPUNGE leaves it (RFC 4315 2.1).
    assert ok(c, "E1", "UID EXPUNGE %d,%d:%d" % (uids[1], uids[3],
                                                  uids[4]),
              "Expunge completed.") == ["* 4 EXPUNGE", "* 2 EXPUNGE"]
    assert files(srv) == {uids[0]: "T", uids[2]: "T", uids[4]: ""}
    assert ok(c, "E2", "UID EXPUNGE 900:999", "Expunge completed.") == []
    assert ok(c, "E3", "UID EXPUNGE %d" % uids[2],
              "Expunge completed.") == ["* 2 EXPUNGE"]
    assert files(srv) == {uids[0]: "T", uids[4]: ""}
    _, tagged = c.command("B1", "UID EXPUNGE")
    assert tagged == "B1 BAD UID EXPUNGE needs a UID set."
    _, tagged = c.command("B2", "UID EXPUNGE 1:x")
    assert tagged.startswith("B2 BAD "), tagged
    assert ok(c, "E4", "EXPUNGE", "Expunge completed.") == ["* 1 EXPUNGE"]
    assert files(srv) == {uids[4]: ""}
    c.close()


def test_expunge_seen_by_other_session(srv):
    uids = populate(srv, 5)
    c1 = srv.login()
    c2 = srv.login()
    select(c1)
    select(c2)
    ok(c1, "S1", "STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    assert ok(c1, "E1", "EXPUNGE", "Expunge completed.") == [
        "* 4 EXPUNGE", "* 2 EXPUNGE"]
    # c2 hears of it at NOOP, numbered as c2 still sees the mailbox.
    assert ok(c2, "N1", "NOOP", "NOOP completed.") == [
        "* 4 EXPUNGE", "* 2 EXPUNGE"]
    assert ok(c2, "S2", "STORE 3 +FLAGS (\\Seen)") == \
        ["* 3 FETCH (FLAGS (\\Seen))"]
    assert files(srv) == {uids[0]: "", uids[2]: "", uids[4]: "S"}
    # During STORE (sequence numbers) an expunge must wait (RFC 9051
    # 7.5.1): c2 keeps its numbers until the NOOP.
    ok(c1, "S3", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    ok(c1, "E2", "EXPUNGE", "Expunge completed.")
    assert ok(c2, "S4", "STORE 2 +FLAGS (\\Flagged)") == \
        ["* 2 FETCH (FLAGS (\\Flagged))"]
    assert files(srv) == {uids[2]: "F", uids[4]: "S"}
    assert ok(c2, "N2", "NOOP", "NOOP completed.") == ["* 1 EXPUNGE"]
    assert ok(c2, "S5", "STORE 1 -FLAGS (\\Flagged)") == \
        ["* 1 FETCH (FLAGS ())"]
    assert files(srv) == {uids[2]: "", uids[4]: "S"}
    c1.close()
    c2.close()
