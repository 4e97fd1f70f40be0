"""Authentication: AUTHENTICATE PLAIN (RFC 9051 6.2.2, SASL-IR RFC 4959,
PLAIN RFC 4616), failed logins, delays and throttling, the password file
and `herald user ...`."""
import os
import re
import stat
import subprocess
import time

import pytest

from helpers import USERS, b64, caps_of, imap_quote, sasl_plain

ALICE = USERS["alice"]


def _assert_logged_in(c, tag="chk"):
    # ENABLE is valid only once authenticated (RFC 5161).
    untagged, tagged = c.command(tag, "ENABLE CONDSTORE")
    assert tagged.startswith(tag + " OK"), tagged


def _assert_not_logged_in(c, tag="chk"):
    _, tagged = c.command(tag, "ENABLE CONDSTORE")
    assert tagged.startswith(tag + " NO"), tagged


# --- AUTHENTICATE PLAIN -------------------------------------------------------

def test_authenticate_plain_sasl_ir(server):
    with server.raw() as c:
        untagged, tagged = c.command("a", "AUTHENTICATE PLAIN %s"
                                     % sasl_plain("alice", ALICE))
        assert untagged == [], "no continuation with SASL-IR: %r" % untagged
        assert tagged.startswith("a OK [CAPABILITY "), tagged
        caps = caps_of(tagged)
        assert "AUTH=PLAIN" not in caps and "STARTTLS" not in caps
        _assert_logged_in(c)


def test_authenticate_plain_mechanism_name_is_case_insensitive(server):
    with server.raw() as c:
        _, tagged = c.command("a", "authenticate plain %s"
                              % sasl_plain("alice", ALICE))
        assert tagged.startswith("a OK"), tagged


def test_authenticate_plain_with_continuation(server):
    with server.raw() as c:
        c.send("a AUTHENTICATE PLAIN\r\n")
        line = c.readline()
        # An empty challenge: "+ " (RFC 9051 7.5: "+" SP base64 / text).
        assert line in ("+ ", "+"), line
        c.send(sasl_plain("bob", USERS["bob"]) + "\r\n")
        untagged, tagged = c.read_tagged("a")
        assert untagged == [], untagged
        assert tagged.startswith("a OK"), tagged
        _assert_logged_in(c)


def test_authenticate_plain_with_imaplib(server):
    c = server.client()
    try:
        typ, data = c.authenticate(
            "PLAIN", lambda _: ("\0alice\0" + ALICE).encode())
        assert typ == "OK", data
        assert c.state == "AUTH"
        c.logout()
    finally:
        try:
            c.shutdown()
        except OSError:
            pass


def test_authenticate_plain_authzid_equal_to_authcid(server):
    with server.raw() as c:
        _, tagged = c.command("a", "AUTHENTICATE PLAIN %s"
                              % sasl_plain("alice", ALICE, authzid="alice"))
        assert tagged.startswith("a OK"), tagged


def test_authenticate_plain_authzid_other_user_refused(server):
    with server.raw() as c:
        _, tagged = c.command("a", "AUTHENTICATE PLAIN %s"
                              % sasl_plain("alice", ALICE, authzid="bob"))
        assert re.match(r"a NO\b", tagged), tagged
        _assert_not_logged_in(c)
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged


def test_authenticate_empty_initial_response_fails_cleanly(server):
    # "=" is an empty initial response (RFC 4959), which PLAIN cannot
    # accept: a tagged NO or BAD, no continuation, the session goes on.
    with server.raw() as c:
        untagged, tagged = c.command("a", "AUTHENTICATE PLAIN =")
        assert untagged == [], untagged
        assert re.match(r"a (NO|BAD) ", tagged), tagged
        _assert_not_logged_in(c)
        _, tagged = c.command("b", "LOGIN alice %s" % imap_quote(ALICE))
        assert tagged.startswith("b OK"), tagged


def test_authenticate_cancelled_with_star(server):
    with server.raw() as c:
        c.send("a AUTHENTICATE PLAIN\r\n")
        assert c.readline().startswith("+"), "no continuation"
        c.send("*\r\n")
        untagged, tagged = c.read_tagged("a")
        # RFC 9051 6.2.2: a cancelled exchange gets a tagged BAD.
        assert tagged.startswith("a BAD "), tagged
        _assert_not_logged_in(c)
        # The next AUTHENTICATE works: the line mode was left.
        _, tagged = c.command("b", "AUTHENTICATE PLAIN %s"
                              % sasl_plain("alice", ALICE))
        assert tagged.startswith("b OK"), tagged


