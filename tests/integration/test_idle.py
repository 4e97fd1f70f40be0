"""IDLE (RFC 2177): every change reaches every idling client at once.

Changes come from other programs writing the Maildir, from other IMAP
sessions (in the same worker and in another worker process), from LMTP and
from `herald deliver`; the idler must see each within 1 second (typically a
few milliseconds).
"""
import os
import re
import time

import pytest

from helpers import wait_until

LATENCY_LIMIT = 1.0

MESSAGE = ("From: Sender <sender@example.org>\r\n"
           "To: alice@example.org\r\n"
           "Subject: %s\r\n"
           "Message-ID: <%s@example.org>\r\n"
           "\r\n"
           "Hello.\r\n")


def maildir(srv, user="alice"):
    return os.path.join(srv.data_dir, "users", user, "Maildir")


def drop_message(srv, subject, user="alice", folder=""):
    """Deliver a message the way an MTA's local delivery does: write in
    tmp/, then rename into new/."""
    base = os.path.join(maildir(srv, user), folder)
    name = "%d.P%d.%s.test" % (time.time_ns(), os.getpid(), subject)
    tmp = os.path.join(base, "tmp", name)
    with open(tmp, "w") as f:
        f.write(MESSAGE % (subject, subject))
    os.rename(tmp, os.path.join(base, "new", name))


def select(c, mailbox="INBOX", tag="S1"):
    untagged, tagged = c.command(tag, "SELECT %s" % mailbox)
    assert tagged.startswith(tag + " OK"), tagged
    exists = [int(line.split()[1]) for line in untagged
              if line.endswith(" EXISTS")]
    return exists[0]


def start_idle(c, tag="I1"):
    c.send("%s IDLE\r\n" % tag)
    assert c.readline() == "+ idling"


