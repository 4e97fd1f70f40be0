"""Hostile clients.

Each test plays one kind of abusive or broken client and checks three
things: the client gets a clear answer (a tagged BAD or NO, or an untagged
BYE before the server closes, as RFC 9051 and RFC 7888 say), the worker
serving it keeps its memory bounded (VmRSS / VmHWM of the worker processes,
read from /proc), and other clients keep being served while it happens and
afterwards (a bystander connection runs LOGIN, NOOP, SELECT and LOGOUT).

With HERALD_SANITIZERS set (make check-asan), the memory bounds are printed
but not checked: ASan's redzones and quarantine inflate RSS
(helpers.assert_rss_bound()).  The answers and the bystanders still are.

Most tests use one worker, so that the bystander shares the worker with the
hostile client.  Measurements are printed with the prefix "MEASURE" (run
pytest with -s to see them); docs/SECURITY.md quotes them.

As root (and with setpriv(1)), the last tests start the server with
user = nobody and check the privilege drop; three of them document
security bugs (xfail, strict) described in docs/SECURITY.md section 6.

What the other modules already cover is not repeated here:
  - pre-auth oversized lines, huge literal sizes before login, deep lists
    in ID, pipelining 3000 commands against a tiny output buffer, commands
    in the wrong state (SELECT before login, LOGIN after login), a client
    that disconnects mid-command: test_protocol.py
  - invalid base64 in AUTHENTICATE ("%%%%", "YW=J", ...), too long SASL
    responses, cancelled exchanges, throttling on one connection with one
    worker, credentials never logged: test_auth.py
  - STARTTLS twice (after a STARTTLS), after login, with arguments,
    pipelined after STARTTLS, garbage instead of a handshake, the
    connection limit, preauth/autologout timeouts: test_connect.py
  - CREATE with '..', '/', empty components, wildcards, control characters,
    invalid modified UTF-7, NUL via a literal and 8-bit names: test_mailbox
  - disconnects mid-literal, after the literal and mid-MULTIAPPEND, the
    size limit and the 20 MB streamed APPEND: test_append.py
  - FETCH without a selected mailbox: test_fetch.py
  - 1000 concurrent clients: test_scale.py
"""
import errno
import os
import pwd
import re
import resource
import selectors
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from helpers import (HOST, USERS, RawConn, Server, assert_rss_bound,
                     imap_quote, sasl_plain, wait_until)

ALICE = USERS["alice"]
MIB = 1024 * 1024

# The shared server: one worker, so that every bystander shares the worker
# with the hostile client of the test.
SERVER_SETTINGS = {
    "workers": 1,
    "fsync": "no",
    "max_bad_commands": 1000,
    "max_auth_failures": 1000,
    "auth_failure_delay_ms": 20,
}


# --- /proc helpers ----------------------------------------------------------

def worker_pids(srv):
    """PIDs of the master's children (the workers), from /proc/*/stat."""
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
    return sorted(pids)


def proc_status(pid):
    """The fields of /proc/PID/status; sizes (kB) in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            value = value.strip()
            if value.endswith(" kB"):
                out[key] = int(value[:-3]) * 1024
            else:
                out[key] = value
    return out


def fd_targets(pid):
    out = []
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, fd)))
        except OSError:
            pass
    return out


class Mem:
    """Peak memory of the workers from now on.  Writing 5 to
    /proc/PID/clear_refs resets VmHWM to the current RSS, so the peak
    afterwards belongs to this test; where that is not allowed the old
    peak stays and growth is measured against the RSS at the start."""

    def __init__(self, srv):
        self.srv = srv
        self.pids = worker_pids(srv)
        self.start = {}
        for pid in self.pids:
            try:
                with open("/proc/%d/clear_refs" % pid, "w") as f:
                    f.write("5")
            except OSError:
                pass
            self.start[pid] = proc_status(pid)["VmRSS"]

    def peaks(self):
        return {pid: proc_status(pid)["VmHWM"] for pid in self.pids}

    def rss(self):
        return {pid: proc_status(pid)["VmRSS"] for pid in self.pids}

    def growth(self):
        """The largest peak growth over the workers, in bytes."""
        return max(proc_status(pid)["VmHWM"] - self.start[pid]
                   for pid in self.pids)

    def report(self, what):
        peaks = self.peaks()
        print("MEASURE %s: worker RSS at start %s, peak %s, peak growth "
              "%.0f KiB" % (what, _kib(self.start), _kib(peaks),
                            self.growth() / 1024.0))

    def assert_bounded(self, limit, what):
        """Not checked with sanitizers (helpers.assert_rss_bound())."""
        self.report(what)
        grew = self.growth()
        assert_rss_bound(grew < limit, "%s: a worker's peak RSS grew by %d "
                         "bytes (limit %d)" % (what, grew, limit))


def _kib(d):
    return {pid: "%d KiB" % (v // 1024) for pid, v in d.items()}


# --- clients ----------------------------------------------------------------

def connect(srv, source=None, rcvbuf=None, tls=False, greeting=True,
            timeout=10.0):
    """A raw connection, optionally from another loopback source address
    or with a small receive buffer (set before connect())."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect((HOST, srv.imaps_port if tls else srv.imap_port))
    if tls:
        sock = srv.ssl_context().wrap_socket(sock, server_hostname=HOST)
    c = RawConn(sock, timeout)
    c.greeting = c.readline() if greeting else None
    return c


def login(srv, user="alice", **kw):
    c = connect(srv, **kw)
    _, tagged = c.command("L", "LOGIN %s %s" % (imap_quote(user),
                                               imap_quote(srv.users[user])))
    assert tagged.startswith("L OK"), tagged
    return c


def bystander(srv, user="alice", limit=5.0):
    """Another client's whole session; returns how long it took."""
    t0 = time.monotonic()
    c = connect(srv, timeout=limit)
    try:
        assert c.greeting.startswith("* OK "), c.greeting
        _, t = c.command("b1", "LOGIN %s %s" % (imap_quote(user),
                                               imap_quote(srv.users[user])))
        assert t.startswith("b1 OK"), t
        _, t = c.command("b2", "NOOP")
        assert t.startswith("b2 OK"), t
        _, t = c.command("b3", "SELECT INBOX")
        assert t.startswith("b3 OK"), t
        c.send("b4 LOGOUT\r\n")
        lines = c.expect_eof(timeout=limit)
        assert lines and lines[-1].startswith("b4 OK"), lines
    finally:
        c.close()
    elapsed = time.monotonic() - t0
    assert elapsed < limit, "bystander session took %.2f s" % elapsed
    return elapsed