@pytest.mark.parametrize("garbage", ["%%%%", "YW=J", "!!not base64!!"])
def test_authenticate_invalid_base64_is_bad(server, garbage):
    # RFC 9051 6.2.2: an invalid BASE64 string gets a tagged BAD.
    with server.raw() as c:
        c.send("a AUTHENTICATE PLAIN\r\n")
        assert c.readline().startswith("+"), "no continuation"
        c.send(garbage + "\r\n")
        _, tagged = c.read_tagged("a")
        assert tagged.startswith("a BAD "), tagged
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged
        _assert_not_logged_in(c)


def test_authenticate_invalid_base64_initial_response_is_bad(server):
    with server.raw() as c:
        untagged, tagged = c.command("a", "AUTHENTICATE PLAIN YW=J")
        assert untagged == []
        assert tagged.startswith("a BAD "), tagged
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged


def test_authenticate_malformed_plain_message_refused(server):
    # Valid base64, but not "authzid NUL authcid NUL passwd".
    with server.raw() as c:
        for i, msg in enumerate([b"alice", b"alice\0" + ALICE.encode(),
                                 b"\0alice\0", b"\0\0" + ALICE.encode(),
                                 b"\0alice\0" + ALICE.encode() + b"\0x"]):
            tag = "m%d" % i
            _, tagged = c.command(tag, "AUTHENTICATE PLAIN %s" % b64(msg))
            assert re.match(r"%s (NO|BAD) " % tag, tagged), (msg, tagged)
        _assert_not_logged_in(c)


@pytest.mark.parametrize("command", [
    "AUTHENTICATE CRAM-MD5",
    "AUTHENTICATE XOAUTH2 %s" % b64("user=alice\1auth=Bearer x\1\1"),
    "AUTHENTICATE GSSAPI",
])
def test_authenticate_unknown_mechanism_is_no(server, command):
    with server.raw() as c:
        untagged, tagged = c.command("a", command)
        assert untagged == [], untagged
        # RFC 9051 6.2.2: an unsupported mechanism SHOULD get NO.
        assert tagged.startswith("a NO "), tagged
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged


def test_authenticate_response_too_long(server):
    # Longer than any PLAIN message can be (and than the line limit).
    with server.raw() as c:
        c.send("a AUTHENTICATE PLAIN\r\n")
        assert c.readline().startswith("+")
        c.send("QUFB" * 5000 + "\r\n")
        _, tagged = c.read_tagged("a")
        assert re.match(r"a (BAD|NO) ", tagged), tagged
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged
        _assert_not_logged_in(c)


def test_authenticate_without_mechanism_is_bad(server):
    with server.raw() as c:
        _, tagged = c.command("a", "AUTHENTICATE")
        assert tagged.startswith("a BAD "), tagged


# --- failed logins ------------------------------------------------------------

@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    from helpers import Server
    srv = Server(tmp_path_factory.mktemp("strict") / "srv",
                 settings={"auth_failure_delay_ms": 300,
                           "max_auth_failures": 3})
    srv.start()
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.log()
    srv.assert_no_sanitizer_reports()


def _timed(c, tag, text):
    t0 = time.monotonic()
    untagged, tagged = c.command(tag, text)
    return untagged, tagged, time.monotonic() - t0


def test_wrong_password_is_authenticationfailed_and_delayed(strict):
    with strict.raw() as c:
        _, tagged, dt = _timed(c, "a", "LOGIN alice wrong-password")
        assert tagged.startswith("a NO [AUTHENTICATIONFAILED] "), tagged
        assert dt >= 0.28, "failure answered after %.3fs" % dt
        _, tagged, dt = _timed(c, "b", "AUTHENTICATE PLAIN %s"
                               % sasl_plain("alice", "wrong-password"))
        assert tagged.startswith("b NO [AUTHENTICATIONFAILED] "), tagged
        assert dt >= 0.28, "failure answered after %.3fs" % dt
        # Still usable; the right password works.
        _, tagged, dt = _timed(c, "c", "LOGIN alice %s" % imap_quote(ALICE))
        assert tagged.startswith("c OK"), tagged