def read_until(c, pred, timeout=LATENCY_LIMIT):
    """Read untagged lines until pred(line) is true; returns (line,
    seconds waited)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "not seen within %.1fs; got %r" % (timeout, seen)
        line = c.readline(timeout=left)
        seen.append(line)
        if pred(line):
            return line, time.monotonic() - t0


def worker_of_last_login(srv, user):
    """The worker index that served the latest LOGIN of user."""
    logins = re.findall(r"worker(\d+)\[\d+\] info: session=\S+ ip=\S+ "
                        r"user=%s login " % re.escape(user), srv.log())
    return int(logins[-1])


def login_on(srv, worker, avoid=None):
    """A logged-in connection served by the given worker (connect until
    the kernel's SO_REUSEPORT hash lands one there)."""
    extra = []
    try:
        for _ in range(200):
            c = srv.login()
            n = len(re.findall(r"user=alice login ", srv.log()))
            wait_until(lambda: len(re.findall(r"user=alice login ",
                                              srv.log())) >= n, 2)
            if worker_of_last_login(srv, "alice") == worker:
                return c
            extra.append(c)
        raise AssertionError("no connection landed on worker %d" % worker)
    finally:
        for e in extra:
            e.close()


SERVER_SETTINGS = {"fsync": "no", "workers": "2"}


def test_idle_done_and_pipelining(server):
    with server.login() as c:
        select(c)
        start_idle(c)
        # DONE and a pipelined command in one write: both run, in order.
        c.send("DONE\r\nN1 NOOP\r\n")
        assert c.readline() == "I1 OK Idle completed."
        _, tagged = c.read_tagged("N1")
        assert tagged == "N1 OK NOOP completed."


def test_idle_anything_but_done_is_bad(server):
    with server.login() as c:
        select(c)
        start_idle(c)
        c.send("N1 NOOP\r\n")
        line = c.readline()
        assert line.startswith("I1 BAD "), line
        # The session carries on normally.
        _, tagged = c.command("N2", "NOOP")
        assert tagged.startswith("N2 OK")


def test_idle_in_authenticated_state(server):
    with server.login() as c:
        start_idle(c)
        c.send("done\r\n")
        assert c.readline() == "I1 OK Idle completed."


def test_idle_sees_maildir_drop(server):
    with server.login() as c:
        n = select(c)
        start_idle(c)
        times = []
        for i in range(5):
            t0 = time.monotonic()
            drop_message(server, "drop%d" % i)
            line, _ = read_until(c, lambda l: l.endswith(" EXISTS"))
            times.append(time.monotonic() - t0)
            n += 1
            assert line == "* %d EXISTS" % n
        c.send("DONE\r\n")
        read_until(c, lambda l: l.startswith("I1 OK"))
    assert max(times) < LATENCY_LIMIT, times


@pytest.mark.timeout_s(30)
def test_keepalive_and_idle_max(herald_server):
    srv = herald_server(idle_keepalive="1", idle_max="4", fsync="no")
    with srv.login() as c:
        select(c)
        start_idle(c)
        t0 = time.monotonic()
        line = c.readline(timeout=3)
        assert line == "* OK Still here"
        # Jittered by at most a quarter: between 0.75 s and 1 s.
        assert 0.5 <= time.monotonic() - t0 <= 2.0
        lines = c.expect_eof(timeout=8)
        assert lines[-1].startswith("* BYE "), lines
        assert 3.0 <= time.monotonic() - t0 <= 7.0
    srv.wait_log(r"reason=idle_max")


def test_idle_not_subject_to_autologout(herald_server):
    srv = herald_server(autologout_timeout="2", idle_keepalive="60",
                        fsync="no")
    with srv.login() as c:
        select(c)
        start_idle(c)
        c.expect_silence(3.5)
        c.send("DONE\r\n")
        assert c.readline() == "I1 OK Idle completed."


def append(c, tag, text, mailbox="INBOX", flags=""):
    data = (MESSAGE % (text, text)).encode()
    c.send("%s APPEND %s %s{%d+}\r\n" % (tag, mailbox,
                                         flags + " " if flags else "",
                                         len(data)))
    c.send(data + b"\r\n")
    _, tagged = c.read_tagged(tag)
    assert tagged.startswith(tag + " OK"), tagged


@pytest.fixture
def pair(server):
    """An idler on worker 0 and another session of the same user on
    worker 1, both with INBOX selected; yields (idler, other, n)."""
    idler = login_on(server, 0)
    other = login_on(server, 1)
    try:
        n = select(idler)
        select(other, tag="S2")
        start_idle(idler)
        yield idler, other, n
        idler.send("DONE\r\n")
        read_until(idler, lambda l: l.startswith("I1 OK"))
    finally:
        idler.close()
        other.close()


def test_cross_worker_append(pair):
    idler, other, n = pair
    append(other, "A1", "crossappend")
    line, waited = read_until(idler, lambda l: l.endswith(" EXISTS"))
    assert line == "* %d EXISTS" % (n + 1)
    assert waited < LATENCY_LIMIT


def test_cross_worker_keyword_reaches_idler_through_the_bus(pair):
    """A keyword lives only in the index (no file is renamed), so no
    inotify event exists: only the bus between workers can carry it."""
    idler, other, n = pair
    append(other, "A1", "kw")
    read_until(idler, lambda l: l == "* %d EXISTS" % (n + 1))
    _, tagged = other.command("K1", "STORE %d +FLAGS.SILENT ($Urgent)"
                              % (n + 1))
    assert tagged.startswith("K1 OK"), tagged
    line, waited = read_until(idler, lambda l: " FETCH " in l)
    assert line.startswith("* %d FETCH (" % (n + 1)), line
    assert "$Urgent" in line, line
    assert waited < LATENCY_LIMIT


def test_cross_worker_flag_change_and_expunge_renumber(pair):
    idler, other, n = pair
    for i in range(3):
        append(other, "A%d" % i, "exp%d" % i)
    read_until(idler, lambda l: l == "* %d EXISTS" % (n + 3))
    # Flag the middle one: the idler sees FETCH FLAGS.
    _, tagged = other.command("F1", "STORE %d +FLAGS (\\Flagged)" % (n + 2))
    assert tagged.startswith("F1 OK"), tagged
    line, _ = read_until(idler, lambda l: " FETCH " in l)
    assert line.startswith("* %d FETCH (FLAGS (" % (n + 2)), line
    assert "\\Flagged" in line
    # Expunge the first and the last new message: the idler's sequence
    # numbers must follow (the last one is n+3 before, n+2 after the
    # first expunge, whatever the order they are reported in).
    _, tagged = other.command("D1", "STORE %d,%d +FLAGS.SILENT (\\Deleted)"
                              % (n + 1, n + 3))
    assert tagged.startswith("D1 OK"), tagged
    _, tagged = other.command("E1", "EXPUNGE")
    assert tagged.startswith("E1 OK"), tagged
    seqs = []
    while len(seqs) < 2:
        line, _ = read_until(idler, lambda l: l.endswith(" EXPUNGE"))
        seqs.append(int(line.split()[1]))
    # Either order is valid; replaying them must remove n+1 and n+3.
    model = list(range(1, n + 4))
    for s in seqs:
        del model[s - 1]
    assert model == list(range(1, n + 1)) + [n + 2], seqs
    # The idler's view agrees with the other session's afterwards.
    idler.send("DONE\r\n")
    read_until(idler, lambda l: l.startswith("I1 OK"))
    untagged, tagged = idler.command("S9", "SEARCH ALL")
    assert tagged.startswith("S9 OK"), tagged
    found = [l for l in untagged if l.startswith("* SEARCH")]
    assert found == ["* SEARCH " + " ".join(str(i)
                                             for i in range(1, n + 2))]
    start_idle(idler)


def test_cross_worker_move(pair):
    idler, other, n = pair
    append(other, "A1", "tomove")
    read_until(idler, lambda l: l == "* %d EXISTS" % (n + 1))
    _, tagged = other.command("M1", "MOVE %d Archive" % (n + 1))
    assert tagged.startswith("M1 OK"), tagged
    line, waited = read_until(idler, lambda l: l.endswith(" EXPUNGE"))
    assert line == "* %d EXPUNGE" % (n + 1)


def test_same_worker_append(server):
    idler = login_on(server, 0)
    other = login_on(server, 0)
    try:
        n = select(idler)
        start_idle(idler)
        append(other, "A1", "sameworker")
        line, waited = read_until(idler, lambda l: l.endswith(" EXISTS"))
        assert line == "* %d EXISTS" % (n + 1)
    finally:
        idler.close()
        other.close()


def test_lmtp_delivery_reaches_idlers(server):
    import smtplib
    idlers = [login_on(server, 0), login_on(server, 1)]
    try:
        counts = [select(c) for c in idlers]
        for c in idlers:
            start_idle(c)
        lmtp = smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=10)
        t0 = time.monotonic()
        lmtp.sendmail("sender@example.org", ["alice@example.org"],
                      MESSAGE % ("lmtp", "lmtp"))
        lmtp.quit()
        for c, n in zip(idlers, counts):
            line, _ = read_until(c, lambda l: l.endswith(" EXISTS"))
            assert line == "* %d EXISTS" % (n + 1)
        assert time.monotonic() - t0 < LATENCY_LIMIT
    finally:
        for c in idlers:
            c.close()