class Hostile:
    """Run fn in a thread while bystanders keep using the server."""

    def __init__(self, fn):
        self.error = None
        self.result = None

        def run():
            try:
                self.result = fn()
            except BaseException as e:  # reported by join()
                self.error = e
        self.thread = threading.Thread(target=run, daemon=True)

    def run_with_bystanders(self, srv, min_rounds=1, limit=5.0):
        self.thread.start()
        rounds, worst = 0, 0.0
        while self.thread.is_alive() or rounds < min_rounds:
            worst = max(worst, bystander(srv, limit=limit))
            rounds += 1
        self.thread.join(60)
        assert not self.thread.is_alive(), "hostile client still running"
        if self.error is not None:
            raise self.error
        return rounds, worst


def attack(srv, fn, limit, what, min_rounds=1):
    """Run the hostile client fn() in a thread while bystander sessions
    run one after the other; then check that no worker's peak RSS grew by
    limit bytes or more, and serve one more bystander.  Returns what fn
    returned."""
    bystander(srv)          # warm the worker up (store, SQLite) first
    mem = Mem(srv)
    h = Hostile(fn)
    rounds, worst = h.run_with_bystanders(srv, min_rounds)
    print("MEASURE %s: %d bystander sessions meanwhile, slowest %.3f s"
          % (what, rounds, worst))
    mem.assert_bounded(limit, what)
    bystander(srv)
    return h.result


def fast_lines(c, timeout=30.0):
    """Every CRLF line from c (reading in big chunks; RawConn.readline is
    quadratic on a large buffer), as bytes, until EOF or timeout with
    nothing new."""
    buf = c.buf
    c.buf = b""
    while True:
        while True:
            i = buf.find(b"\r\n")
            if i < 0:
                break
            yield buf[:i]
            buf = buf[i + 2:]
        c.sock.settimeout(timeout)
        data = c.sock.recv(1 << 20)
        if not data:
            assert buf == b"", "partial line at EOF: %r" % buf[:200]
            return
        buf += data


def append(c, tag, msg, mailbox="INBOX"):
    """APPEND msg (bytes) with a non-synchronizing literal; the reply."""
    c.send(b"%s APPEND %s {%d+}\r\n" % (tag.encode(), mailbox.encode(),
                                         len(msg)) + msg + b"\r\n")
    _, tagged = c.read_tagged(tag)
    assert tagged.startswith(tag + " OK"), tagged
    return tagged


def _tag_status(line):
    parts = line.split(" ", 2)
    return parts[0], parts[1] if len(parts) > 1 else ""


# --- 10 MB lines ------------------------------------------------------------

BIG = 10 * MIB


