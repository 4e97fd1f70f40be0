"""Resync with the Maildir when the folder looks unchanged.

A sync skips reading new/ and cur/ when their stat() data is what it was
at the last scan that found them settled (docs/DESIGN.md, "Resync with the
Maildir"): the stamp is kept in the index's meta table once the
directories' times are STAMP_MARGIN (2) seconds old.  These tests let the
folder settle, check that the stamp was recorded, and then change the
Maildir the way other programs do: every change must still be seen.
"""
import itertools
import os
import sqlite3
import time

SERVER_SETTINGS = {"fsync": "no"}

PASSWORD = "resync-Secret-1"
SETTLE = 2.2            # past the 2 s margin of the stamp
_users = itertools.count(1)
_tags = itertools.count(1)

MESSAGE = ("From: Sender <sender@example.org>\r\n"
           "To: someone@example.org\r\n"
           "Subject: %s\r\n"
           "\r\n"
           "Hello.\r\n")


def new_user(server):
    name = "resync%d" % next(_users)
    server.add_user(name, PASSWORD)
    server.users[name] = PASSWORD
    return name


def ok(c, text):
    tag = "R%d" % next(_tags)
    untagged, tagged = c.command(tag, text)
    assert tagged.startswith(tag + " OK"), (text, untagged, tagged)
    return untagged


def maildir(server, user):
    return os.path.join(server.data_dir, "users", user, "Maildir")


def drop(server, user, subject, sub="new", flags=""):
    """Deliver a message as another program would."""
    base = maildir(server, user)
    name = "%d.P%d.%s.test" % (time.time_ns(), os.getpid(), subject)
    if sub == "cur":
        name += ":2," + flags
    tmp = os.path.join(base, "tmp", name)
    with open(tmp, "w") as f:
        f.write(MESSAGE % subject)
    os.rename(tmp, os.path.join(base, sub, name))


def stamps(server, user):
    path = os.path.join(server.data_dir, "users", user, "index.sqlite")
    db = sqlite3.connect(path, timeout=10)
    try:
        return dict(db.execute("SELECT key, value FROM meta"
                               " WHERE key LIKE 'maildir_stamp.%'"))
    finally:
        db.close()


def cur_names(server, user):
    return sorted(os.listdir(os.path.join(maildir(server, user), "cur")))


def settle_and_select(server, c, user, exists):
    """Wait until the folder is settled, SELECT (which records the stamp),
    check it was recorded, and SELECT again (which trusts it)."""
    time.sleep(SETTLE)
    untagged = ok(c, "SELECT INBOX")
    assert "* %d EXISTS" % exists in untagged, untagged
    assert any(v != 0 for v in stamps(server, user).values()), \
        stamps(server, user)
    untagged = ok(c, "SELECT INBOX")
    assert "* %d EXISTS" % exists in untagged, untagged
    assert "* 0 RECENT" in untagged, untagged


def flags_of(c):
    return sorted(line for line in ok(c, "FETCH 1:* (UID FLAGS)"))


def test_changes_by_other_programs_after_a_settled_scan(server):
    user = new_user(server)
    with server.login(user) as c:
        ok(c, 'LIST "" INBOX')
        for i in range(4):
            drop(server, user, "m%d" % i)
        untagged = ok(c, "SELECT INBOX")
        assert "* 4 EXISTS" in untagged and "* 4 RECENT" in untagged
        settle_and_select(server, c, user, 4)
        before = flags_of(c)
        assert before == [
            "* %d FETCH (UID %d FLAGS ())" % (i, i) for i in range(1, 5)]

        # A delivery to new/, a flag change (rename in cur/) and a
        # removal (unlink in cur/), all while the folder looked settled.
        names = cur_names(server, user)
        cur = os.path.join(maildir(server, user), "cur")
        os.rename(os.path.join(cur, names[1]),
                  os.path.join(cur, names[1].split(":")[0] + ":2,FS"))
        os.unlink(os.path.join(cur, names[2]))
        drop(server, user, "m4")
        untagged = ok(c, "SELECT INBOX")
        assert "* 4 EXISTS" in untagged and "* 1 RECENT" in untagged, \
            untagged
        assert flags_of(c) == [
            "* 1 FETCH (UID 1 FLAGS ())",
            "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Seen))",
            "* 3 FETCH (UID 4 FLAGS ())",
            "* 4 FETCH (UID 5 FLAGS (\\Recent))"]

        # A file put straight into cur/, once more after a settled scan.
        settle_and_select(server, c, user, 4)
        drop(server, user, "m5", sub="cur", flags="S")
        untagged = ok(c, "NOOP")
        assert untagged == ["* 5 EXISTS", "* 1 RECENT"], untagged
        assert ok(c, "FETCH 5 (UID FLAGS)") == [
            "* 5 FETCH (UID 6 FLAGS (\\Seen \\Recent))"]


