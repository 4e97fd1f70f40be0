"""Connecting: greeting and capabilities, LOGIN over plain text, STARTTLS
and implicit TLS, STARTTLS rules (RFC 9051 6.2.1), inactivity timeouts."""
import re
import time

import pytest

from helpers import USERS, caps_of, imap_quote, sasl_plain

GREETING_RE = re.compile(r"^\* OK \[CAPABILITY ([^\]]+)\] \S.*$")


def _login_caps_ok(tagged):
    """The tagged OK of a login carries the post-login capabilities."""
    caps = caps_of(tagged)
    assert "IMAP4REV1" in caps
    assert "STARTTLS" not in caps, tagged
    assert not any(c.startswith("AUTH=") for c in caps), tagged
    assert "LOGINDISABLED" not in caps, tagged
    return caps


# --- greeting and CAPABILITY ------------------------------------------------

def test_greeting_plain_lists_starttls_and_auth_plain(server):
    with server.raw() as c:
        m = GREETING_RE.match(c.greeting)
        assert m, c.greeting
        caps = m.group(1).upper().split()
        assert caps[0] == "IMAP4REV1", caps
        for cap in ("STARTTLS", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "ID",
                    "ENABLE"):
            assert cap in caps, (cap, caps)
        assert "LOGINDISABLED" not in caps
        untagged, tagged = c.command("c1", "CAPABILITY")
        assert tagged.startswith("c1 OK"), tagged
        assert len(untagged) == 1, untagged
        assert untagged[0].startswith("* CAPABILITY "), untagged
        # The greeting's code and the command agree.
        assert caps_of(untagged[0]) == caps


def test_greeting_implicit_tls_has_no_starttls(server):
    with server.raw(tls=True) as c:
        m = GREETING_RE.match(c.greeting)
        assert m, c.greeting
        caps = m.group(1).upper().split()
        assert "IMAP4REV1" in caps
        assert "AUTH=PLAIN" in caps
        assert "STARTTLS" not in caps
        untagged, tagged = c.command("c1", "CAPABILITY")
        assert tagged.startswith("c1 OK"), tagged
        assert "STARTTLS" not in caps_of(untagged[0])
        assert "AUTH=PLAIN" in caps_of(untagged[0])
        # RFC 9051 6.2.1: STARTTLS on an implicit TLS port gets BAD.
        _, tagged = c.command("c2", "STARTTLS")
        assert tagged.startswith("c2 BAD "), tagged
        # ... and the session goes on.
        _, tagged = c.command("c3", "NOOP")
        assert tagged.startswith("c3 OK"), tagged


def test_capability_after_starttls_has_no_starttls(server):
    with server.raw() as c:
        _, tagged = c.command("s1", "STARTTLS")
        assert tagged.startswith("s1 OK"), tagged
        c.starttls(server.ssl_context())
        untagged, tagged = c.command("s2", "CAPABILITY")
        assert tagged.startswith("s2 OK"), tagged
        caps = caps_of(untagged[0])
        assert "STARTTLS" not in caps, caps
        assert "AUTH=PLAIN" in caps, caps
        assert "IMAP4REV1" in caps


def test_logindisabled_when_plaintext_auth_is_no(herald_server):
    srv = herald_server(plaintext_auth="no")
    with srv.raw() as c:
        caps = caps_of(c.greeting)
        assert "LOGINDISABLED" in caps, caps
        assert "AUTH=PLAIN" not in caps, caps
        assert "STARTTLS" in caps, caps
        untagged, tagged = c.command("a1", "CAPABILITY")
        assert "LOGINDISABLED" in caps_of(untagged[0])
        _, tagged = c.command("a2", "LOGIN alice %s"
                              % imap_quote(USERS["alice"]))
        assert tagged.startswith("a2 NO [PRIVACYREQUIRED]"), tagged
        _, tagged = c.command("a3", "AUTHENTICATE PLAIN %s"
                              % sasl_plain("alice", USERS["alice"]))
        assert re.match(r"a3 NO\b", tagged), tagged
        # Still not logged in.
        _, tagged = c.command("a4", "ENABLE CONDSTORE")
        assert tagged.startswith("a4 NO"), tagged
        # After STARTTLS the same password is accepted.
        _, tagged = c.command("a5", "STARTTLS")
        assert tagged.startswith("a5 OK"), tagged
        c.starttls(srv.ssl_context())
        untagged, tagged = c.command("a6", "CAPABILITY")
        caps = caps_of(untagged[0])
        assert "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps, caps
        _, tagged = c.command("a7", "LOGIN alice %s"
                              % imap_quote(USERS["alice"]))
        assert tagged.startswith("a7 OK"), tagged
    with srv.raw(tls=True) as c:
        caps = caps_of(c.greeting)
        assert "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps, caps
        _, tagged = c.command("b1", "LOGIN alice %s"
                              % imap_quote(USERS["alice"]))
        assert tagged.startswith("b1 OK"), tagged