def test_herald_deliver_reaches_idler(server):
    with server.login() as c:
        n = select(c)
        start_idle(c)
        r = server.herald("deliver", "-u", "alice",
                          input=MESSAGE % ("deliver", "deliver"))
        assert r.returncode == 0, r.stderr
        line, _ = read_until(c, lambda l: l.endswith(" EXISTS"))
        assert line == "* %d EXISTS" % (n + 1)


def index_fds(srv):
    """Open file descriptors on users' index files, over all workers."""
    n = 0
    for pid in srv.group_pids():
        if pid == srv.pid:
            continue
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if "/index.sqlite" in target:
                n += 1
    return n


@pytest.mark.timeout_s(40)
def test_idle_users_release_their_index_and_still_hear_changes(herald_server):
    import smtplib
    # alice has two sessions (closed by the release timer), bob one
    # (closed as soon as his session idles).
    srv = herald_server(idle_release="1", fsync="no", workers="1")
    conns = [srv.login("alice"), srv.login("alice"), srv.login("bob")]
    try:
        counts = [select(c) for c in conns]
        assert index_fds(srv) > 0
        for c in conns:
            start_idle(c)
        # Quiet for a while: both users' indexes are closed.
        wait_until(lambda: index_fds(srv) == 0, 10,
                   what="index files closed")
        # A delivery still reaches both idlers (the index is reopened).
        lmtp = smtplib.LMTP("127.0.0.1", srv.lmtp_port, timeout=10)
        lmtp.sendmail("sender@example.org",
                      ["alice@example.org", "bob@example.org"],
                      MESSAGE % ("released", "released"))
        lmtp.quit()
        for c, n in zip(conns, counts):
            line, _ = read_until(c, lambda l: l.endswith(" EXISTS"))
            assert line == "* %d EXISTS" % (n + 1)
        # And a command after IDLE works on the reopened mailbox.
        for c, n in zip(conns, counts):
            c.send("DONE\r\n")
            read_until(c, lambda l: l.startswith("I1 OK"))
            untagged, tagged = c.command("F1", "FETCH %d (FLAGS)" % (n + 1))
            assert tagged.startswith("F1 OK"), tagged
            assert any(l.startswith("* %d FETCH (FLAGS (" % (n + 1))
                       for l in untagged), untagged
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout_s(60)
def test_many_idlers_of_one_mailbox_share_one_index_read(herald_server):
    """40 sessions of one user idle on INBOX in one worker.  A change
    wakes them together; they run as one batch that reads the index once
    and answers the others from memory (imap_cmd_requeue_batched()).  Each
    idler must still get exactly its own, correct responses: EXISTS, the
    new keyword in FLAGS and FETCH, EXPUNGE with the right number, and a
    Maildir drop (a rescan inside the batch), also after the index was
    released and reopened."""
    import smtplib
    n_idlers = 40
    srv = herald_server(idle_release="1", fsync="no", workers="1",
                        log_level="debug")
    writer = None
    idlers = [srv.login("alice") for _ in range(n_idlers)]
    try:
        base = select(idlers[0])
        for c in idlers:
            assert select(c) == base
            start_idle(c)
        # Quiet: the shared index is released; the wake-up reopens it once
        # and the other views copy the handle.
        wait_until(lambda: index_fds(srv) == 0, 10, what="index released")
        lmtp = smtplib.LMTP("127.0.0.1", srv.lmtp_port, timeout=10)
        lmtp.sendmail("sender@example.org", ["alice@example.org"],
                      MESSAGE % ("fanout", "fanout"))
        lmtp.quit()
        for c in idlers:
            line, _ = read_until(c, lambda l: l.endswith(" EXISTS"))
            assert line == "* %d EXISTS" % (base + 1)
        writer = srv.login("alice")
        assert select(writer, tag="S0") == base + 1
        # A new keyword: FLAGS first, then the FETCH, at every idler.
        # \\Recent is per session: at most the one idler whose rescan
        # claimed the delivered message may show it.
        untagged, tagged = writer.command(
            "W1", "STORE %d +FLAGS (Fanout$kw)" % (base + 1))
        assert tagged.startswith("W1 OK"), tagged
        recent = 0
        for c in idlers:
            line, _ = read_until(c, lambda l: l.startswith("* FLAGS"))
            assert "Fanout$kw" in line, line
            line, _ = read_until(c, lambda l: " FETCH " in l)
            assert line.startswith("* %d FETCH (FLAGS (" % (base + 1))
            assert "Fanout$kw" in line, line
            recent += "\\Recent" in line
        assert recent <= 1, recent
        # Expunge the first message: every idler renumbers.
        untagged, tagged = writer.command("W2", "STORE 1 +FLAGS (\\Deleted)")
        assert tagged.startswith("W2 OK"), tagged
        untagged, tagged = writer.command("W3", "EXPUNGE")
        assert tagged.startswith("W3 OK"), tagged
        for c in idlers:
            line, _ = read_until(c, lambda l: l.endswith(" EXPUNGE"))
            assert line == "* 1 EXPUNGE"
        # A file dropped by another program: one idler rescans, all hear.
        drop_message(srv, "dropped")
        for c in idlers:
            line, _ = read_until(c, lambda l: l.endswith(" EXISTS"))
            assert line == "* %d EXISTS" % (base + 1)
        # The batches really shared their reads.
        batches = [tuple(map(int, m)) for m in re.findall(
            r"batch of (\d+) runs, (\d+) index reads, (\d+) from memory",
            srv.log())]
        big = [b for b in batches if b[0] >= n_idlers // 2]
        assert big, batches
        assert all(runs == reads + hits for runs, reads, hits in big), big
        assert any(reads <= 2 for _, reads, _ in big), big
        # And every session still works after IDLE.
        for c in idlers:
            c.send("DONE\r\n")
            read_until(c, lambda l: l.startswith("I1 OK"))
        untagged, tagged = idlers[0].command("N1", "NOOP")
        assert tagged.startswith("N1 OK"), tagged
    finally:
        if writer is not None:
            writer.close()
        for c in idlers:
            c.close()


@pytest.mark.timeout_s(90)
def test_descriptor_pressure_releases_idle_users_early(herald_server):
    """A worker near its open-file limit (here 256) closes the indexes of
    users whose sessions all idle at once instead of after idle_release
    (an hour here): 60 users with two idling sessions each would need
    120 sockets + 60 x 3 index descriptors.  Every session must still
    LOGIN, SELECT and IDLE, and hear a delivery afterwards."""
    import smtplib
    users = {"u%02d" % i: "pw%02d" % i for i in range(60)}
    srv = herald_server(users=users, start=False, workers="1",
                        idle_release="3600", fsync="no")
    srv.nofile = 256
    srv.start()
    conns = []
    try:
        for name, pw in sorted(users.items()):
            for tag in ("S1", "S2"):
                c = srv.login(name, pw)
                conns.append(c)
                select(c, tag=tag)
                start_idle(c)
        assert index_fds(srv) < 60 * 3
        lmtp = smtplib.LMTP("127.0.0.1", srv.lmtp_port, timeout=10)
        lmtp.sendmail("sender@example.org", ["u00@example.org",
                                             "u59@example.org"],
                      MESSAGE % ("pressure", "pressure"))
        lmtp.quit()
        for c in conns[:2] + conns[-2:]:
            line, _ = read_until(c, lambda l: l.endswith(" EXISTS"),
                                 timeout=5)
            assert line == "* 1 EXISTS"
        assert "Too many open files" not in srv.log()
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout_s(60)
def test_out_of_descriptors_is_unavailable_not_a_server_bug(herald_server):
    """With index release off (idle_release = 0) and a limit of 64 open
    files, users keep their indexes open until the descriptors run out:
    the next SELECT gets NO [UNAVAILABLE] (try again), not [SERVERBUG],
    and the sessions already in place keep working."""
    users = {"v%02d" % i: "pw%02d" % i for i in range(40)}
    srv = herald_server(users=users, start=False, workers="1",
                        idle_release="0", fsync="no")
    srv.nofile = 64
    srv.start()
    conns = []
    refused = None
    try:
        for name, pw in sorted(users.items()):
            c = srv.login(name, pw)
            conns.append(c)
            _, tagged = c.command("S1", "SELECT INBOX")
            if not tagged.startswith("S1 OK"):
                refused = tagged
                break
        assert refused is not None, "64 descriptors were enough"
        assert refused.startswith("S1 NO [UNAVAILABLE]"), refused
        _, tagged = conns[0].command("N1", "NOOP")
        assert tagged.startswith("N1 OK"), tagged
    finally:
        for c in conns:
            c.close()
