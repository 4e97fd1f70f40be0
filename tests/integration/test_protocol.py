"""The command stream: pipelining, literals (RFC 9051 4.3, LITERAL+ RFC
7888), size limits, commands by state, ID (RFC 2971), ENABLE (RFC 5161),
NOOP and LOGOUT."""
import re
import time

import pytest

from helpers import USERS, imap_quote

ALICE = USERS["alice"]
LINE_MAX = 2048
LITERAL_MAX = 1024

SERVER_SETTINGS = {
    "preauth_max_line_length": LINE_MAX,
    "preauth_max_literal_size": LITERAL_MAX,
    "max_bad_commands": 50,
    "max_auth_failures": 100,
    "auth_failure_delay_ms": 100,
}


def _tag_and_status(line):
    parts = line.split(" ", 2)
    return parts[0], parts[1] if len(parts) > 1 else ""


# --- pipelining -----------------------------------------------------------

def test_pipelined_commands_answered_in_order(server):
    with server.raw() as c:
        c.send("p1 NOOP\r\n"
               "p2 CAPABILITY\r\n"
               "p3 BOGUS\r\n"
               "p4 NOOP\r\n"
               "p5 LOGIN alice %s\r\n"
               "p6 NOOP\r\n"
               "p7 ENABLE CONDSTORE\r\n"
               "p8 LOGOUT\r\n" % imap_quote(ALICE))
        lines = c.expect_eof(timeout=10)
    statuses = [_tag_and_status(l) for l in lines]
    assert statuses == [
        ("p1", "OK"),
        ("*", "CAPABILITY"),
        ("p2", "OK"),
        ("p3", "BAD"),
        ("p4", "OK"),
        ("p5", "OK"),
        ("p6", "OK"),
        ("*", "ENABLED"),
        ("p7", "OK"),
        ("*", "BYE"),
        ("p8", "OK"),
    ], lines


def test_pipelined_failed_login_keeps_order(server):
    # A failed LOGIN is answered after a delay; what follows must wait.
    with server.raw() as c:
        c.send("a LOGIN alice wrong\r\nb NOOP\r\nc LOGIN alice %s\r\n"
               "d ENABLE CONDSTORE\r\n" % imap_quote(ALICE))
        tags = []
        while len(tags) < 4:
            line = c.readline()
            if not line.startswith("*"):
                tags.append(_tag_and_status(line))
    assert tags == [("a", "NO"), ("b", "OK"), ("c", "OK"), ("d", "OK")]


@pytest.mark.parametrize("bad", [
    'x1 LOGIN "unterminated',
    "x1 NOOP (",
    "x1 LOGIN alice",
    "x1 NOOP extra",
    "x1 CAPABILITY x",
    "x1 LOGIN {3}x",
    "x1",
])
def test_invalid_then_valid_in_one_write(server, bad):
    with server.raw() as c:
        c.send(bad + "\r\nx2 NOOP\r\n")
        first = c.readline()
        assert re.match(r"(x1|\*) BAD ", first), first
        untagged, tagged = c.read_tagged("x2")
        assert untagged == [], untagged
        assert tagged.startswith("x2 OK"), tagged


@pytest.mark.parametrize("bad", ["+ NOOP", "(x) NOOP", "{3} NOOP",
                                 ")x NOOP", "* NOOP", "% NOOP", '"a" NOOP'])
def test_bad_tag_is_untagged_bad(server, bad):
    # No usable tag: the BAD must be untagged (RFC 9051 7.1.5).
    with server.raw() as c:
        c.send(bad + "\r\nok NOOP\r\n")
        first = c.readline()
        assert first.startswith("* BAD "), (bad, first)
        untagged, tagged = c.read_tagged("ok")
        assert untagged == [], untagged
        assert tagged.startswith("ok OK"), tagged


def test_invalid_character_after_tag(server):
    # "a{b" is not a tag (RFC 9051 9: tag excludes "{").  The server
    # answers "a BAD" (it takes "a" as the tag) or "* BAD"; either way
    # the stream goes on.
    with server.raw() as c:
        c.send("a{b NOOP\r\nok NOOP\r\n")
        first = c.readline()
        assert re.match(r"(a|\*) BAD ", first), first
        untagged, tagged = c.read_tagged("ok")
        assert untagged == [], untagged
        assert tagged.startswith("ok OK"), tagged


def test_unusual_valid_tags(server):
    # tag = 1*<ASTRING-CHAR except "+">: "]" and other atom characters
    # are fine.
    with server.raw() as c:
        for tag in ("a]", "A.1", "0", "x-y_z!", "t~#$&'"):
            _, tagged = c.command(tag, "NOOP")
            assert tagged.startswith(tag + " OK"), tagged


