"""Herald against a real client: imapflow (Node.js), the IMAP library behind
EmailEngine and many Node mail tools.

The scripts are in tests/clients/imapflow/ (imapflow pinned in package.json,
package-lock.json committed); `npm ci` runs here when node_modules is
missing or holds another version.  Each script prints JSON results and the
IMAP transcript imapflow logged, shown when an assertion fails.

  session.js  implicit TLS and STARTTLS (certificate verified against the
              server's self-signed one), login, LIST with special-use,
              APPEND, FETCH envelope/flags/source, MOVE, STATUS
  idle.js     an idling client driven over stdin/stdout: its exists, flags
              and expunge events after LMTP delivery, `herald deliver` and
              changes by another session, with the latency of each (run
              pytest with -s to see them)

Needs node and npm (scripts/deps.sh test installs Debian's nodejs and npm
when missing); skipped without them.  HERALD_NODE overrides the node binary.
"""
import json
import os
import re
import select
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time

import pytest

import helpers
from helpers import HOST

CLIENT_DIR = os.path.join(helpers.HERALD_SOURCE, "tests", "clients",
                          "imapflow")
NODE = os.environ.get("HERALD_NODE") or shutil.which("node") or \
    shutil.which("nodejs")
NPM = shutil.which("npm")
NPM_TIMEOUT = 300
LATENCY_LIMIT = 1.0
EVENT_TIMEOUT = 10.0


def _pinned_version():
    with open(os.path.join(CLIENT_DIR, "package.json")) as f:
        return json.load(f)["dependencies"]["imapflow"]


