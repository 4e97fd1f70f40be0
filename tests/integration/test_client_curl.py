"""Herald against a real client: curl's IMAP support (imap:// and imaps://
URLs, RFC 5092).

curl prints the untagged responses of a LIST or custom (-X) command, and the
message (or section) a UID URL names; with -v it shows the whole exchange on
stderr.  Every curl run trusts only the server's self-signed certificate
(--cacert; the host name 127.0.0.1 is checked against the certificate).

Needs curl (in scripts/deps.sh test); skipped without it.
"""
import re
import shutil
import subprocess

import pytest

from helpers import HOST, USERS

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl not found")

MSG1 = ("From: One <one@example.org>\r\n"
        "To: alice@example.org\r\n"
        "Subject: first by curl\r\n"
        "Message-ID: <curl-1@example.org>\r\n"
        "\r\n"
        "Body of the first message.\r\n")
MSG2 = ("From: Two <two@example.org>\r\n"
        "To: alice@example.org\r\n"
        "Subject: second by curl\r\n"
        "Message-ID: <curl-2@example.org>\r\n"
        "\r\n"
        "Body of the second.\r\n"
        "Two lines.\r\n")

LIST_LINES = [
    '* LIST (\\HasNoChildren) "/" INBOX',
    '* LIST (\\HasNoChildren \\Archive) "/" Archive',
    '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
    '* LIST (\\HasNoChildren \\Junk) "/" Junk',
    '* LIST (\\HasNoChildren \\Sent) "/" Sent',
    '* LIST (\\HasNoChildren \\Trash) "/" Trash',
]


def curl(srv, path, *args, tls=True, user="alice", password=None,
         verbose=False, expect=0):
    """Run curl on imaps://127.0.0.1:port/PATH (or imap:// with STARTTLS
    required); returns (stdout bytes, stderr text).  Asserts the exit code
    is expect."""
    password = srv.users[user] if password is None else password
    url = "%s://%s:%d/%s" % ("imaps" if tls else "imap", HOST,
                             srv.imaps_port if tls else srv.imap_port, path)
    cmd = [CURL, "-sS", "--max-time", "15", "--cacert", srv.cert_path,
           "-u", "%s:%s" % (user, password)]
    if not tls:
        cmd.append("--ssl-reqd")
    if verbose:
        cmd.append("-v")
    cmd += list(args) + [url]
    r = subprocess.run(cmd, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    err = r.stderr.decode("utf-8", "replace").replace("\r\n", "\n")
    assert r.returncode == expect, "curl %s: exit %d, want %d\n%s" % (
        url, r.returncode, expect, err[-6000:])
    return r.stdout, err


def lines(out):
    return out.decode().split("\r\n")[:-1] if out.endswith(b"\r\n") else \
        out.decode().splitlines()


def append(srv, mailbox, msg, user="alice"):
    with srv.login(user) as c:
        c.send("P APPEND %s {%d+}\r\n%s\r\n" % (mailbox, len(msg), msg))
        _, tagged = c.read_tagged("P")
        assert tagged.startswith("P OK [APPENDUID "), tagged


def server_flags(srv, uid, mailbox="INBOX"):
    with srv.login() as c:
        _, tagged = c.command("E", "EXAMINE %s" % mailbox)
        assert tagged.startswith("E OK"), tagged
        untagged, tagged = c.command("F", "UID FETCH %d (FLAGS)" % uid)
        assert tagged.startswith("F OK"), tagged
        assert len(untagged) == 1, untagged
        m = re.fullmatch(r"\* \d+ FETCH \((?:UID %d FLAGS \(([^)]*)\)|"
                         r"FLAGS \(([^)]*)\) UID %d)\)" % (uid, uid),
                         untagged[0])
        assert m, untagged
        return set((m.group(1) or m.group(2) or "").split())


@pytest.fixture
def srv(herald_server):
    s = herald_server(fsync="no")
    append(s, "INBOX", MSG1)
    append(s, "INBOX", MSG2)
    return s


@pytest.mark.parametrize("tls", [True, False], ids=["imaps", "starttls"])
def test_curl_list(srv, tls):
    out, _ = curl(srv, "", tls=tls)
    assert lines(out) == LIST_LINES, out


def test_curl_fetch_by_uid(srv):
    out, err = curl(srv, "INBOX;UID=2", verbose=True)
    assert out == MSG2.encode(), out
    # curl fetches BODY[] (not PEEK): the server sets \Seen on that one.
    assert re.search(r"^> A\d+ UID FETCH 2 BODY\[\]$", err, re.M), err
    assert server_flags(srv, 2) == {"\\Seen"}
    assert server_flags(srv, 1) == set()

    out, _ = curl(srv, "INBOX;UID=1/;SECTION=TEXT")
    assert out == b"Body of the first message.\r\n", out
    out, _ = curl(srv, "INBOX;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)")
    assert out == b"Subject: first by curl\r\n\r\n", out
    out, _ = curl(srv, "INBOX;UID=1;PARTIAL=6.3")
    assert out == b"One", out
    out, _ = curl(srv, "INBOX;MAILINDEX=1")
    assert out == MSG1.encode(), out

    # The right UIDVALIDITY in the URL passes curl's check, a wrong one
    # does not; a UID that does not exist is "remote file not found".
    with srv.login() as c:
        untagged, _ = c.command("S", "STATUS INBOX (UIDVALIDITY)")
    uidvalidity = int(re.search(r"UIDVALIDITY (\d+)", untagged[0]).group(1))
    out, _ = curl(srv, "INBOX;UIDVALIDITY=%d/;UID=2" % uidvalidity)
    assert out == MSG2.encode(), out
    _, err = curl(srv, "INBOX;UIDVALIDITY=%d/;UID=2" % (uidvalidity ^ 1),
                  expect=78)
    assert "UIDVALIDITY has changed" in err, err
    _, err = curl(srv, "INBOX;UID=99", expect=78)
    _, err = curl(srv, "NoSuchBox;UID=1", expect=67)
    assert "Select failed" in err, err


def test_curl_examine_custom_request(srv):
    out, err = curl(srv, "", "-X", "EXAMINE INBOX", verbose=True)
    got = lines(out)
    assert got[:3] == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "* OK [PERMANENTFLAGS ()] Read-only mailbox.",
        "* 2 EXISTS",
    ], got
    assert "* OK [UNSEEN 1] First unseen." in got, got
    assert "* OK [UIDNEXT 3] Predicted next UID" in got, got
    assert any(re.fullmatch(r"\* OK \[UIDVALIDITY \d+\] UIDs valid", l)
               for l in got), got
    assert re.search(r"^< A\d+ OK \[READ-ONLY\] ", err, re.M), err

    out, _ = curl(srv, "", "-X", "STATUS Archive (MESSAGES UIDNEXT UNSEEN)")
    assert lines(out) == ["* STATUS Archive (MESSAGES 0 UIDNEXT 1 "
                          "UNSEEN 0)"], out
    # A custom request on a mailbox URL runs after curl's own SELECT.
    out, _ = curl(srv, "INBOX", "-X", "UID SEARCH SUBJECT second")
    assert lines(out)[-1] == "* SEARCH 2", out