def test_unknown_user_gets_the_same_answer(strict):
    with strict.raw() as c:
        _, wrong_pw, _ = _timed(c, "a", "LOGIN alice wrong-password")
        _, no_user, dt = _timed(c, "a", "LOGIN nosuchuser wrong-password")
        assert no_user == wrong_pw, (no_user, wrong_pw)
        assert dt >= 0.28, "unknown user answered after %.3fs" % dt


def test_success_is_not_delayed(strict):
    with strict.raw() as c:
        _, tagged, dt = _timed(c, "a", "LOGIN alice %s" % imap_quote(ALICE))
        assert tagged.startswith("a OK"), tagged
        assert dt < 0.28 + 1.0, dt


def test_max_auth_failures_disconnects(strict):
    with strict.raw() as c:
        _, tagged = c.command("a", "LOGIN alice bad1")
        assert tagged.startswith("a NO [AUTHENTICATIONFAILED]"), tagged
        _, tagged = c.command("b", "AUTHENTICATE PLAIN %s"
                              % sasl_plain("alice", "bad2"))
        assert tagged.startswith("b NO [AUTHENTICATIONFAILED]"), tagged
        c.send("c LOGIN alice bad3\r\nd NOOP\r\n")
        lines = c.expect_eof(timeout=5)
        assert lines[0].startswith("c NO [AUTHENTICATIONFAILED]"), lines
        assert len(lines) == 2 and lines[1].startswith("* BYE "), lines
    strict.wait_log(r"login failed method=LOGIN user=<alice> failures=3")


def test_failures_on_other_connections_do_not_count(strict):
    # max_auth_failures is per connection.
    for tag in ("a", "b"):
        with strict.raw() as c:
            for i in range(2):
                _, tagged = c.command("%s%d" % (tag, i), "LOGIN alice bad")
                assert "NO [AUTHENTICATIONFAILED]" in tagged
            _, tagged = c.command("ok", "LOGIN alice %s" % imap_quote(ALICE))
            assert tagged.startswith("ok OK"), tagged


@pytest.mark.timeout_s(60)
def test_throttling_slows_down_repeated_failures(herald_server):
    # One worker: the throttle table is per worker process.
    srv = herald_server(workers=1, auth_failure_delay_ms=50,
                        auth_throttle_failures=3, auth_throttle_window=60,
                        auth_throttle_delay_max=2, max_auth_failures=100)
    with srv.raw() as c:
        times = []
        for i in range(3):
            _, tagged, dt = _timed(c, "f%d" % i, "LOGIN alice bad%d" % i)
            assert "NO [AUTHENTICATIONFAILED]" in tagged, tagged
            times.append(dt)
        assert max(times) < 0.8, times
    # The address is now throttled, on any connection: 1 s, then 2 s
    # (the cap).
    with srv.raw() as c:
        _, tagged, dt = _timed(c, "g", "LOGIN alice bad")
        assert "NO [AUTHENTICATIONFAILED]" in tagged, tagged
        assert dt >= 0.95, "4th failure after %.3fs" % dt
        _, tagged, dt = _timed(c, "h", "LOGIN alice bad")
        assert "NO [AUTHENTICATIONFAILED]" in tagged, tagged
        assert dt >= 1.9, "5th failure after %.3fs" % dt
        # Even the right password waits while throttled ...
        _, tagged, dt = _timed(c, "i", "LOGIN alice %s" % imap_quote(ALICE))
        assert tagged.startswith("i OK"), tagged
        assert dt >= 1.9, "throttled success after %.3fs" % dt
    srv.wait_log(r"login throttled delay_ms=1000")
    srv.wait_log(r"login throttled delay_ms=2000")