def _big_line(kind):
    if kind == "atom":
        return b"a SELECT " + b"x" * BIG + b"\r\n", "a"
    if kind == "quoted":
        return b'a SELECT "' + b"q" * BIG + b'"\r\n', "a"
    if kind == "tag":
        # No space at all: the tag itself is 10 MB, so the BAD is untagged.
        return b"t" * BIG + b"\r\n", "*"
    if kind == "binary":
        # 8-bit bytes (never a LF) where an atom goes: atoms are lenient,
        # so this too is cut by the line limit.
        chunk = bytes(range(0x80, 0x100)) * 4
        return b"a SELECT " + chunk * (BIG // len(chunk)) + b"\r\n", "a"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["atom", "quoted", "tag", "binary"])
@pytest.mark.parametrize("authenticated", [False, True],
                         ids=["preauth", "postauth"])
def test_ten_megabyte_line(server, kind, authenticated):
    data, tag = _big_line(kind)

    def hostile():
        with login(server, "bob") if authenticated else \
                connect(server) as c:
            # In 1 MB pieces, so that bystanders run while it arrives.
            for i in range(0, len(data), MIB):
                c.send(data[i:i + MIB])
                time.sleep(0.03)
            c.send("z NOOP\r\n")
            line = c.readline()
            assert line == "%s BAD [TOOBIG] Line too long" % tag, line
            # The rest of the line was skipped, not parsed as commands.
            untagged, tagged = c.read_tagged("z")
            assert untagged == [], untagged
            assert tagged.startswith("z OK"), tagged
    attack(server, hostile, 2 * MIB, "10 MB line, %s, %s" % (
        kind, "post-auth" if authenticated else "pre-auth"))


# --- literals of 2^63 bytes announced ---------------------------------------

# 2^63 - 1 is the largest number64 (RFC 9051 section 9); 2^63 overflows it.
HUGE = ["9223372036854775807", "9223372036854775808"]


@pytest.mark.parametrize("size", HUGE, ids=["2^63-1", "2^63"])
@pytest.mark.parametrize("command", [
    "APPEND INBOX {%s}",            # streamed to disk if accepted
    "APPEND INBOX (\\Seen) ~{%s}",  # literal8
    "SELECT {%s}",                  # held in memory if accepted
    "LOGIN {%s}",                   # wrong state, parsed first
])
def test_huge_literal_synchronizing_post_auth(server, size, command):
    # (Before login: test_protocol.py test_huge_synchronizing_literal_size.)
    def hostile():
        with login(server, "bob") as c:
            c.send("a %s\r\n" % (command % size))
            line = c.readline()
            assert not line.startswith("+"), "continuation for %s" % command
            assert re.match(r"a BAD \[TOOBIG\] ", line), line
            # The server waits for the next command: nothing of the
            # literal is expected.
            _, tagged = c.command("b", "NOOP")
            assert tagged.startswith("b OK"), tagged
    attack(server, hostile, MIB, "{%s} announced" % size)
    spool = os.path.join(server.data_dir, "tmp") + "/"
    wait_until(lambda: not [t for t in fd_targets(worker_pids(server)[0])
                            if t.startswith(spool)], 5,
               what="no temporary file open")


@pytest.mark.parametrize("size", HUGE, ids=["2^63-1", "2^63"])
@pytest.mark.parametrize("command", ["APPEND INBOX {%s+}", "SELECT {%s+}"])
@pytest.mark.parametrize("authenticated", [False, True],
                         ids=["preauth", "postauth"])
def test_huge_literal_non_synchronizing(server, size, command,
                                        authenticated):
    # RFC 7888 section 4: the data of a refused {n+} is already on its way,
    # so the server answers BYE and closes.  Here the client keeps sending
    # while the server closes.
    def hostile():
        with login(server, "bob") if authenticated else \
                connect(server) as c:
            c.send("a %s\r\n" % (command % size))
            try:
                c.send(b"y" * 65536)
            except OSError:
                pass
            lines = c.expect_eof(timeout=5)
            assert lines and lines[-1].startswith("* BYE "), lines
            assert not any(re.match(r"a (OK|NO) ", x) for x in lines), lines
    attack(server, hostile, MIB, "{%s+} announced" % size)


# --- 100,000 pipelined commands ---------------------------------------------

def _tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the loopback TCP socket local -> remote."""
    want_l = "0100007F:%04X" % local_port
    want_r = "0100007F:%04X" % remote_port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == want_l and fields[2] == want_r:
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


@pytest.mark.timeout_s(90)
def test_hundred_thousand_pipelined_commands(herald_server):
    # test_protocol.py pipelines 3000 commands against a 4 KiB output
    # buffer.  Here: 100,000 commands whose replies (about 30 MB) are far
    # more than max_output_buffer, from a client that reads nothing for a
    # while.  The server must stop reading at output_high_water, stay far
    # below max_output_buffer, keep serving others, then answer all of it
    # in order.
    srv = herald_server(workers=1, fsync="no", output_high_water="64K",
                        max_output_buffer="4M")
    n = 100000
    bystander(srv)
    mem = Mem(srv)
    c = login(srv, "bob", rcvbuf=65536)
    client_port = c.sock.getsockname()[1]
    payload = "".join("c%d CAPABILITY\r\n" % i for i in range(n)).encode()
    sent = []

    def sender():
        c.sock.settimeout(120)
        c.sock.sendall(payload)
        sent.append(time.monotonic())
    t = threading.Thread(target=sender, daemon=True)
    t0 = time.monotonic()
    t.start()
    # Until the server has stopped reading: its socket's receive queue
    # holds bytes and does not move.
    stalls = []

    def stalled():
        q = _tcp_queues(srv.imap_port, client_port)
        stalls.append(q)
        return q is not None and q[1] > 0 and len(stalls) > 3 and \
            stalls[-2] == q and stalls[-3] == q
    wait_until(stalled, 20, interval=0.2,
               what="the server to stop reading commands")
    queues = stalls[-1]
    # (The client's sendall() may well have returned: the kernel's socket
    # buffers on both sides hold a few MB of commands.)
    # Others are served meanwhile.
    worst = max(bystander(srv) for _ in range(3))
    mem.assert_bounded(2 * MIB, "100k pipelined commands, client not "
                       "reading")
    print("MEASURE pipelining: server socket send queue %d, receive queue "
          "%d bytes while stalled; bystander at worst %.3f s"
          % (queues[0], queues[1], worst))
    # Now read everything, in order.
    expect = 0
    untagged = False
    for line in fast_lines(c):
        if line.startswith(b"* CAPABILITY "):
            assert not untagged, line
            untagged = True
            continue
        tag, status = _tag_status(line.decode())
        assert tag == "c%d" % expect and status == "OK" and untagged, \
            (expect, line)
        untagged = False
        expect += 1
        if expect == n:
            break
    t.join(30)
    assert sent, "the client could not send everything"
    elapsed = time.monotonic() - t0
    _, tagged = c.command("z", "NOOP")
    assert tagged.startswith("z OK"), tagged
    c.close()
    assert "output buffer" not in srv.log()
    mem.assert_bounded(2 * MIB, "100k pipelined commands, all read")
    print("MEASURE pipelining: %d commands answered in order in %.1f s"
          % (n, elapsed))
    bystander(srv)


# --- deep nesting -----------------------------------------------------------

DEEP = 5000


@pytest.mark.parametrize("command", [
    "FETCH 1 " + "(" * DEEP + "FLAGS" + ")" * DEEP,
    "SEARCH " + "(" * DEEP + "ALL" + ")" * DEEP,
    "STATUS INBOX " + "(" * DEEP + "MESSAGES" + ")" * DEEP,
    "LIST " + "(" * DEEP + ')' * DEEP + ' "" *',
    # A synchronizing literal: the client waits for "+" that never comes.
    "APPEND INBOX " + "(" * DEEP + ")" * DEEP + " {1}",
    # Unbalanced: only opening parentheses, as many as fit in a line.
    "SEARCH " + "(" * 60000,
    # Not lists, but nesting all the same.
    "SEARCH " + "NOT " * 15000 + "ALL",
    "SEARCH " + "OR " * 8000 + "ALL " * 8001,
    "FETCH 1 BODY[" + ".".join(["1"] * 15000) + "]",
], ids=["fetch", "search", "status", "list", "append", "unbalanced", "not",
        "or", "section"])
def test_deep_nesting_post_auth(server, command):
    # (Before login: test_protocol.py test_deeply_nested_lists_are_refused.)
    def hostile():
        with login(server, "bob") as c:
            append(c, "p", b"Subject: n\r\n\r\nnested\r\n")
            _, tagged = c.command("s", "SELECT INBOX")
            assert tagged.startswith("s OK"), tagged
            c.send("a %s\r\n" % command)
            untagged, tagged = c.read_tagged("a")
            assert re.match(r"a (BAD|NO) ", tagged), tagged
            assert untagged == [], untagged
            _, tagged = c.command("b", "NOOP")
            assert tagged.startswith("b OK"), tagged
    # 2 MiB: the APPEND that sets the test up now also indexes the text
    # (zlib and FTS5 in SQLite), up to ~1 MiB of a worker's peak RSS on
    # its own; a nesting blow-up costs far more.
    attack(server, hostile, 2 * MIB, "nesting, %s..." % command[:14])


def _nested_multipart(depth):
    head, tail = [], []
    for i in range(depth):
        head.append("Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n"
                    "--b%d\r\n" % (i, i))
        tail.append("\r\n--b%d--\r\n" % i)
    return ("Subject: deep\r\n" + "".join(head) +
            "Content-Type: text/plain\r\n\r\ninnermost\r\n" +
            "".join(reversed(tail))).encode()


def _nested_rfc822(depth):
    return ("Subject: deep\r\n" +
            "Content-Type: message/rfc822\r\n\r\nSubject: x\r\n" * depth +
            "\r\ninnermost\r\n").encode()


@pytest.mark.parametrize("make", [_nested_multipart, _nested_rfc822],
                         ids=["multipart", "rfc822"])
def test_deeply_nested_mime_message(server, make):
    # Not a protocol list but a message: 3000 levels of MIME nesting, then
    # the commands that parse its structure.  The MIME parser stops at
    # MIME_DEFAULT_MAX_DEPTH (100) levels; what it costs is bounded but not
    # small (about 4 MB of peak RSS here, 30 MB for 24,000 levels).
    msg = make(3000)

    def hostile():
        with login(server, "bob") as c:
            _, tagged = c.command("s", "SELECT INBOX")
            assert tagged.startswith("s OK"), tagged
            tagged = append(c, "a", msg)
            uid = re.search(r"APPENDUID \d+ (\d+)", tagged).group(1)
            for i, item in enumerate([
                    "BODYSTRUCTURE", "BODY", "ENVELOPE",
                    "BODY.PEEK[1.1.1.1.1.1.1.1]",
                    "BODY.PEEK[%s]" % ".".join(["1"] * 30)]):
                tag = "f%d" % i
                c.send("%s UID FETCH %s (%s)\r\n" % (tag, uid, item))
                for line in fast_lines(c, timeout=20):
                    if line.startswith(tag.encode() + b" "):
                        break
                assert line.startswith(tag.encode() + b" OK "), (item, line)
            _, tagged = c.command("x", "UID SEARCH TEXT innermost")
            assert tagged.startswith("x OK"), tagged
    attack(server, hostile, 32 * MIB, "MIME nesting, %s" % make.__name__)


# --- slowloris --------------------------------------------------------------

@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One worker and a short preauth_timeout."""
    srv = Server(tmp_path_factory.mktemp("quick") / "srv",
                 settings={"workers": 1, "preauth_timeout": 2,
                           "fsync": "no"})
    srv.start()
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.log()
    srv.assert_no_sanitizer_reports()


def _slowloris(c, seconds, data=b"a LOGIN alice xxxxxxxxxxxxxxxxxxxxxxx"):
    """One byte a second; returns how long the connection lasted."""
    t0 = time.monotonic()
    for i in range(seconds):
        try:
            c.send(data[i % len(data):i % len(data) + 1])
        except OSError:
            break
        time.sleep(1.0)
    return time.monotonic() - t0


def test_slowloris_does_not_block_others(quick):
    c = connect(quick)
    with c:
        rounds, worst = Hostile(lambda: _slowloris(c, 4)) \
            .run_with_bystanders(quick, min_rounds=3, limit=2.0)
    print("MEASURE slowloris: %d bystander sessions during 4 s, slowest "
          "%.3f s" % (rounds, worst))


def test_slowloris_is_disconnected_by_preauth_timeout(quick):
    # preauth_timeout = 2 s and not one complete command: whatever the
    # timeout means (a deadline for the login, or inactivity between
    # commands), the connection must be gone well within 6 s.
    c = connect(quick)
    with c:
        lasted = _slowloris(c, 6)
        print("MEASURE slowloris: connection lasted %.1f s "
              "(preauth_timeout 2 s)" % lasted)
        assert lasted < 5, "a 1 byte/s client stayed %.1f s" % lasted
        lines = c.expect_eof(timeout=3)
        assert lines and lines[-1].startswith("* BYE "), lines


def test_slowloris_in_the_tls_handshake_is_cut(quick):
    # The same client on the implicit-TLS port, inside a ClientHello whose
    # record announces 512 bytes: the handshake does not re-arm the timer,
    # so it goes after preauth_timeout (2 s) plus the 5 s the server gives
    # the BYE to leave (CONN_CLOSE_FLUSH_MS in src/event/conn.c; that BYE
    # cannot be sent in the middle of a handshake).
    sock = socket.create_connection((HOST, quick.imaps_port), timeout=10)
    with sock:
        t0 = time.monotonic()
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        lasted = None
        for _ in range(11):
            try:
                sock.sendall(b"\x00")
            except OSError:
                lasted = time.monotonic() - t0
                break
            sock.settimeout(1.0)
            try:
                if sock.recv(100) == b"":
                    lasted = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                lasted = time.monotonic() - t0
                break
        print("MEASURE slowloris in the TLS handshake: closed after %s s"
              % ("%.1f" % lasted if lasted else "> 11"))
        assert lasted is not None and lasted < 9, lasted
    bystander(quick)


# --- 10,000 idle connections ------------------------------------------------

N_IDLE = 10000


def _raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@pytest.mark.timeout_s(120)
def test_ten_thousand_idle_connections(herald_server):
    # The server inherits the limit: raise it before the server starts.
    _raise_nofile(N_IDLE + 1000)
    timeout = 6
    srv = herald_server(workers=2, preauth_timeout=timeout, fsync="no")
    pids = worker_pids(srv)
    bystander(srv)
    bystander(srv)
    time.sleep(0.2)
    before = {p: proc_status(p)["VmRSS"] for p in pids}
    fds_before = {p: len(fd_targets(p)) for p in pids}
    socks = []
    sel = selectors.DefaultSelector()
    try:
        t0 = time.monotonic()
        for i in range(N_IDLE):
            for attempt in range(20):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(10)
                try:
                    s.connect((HOST, srv.imap_port))
                    break
                except OSError as e:
                    s.close()
                    if e.errno not in (errno.EAGAIN, errno.ECONNREFUSED) or \
                            attempt == 19:
                        raise
                    time.sleep(0.05)
            socks.append(s)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, [b"", False])
        opened = time.monotonic() - t0
        # Every connection got its greeting.
        greeted = 0
        deadline = time.monotonic() + 20
        while greeted < N_IDLE and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                st = key.data
                data = key.fileobj.recv(4096)
                st[0] += data
                if not st[1] and b"\r\n" in st[0]:
                    assert st[0].startswith(b"* OK "), st[0]
                    st[1] = True
                    greeted += 1
                if not data:
                    raise AssertionError("a connection closed early")
        assert greeted == N_IDLE, "%d of %d greeted" % (greeted, N_IDLE)
        all_in = time.monotonic() - t0
        time.sleep(0.3)
        after = {p: proc_status(p)["VmRSS"] for p in pids}
        conns = {p: len(fd_targets(p)) - fds_before[p] for p in pids}
        grew = sum(after.values()) - sum(before.values())
        per_conn = grew / float(N_IDLE)
        with open("/proc/net/sockstat") as f:
            sockstat = [x.strip() for x in f if x.startswith("TCP:")]
        print("MEASURE 10k idle: opened in %.1f s, all greeted after %.1f s;"
              " per worker %s connections; worker RSS %s -> %s; %.0f bytes "
              "of worker RSS per idle connection; kernel %s"
              % (opened, all_in, conns, _kib(before), _kib(after), per_conn,
                 sockstat))
        assert all_in < timeout - 2, "too slow to measure before the timeout"
        assert sum(conns.values()) >= N_IDLE, conns
        assert min(conns.values()) > N_IDLE // 10, conns
        assert_rss_bound(per_conn < 4096, "%.0f bytes of worker RSS per "
                         "idle connection" % per_conn)
        # Still responsive.
        worst = max(bystander(srv, limit=2.0) for _ in range(5))
        print("MEASURE 10k idle: bystander session at worst %.3f s" % worst)
        # preauth_timeout closes every one of them with a BYE.
        closed = bye = 0
        deadline = t0 + timeout + 20
        while closed < N_IDLE and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                st = key.data
                try:
                    data = key.fileobj.recv(4096)
                except ConnectionResetError:
                    data = b""
                st[0] += data
                if not data:
                    sel.unregister(key.fileobj)
                    closed += 1
                    if b"\r\n* BYE " in st[0]:
                        bye += 1
        all_closed = time.monotonic() - t0
        print("MEASURE 10k idle: all closed %.1f s after the first connect "
              "(preauth_timeout %d s), %d with a BYE"
              % (all_closed, timeout, bye))
        assert closed == N_IDLE, "%d of %d closed by preauth_timeout" % (
            closed, N_IDLE)
        assert bye == N_IDLE, "%d BYEs for %d connections" % (bye, N_IDLE)
    finally:
        sel.close()
        for s in socks:
            s.close()
    # No descriptor left behind.
    wait_until(lambda: all(len(fd_targets(p)) <= fds_before[p]
                           for p in pids), 10,
               what="worker descriptors back to %r" % fds_before)
    bystander(srv)