def test_tls_certificate_names_localhost(server):
    # The generated certificate is valid for "localhost" and 127.0.0.1.
    import socket
    sock = socket.create_connection((server.host, server.imaps_port),
                                    timeout=10)
    with server.ssl_context().wrap_socket(
            sock, server_hostname="localhost") as tls:
        tls.settimeout(10)
        assert tls.recv(4096).startswith(b"* OK ")
        assert tls.version() in ("TLSv1.2", "TLSv1.3"), tls.version()


def test_plain_text_on_the_tls_port_is_closed(server):
    with server.raw(tls=False, port=server.imaps_port,
                    greeting=False) as c:
        c.send("a LOGIN alice %s\r\n" % imap_quote(USERS["alice"]))
        # A failed handshake: the connection goes, no IMAP answer.
        try:
            lines = c.expect_eof(timeout=5)
        except AssertionError as e:
            # A TLS alert is not a line.
            assert "partial line" in str(e), e
        else:
            assert lines == [], lines
    with server.raw(tls=True) as c:
        _, tagged = c.command("a", "NOOP")
        assert tagged.startswith("a OK"), tagged


def test_garbage_instead_of_tls_handshake_after_starttls(server):
    with server.raw() as c:
        _, tagged = c.command("a", "STARTTLS")
        assert tagged.startswith("a OK"), tagged
        c.send("b LOGIN alice %s\r\n" % imap_quote(USERS["alice"]))
        c.sock.settimeout(5)
        data = b""
        try:
            while True:
                chunk = c.sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        # No IMAP reply in plain text: at most a TLS alert record.
        assert b" OK" not in data and b"BAD" not in data, data


def test_connection_limit(herald_server):
    # max_connections is per worker; never more clients than that.
    srv = herald_server(workers=1, max_connections=4)
    time.sleep(0.3)     # the start-up probes are gone
    served = []
    try:
        for _ in range(5):
            c = srv.raw()
            if c.greeting.startswith("* BYE "):
                assert "[UNAVAILABLE]" in c.greeting, c.greeting
                c.expect_eof(timeout=5)
                c.close()
                break
            assert c.greeting.startswith("* OK "), c.greeting
            served.append(c)
        else:
            raise AssertionError("5 connections with max_connections=4")
        assert 1 <= len(served) <= 4, len(served)
        srv.wait_log(r"connection limit 4 reached")
        for x in served:
            _, tagged = x.command("n", "NOOP")
            assert tagged.startswith("n OK"), tagged
    finally:
        for x in served:
            x.close()

    # Room again once they are gone.
    def fits():
        try:
            with srv.raw() as c:
                return c.greeting.startswith("* OK ")
        except (OSError, EOFError):
            return False
    from helpers import wait_until
    wait_until(fits, 5, interval=0.2, what="a free connection slot")


# --- LOGIN over the three transports ----------------------------------------

@pytest.mark.parametrize("kind", ["plain", "starttls", "tls"])
@pytest.mark.parametrize("user", ["alice", "bob"])
def test_login(server, kind, user):
    c = server.client(kind)
    try:
        assert c.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1"), c.welcome
        before = [x.upper() for x in c.capabilities]
        assert "AUTH=PLAIN" in before
        assert ("STARTTLS" in before) == (kind == "plain"), before
        typ, data = c.login(user, USERS[user])
        assert typ == "OK"
        _login_caps_ok(data[0].decode())
        assert c.state == "AUTH"
        typ, data = c.capability()
        assert typ == "OK"
        after = data[0].decode().upper().split()
        assert "IMAP4REV1" in after
        assert "STARTTLS" not in after and "AUTH=PLAIN" not in after, after
        typ, _ = c.noop()
        assert typ == "OK"
        typ, data = c.logout()
        assert typ == "BYE", (typ, data)
    finally:
        try:
            c.shutdown()
        except OSError:
            pass


def test_login_log_line_names_method_and_tls(server):
    start = len(server.log())
    for kind in ("plain", "tls"):
        with server.login("alice", kind=kind):
            pass
    server.wait_log(r"worker\d\[\d+\] info: session=\S+ ip=127\.0\.0\.1 "
                    r"user=alice login method=LOGIN tls=no", start=start)
    server.wait_log(r"worker\d\[\d+\] info: session=\S+ ip=127\.0\.0\.1 "
                    r"user=alice login method=LOGIN tls=yes", start=start)


# --- STARTTLS rules -----------------------------------------------------------