def test_credentials_never_logged(herald_server):
    srv = herald_server(log_level="debug", auth_failure_delay_ms=0,
                        max_auth_failures=100)
    secret_bad = "Wr0ng-S3cret-Guess"
    with srv.raw() as c:
        _, tagged = c.command("a", "LOGIN alice %s" % secret_bad)
        assert tagged.startswith("a NO"), tagged
        _, tagged = c.command("b", "AUTHENTICATE PLAIN %s"
                              % sasl_plain("alice", secret_bad))
        assert tagged.startswith("b NO"), tagged
        c.send("c AUTHENTICATE PLAIN\r\n")
        assert c.readline().startswith("+")
        c.send(sasl_plain("bob", secret_bad) + "\r\n")
        _, tagged = c.read_tagged("c")
        assert tagged.startswith("c NO"), tagged
        _, tagged = c.command("d", "LOGIN {5+}\r\nalice {%d+}\r\n%s"
                              % (len(secret_bad), secret_bad))
        assert tagged.startswith("d NO"), tagged
        _, tagged = c.command("e", "AUTHENTICATE PLAIN %s"
                              % sasl_plain("bob", USERS["bob"]))
        assert tagged.startswith("e OK"), tagged
    with srv.raw(tls=True) as c:
        _, tagged = c.command("a", "LOGIN alice %s" % imap_quote(ALICE))
        assert tagged.startswith("a OK"), tagged
    srv.wait_log(r"user=bob login method=PLAIN")
    srv.wait_log(r"user=alice login method=LOGIN tls=yes")
    log = srv.log()
    assert "login failed" in log
    for secret in (secret_bad, ALICE, USERS["bob"], "hunter",
                   sasl_plain("alice", secret_bad),
                   sasl_plain("bob", secret_bad),
                   sasl_plain("bob", USERS["bob"])):
        assert secret not in log, "%r appears in the log:\n%s" % (secret,
                                                                  log)


def test_unreadable_passwd_file_is_a_temporary_failure(herald_server):
    srv = herald_server(auth_failure_delay_ms=0)
    moved = srv.passwd_path + ".away"
    os.rename(srv.passwd_path, moved)
    try:
        with srv.raw() as c:
            _, tagged = c.command("a", "LOGIN alice %s" % imap_quote(ALICE))
            # Not "wrong password": the database is unavailable.
            assert tagged.startswith("a NO [UNAVAILABLE] "), tagged
        srv.wait_log(r"passdb: cannot read ")
    finally:
        os.rename(moved, srv.passwd_path)
    # Every worker recovers without a restart.
    for i in range(6):
        assert _login_result(srv, "alice", ALICE) == "OK"


# --- herald user ... and the password file ----------------------------------

SHA512_LINE = re.compile(
    r"^(?P<user>[^:]+):\{SHA512-CRYPT\}\$6\$(rounds=\d+\$)?[./0-9A-Za-z]{1,16}"
    r"\$[./0-9A-Za-z]{86}$")


def _login_result(srv, user, password):
    with srv.raw() as c:
        _, tagged = c.command("a", "LOGIN %s %s" % (imap_quote(user),
                                                    imap_quote(password)))
        return tagged.split(" ")[1]


def _user(srv, *args, input=None):
    return srv.herald("user", *args, input=input)