def test_preauth_partial_commands_hold_bounded_memory(server):
    # The most a client can make a worker hold before login: an unfinished
    # command of preauth_max_line_length text and two literals (the parser
    # allows line + 2 x preauth_max_literal_size).  300 such connections.
    n = 300
    bystander(server)
    pid = worker_pids(server)[0]
    before = proc_status(pid)["VmRSS"]
    conns = []
    try:
        for i in range(n):
            c = connect(server)
            conns.append(c)
            c.send(b"a LOGIN {8000}\r\n")
            assert c.readline().startswith("+ ")
            c.send(b"x" * 8000 + b" {8000}\r\n")
            assert c.readline().startswith("+ ")
            c.send(b"y" * 7999)
        time.sleep(0.3)
        per_conn = (proc_status(pid)["VmRSS"] - before) / float(n)
        worst = max(bystander(server) for _ in range(3))
        print("MEASURE pre-auth partial commands: %.0f bytes of worker RSS "
              "per connection (defaults: 8 KiB line + 2 x 8 KiB literals); "
              "bystander %.3f s" % (per_conn, worst))
        assert_rss_bound(per_conn < 48 * 1024, "%.0f bytes of worker RSS "
                         "per connection" % per_conn)
        # A literal over the limit: BAD, no "+".
        c = conns[0]
        c.send(b"y {8193}\r\n")
        line = c.readline()
        assert re.match(r"a BAD \[TOOBIG\] ", line), line
    finally:
        for c in conns:
            c.close()
    bystander(server)