@pytest.mark.parametrize("tls", [True, False], ids=["imaps", "starttls"])
def test_curl_wrong_password(srv, tls):
    _, err = curl(srv, "", tls=tls, password="wrong-password",
                  verbose=True, expect=67)
    assert "Login denied" in err, err
    assert re.search(r"^< A\d+ NO \[AUTHENTICATIONFAILED\]", err, re.M), err
    # An unknown user looks the same.
    _, err = curl(srv, "", tls=tls, user="mallory", password="x", expect=67)
    # And the right password still works afterwards.
    out, _ = curl(srv, "", tls=tls)
    assert lines(out) == LIST_LINES


def test_curl_starttls_required(srv):
    out, err = curl(srv, "INBOX;UID=1", tls=False, verbose=True)
    assert out == MSG1.encode(), out
    # STARTTLS offered in the clear, done, verified; no longer offered
    # after it, and the login happens inside TLS.
    starttls = re.search(r"^> (A\d+) STARTTLS$", err, re.M)
    assert starttls, err
    assert re.search(r"^< %s OK " % starttls.group(1), err, re.M), err
    assert "SSL certificate verify ok" in err, err
    before, after = err[:starttls.start()], err[starttls.end():]
    assert re.search(r"^< \* CAPABILITY .*\bSTARTTLS\b", before, re.M), err
    caps_after = re.findall(r"^< \* CAPABILITY (.*)$", after, re.M)
    assert caps_after and "STARTTLS" not in caps_after[0].split(), err
    assert "AUTHENTICATE" not in before and "LOGIN" not in before, err
    assert re.search(r"^> A\d+ AUTHENTICATE PLAIN", after, re.M), err


def test_curl_upload_and_search(srv, tmp_path):
    msg = ("From: Uploader <up@example.org>\r\n"
           "Subject: uploaded by curl\r\n"
           "\r\n"
           "Sent with -T.\r\n")
    path = tmp_path / "up.eml"
    path.write_bytes(msg.encode())
    _, err = curl(srv, "Sent", "-T", str(path), verbose=True)
    assert re.search(r"^< A\d+ OK \[APPENDUID \d+ 1\]", err, re.M), err
    out, _ = curl(srv, "Sent;UID=1")
    assert out == msg.encode(), out
    out, _ = curl(srv, "Sent?SUBJECT%20uploaded")
    assert lines(out) == ["* SEARCH 1"], out
    out, _ = curl(srv, "INBOX?SUBJECT%20uploaded")
    assert lines(out) == ["* SEARCH"], out


def test_curl_password_with_quote_space_backslash(srv):
    # bob's password is 'hunter 2"\x'; curl sends it in AUTHENTICATE PLAIN.
    assert USERS["bob"] == 'hunter 2"\\x'
    out, _ = curl(srv, "", user="bob")
    assert lines(out) == LIST_LINES, out
