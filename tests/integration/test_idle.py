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