# --- disconnecting in the middle of APPEND ----------------------------------

def _maildir(srv, user="alice"):
    return os.path.join(srv.data_dir, "users", user, "Maildir")


def _files(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_disconnect_mid_append_at_every_stage(herald_server):
    # test_append.py covers a FIN in the middle of the literal, after it
    # and in MULTIAPPEND.  Here: FIN and RST at many points, including
    # while the finished command is being committed (fsync on), then the
    # invariants: every message in cur/ is complete, new/ and tmp/ and the
    # data_dir/tmp spool are empty, and no descriptor is left open.
    srv = herald_server(workers=1, fsync="yes")
    pid = worker_pids(srv)[0]
    bystander(srv)
    time.sleep(0.2)
    fds_before = len(fd_targets(pid))
    body = b"".join(b"line %06d of a message cut short\r\n" % i
                    for i in range(6000))
    msg = b"Subject: cut\r\n\r\n" + body
    head = b"A1 APPEND INBOX (\\Seen) {%d+}\r\n" % len(msg)
    full = head + msg + b"\r\n"
    cuts = [5, len(head) - 3, len(head), len(head) + 1, len(head) + 4096,
            len(head) + len(msg) // 2, len(head) + len(msg) - 1,
            len(head) + len(msg), len(full) - 1, len(full)]

    def hostile():
        for rst in (False, True):
            for cut in cuts:
                c = login(srv)
                c.send(full[:cut])
                if rst:
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      b"\x01\0\0\0\0\0\0\0")
                c.close()
    attack(srv, hostile, 4 * MIB, "APPEND cut short")
    # Until the worker has noticed every disconnect and dropped its files.
    tmp = os.path.join(srv.data_dir, "tmp")
    wait_until(lambda: len(fd_targets(pid)) <= fds_before and not
               [t for t in fd_targets(pid) if t.startswith(tmp + "/")],
               15, what="the worker to close every file of the APPENDs")
    md = _maildir(srv)
    assert _files(os.path.join(md, "new")) == []
    assert _files(os.path.join(md, "tmp")) == []
    assert _files(tmp) == []
    stored = _files(os.path.join(md, "cur"))
    for name in stored:
        with open(os.path.join(md, "cur", name), "rb") as f:
            assert f.read() == msg, "partial message %s" % name
    # The index agrees with the folder.
    with login(srv) as c:
        untagged, tagged = c.command("s", "SELECT INBOX")
        assert tagged.startswith("s OK"), tagged
        assert "* %d EXISTS" % len(stored) in untagged, (untagged, stored)
    print("MEASURE APPEND cut at %d points (FIN and RST): %d complete "
          "messages stored, none partial; worker fds %d before and after"
          % (len(cuts), len(stored), fds_before))
    # Only the two cuts after the final CRLF may have stored anything.
    assert len(stored) <= 2, stored
    bystander(srv)


# --- mailbox names ----------------------------------------------------------

ESCAPE = "zz-escape-%d" % os.getpid()

# (IMAP argument, description).  CREATE with most of these is in
# test_mailbox.py; here every other command that takes a mailbox name.
BAD_NAMES = [
    ('".."', "dotdot"),
    ('"../%s"' % ESCAPE, "dotdot-slash"),
    ('"a/../../../%s"' % ESCAPE, "inner-dotdot"),
    ('"/%s"' % ESCAPE, "leading-slash"),
    ('"/"', "slash"),
    ('"//"', "double-slash"),
    ('"INBOX/../../alice"', "inbox-dotdot"),
    ('{5+}\r\na\x00b/c', "nul-literal"),
    ('{4+}\r\na\x01\x7fb', "control-literal"),
    ('{9+}\r\nx\x1b[31mred', "escape-sequence"),
    ('{5+}\r\nab\r\nc', "crlf-literal"),
    ('"a\tb"', "tab"),
    ('"caf\xc3\xa9"', "utf8-unannounced"),
    ('"\xff\xfe"', "invalid-utf8"),
    ('"\xc0\xaf"', "overlong-utf8"),
    ('"\xed\xa0\x80"', "utf8-surrogate"),
    ('"&Jjo"', "mutf7-unterminated"),
    ('"&AGE-"', "mutf7-ascii"),
    ('"&2D0-"', "mutf7-lone-surrogate"),
    ('"&-&-"', "mutf7-double-amp"),   # valid: "&&", must not escape
    ('"&Li4v-%s"' % ESCAPE, "mutf7-dotdot-slash"),  # "../" encoded
    ('"&AC8-%s"' % ESCAPE, "mutf7-slash"),          # "/" encoded
    ('"&AAA-"', "mutf7-nul"),
]