def _installed_version():
    try:
        with open(os.path.join(CLIENT_DIR, "node_modules", "imapflow",
                               "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def imapflow():
    """node_modules installed from the lock file; returns the version."""
    if NODE is None:
        pytest.skip("node not found (scripts/deps.sh test installs it)")
    want = _pinned_version()
    if _installed_version() != want:
        if NPM is None:
            pytest.skip("npm not found (scripts/deps.sh test installs it)")
        try:
            r = subprocess.run([NPM, "ci", "--no-audit", "--no-fund"],
                               cwd=CLIENT_DIR, capture_output=True,
                               text=True, timeout=NPM_TIMEOUT,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail("npm ci in %s took more than %d s"
                        % (CLIENT_DIR, NPM_TIMEOUT))
        assert r.returncode == 0, "npm ci failed:\n%s\n%s" % (
            r.stdout[-3000:], r.stderr[-3000:])
    assert _installed_version() == want, (_installed_version(), want)
    return want


def client_env(srv, mode, user="alice", **extra):
    env = dict(os.environ)
    env.update({
        "HERALD_HOST": HOST,
        "HERALD_PORT": str(srv.imaps_port if mode == "tls"
                           else srv.imap_port),
        "HERALD_USER": user,
        "HERALD_PASS": srv.users[user],
        "HERALD_CA": srv.cert_path,
        "HERALD_MODE": mode,
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_script(script, env, timeout=30):
    """Run a one-shot script; returns its JSON result."""
    r = subprocess.run([NODE, script], cwd=CLIENT_DIR, env=env,
                       capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    lines = r.stdout.strip().splitlines()
    assert lines, "no output from %s (exit %d); stderr:\n%s" % (
        script, r.returncode, r.stderr[-3000:])
    result = json.loads(lines[-1])
    if "error" in result:
        pytest.fail("%s failed: %s\nresponse: %s\ntranscript:\n%s"
                    % (script, result["error"], result.get("responseText"),
                       "\n".join(result.get("transcript", []))),
                    pytrace=False)
    assert r.returncode == 0, (r.returncode, r.stderr[-3000:])
    return result


def message(subject, msgid=None):
    return ("From: Sender <sender@example.org>\r\n"
            "To: alice@example.org\r\n"
            "Subject: %s\r\n"
            "Message-ID: <%s@example.org>\r\n"
            "\r\n"
            "Hello from the test.\r\n" % (subject, msgid or subject))


# --- session.js ------------------------------------------------------------

SPECIAL_USE = {"Archive": "\\Archive", "Drafts": "\\Drafts",
               "Junk": "\\Junk", "Sent": "\\Sent", "Trash": "\\Trash"}


@pytest.mark.timeout_s(90)
@pytest.mark.parametrize("mode,user", [("tls", "alice"),
                                       ("starttls", "bob")])
def test_imapflow_session(imapflow, herald_server, mode, user):
    # bob's password holds a space, a quote and a backslash.
    srv = herald_server(fsync="no")
    res = run_script("session.js", client_env(srv, mode, user,
                                              HERALD_TAG="t1"))
    transcript = "\n".join(res["transcript"])
    ctx = "\ntranscript:\n" + transcript

    # The connection: TLS either way, certificate verified.
    assert res["secure"] is True, ctx
    assert res["authorized"] is True, ctx
    assert res["tlsProtocol"] in ("TLSv1.2", "TLSv1.3"), res["tlsProtocol"]
    if mode == "starttls":
        assert "C: 2 STARTTLS" in transcript, ctx
        assert "S: 2 OK " in transcript, ctx
    else:
        assert "STARTTLS" not in transcript, ctx
    assert res["authenticated"] is True, ctx
    assert "AUTHENTICATE PLAIN" in transcript, ctx
    for cap in ("IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE"):
        assert cap in res["capabilities"], (cap, res["capabilities"])

    # LIST: INBOX and the five special-use mailboxes, with their flags.
    boxes = {b["path"]: b for b in res["list"]}
    assert sorted(boxes) == ["Archive", "Drafts", "INBOX", "Junk", "Sent",
                             "Trash"], ctx
    for path, use in SPECIAL_USE.items():
        assert boxes[path]["specialUse"] == use, (path, boxes[path])
        assert use in boxes[path]["flags"], (path, boxes[path])
        assert boxes[path]["delimiter"] == "/", boxes[path]
    assert boxes["INBOX"]["specialUse"] in (None, "\\Inbox"), boxes["INBOX"]
    assert not any(f in SPECIAL_USE.values()
                   for f in boxes["INBOX"]["flags"]), boxes["INBOX"]

    # APPEND: APPENDUID for both, increasing, in INBOX.
    app = res["appended"]
    assert [a["destination"] for a in app] == ["INBOX", "INBOX"], app
    uids = [a["uid"] for a in app]
    assert uids == [1, 2], app
    assert app[0]["uidValidity"] == app[1]["uidValidity"], app
    assert res["inboxOnOpen"]["exists"] == 2, res["inboxOnOpen"]
    assert res["inboxOnOpen"]["uidValidity"] == app[0]["uidValidity"]
    assert res["inboxOnOpen"]["uidNext"] == 3, res["inboxOnOpen"]

    # FETCH: envelope, flags and the exact source of each.
    got = sorted(res["fetched"], key=lambda m: m["uid"])
    assert [m["uid"] for m in got] == uids, ctx
    for m, src, n in zip(got, res["sentSources"], (1, 2)):
        which = "one" if n == 1 else "two"
        assert m["subject"] == "imapflow %s t1" % which, m
        assert m["messageId"] == "<imapflow-t1-%d@example.org>" % n, m
        assert m["from"] == [{"name": "Imapflow Sender",
                              "address": "sender@example.org"}], m
        assert m["to"] == [{"name": "Alice",
                            "address": "alice@example.org"}], m
        assert m["date"] == "2023-01-02T10:00:00.000Z", m
        assert m["source"] == src, m
        assert m["size"] == len(src.encode()), m
    # This session is the first to see the two new messages: \Recent
    # (RFC 3501 2.3.2), as Dovecot answers.
    assert sorted(got[0]["flags"]) == ["\\Recent", "\\Seen"], got[0]
    assert sorted(got[1]["flags"]) == ["$Important", "\\Flagged",
                                       "\\Recent"], got[1]

    # MOVE to Archive: COPYUID maps the UID, INBOX keeps the other one.
    moved = res["moved"]
    assert moved["destination"] == "Archive", moved
    assert moved["uidMap"] == [[uids[0], 1]], moved
    assert res["inboxAfterMove"]["exists"] == 1, ctx
    assert res["inboxUidsAfterMove"] == [uids[1]], ctx
    assert res["status"] == {
        "INBOX": {"messages": 1, "unseen": 1, "uidNext": 3},
        "Archive": {"messages": 1, "unseen": 0, "uidNext": 2},
    }, res["status"]
    assert res["archive"] == [{"uid": 1, "subject": "imapflow one t1",
                               "flags": ["\\Seen"]}], res["archive"]
    assert res["usable"] is False  # logged out

    # And the server agrees, seen from another client.
    with srv.login(user) as c:
        for box, want in (("INBOX", r"UID 2 FLAGS \(\\Flagged \$Important\)"),
                          ("Archive", r"UID 1 FLAGS \(\\Seen\)")):
            _, tagged = c.command("S", "EXAMINE %s" % box)
            assert tagged.startswith("S OK"), tagged
            untagged, tagged = c.command("F", "FETCH 1:* (UID FLAGS)")
            assert tagged.startswith("F OK"), tagged
            assert len(untagged) == 1, untagged
            assert re.fullmatch(r"\* 1 FETCH \(%s\)" % want, untagged[0]), \
                untagged


def test_imapflow_wrong_password(imapflow, herald_server):
    srv = herald_server(fsync="no")
    env = client_env(srv, "tls")
    env["HERALD_PASS"] = "not-the-password"
    r = subprocess.run([NODE, "session.js"], cwd=CLIENT_DIR, env=env,
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["serverResponseCode"] == "AUTHENTICATIONFAILED", res
    assert res["responseText"] == "Authentication failed.", res
    # Nothing ran after the failed login.
    assert res["transcript"][-1] == \
        "S: 2 NO [AUTHENTICATIONFAILED] Authentication failed.", res


# --- idle.js ---------------------------------------------------------------

class NodeClient:
    """idle.js as a child process: JSON lines out, commands in."""

    def __init__(self, env):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [NODE, "idle.js"], cwd=CLIENT_DIR, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr)
        self.buf = b""
        self.seen = []

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def event(self, kind, timeout=EVENT_TIMEOUT):
        """The next event of that kind (others are kept in .seen); fails
        on an error event, on exit and on timeout."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                ev = json.loads(line)
                self.seen.append(ev)
                if "error" in ev:
                    self.fail("idle.js reported an error: %s" % ev["error"])
                if ev.get("event") == kind:
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("no %r event from imapflow within %.1f s"
                          % (kind, timeout))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                data = os.read(fd, 65536)
                if not data:
                    self.fail("idle.js exited (%s) waiting for %r"
                              % (self.proc.wait(5), kind))
                self.buf += data

    def fail(self, why):
        self.close()
        self.stderr.seek(0)
        err = self.stderr.read().decode("utf-8", "replace")
        transcript = ""
        for ev in self.seen:
            transcript += "\n".join(ev.get("transcript", []))
        pytest.fail("%s\nevents: %s\n%s%s" % (
            why, [e for e in self.seen if "transcript" not in e],
            err[-6000:], transcript[-6000:]), pytrace=False)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        self.stderr.close()


def latency_s(ev, t0_ns):
    """Seconds from t0 (time.monotonic_ns() here) to the event (Node's
    process.hrtime, the same CLOCK_MONOTONIC)."""
    return (int(ev["hrtimeNs"]) - t0_ns) / 1e9


def lmtp_deliver(srv, subject):
    t0 = time.monotonic_ns()
    lmtp = smtplib.LMTP(HOST, srv.lmtp_port, timeout=10)
    try:
        refused = lmtp.sendmail("sender@example.org", ["alice@example.org"],
                                message(subject))
        assert refused == {}, refused
    finally:
        lmtp.quit()
    return t0



@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("mode", ["tls", "starttls"])
def test_imapflow_idle_lmtp_exists(imapflow, herald_server, mode):
    srv = herald_server(fsync="no")
    with NodeClient(client_env(srv, mode,
                               HERALD_SCRIPT_TIMEOUT_MS=45000)) as nc:
        opened = nc.event("opened")
        assert opened["exists"] == 0, opened
        idling = nc.event("idling")
        assert idling["exists"] == 0, idling

        t0 = lmtp_deliver(srv, "idle-lmtp-%s" % mode)
        ev = nc.event("exists")
        lat = latency_s(ev, t0)
        print("\nimapflow (%s) exists event %.1f ms after LMTP delivery "
              "began" % (mode, lat * 1000))
        assert ev["path"] == "INBOX" and ev["count"] == 1 and \
            ev["prevCount"] == 0, ev
        # Pushed during IDLE, not picked up by a later command.
        assert ev["idling"] is True, ev
        assert lat < LATENCY_LIMIT, "exists after %.3f s" % lat

        # The new message is the one delivered.
        nc.send("fetch-last")
        got = nc.event("fetched")
        assert got["uid"] == 1 and got["subject"] == "idle-lmtp-%s" % mode, \
            got
        assert got["messageId"] == "<idle-lmtp-%s@example.org>" % mode, got
        nc.send("quit")
        done = nc.event("done")
        assert done["usable"] is False, done
        assert nc.proc.wait(10) == 0


@pytest.mark.timeout_s(60)
def test_imapflow_idle_deliver_flags_expunge(imapflow, herald_server):
    """One idling imapflow client hears `herald deliver`, a flag change and
    an expunge made by another session, each within LATENCY_LIMIT."""
    srv = herald_server(fsync="no")
    with NodeClient(client_env(srv, "tls",
                               HERALD_SCRIPT_TIMEOUT_MS=45000)) as nc:
        assert nc.event("opened")["exists"] == 0
        nc.event("idling")

        # 1. herald deliver (the MDA path).
        t0 = time.monotonic_ns()
        r = srv.herald("deliver", "-u", "alice",
                       input=message("by-deliver"))
        assert r.returncode == 0, r.stderr
        ev = nc.event("exists")
        lat = latency_s(ev, t0)
        print("\nimapflow exists event %.1f ms after `herald deliver` "
              "started" % (lat * 1000))
        assert (ev["count"], ev["prevCount"], ev["idling"]) == (1, 0, True), \
            ev
        assert lat < LATENCY_LIMIT

        # Still idling (no command ran since): another session flags it.
        with srv.login() as other:
            _, tagged = other.command("S", "SELECT INBOX")
            assert tagged.startswith("S OK"), tagged
            t0 = time.monotonic_ns()
            _, tagged = other.command("F", "UID STORE 1 +FLAGS.SILENT "
                                      "(\\Flagged $Urgent)")
            assert tagged.startswith("F OK"), tagged
            ev = nc.event("flags")
            lat = latency_s(ev, t0)
            print("imapflow flags event %.1f ms after STORE" % (lat * 1000))
            assert ev["seq"] == 1 and ev["idling"] is True, ev
            assert "\\Flagged" in ev["flags"] and "$Urgent" in ev["flags"], ev
            assert lat < LATENCY_LIMIT

            t0 = time.monotonic_ns()
            _, tagged = other.command("D", "UID STORE 1 +FLAGS.SILENT "
                                      "(\\Deleted)")
            assert tagged.startswith("D OK"), tagged
            nc.event("flags")
            _, tagged = other.command("E", "EXPUNGE")
            assert tagged.startswith("E OK"), tagged
            ev = nc.event("expunge")
            lat = latency_s(ev, t0)
            print("imapflow expunge event %.1f ms after STORE \\Deleted "
                  "(then EXPUNGE)" % (lat * 1000))
            assert ev["seq"] == 1 and ev["idling"] is True, ev
            assert lat < LATENCY_LIMIT

        nc.send("quit")
        nc.event("done")
        assert nc.proc.wait(10) == 0