def test_starttls_discards_pipelined_commands(server):
    with server.raw() as c:
        # STARTTLS and a command in one write: the NOOP must not run, not
        # in plain text and not after the handshake (RFC 9051 6.2.1).
        c.send("a STARTTLS\r\nb NOOP\r\n")
        line = c.readline()
        assert line.startswith("a OK"), line
        c.starttls(server.ssl_context())
        untagged, tagged = c.command("c", "NOOP")
        assert tagged.startswith("c OK"), tagged
        assert untagged == [], untagged
        # Still no reply for "b" after a while.
        c.expect_silence(0.3)
        untagged, tagged = c.command("d", "CAPABILITY")
        assert tagged.startswith("d OK"), tagged
        assert [u for u in untagged if not u.startswith("* CAPABILITY")] \
            == []


def test_starttls_pipelined_login_is_not_executed(server):
    # The injection of CERT-555316: a LOGIN pipelined behind STARTTLS
    # must not log the (attacker's) session in.
    with server.raw() as c:
        c.send("a STARTTLS\r\nb LOGIN alice %s\r\n"
               % imap_quote(USERS["alice"]))
        line = c.readline()
        assert line.startswith("a OK"), line
        c.starttls(server.ssl_context())
        # Not authenticated: ENABLE is refused.
        _, tagged = c.command("c", "ENABLE CONDSTORE")
        assert tagged.startswith("c NO"), tagged
        c.expect_silence(0.3)


def test_starttls_twice_is_bad(server):
    with server.raw() as c:
        _, tagged = c.command("a", "STARTTLS")
        assert tagged.startswith("a OK"), tagged
        c.starttls(server.ssl_context())
        _, tagged = c.command("b", "STARTTLS")
        assert tagged.startswith("b BAD "), tagged
        _, tagged = c.command("c", "LOGIN alice %s"
                              % imap_quote(USERS["alice"]))
        assert tagged.startswith("c OK"), tagged


def test_starttls_with_arguments_is_bad(server):
    with server.raw() as c:
        _, tagged = c.command("a", "STARTTLS now")
        assert tagged.startswith("a BAD "), tagged
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged


def test_starttls_after_login_refused(server):
    with server.login("alice") as c:
        _, tagged = c.command("a", "STARTTLS")
        assert re.match(r"a (NO|BAD) ", tagged), tagged
        # No handshake started: plain text still works.
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged


def test_starttls_then_login_over_imaplib(server):
    c = server.client("starttls")
    try:
        assert "STARTTLS" not in [x.upper() for x in c.capabilities]
        typ, data = c.login("alice", USERS["alice"])
        assert typ == "OK"
        _login_caps_ok(data[0].decode())
        c.logout()
    finally:
        try:
            c.shutdown()
        except OSError:
            pass


# --- timeouts -----------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_timeouts(tmp_path_factory):
    # Module-scoped by hand: herald_server is function-scoped.
    from helpers import Server
    srv = Server(tmp_path_factory.mktemp("timeouts") / "srv",
                 settings={"preauth_timeout": 2, "autologout_timeout": 3})
    srv.start()
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.log()
    srv.assert_no_sanitizer_reports()


def test_autologout_timeout_after_login(quick_timeouts):
    with quick_timeouts.login("alice") as c:
        t0 = time.monotonic()
        line = c.readline(timeout=10)
        elapsed = time.monotonic() - t0
        assert line.startswith("* BYE "), line
        # autologout_timeout (3 s), not preauth_timeout (2 s).
        assert 2.5 <= elapsed <= 6, elapsed
        c.expect_eof(timeout=5)


def test_preauth_timeout_sends_bye_and_closes(quick_timeouts):
    with quick_timeouts.raw() as c:
        t0 = time.monotonic()
        line = c.readline(timeout=8)
        elapsed = time.monotonic() - t0
        assert line.startswith("* BYE "), line
        assert 1.5 <= elapsed <= 5, elapsed
        assert c.expect_eof(timeout=5) == []
    quick_timeouts.wait_log(r"disconnecting: reason=inactivity")


def test_preauth_timeout_is_reset_by_commands(quick_timeouts):
    with quick_timeouts.raw() as c:
        # Four NOOPs 1 s apart span twice the timeout.
        for i in range(4):
            time.sleep(1.0)
            _, tagged = c.command("n%d" % i, "NOOP")
            assert tagged.startswith("n%d OK" % i), tagged
        line = c.readline(timeout=8)
        assert line.startswith("* BYE "), line
        c.expect_eof(timeout=5)


def test_silent_client_on_the_tls_port_is_dropped(quick_timeouts):
    # A client that never starts the TLS handshake must not hold the
    # connection forever.
    import socket
    from helpers import RawConn
    sock = socket.create_connection((quick_timeouts.host,
                                     quick_timeouts.imaps_port), timeout=15)
    c = RawConn(sock, timeout=15)
    with c:
        t0 = time.monotonic()
        try:
            c.expect_eof(timeout=12)
        except AssertionError as e:
            assert "partial line" in str(e), e
        assert time.monotonic() - t0 < 12