MAILBOX_COMMANDS = [
    "SELECT %s", "EXAMINE %s", "STATUS %s (MESSAGES)", "DELETE %s",
    "RENAME %s Renamed", "RENAME INBOX %s", "SUBSCRIBE %s",
    "APPEND %s {1+}\r\nx", "CREATE %s", "LIST %s *", 'LIST "" %s',
    "COPY 1 %s", "MOVE 1 %s",
]


def _tree(root):
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


@pytest.fixture(scope="module")
def names_srv(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("names") / "srv",
                 settings={"workers": 1, "fsync": "no",
                           "max_bad_commands": 10000})
    srv.start()
    # bob has mail: a target for escapes from alice's Maildir.
    with login(srv, "bob") as c:
        append(c, "a", b"Subject: bob\r\n\r\nbob's\r\n")
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.log()
    srv.assert_no_sanitizer_reports()


@pytest.mark.parametrize("name,desc", BAD_NAMES, ids=[d for _, d in BAD_NAMES])
def test_hostile_mailbox_names(names_srv, name, desc):
    srv = names_srv
    valid = desc == "mutf7-double-amp"
    trees = []

    def hostile():
        with login(srv) as c:
            append(c, "p", b"Subject: own\r\n\r\nmine\r\n")
            _, tagged = c.command("s", "SELECT INBOX")
            assert tagged.startswith("s OK"), tagged
            trees.append(_tree(srv.data_dir))
            for i, cmd in enumerate(MAILBOX_COMMANDS):
                tag = "m%d" % i
                text = cmd % name
                c.send(("%s %s\r\n" % (tag, text)).encode("latin-1"))
                untagged, tagged = c.read_tagged(tag)
                if cmd.startswith("LIST"):
                    # A pattern: nothing or an error, never another
                    # user's folder or a path outside the Maildir.
                    assert re.match(r"%s (OK|NO|BAD) " % tag, tagged), \
                        tagged
                    assert all(ESCAPE not in u and "bob" not in u.lower()
                               for u in untagged), (text, untagged)
                    continue
                if valid:
                    assert re.match(r"%s (OK|NO) " % tag, tagged), tagged
                    continue
                assert re.match(r"%s (NO|BAD) " % tag, tagged), \
                    (text, tagged)
                if cmd.startswith(("SELECT", "EXAMINE")):
                    # A failed SELECT leaves no mailbox selected (RFC 9051
                    # 6.3.2); select INBOX again for COPY and MOVE.
                    _, t = c.command("r%d" % i, "SELECT INBOX")
                    assert t.startswith("r%d OK" % i), t
            # The connection is still fine.
            _, tagged = c.command("z", "NOOP")
            assert tagged.startswith("z OK"), tagged
            trees.append(_tree(srv.data_dir))
    attack(srv, hostile, MIB, "mailbox name %s" % desc)
    if not valid:
        # Nothing new on disk but the APPENDed message and the index.
        new = [p for p in trees[1] - trees[0]
               if not re.search(r"(index\.sqlite(-journal|-wal|-shm)?)$", p)
               and not p.startswith("users/alice/Maildir/cur/")]
        assert new == [], "created on disk: %r" % new
    # Nothing escaped the data directory or landed in bob's mail.
    parent = os.path.dirname(srv.root)
    for d, dirs, files in os.walk(parent):
        for n in dirs + files:
            assert ESCAPE not in n, os.path.join(d, n)
    with login(srv, "bob") as c:
        untagged, tagged = c.command("s", "SELECT INBOX")
        assert "* 1 EXISTS" in untagged, untagged


def test_control_characters_never_reach_the_log(names_srv):
    # A user name and an ID value with CR LF and an escape sequence, sent
    # as literals: the log must not gain a forged line.
    srv = names_srv
    forged = "2099-01-01T00:00:00.000Z master[1] info: FORGED"
    user = "x\r\n%s\x1b[2J" % forged

    def hostile():
        with connect(srv) as c:
            c.send(("a LOGIN {%d+}\r\n%s pw\r\n" % (len(user), user))
                   .encode())
            _, tagged = c.read_tagged("a")
            assert tagged.startswith("a NO"), tagged
            c.send(('b ID ("name" {%d+}\r\n%s)\r\n' % (len(user), user))
                   .encode())
            _, tagged = c.read_tagged("b")
            assert re.match(r"b (OK|BAD) ", tagged), tagged
    attack(srv, hostile, MIB, "control characters for the log")
    time.sleep(0.2)
    log = srv.log()
    assert not re.search(r"^2099-01-01", log, re.M), "forged log line"
    assert "\x1b" not in log


# --- AUTHENTICATE with garbage ----------------------------------------------

GARBAGE = [
    b"QQ==QQ==",                 # padding in the middle
    b"Q",                         # truncated quantum
    b"QQ=",                       # short padding
    b"QUJD RA==",                 # a space inside
    b"=",                         # empty response, on a continuation
    b"====",
    b"\xff\xfe\x80garbage",       # 8-bit bytes
    b"QUJD\x00RA==",              # NUL in the line
    b"\x1b[2J",                   # an escape sequence
    b"A" * 7000,                  # long, valid alphabet, decodes to junk
    b"*x",                        # not quite a cancel
]


@pytest.mark.parametrize("garbage", GARBAGE,
                         ids=["mid-pad", "short", "short-pad", "space",
                              "eq", "eqs", "8bit", "nul", "esc", "long",
                              "star-x"])
@pytest.mark.parametrize("initial", [False, True],
                         ids=["continuation", "sasl-ir"])
def test_authenticate_garbage(server, garbage, initial):
    # (The three cases of test_auth.py are not repeated.)
    def hostile():
        with connect(server) as c:
            if initial:
                c.send(b"a AUTHENTICATE PLAIN " + garbage + b"\r\n")
            else:
                c.send(b"a AUTHENTICATE PLAIN\r\n")
                assert c.readline().startswith("+"), "no continuation"
                c.send(garbage + b"\r\n")
            untagged, tagged = c.read_tagged("a")
            # RFC 9051 6.2.2: invalid base64 is BAD; what decodes but is
            # not a PLAIN message fails with NO.  Never a continuation.
            assert re.match(r"a (BAD|NO) ", tagged), tagged
            assert untagged == [], untagged
            _, tagged = c.command("b", "NOOP")
            assert tagged.startswith("b OK"), tagged
            _, tagged = c.command("c", "SELECT INBOX")
            assert re.match(r"c (NO|BAD) ", tagged), tagged
            _, tagged = c.command("d", "AUTHENTICATE PLAIN %s"
                                  % sasl_plain("alice", ALICE))
            assert tagged.startswith("d OK"), tagged
    attack(server, hostile, MIB, "AUTHENTICATE garbage")


# --- throttled logins -------------------------------------------------------