def test_user_cli_round_trip(herald_server):
    srv = herald_server(users={"alice": ALICE}, auth_failure_delay_ms=0)
    r = _user(srv, "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "alice\n"

    r = _user(srv, "add", "carl", input="first-Pass\n")
    assert r.returncode == 0, r.stderr
    r = _user(srv, "add", "carl", input="other-Pass\n")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "exists" in r.stderr, r.stderr
    r = _user(srv, "list")
    assert r.stdout.split("\n") == ["alice", "carl", ""], r.stdout

    with open(srv.passwd_path) as f:
        lines = f.read().split("\n")
    assert lines[-1] == "", "no final newline"
    assert len(lines) == 3, lines
    for line, name in zip(lines, ["alice", "carl"]):
        m = SHA512_LINE.match(line)
        assert m and m.group("user") == name, line
    assert stat.S_IMODE(os.stat(srv.passwd_path).st_mode) & 0o077 == 0, \
        "passwd file readable by others"

    assert _login_result(srv, "carl", "first-Pass") == "OK"
    assert _login_result(srv, "carl", "other-Pass") == "NO"

    r = _user(srv, "passwd", "carl", input="second-Pass\n")
    assert r.returncode == 0, r.stderr
    assert _login_result(srv, "carl", "second-Pass") == "OK"
    assert _login_result(srv, "carl", "first-Pass") == "NO"
    assert _login_result(srv, "alice", ALICE) == "OK"

    r = _user(srv, "passwd", "nobody", input="x-Pass\n")
    assert r.returncode == 1, r.stderr

    r = _user(srv, "del", "carl")
    assert r.returncode == 0, r.stderr
    assert _login_result(srv, "carl", "second-Pass") == "NO"
    r = _user(srv, "del", "carl")
    assert r.returncode == 1, r.stderr
    r = _user(srv, "list")
    assert r.stdout == "alice\n"
    assert _login_result(srv, "alice", ALICE) == "OK"


def test_user_cli_rejects_bad_input(herald_server):
    srv = herald_server(users={"alice": ALICE}, start=False)
    srv.add_user("alice", ALICE)
    for name in ("a:b", "a b", "../x", "#x", ".", ""):
        r = _user(srv, "add", name, input="pw-Pass\n")
        assert r.returncode != 0, name
    r = _user(srv, "add", "dora", input="\n")
    assert r.returncode == 1, "empty password accepted"
    r = _user(srv, "add", "dora", input="")
    assert r.returncode == 1, "missing password accepted"
    r = _user(srv, "add", "-s", "NOSUCH", "dora", input="pw-Pass\n")
    assert r.returncode == 1
    r = _user(srv, "list")
    assert r.stdout == "alice\n", r.stdout


def test_user_add_plain_scheme(herald_server):
    srv = herald_server(users={"alice": ALICE}, auth_failure_delay_ms=0)
    r = _user(srv, "add", "-s", "PLAIN", "pete", input="plain-Pass\n")
    assert r.returncode == 0, r.stderr
    with open(srv.passwd_path) as f:
        assert "pete:{PLAIN}plain-Pass\n" in f.read()
    assert _login_result(srv, "pete", "plain-Pass") == "OK"
    assert _login_result(srv, "pete", "plain-pass") == "NO"


def test_hand_written_passwd_lines(herald_server):
    srv = herald_server(users={"alice": ALICE}, auth_failure_delay_ms=0)
    crypt6 = subprocess.run(["openssl", "passwd", "-6", "dave-Pass"],
                            capture_output=True, text=True, timeout=30,
                            check=True).stdout.strip()
    assert crypt6.startswith("$6$"), crypt6
    crypt5 = subprocess.run(["openssl", "passwd", "-5", "erin-Pass"],
                            capture_output=True, text=True, timeout=30,
                            check=True).stdout.strip()
    with open(srv.passwd_path, "a") as f:
        f.write("# a comment line\n"
                "\n"
                "carol:{PLAIN}secret:1000:1000::/home/x::\n"
                "dave:%s\n"
                "erin:{SHA256-CRYPT}%s::::::extra=1\n"
                "frank:{PLAIN}crlf-Pass\r\n" % (crypt6, crypt5))
    assert _login_result(srv, "carol", "secret") == "OK"
    assert _login_result(srv, "carol", "secret:1000") == "NO"
    assert _login_result(srv, "dave", "dave-Pass") == "OK"
    assert _login_result(srv, "dave", "dave-pass") == "NO"
    assert _login_result(srv, "erin", "erin-Pass") == "OK"
    assert _login_result(srv, "frank", "crlf-Pass") == "OK"
    assert _login_result(srv, "alice", ALICE) == "OK"
    r = _user(srv, "list")
    assert r.stdout.split() == ["alice", "carol", "dave", "erin", "frank"]
    # Editing keeps the other lines byte for byte.
    with open(srv.passwd_path) as f:
        before = f.read()
    r = _user(srv, "passwd", "carol", input="new-Secret\n")
    assert r.returncode == 0, r.stderr
    with open(srv.passwd_path) as f:
        after = f.read()
    carol = [l for l in after.split("\n") if l.startswith("carol:")]
    assert len(carol) == 1 and carol[0].endswith(":1000:1000::/home/x::"), \
        carol
    assert [l for l in before.split("\n") if not l.startswith("carol:")] == \
        [l for l in after.split("\n") if not l.startswith("carol:")]
    assert _login_result(srv, "carol", "new-Secret") == "OK"
    assert _login_result(srv, "carol", "secret") == "NO"