def test_own_changes_leave_the_folder_to_be_read_again(server):
    """Our own renames move the directories' times too: a STORE after a
    settled scan is followed by a scan, and a change by another program
    made right after it is still seen."""
    user = new_user(server)
    with server.login(user) as c:
        ok(c, 'LIST "" INBOX')
        for i in range(3):
            drop(server, user, "m%d" % i)
        ok(c, "SELECT INBOX")
        settle_and_select(server, c, user, 3)
        ok(c, "STORE 1 +FLAGS (\\Deleted)")
        drop(server, user, "m3")
        untagged = ok(c, "EXPUNGE")
        assert untagged[0] == "* 1 EXPUNGE", untagged
        untagged = ok(c, "SELECT INBOX")
        assert "* 3 EXISTS" in untagged, untagged


def uids_and_flags(c):
    return ok(c, "UID FETCH 1:* (FLAGS)")


def test_files_in_cur_keep_their_names_and_uids_after_index_loss(
        herald_server):
    """Files another program put into cur/ are adopted under their own
    names (their UIDs go to herald-uidmap, not into the names); after the
    index is lost they come back with the same UIDs and UIDVALIDITY, also
    after a flag change renamed one of them and after a later index
    loss."""
    srv = herald_server(fsync="yes")
    user = "mapuser"
    srv.add_user(user, PASSWORD)
    srv.users[user] = PASSWORD
    with srv.login(user, PASSWORD) as c:
        ok(c, 'LIST "" INBOX')
        for i in range(5):
            drop(srv, user, "c%d" % i, sub="cur", flags="S" if i % 2 else "")
        drop(srv, user, "n0")          # new/: renamed into cur/ with ,U=
        before_names = cur_names(srv, user)
        untagged = ok(c, "SELECT INBOX")
        assert "* 6 EXISTS" in untagged, untagged
        validity = [l for l in untagged if "UIDVALIDITY" in l]
        names = cur_names(srv, user)
        kept = [n for n in names if ",U=" not in n]
        assert sorted(kept) == sorted(n for n in before_names
                                      if n.endswith(":2,") or
                                      n.endswith(":2,S")), names
        assert len(kept) == 5 and len(names) == 6, names
        mapped = open(os.path.join(maildir(srv, user),
                                   "herald-uidmap")).read().splitlines()
        assert len(mapped) == 5, mapped
        # A flag change keeps BASE: no ",U=" is added to the name.
        ok(c, "UID STORE 2 +FLAGS (\\Flagged)")
        assert all(",U=" not in n or ".n0." in n
                   for n in cur_names(srv, user)), cur_names(srv, user)
        before = uids_and_flags(c)
    for _ in range(2):
        assert srv.stop() == 0
        os.unlink(os.path.join(srv.data_dir, "users", user, "index.sqlite"))
        srv.launch()
        with srv.login(user, PASSWORD) as c:
            untagged = ok(c, "SELECT INBOX")
            assert [l for l in untagged if "UIDVALIDITY" in l] == validity
            assert "* 6 EXISTS" in untagged, untagged
            assert uids_and_flags(c) == [
                l.replace(" \\Recent", "").replace("(\\Recent)", "()")
                for l in before]
            # New mail goes above every UID used before.
            drop(srv, user, "after")
            untagged = ok(c, "NOOP")
            assert untagged[0] == "* 7 EXISTS", untagged
            line = ok(c, "FETCH 7 (UID)")[0]
            assert int(line.split("UID ")[1].rstrip(")")) > 6, line
            # Leave the mailbox as it was for the next round.
            ok(c, "STORE 7 +FLAGS (\\Deleted)")
            ok(c, "EXPUNGE")