def _timed_login(c, tag, password):
    t0 = time.monotonic()
    _, tagged = c.command(tag, "LOGIN alice %s" % imap_quote(password),
                          timeout=15)
    return tagged, time.monotonic() - t0


@pytest.mark.timeout_s(60)
def test_throttled_attacker_gets_slower_others_are_served(herald_server):
    # test_auth.py checks the growing delay on one connection.  Here the
    # attacker comes from 127.0.0.2, on fresh connections and in parallel;
    # a client from 127.0.0.1 logs in meanwhile without any delay.
    srv = herald_server(workers=1, auth_failure_delay_ms=50,
                        auth_throttle_failures=3, auth_throttle_window=60,
                        auth_throttle_delay_max=2, max_auth_failures=100)
    attacker = "127.0.0.2"
    delays = []
    for i in range(5):
        with connect(srv, source=attacker) as c:
            tagged, dt = _timed_login(c, "f%d" % i, "guess%d" % i)
            assert "NO [AUTHENTICATIONFAILED]" in tagged, tagged
            delays.append(dt)
    print("MEASURE throttling: failed login delays %s s"
          % ["%.2f" % d for d in delays])
    assert max(delays[:3]) < 0.8, delays
    assert delays[3] >= 0.95, delays       # 1 s
    assert delays[4] >= 1.9, delays        # 2 s, the cap
    # In parallel: no attempt escapes the delay, and meanwhile a client
    # from another address is served at once.
    conns = [connect(srv, source=attacker) for _ in range(8)]
    results = []

    def guess(c, i):
        results.append(_timed_login(c, "p%d" % i, "parallel%d" % i))
    threads = [threading.Thread(target=guess, args=(c, i), daemon=True)
               for i, c in enumerate(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.2)
    t_by = bystander(srv, limit=1.5)
    for t in threads:
        t.join(20)
    for c in conns:
        c.close()
    wall = time.monotonic() - t0
    assert len(results) == len(conns)
    assert all("NO [AUTHENTICATIONFAILED]" in r[0] for r in results), results
    assert min(r[1] for r in results) >= 1.9, results
    print("MEASURE throttling: %d parallel guesses from one address "
          "answered in %.2f s (each delayed >= %.2f s); bystander from "
          "127.0.0.1 %.3f s" % (len(results), wall,
                                min(r[1] for r in results), t_by))
    # Even the right password waits while the address is throttled.
    with connect(srv, source=attacker) as c:
        tagged, dt = _timed_login(c, "ok", ALICE)
        assert tagged.startswith("ok OK"), tagged
        assert dt >= 1.9, dt


# --- STARTTLS after TLS -----------------------------------------------------

def test_starttls_on_the_implicit_tls_port(server):
    # (STARTTLS after STARTTLS: test_connect.py test_starttls_twice_is_bad.)
    def hostile():
        with connect(server, tls=True) as c:
            assert "STARTTLS" not in c.greeting, c.greeting
            _, tagged = c.command("a", "STARTTLS")
            assert re.match(r"a (BAD|NO) ", tagged), tagged
            # Pipelined behind a refused STARTTLS, a command still runs,
            # in TLS.
            c.send("b STARTTLS\r\nc LOGIN alice %s\r\n" % imap_quote(ALICE))
            _, tagged = c.read_tagged("b")
            assert re.match(r"b (BAD|NO) ", tagged), tagged
            _, tagged = c.read_tagged("c")
            assert tagged.startswith("c OK"), tagged
            _, tagged = c.command("d", "STARTTLS")
            assert re.match(r"d (BAD|NO) ", tagged), tagged
            _, tagged = c.command("e", "SELECT INBOX")
            assert tagged.startswith("e OK"), tagged
    attack(server, hostile, MIB, "STARTTLS on the TLS port")


def test_garbage_tls_record_after_login(server):
    # A TLS client that writes a bogus record under the TLS layer after
    # logging in: the server drops the connection (an alert at most, no
    # IMAP reply), the worker stays.
    start = len(server.log())

    def hostile():
        with connect(server, tls=True) as c:
            _, tagged = c.command("a", "LOGIN alice %s" % imap_quote(ALICE))
            assert tagged.startswith("a OK"), tagged
            # A whole application-data record of 64 bytes of junk: it
            # cannot be decrypted.
            os.write(c.sock.fileno(), b"\x17\x03\x03\x00\x40" + b"\0" * 64)
            c.sock.settimeout(5)
            try:
                data = c.sock.recv(100)
            except (ssl.SSLError, ConnectionResetError):
                data = b""
            assert data == b"", data
    attack(server, hostile, MIB, "garbage TLS record")
    server.wait_log(r"user=alice disconnected: reason=\"TLS read error\"",
                    start=start)


# --- commands in the wrong state --------------------------------------------

PREAUTH_REFUSED = [
    "SELECT INBOX", "EXAMINE INBOX", "CREATE x", "DELETE x", "RENAME x y",
    "SUBSCRIBE INBOX", "UNSUBSCRIBE INBOX", 'LIST "" *', 'LSUB "" *',
    "STATUS INBOX (MESSAGES)", "NAMESPACE", "IDLE", "ENABLE CONDSTORE",
    "APPEND INBOX {3+}\r\nabc", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE",
    "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "COPY 1 INBOX",
    "MOVE 1 INBOX", "SEARCH ALL", "UID FETCH 1 FLAGS", "UID EXPUNGE 1",
]
AUTH_REFUSED = [
    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "FETCH 1 FLAGS",
    "STORE 1 +FLAGS (\\Seen)", "COPY 1 INBOX", "MOVE 1 INBOX",
    "SEARCH ALL", "UID FETCH 1:* FLAGS", "UID STORE 1 FLAGS ()",
    "UID COPY 1 INBOX", "UID SEARCH ALL", "UID EXPUNGE 1",
    "STARTTLS", "AUTHENTICATE PLAIN %s" % sasl_plain("bob", USERS["bob"]),
]


def test_commands_in_the_wrong_state(server):
    # (SELECT before login, LOGIN after login and FETCH with no mailbox
    # are in test_protocol.py and test_fetch.py; this is every other
    # command of the table.)
    def hostile():
        with connect(server) as c:
            for i, cmd in enumerate(PREAUTH_REFUSED):
                untagged, tagged = c.command("n%d" % i, cmd)
                assert re.match(r"n%d (NO|BAD) " % i, tagged), (cmd, tagged)
                assert untagged == [], (cmd, untagged)
            _, tagged = c.command("in", "LOGIN alice %s" % imap_quote(ALICE))
            assert tagged.startswith("in OK"), tagged
            for i, cmd in enumerate(AUTH_REFUSED):
                untagged, tagged = c.command("a%d" % i, cmd)
                assert re.match(r"a%d (NO|BAD) " % i, tagged), (cmd, tagged)
                assert untagged == [], (cmd, untagged)
            _, tagged = c.command("s", "SELECT INBOX")
            assert tagged.startswith("s OK"), tagged
            for i, cmd in enumerate(["STARTTLS", "LOGIN alice x",
                                     "AUTHENTICATE PLAIN"]):
                untagged, tagged = c.command("x%d" % i, cmd)
                assert re.match(r"x%d (NO|BAD) " % i, tagged), (cmd, tagged)
    attack(server, hostile, MIB, "commands in the wrong state")


# --- running as an unprivileged user ----------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv(1)")


def _service_user():
    """nobody, or skip."""
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")


@pytest.fixture
def privsep_root():
    """A directory the service user can traverse: pytest's tmp_path is in
    /tmp/pytest-of-root (mode 0700), where 'nobody' cannot go."""
    d = tempfile.mkdtemp(prefix="herald-privsep-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_user(pw, cmd):
    return subprocess.run(
        ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
         "--clear-groups", "--"] + cmd, capture_output=True, text=True,
        timeout=30)


def _start_privsep(root, **settings):
    srv = Server(os.path.join(root, "srv"),
                 settings=dict({"user": "nobody", "fsync": "no"}, **settings))
    srv.start()
    return srv


@needs_root
def test_runs_as_unprivileged_user(privsep_root):
    pw = _service_user()
    srv = _start_privsep(privsep_root)
    try:
        assert "running as user nobody" in srv.log()
        pids = worker_pids(srv)
        assert len(pids) == 2
        for pid in pids + [srv.pid]:
            st = proc_status(pid)
            uids = st["Uid"].split()
            gids = st["Gid"].split()
            assert uids == [str(pw.pw_uid)] * 4, (pid, st["Uid"])
            assert gids == [str(pw.pw_gid)] * 4, (pid, st["Gid"])
            assert st["Groups"].split() in ([], [str(pw.pw_gid)]), \
                st["Groups"]
            assert st["CapEff"] == "0000000000000000", st["CapEff"]
        # Login, APPEND, FETCH: the data directory is usable.
        msg = b"Subject: privsep\r\n\r\nhello\r\n"
        with login(srv) as c:
            c.send(b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
            _, tagged = c.read_tagged("a")
            assert tagged.startswith("a OK [APPENDUID"), tagged
            _, tagged = c.command("s", "SELECT INBOX")
            assert tagged.startswith("s OK"), tagged
            c.send("f FETCH 1 BODY[]\r\n")
            data = b""
            while b"f OK" not in data:
                data += c.sock.recv(65536)
            assert msg in data, data
        with connect(srv, tls=True) as c:
            _, tagged = c.command("a", "LOGIN bob %s"
                                  % imap_quote(USERS["bob"]))
            assert tagged.startswith("a OK"), tagged
        cur = os.path.join(_maildir(srv), "cur")
        for name in os.listdir(cur):
            assert os.stat(os.path.join(cur, name)).st_uid == pw.pw_uid
        # The private key was loaded before the switch; the service user
        # cannot read the file.
        key = srv.settings.get("tls_key") or os.path.join(
            srv.data_dir, "tls", "key.pem")
        r = _as_user(pw, ["cat", key])
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
        # Neither through the worker's descriptors.
        for pid in pids:
            assert not [t for t in fd_targets(pid) if t.endswith(".pem")]
        # The passwd file is readable by the workers (by design: they
        # verify passwords), and so by anything running as that user.
        r = _as_user(pw, ["head", "-c", "1", srv.passwd_path])
        assert r.returncode == 0, r
    finally:
        srv.stop()
    srv.assert_no_sanitizer_reports()


@needs_root
def test_restart_does_not_chown_through_a_symlink(privsep_root):
    pw = _service_user()
    canary = os.path.join(privsep_root, "root-only")
    with open(canary, "w") as f:
        f.write("root secret\n")
    os.chmod(canary, 0o600)
    srv = _start_privsep(privsep_root)
    srv.stop()
    # What a worker running as the service user can do.
    pwfile = srv.passwd_path
    r = _as_user(pw, ["sh", "-c", 'mv "$1" "$1.old" && ln -s "$2" "$1"',
                      "sh", pwfile, canary])
    assert r.returncode == 0, r
    srv.launch(wait=False)
    try:
        time.sleep(1.0)
        st = os.stat(canary)
    finally:
        srv.stop()
    assert (st.st_uid, st.st_gid) == (0, 0), \
        "root chowned %s to %d:%d through a symlink" % (canary, st.st_uid,
                                                        st.st_gid)


@needs_root
def test_restart_does_not_write_through_tls_symlinks(privsep_root):
    pw = _service_user()
    canary = os.path.join(privsep_root, "root-only")
    with open(canary, "w") as f:
        f.write("root secret\n")
    os.chmod(canary, 0o600)
    srv = _start_privsep(privsep_root)
    srv.stop()
    # What a worker running as the service user can do: data_dir is its.
    r = _as_user(pw, ["sh", "-c", 'mv "$1/tls" "$1/tls.old" && '
                      'mkdir "$1/tls" && ln -s "$2" "$1/tls/key.pem.tmp" && '
                      'ln -s "$2" "$1/tls/cert.pem.tmp"',
                      "sh", srv.data_dir, canary])
    assert r.returncode == 0, r
    srv.launch(wait=False)
    try:
        time.sleep(1.0)
        with open(canary) as f:
            content = f.read()
    finally:
        srv.stop()
    assert content == "root secret\n", \
        "root overwrote %s with %r" % (canary, content[:40])


@needs_root
def test_switching_an_existing_data_dir_to_a_service_user(privsep_root):
    srv = Server(os.path.join(privsep_root, "srv"),
                 settings={"fsync": "no"})
    srv.start()
    with login(srv) as c:
        _, tagged = c.command("s", "SELECT INBOX")
        assert tagged.startswith("s OK"), tagged
    srv.stop()
    srv.write_config(user="nobody")
    srv.expect_worker_deaths = True
    srv.launch(wait=False)
    try:
        # Either a clear refusal to start, or a working server.
        def settled():
            return srv.proc.poll() is not None or \
                "exited with status" in srv.log() or \
                re.search(r"worker\d\[\d+\] info: .*login", srv.log())
        try:
            srv.wait_ready(timeout=3)
            with login(srv, timeout=3) as c:
                _, tagged = c.command("s", "SELECT INBOX")
                assert tagged.startswith("s OK"), tagged
        except (AssertionError, OSError) as e:
            if srv.proc.poll() is not None:
                assert srv.proc.returncode != 0
                return      # refused to start: acceptable
            raise AssertionError("neither working nor refusing: %s\n%s"
                                 % (e, srv.log()[-1500:]))
        assert "exited with status" not in srv.log(), srv.log()[-1500:]
    finally:
        srv.stop()