def test_deeply_nested_lists_are_refused(server):
    with server.raw() as c:
        for depth in (3, 50, 10000):
            c.send("a ID " + "(" * depth + '"k" "v"' + ")" * depth + "\r\n")
            line = c.readline()
            assert re.match(r"(a|\*) BAD ", line), (depth, line)
            _, tagged = c.command("b", "NOOP")
            assert tagged.startswith("b OK"), tagged


def test_many_pipelined_noops(server):
    with server.raw() as c:
        n = 500
        c.send("".join("n%d NOOP\r\n" % i for i in range(n)))
        for i in range(n):
            line = c.readline()
            assert line.startswith("n%d OK" % i), line


@pytest.mark.timeout_s(60)
def test_output_backpressure_with_a_client_that_does_not_read(
        herald_server):
    # The client pipelines far more than the output buffer can hold and
    # reads nothing for a while: the server must stop reading commands at
    # output_high_water rather than queue replies up to max_output_buffer
    # (which would disconnect).  Then every reply arrives, in order.
    import socket
    import threading
    srv = herald_server(output_high_water="4K", max_output_buffer="64K")
    n = 3000  # a 4 KiB receive window makes TCP itself slow (~300/s)
    with srv.raw() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        payload = "".join("c%d CAPABILITY\r\n" % i for i in range(n))
        errors = []

        def sender():
            try:
                c.sock.sendall(payload.encode())
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        time.sleep(1.5)
        for i in range(n):
            line = c.readline(timeout=20)
            assert line.startswith("* CAPABILITY "), (i, line)
            line = c.readline(timeout=20)
            assert line.startswith("c%d OK" % i), (i, line)
        t.join(20)
        assert not t.is_alive() and not errors, errors
        _, tagged = c.command("z", "NOOP")
        assert tagged.startswith("z OK"), tagged
    assert "output buffer" not in srv.log()


def test_too_many_bad_commands_disconnects(herald_server):
    srv = herald_server(max_bad_commands=3)
    with srv.raw() as c:
        c.send("a BOGUS\r\nb BOGUS\r\nc NOOP\r\nd BOGUS\r\ne BOGUS\r\n")
        lines = []
        for _ in range(5):
            lines.append(c.readline())
        # "c NOOP" reset the count of BADs in a row.
        assert [_tag_and_status(l) for l in lines] == [
            ("a", "BAD"), ("b", "BAD"), ("c", "OK"), ("d", "BAD"),
            ("e", "BAD")], lines
        c.send("f BOGUS\r\ng NOOP\r\n")
        lines = c.expect_eof(timeout=5)
        assert [_tag_and_status(l) for l in lines] == [
            ("f", "BAD"), ("*", "BYE")], lines


# --- literals -----------------------------------------------------------------

def test_synchronizing_literals_sent_byte_by_byte(server):
    with server.raw() as c:
        c.send_slowly("a LOGIN {5}\r\n")
        line = c.readline()
        assert line.startswith("+"), line
        c.send_slowly("alice {%d}\r\n" % len(ALICE))
        line = c.readline()
        assert line.startswith("+"), line
        c.send_slowly(ALICE + "\r\n")
        untagged, tagged = c.read_tagged("a")
        assert untagged == [], untagged
        assert tagged.startswith("a OK"), tagged


def test_no_continuation_before_the_literal_header_ends(server):
    with server.raw() as c:
        c.send("a LOGIN {5}")
        c.expect_silence(0.3)
        c.send("\r")
        c.expect_silence(0.2)
        c.send("\n")
        assert c.readline().startswith("+")
        c.send("alice")
        c.expect_silence(0.3)
        c.send(" ")
        c.expect_silence(0.2)
        c.send("%s\r\n" % imap_quote(ALICE))
        _, tagged = c.read_tagged("a")
        assert tagged.startswith("a OK"), tagged


def test_literal_with_special_bytes(server):
    # bob's password has a space, a quote and a backslash: sent as a
    # literal they are plain data.
    pw = USERS["bob"]
    with server.raw() as c:
        c.send("a LOGIN bob {%d}\r\n" % len(pw))
        assert c.readline().startswith("+")
        c.send(pw + "\r\n")
        _, tagged = c.read_tagged("a")
        assert tagged.startswith("a OK"), tagged


def test_non_synchronizing_literals(server):
    with server.raw() as c:
        c.send("a LOGIN {5+}\r\nalice {%d+}\r\n%s\r\n"
               % (len(ALICE), ALICE))
        untagged, tagged = c.read_tagged("a")
        assert untagged == [], "continuation for LITERAL+: %r" % untagged
        assert tagged.startswith("a OK"), tagged


def test_non_synchronizing_literal_split_across_writes(server):
    with server.raw() as c:
        data = "a LOGIN {5+}\r\nalice {%d+}\r\n%s\r\nb NOOP\r\n" % (
            len(ALICE), ALICE)
        for i in range(0, len(data), 3):
            c.send(data[i:i + 3])
            time.sleep(0.01)
        untagged, tagged = c.read_tagged("a")
        assert untagged == [], untagged
        assert tagged.startswith("a OK"), tagged
        _, tagged = c.read_tagged("b")
        assert tagged.startswith("b OK"), tagged


def test_empty_and_binary_literals(server):
    with server.raw() as c:
        # An empty user name from a literal {0}: a clean failure.
        c.send("a LOGIN {0+}\r\n x\r\n")
        _, tagged = c.read_tagged("a")
        assert re.match(r"a (NO|BAD) ", tagged), tagged
        # A literal with a NUL byte in the user name.
        c.send(b"b LOGIN {6+}\r\nal\x00ice x\r\n")
        _, tagged = c.read_tagged("b")
        assert re.match(r"b (NO|BAD) ", tagged), tagged
        _, tagged = c.command("c", "NOOP")
        assert tagged.startswith("c OK"), tagged


# --- limits ---------------------------------------------------------------

def test_oversized_line_is_bad_and_connection_survives(server):
    with server.raw() as c:
        c.send("a LOGIN alice " + "x" * (LINE_MAX * 3) + "\r\nb NOOP\r\n")
        line = c.readline()
        assert re.match(r"(a|\*) BAD ", line), line
        untagged, tagged = c.read_tagged("b")
        # The rest of the long line was skipped, not parsed as commands.
        assert untagged == [], untagged
        assert tagged.startswith("b OK"), tagged


def test_oversized_line_in_pieces(server):
    with server.raw() as c:
        c.send("a NOOP ")
        for _ in range(8):
            c.send("y" * (LINE_MAX // 2))
            time.sleep(0.02)
        c.send("\r\nb NOOP\r\n")
        line = c.readline()
        assert re.match(r"(a|\*) BAD ", line), line
        untagged, tagged = c.read_tagged("b")
        assert untagged == [], untagged
        assert tagged.startswith("b OK"), tagged


def test_line_at_the_limit_is_accepted(server):
    # A line just under the limit parses (the command itself is bad).
    with server.raw() as c:
        text = "a LOGIN alice "
        text += "z" * (LINE_MAX - len(text) - 10)
        c.send(text + "\r\n")
        _, tagged = c.read_tagged("a")
        assert tagged.startswith("a NO") or tagged.startswith("a BAD"), \
            tagged
        assert "TOOBIG" not in tagged, tagged


def test_oversized_synchronizing_literal_is_bad_without_continuation(server):
    with server.raw() as c:
        c.send("a LOGIN {%d}\r\n" % (LITERAL_MAX * 4))
        line = c.readline()
        assert not line.startswith("+"), "continuation for a too big literal"
        assert re.match(r"(a|\*) BAD ", line), line
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged
        # A literal at the limit is fine.
        c.send("c LOGIN alice {%d}\r\n" % LITERAL_MAX)
        assert c.readline().startswith("+")
        c.send("p" * LITERAL_MAX + "\r\n")
        _, tagged = c.read_tagged("c")
        assert tagged.startswith("c NO"), tagged


def test_oversized_non_synchronizing_literal_is_bye(server):
    with server.raw() as c:
        c.send("a LOGIN {%d+}\r\n" % (LITERAL_MAX * 4))
        lines = c.expect_eof(timeout=5)
        assert lines, "closed without a reply"
        assert lines[-1].startswith("* BYE "), lines
        assert not any(l.startswith("+") for l in lines), lines


@pytest.mark.parametrize("size", [
    "9223372036854775807",          # 2^63 - 1
    "9223372036854775808",          # 2^63
    "18446744073709551615",         # 2^64 - 1
    "18446744073709551616",         # 2^64: wraps to 0 if unchecked
    "18446744073709551621",         # 2^64 + 5: wraps to 5
    "99999999999999999999999",
    "00000000000000000000000000000000000000000000000000000000000009999",
])
def test_huge_synchronizing_literal_size(server, size):
    with server.raw() as c:
        c.send("a LOGIN {%s}\r\n" % size)
        line = c.readline()
        assert not line.startswith("+"), "continuation for {%s}" % size
        assert re.match(r"(a|\*) BAD ", line), line
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged


@pytest.mark.parametrize("size", [
    "9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999",
])
def test_huge_non_synchronizing_literal_size(server, size):
    with server.raw() as c:
        c.send("a LOGIN {%s+}\r\nalice x\r\n" % size)
        lines = c.expect_eof(timeout=5)
        assert lines and lines[-1].startswith("* BYE "), lines
        assert not any(re.match(r"a (OK|NO) ", l) for l in lines), lines


# --- commands by state ----------------------------------------------------------

def test_unknown_command_is_bad(server):
    with server.raw() as c:
        _, tagged = c.command("a", "XYZZY")
        assert tagged.startswith("a BAD "), tagged
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged


def test_select_before_login_refused(server):
    # Not implemented in this milestone (BAD); once it is, NO (wrong
    # state).  Never OK.
    with server.raw() as c:
        _, tagged = c.command("a", "SELECT INBOX")
        assert re.match(r"a (BAD|NO) ", tagged), tagged
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged


def test_login_after_login_refused(server):
    with server.login("alice") as c:
        _, tagged = c.command("a", "LOGIN bob %s" % imap_quote(USERS["bob"]))
        assert re.match(r"a (NO|BAD) ", tagged), tagged
        _, tagged = c.command("b", "AUTHENTICATE PLAIN")
        assert re.match(r"b (NO|BAD) ", tagged), tagged
        _, tagged = c.command("c", "NOOP")
        assert tagged.startswith("c OK"), tagged


def test_enable_before_login_is_no(server):
    with server.raw() as c:
        untagged, tagged = c.command("a", "ENABLE CONDSTORE")
        assert untagged == [], untagged
        assert tagged.startswith("a NO "), tagged


def test_enable_after_login(server):
    with server.login("alice") as c:
        untagged, tagged = c.command("a", "ENABLE CONDSTORE X-UNKNOWN")
        assert tagged.startswith("a OK"), tagged
        assert len(untagged) == 1, untagged
        assert re.match(r"\* ENABLED( |$)", untagged[0]), untagged
        # Unknown extensions are not enabled (RFC 5161 3.1).
        assert "X-UNKNOWN" not in untagged[0].upper()
        _, tagged = c.command("b", "ENABLE")
        assert tagged.startswith("b BAD "), tagged


def test_id_nil(server):
    with server.raw() as c:
        untagged, tagged = c.command("a", "ID NIL")
        assert tagged.startswith("a OK"), tagged
        assert len(untagged) == 1, untagged
        m = re.match(r'^\* ID \((.*)\)$', untagged[0])
        assert m, untagged[0]
        fields = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
        assert len(fields) % 2 == 0
        info = dict(zip(fields[0::2], fields[1::2]))
        assert info.get("name") == "Herald", info
        assert "version" in info


def test_id_with_parameters(server):
    with server.login("alice") as c:
        untagged, tagged = c.command(
            "a", 'ID ("name" "pytest" "version" "1.0" "os" NIL)')
        assert tagged.startswith("a OK"), tagged
        assert untagged and untagged[0].startswith('* ID ("name" "Herald"'), \
            untagged


@pytest.mark.parametrize("args", ['("name")', "", "foo", '("a" "b") x',
                                  "(" + " ".join('"k%d" "v"' % i
                                                 for i in range(31)) + ")"])
def test_id_invalid(server, args):
    with server.raw() as c:
        _, tagged = c.command("a", ("ID " + args).strip())
        assert tagged.startswith("a BAD "), tagged


def test_noop_and_capability_with_arguments_are_bad(server):
    with server.raw() as c:
        _, tagged = c.command("a", "NOOP")
        assert tagged.startswith("a OK"), tagged
        _, tagged = c.command("b", "NOOP now")
        assert tagged.startswith("b BAD "), tagged
        _, tagged = c.command("c", "LOGOUT now")
        assert tagged.startswith("c BAD "), tagged


def test_command_names_are_case_insensitive(server):
    with server.raw() as c:
        for tag, cmd in (("a", "noop"), ("b", "NoOp"), ("c", "capability")):
            _, tagged = c.command(tag, cmd)
            assert tagged.startswith(tag + " OK"), tagged


@pytest.mark.parametrize("login", [False, True])
def test_logout(server, login):
    c = server.login("alice") if login else server.raw()
    with c:
        c.send("z LOGOUT\r\n")
        lines = c.expect_eof(timeout=5)
        assert len(lines) == 2, lines
        assert lines[0].startswith("* BYE "), lines
        assert lines[1].startswith("z OK "), lines


def test_logout_stops_pipelined_commands(server):
    with server.raw() as c:
        c.send("z LOGOUT\r\ny NOOP\r\n")
        lines = c.expect_eof(timeout=5)
        assert [_tag_and_status(l) for l in lines] == [("*", "BYE"),
                                                       ("z", "OK")], lines


def test_client_disconnect_mid_command_is_harmless(server):
    # Half a literal, half a line, a login in flight: then the client goes.
    for data in ("a LOGIN {50}\r\nali", "a LOGIN alice", "a LOGIN {5+}\r\nal",
                 "a LOGIN alice wrong\r\n", "a AUTHENTICATE PLAIN\r\n"):
        c = server.raw()
        c.send(data)
        time.sleep(0.05)
        c.close()
    time.sleep(0.5)
    with server.raw() as c:
        _, tagged = c.command("b", "NOOP")
        assert tagged.startswith("b OK"), tagged
