"""FETCH and UID FETCH (RFC 3501 6.4.5, RFC 9051 6.4.5).

Messages are seeded by writing files into alice's Maildir/new/ before the
first SELECT.  Expected answers are either computed here (sizes and
contents with CRLF line ends), taken from RFC examples, or answers that
Dovecot 2.3.19 gave for the same message (captured once with the PREAUTH
trick of tests/unit/data/mime/capture.py, and the golden files that script
wrote), since Dovecot breaks the ties the RFCs leave open.
"""
import glob
import os
import re
import socket
import time

import pytest

from helpers import HERALD_SOURCE, IO_TIMEOUT

CORPUS = os.environ.get("HERALD_CORPUS") or "/work/shared/corpus"
MIME_DATA = os.path.join(HERALD_SOURCE, "tests", "unit", "data", "mime")
SEED_TIME = 1500000000          # mtime of the first seeded message


# --- a small IMAP client that keeps literals ---

LITERAL_RE = re.compile(rb"\{(\d+)\}$")


def _fill(c, deadline):
    left = deadline - time.monotonic()
    if c.eof:
        raise EOFError("connection closed; have %r" % c.buf[-200:])
    if left <= 0:
        raise socket.timeout("no complete response (have %r)"
                             % c.buf[-200:])
    c.buf += c._recv(left)


def read_line(c, timeout=IO_TIMEOUT):
    deadline = time.monotonic() + timeout
    while b"\n" not in c.buf:
        _fill(c, deadline)
    line, c.buf = c.buf.split(b"\n", 1)
    assert line.endswith(b"\r"), "line without CR: %r" % line[-200:]
    return line[:-1]


def read_exact(c, n, timeout=IO_TIMEOUT):
    deadline = time.monotonic() + timeout
    while len(c.buf) < n:
        _fill(c, deadline)
    data, c.buf = c.buf[:n], c.buf[n:]
    return data


def read_response(c, timeout=IO_TIMEOUT):
    """One response as bytes, literals inline ("{n}\\r\\n" + data)."""
    out = b""
    while True:
        line = read_line(c, timeout)
        out += line
        m = LITERAL_RE.search(line)
        if m is None:
            return out
        out += b"\r\n" + read_exact(c, int(m.group(1)), timeout)


def command(c, tag, text, timeout=IO_TIMEOUT):
    """Send a command; returns (untagged responses as bytes, tagged line
    as str)."""
    c.send(b"%s %s\r\n" % (tag.encode(), text if isinstance(text, bytes)
                           else text.encode()))
    untagged = []
    while True:
        r = read_response(c, timeout)
        if r.startswith(tag.encode() + b" "):
            return untagged, r.decode("utf-8", "replace")
        assert r.startswith(b"* "), "unexpected %r" % r[:200]
        untagged.append(r)


def ok(c, tag, text, timeout=IO_TIMEOUT):
    untagged, tagged = command(c, tag, text, timeout)
    assert tagged.startswith(tag + " OK"), (tagged, untagged[:3])
    return untagged


def value_end(b, i):
    """Index after the IMAP value that starts at b[i]."""
    c = b[i:i + 1]
    if c == b"(":
        i += 1
        while b[i:i + 1] != b")":
            if b[i:i + 1] == b" ":
                i += 1
                continue
            i = value_end(b, i)
        return i + 1
    if c == b'"':
        i += 1
        while b[i:i + 1] != b'"':
            if b[i:i + 1] == b"\\":
                i += 1
            i += 1
        return i + 1
    if c == b"{":
        j = b.index(b"}", i)
        return j + 3 + int(b[i + 1:j])
    while i < len(b) and b[i:i + 1] not in (b" ", b")"):
        i += 1
    return i


FETCH_RE = re.compile(rb"\* (\d+) FETCH \(")


def parse_fetch(resp):
    """(seq, [(name, raw value bytes)]) of a FETCH response; fails unless
    the whole response is consumed."""
    m = FETCH_RE.match(resp)
    assert m, resp[:200]
    i = m.end()
    items = []
    while resp[i:i + 1] != b")":
        if items:
            assert resp[i:i + 1] == b" ", resp[i:i + 50]
            i += 1
        j = i
        depth = 0
        while True:
            ch = resp[j:j + 1]
            assert ch != b"", resp[:200]
            if ch == b"[":
                depth += 1
            elif ch == b"]":
                depth -= 1
            elif ch == b" " and depth == 0:
                break
            j += 1
        k = value_end(resp, j + 1)
        items.append((resp[i:j].decode(), resp[j + 1:k]))
        i = k
    assert i == len(resp) - 1, (i, len(resp), resp[-50:])
    return int(m.group(1)), items


def literal(raw):
    """Content of a literal value."""
    m = re.match(rb"\{(\d+)\}\r\n", raw)
    assert m, raw[:100]
    data = raw[m.end():]
    assert len(data) == int(m.group(1))
    return data


def fetch(c, tag, text, timeout=IO_TIMEOUT):
    """Run a FETCH that must succeed; returns [(seq, items)] and the
    untagged lines that are not FETCH responses."""
    untagged = ok(c, tag, text, timeout)
    return [parse_fetch(r) for r in untagged if FETCH_RE.match(r)], \
        [r for r in untagged if not FETCH_RE.match(r)]


# --- seeding ---

def maildir(srv):
    return os.path.join(srv.data_dir, "users", "alice", "Maildir")


def seed(srv, messages, start=SEED_TIME):
    """Write messages (bytes) into INBOX's new/, one second apart so that
    they get UIDs 1, 2, ... in this order.  Returns the file names."""
    md = maildir(srv)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    names = []
    for i, data in enumerate(messages):
        name = "%d.M%06dP%d.seed" % (start + i, i, os.getpid())
        path = os.path.join(md, "new", name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (start + i, start + i))
        names.append(name)
    return names


def cur_path(srv, name):
    found = glob.glob(os.path.join(maildir(srv), "cur", name + "*"))
    assert len(found) == 1, found
    return found[0]


def crlf(data):
    """data as FETCH sends it: LF without CR becomes CRLF, NUL 0x80."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data).replace(b"\0", b"\x80")


@pytest.fixture
def start(herald_server):
    """start(messages) -> (server, logged-in connection)."""
    conns = []

    def make(messages, **settings):
        settings.setdefault("fsync", "no")
        srv = herald_server(start=False, **settings)
        names = seed(srv, messages)
        srv.start()
        c = srv.login()
        conns.append(c)
        srv.names = names
        return srv, c
    yield make
    for c in conns:
        c.close()


def read(path):
    with open(path, "rb") as f:
        return f.read()


SIMPLE = (b"From: Fred Foobar <foobar@example.org>\n"
          b"To: joe@example.com\n"
          b"Subject: hello\n"
          b"Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
          b"\n"
          b"line one\n"
          b"line two\n")

# A message with nested parts; NESTED_ANSWER is Dovecot 2.3.19's answer to
# NESTED_FETCH for it, byte for byte.
NESTED = b"""From: a@example.com
To: b@example.com
Subject: nested
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

preamble
--XX
Content-Type: text/plain

part one
--XX
Content-Type: message/rfc822

From: c@example.com
Subject: inner
Content-Type: multipart/alternative; boundary="YY"

--YY
Content-Type: text/plain

inner plain
--YY
Content-Type: text/html

<b>inner html</b>
--YY--
--XX
Content-Type: multipart/alternative; boundary="ZZ"

--ZZ
Content-Type: text/plain

alt plain
--ZZ
Content-Type: text/html

<i>alt</i>
--ZZ--
--XX--
"""
NESTED_FETCH = (
    "FETCH 1 (BODY[1] BODY[1.MIME] BODY[1.1] BODY[2] BODY[2.HEADER] "
    "BODY[2.TEXT] BODY[2.1] BODY[2.2] BODY[2.2.MIME] BODY[2.MIME] "
    "BODY[2.1.1] BODY[2.3] BODY[3] BODY[3.1] BODY[3.2] BODY[3.MIME] "
    "BODY[3.HEADER] BODY[3.TEXT] BODY[4] BODY[2.HEADER.FIELDS (subject)] "
    "BODY[2.HEADER.FIELDS.NOT (subject)] BODY[HEADER.FIELDS (to from)] "
    "BODY[TEXT]<0.20> BODYSTRUCTURE ENVELOPE)")
NESTED_ANSWER = (
    b'* 1 FETCH (BODY[1] {8}\r\n'
    b'part one BODY[1.MIME] {28}\r\n'
    b'Content-Type: text/plain\r\n'
    b'\r\n'
    b' BODY[1.1] {8}\r\n'
    b'part one BODY[2] {198}\r\n'
    b'From: c@example.com\r\n'
    b'Subject: inner\r\n'
    b'Content-Type: multipart/alternative; boundary="YY"\r\n'
    b'\r\n'
    b'--YY\r\n'
    b'Content-Type: text/plain\r\n'
    b'\r\n'
    b'inner plain\r\n'
    b'--YY\r\n'
    b'Content-Type: text/html\r\n'
    b'\r\n'
    b'<b>inner html</b>\r\n'
    b'--YY--\r\n'
    b' BODY[2.HEADER] {91}\r\n'
    b'From: c@example.com\r\n'
    b'Subject: inner\r\n'
    b'Content-Type: multipart/alternative; boundary="YY"\r\n'
    b'\r\n'
    b' BODY[2.TEXT] {107}\r\n'
    b'--YY\r\n'
    b'Content-Type: text/plain\r\n'
    b'\r\n'
    b'inner plain\r\n'
    b'--YY\r\n'
    b'Content-Type: text/html\r\n'
    b'\r\n'
    b'<b>inner html</b>\r\n'
    b'--YY--\r\n'
    b' BODY[2.1] {11}\r\n'
    b'inner plain BODY[2.2] {17}\r\n'
    b'<b>inner html</b> BODY[2.2.MIME] {27}\r\n'
    b'Content-Type: text/html\r\n'
    b'\r\n'
    b' BODY[2.MIME] {32}\r\n'
    b'Content-Type: message/rfc822\r\n'
    b'\r\n'
    b' BODY[2.1.1] {11}\r\n'
    b'inner plain BODY[2.3] {0}\r\n'
    b' BODY[3] {98}\r\n'
    b'--ZZ\r\n'
    b'Content-Type: text/plain\r\n'
    b'\r\n'
    b'alt plain\r\n'
    b'--ZZ\r\n'
    b'Content-Type: text/html\r\n'
    b'\r\n'
    b'<i>alt</i>\r\n'
    b'--ZZ--\r\n'
    b' BODY[3.1] {9}\r\n'
    b'alt plain BODY[3.2] {10}\r\n'
    b'<i>alt</i> BODY[3.MIME] {54}\r\n'
    b'Content-Type: multipart/alternative; boundary="ZZ"\r\n'
    b'\r\n'
    b' BODY[3.HEADER] {0}\r\n'
    b' BODY[3.TEXT] {0}\r\n'
    b' BODY[4] {0}\r\n'
    b' BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\n'
    b'Subject: inner\r\n'
    b'\r\n'
    b' BODY[2.HEADER.FIELDS.NOT (SUBJECT)] {75}\r\n'
    b'From: c@example.com\r\n'
    b'Content-Type: multipart/alternative; boundary="YY"\r\n'
    b'\r\n'
    b' BODY[HEADER.FIELDS (TO FROM)] {42}\r\n'
    b'From: a@example.com\r\n'
    b'To: b@example.com\r\n'
    b'\r\n'
    b' BODY[TEXT]<0> {20}\r\n'
    b'preamble\r\n'
    b'--XX\r\n'
    b'Cont BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii'
    b'") NIL NIL "7bit" 8 0 NIL NIL NIL NIL)("message" "rfc822'
    b'" NIL NIL NIL "7bit" 198 (NIL "inner" ((NIL NIL "c" "exa'
    b'mple.com")) ((NIL NIL "c" "example.com")) ((NIL NIL "c" '
    b'"example.com")) NIL NIL NIL NIL NIL) (("text" "plain" ("'
    b'charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL'
    b')("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 17'
    b' 0 NIL NIL NIL NIL) "alternative" ("boundary" "YY") NIL '
    b'NIL NIL) 13 NIL NIL NIL NIL)(("text" "plain" ("charset" '
    b'"us-ascii") NIL NIL "7bit" 9 0 NIL NIL NIL NIL)("text" "'
    b'html" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL'
    b' NIL NIL) "alternative" ("boundary" "ZZ") NIL NIL NIL) "'
    b'mixed" ("boundary" "XX") NIL NIL NIL) ENVELOPE (NIL "nes'
    b'ted" ((NIL NIL "a" "example.com")) ((NIL NIL "a" "exampl'
    b'e.com")) ((NIL NIL "a" "example.com")) ((NIL NIL "b" "ex'
    b'ample.com")) NIL NIL NIL NIL))')


def local_date(t):
    """INTERNALDATE text for t in the local time zone (the server's)."""
    tm = time.localtime(t)
    off = tm.tm_gmtoff // 60
    return '"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        tm.tm_mday, "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
        [tm.tm_mon - 1], tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec,
        "-" if off < 0 else "+", abs(off) // 60, abs(off) % 60)


# --- simple items, macros, order ---

def test_simple_items_and_macros(start):
    srv, c = start([SIMPLE, b"Subject: x\n\n"])
    ok(c, "s", "SELECT INBOX")
    date1 = local_date(SEED_TIME).encode()
    env = (b'("Mon, 7 Feb 1994 21:52:25 -0800" "hello" '
           b'(("Fred Foobar" NIL "foobar" "example.org")) '
           b'(("Fred Foobar" NIL "foobar" "example.org")) '
           b'(("Fred Foobar" NIL "foobar" "example.org")) '
           b'((NIL NIL "joe" "example.com")) NIL NIL NIL NIL)')
    body = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2)'
    size = str(len(crlf(SIMPLE))).encode()
    assert size == b"137"

    res, _ = fetch(c, "a", "FETCH 1 ALL")
    assert res == [(1, [("FLAGS", b"(\\Recent)"), ("INTERNALDATE", date1),
                        ("RFC822.SIZE", size), ("ENVELOPE", env)])]
    res, _ = fetch(c, "b", "FETCH 1 FAST")
    assert res == [(1, [("FLAGS", b"(\\Recent)"), ("INTERNALDATE", date1),
                        ("RFC822.SIZE", size)])]
    res, _ = fetch(c, "c", "FETCH 1 full")
    assert res == [(1, [("FLAGS", b"(\\Recent)"), ("INTERNALDATE", date1),
                        ("RFC822.SIZE", size), ("ENVELOPE", env),
                        ("BODY", body)])]
    res, _ = fetch(c, "d", "FETCH 1:2 (uid BODYSTRUCTURE)")
    assert res == [
        (1, [("UID", b"1"), ("BODYSTRUCTURE", body[:-1] +
                                b" NIL NIL NIL NIL)")]),
        (2, [("UID", b"2"), ("BODYSTRUCTURE",
                             b'("text" "plain" ("charset" "us-ascii") NIL '
                             b'NIL "7bit" 0 0 NIL NIL NIL NIL)')])]
    # One item without parentheses.
    res, _ = fetch(c, "e", "FETCH 2 INTERNALDATE")
    assert res == [(2, [("INTERNALDATE", local_date(SEED_TIME + 1)
                         .encode())])]


def test_item_order_and_duplicates(start):
    # As Dovecot: UID, FLAGS, INTERNALDATE and RFC822.SIZE first, in the
    # order asked, then the rest in order; simple items once only.
    srv, c = start([SIMPLE])
    ok(c, "s", "SELECT INBOX")
    res, _ = fetch(c, "a", "FETCH 1 (BODY.PEEK[TEXT] ENVELOPE FLAGS UID "
                   "RFC822.SIZE ENVELOPE BODY.PEEK[TEXT] FLAGS)")
    names = [n for n, _ in res[0][1]]
    assert names == ["FLAGS", "UID", "RFC822.SIZE", "BODY[TEXT]",
                     "ENVELOPE", "BODY[TEXT]"]
    # UID FETCH: UID always, and first.
    res, _ = fetch(c, "b", "UID FETCH 1 (RFC822.SIZE FLAGS)")
    assert res == [(1, [("UID", b"1"), ("RFC822.SIZE", b"137"),
                        ("FLAGS", b"(\\Recent)")])]
    res, _ = fetch(c, "c", "UID FETCH 1 (FLAGS UID)")
    assert res == [(1, [("UID", b"1"), ("FLAGS", b"(\\Recent)")])]


# --- contents ---

def test_body_sections_of_simple_message(start):
    srv, c = start([SIMPLE])
    ok(c, "s", "SELECT INBOX")
    hdr, text = SIMPLE.split(b"\n\n", 1)
    hdr = crlf(hdr + b"\n\n")
    text = crlf(text)
    res, _ = fetch(c, "a", "FETCH 1 (BODY.PEEK[] BODY.PEEK[HEADER] "
                   "BODY.PEEK[TEXT] RFC822.HEADER BODY.PEEK[1] "
                   "BODY.PEEK[1.MIME] BODY.PEEK[HEADER.FIELDS (Subject "
                   "\"to\" X-None)] BODY.PEEK[HEADER.FIELDS.NOT (subject "
                   "TO)] BODY.PEEK[99] BODY.PEEK[1.HEADER] "
                   "BODY.PEEK[1.TEXT] BODY.PEEK[2.1])")
    items = res[0][1]
    assert [n for n, _ in items] == [
        "BODY[]", "BODY[HEADER]", "BODY[TEXT]", "RFC822.HEADER", "BODY[1]",
        "BODY[1.MIME]", "BODY[HEADER.FIELDS (SUBJECT TO X-NONE)]",
        "BODY[HEADER.FIELDS.NOT (SUBJECT TO)]", "BODY[99]",
        "BODY[1.HEADER]", "BODY[1.TEXT]", "BODY[2.1]"]
    v = [literal(raw) for _, raw in items]
    assert v[0] == crlf(SIMPLE)
    assert v[1] == hdr and v[3] == hdr
    assert v[2] == text and v[4] == text
    # The MIME header of part 1 of a single-part message is the header.
    assert v[5] == hdr
    # Fields in message order, then the empty line.
    assert v[6] == b"To: joe@example.com\r\nSubject: hello\r\n\r\n"
    assert v[7] == (b"From: Fred Foobar <foobar@example.org>\r\n"
                    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n")
    # Sections that do not exist are empty literals, as Dovecot sends
    # them; 1.HEADER needs a message/rfc822 part.
    assert v[8:] == [b"", b"", b"", b""]
    assert items[8][1] == b"{0}\r\n"


def test_nested_parts_match_dovecot(start):
    srv, c = start([NESTED])
    ok(c, "s", "EXAMINE INBOX")
    untagged, tagged = command(c, "a", NESTED_FETCH)
    assert tagged == "a OK Fetch completed."
    assert untagged == [NESTED_ANSWER]


def test_top_level_message_rfc822(start):
    msg = (b"From: a@b\nSubject: outer\nContent-Type: message/rfc822\n\n"
           b"From: c@d\nSubject: inner\n\ninner body\n")
    srv, c = start([msg])
    ok(c, "s", "EXAMINE INBOX")
    res, _ = fetch(c, "a", "FETCH 1 (BODY[1.HEADER] BODY[1.TEXT] BODY[1] "
                   "BODY[1.1] BODY[1.1.HEADER])")
    # Dovecot's answers.
    assert [(n, literal(v)) for n, v in res[0][1]] == [
        ("BODY[1.HEADER]", b"From: c@d\r\nSubject: inner\r\n\r\n"),
        ("BODY[1.TEXT]", b"inner body\r\n"),
        ("BODY[1]", b"From: c@d\r\nSubject: inner\r\n\r\ninner body\r\n"),
        ("BODY[1.1]", b"inner body\r\n"),
        ("BODY[1.1.HEADER]", b""),
    ]


def test_partial_fetches(start):
    data = b"Subject: p\n\nab\ncd\n"      # sent as ...ab\r\ncd\r\n
    srv, c = start([data])
    ok(c, "s", "EXAMINE INBOX")
    full = crlf(data)
    cases = [
        ("BODY[]<0.10>", "BODY[]<0>", full[0:10]),
        ("BODY[]<5.3>", "BODY[]<5>", full[5:8]),
        ("BODY[TEXT]<0.2>", "BODY[TEXT]<0>", b"ab"),
        # Starts inside a CRLF that replaced a bare LF.
        ("BODY[TEXT]<3.3>", "BODY[TEXT]<3>", b"\ncd"),
        ("BODY[TEXT]<2.1>", "BODY[TEXT]<2>", b"\r"),
        ("BODY[TEXT]<4.100>", "BODY[TEXT]<4>", b"cd\r\n"),
        ("BODY[TEXT]<8.1>", "BODY[TEXT]<8>", b""),
        ("BODY[TEXT]<100.5>", "BODY[TEXT]<100>", b""),
        ("BODY[]<0.4294967296>", "BODY[]<0>", full),
        # Dovecot also takes <n> (to the end) and a length of 0.
        ("BODY[TEXT]<4>", "BODY[TEXT]<4>", b"cd\r\n"),
        ("BODY[]<3.0>", "BODY[]<3>", b""),
        ("BODY[HEADER.FIELDS (SUBJECT)]<1.4>",
         "BODY[HEADER.FIELDS (SUBJECT)]<1>", b"ubje"),
    ]
    res, _ = fetch(c, "a", "FETCH 1 (%s)" % " ".join(
        x[0] for x in cases))
    assert [(n, literal(v)) for n, v in res[0][1]] == \
        [(x[1], x[2]) for x in cases]


def test_crlf_nul_and_bare_cr(start):
    msgs = [b"Subject: lf\n\nx\ny\n",
            b"Subject: crlf\r\n\r\nx\r\ny\r\n",
            b"Subject: mixed\r\n\nx\ny\r\nz\n\n",
            b"Subject: nul\n\na\0b\n\0",
            b"Subject: cr\r\rbody\rmore\r",
            b""]
    srv, c = start(msgs)
    ok(c, "s", "EXAMINE INBOX")
    res, _ = fetch(c, "a", "FETCH 1:* (RFC822.SIZE BODY.PEEK[] RFC822)")
    assert len(res) == len(msgs)
    for (seq, items), data in zip(res, msgs):
        want = crlf(data)
        assert items[0] == ("RFC822.SIZE", str(len(want)).encode()), seq
        assert literal(items[1][1]) == want, seq
        assert items[2][0] == "RFC822" and literal(items[2][1]) == want
    # Bare CR is sent as it is: the CR-only message is one header line.
    res, _ = fetch(c, "b", "FETCH 5 (BODY[HEADER] BODY[TEXT])")
    assert [literal(v) for _, v in res[0][1]] == [msgs[4], b""]


@pytest.mark.timeout_s(120)
def test_corpus_sizes_and_contents(start):
    files = []
    for sub, n in (("bsd", 25), ("dos", 15), ("mac", 15), ("err", 40),
                   ("not", 5), ("tmp", 5)):
        found = sorted(glob.glob(os.path.join(CORPUS, "maildir", sub,
                                              "*.eml")))
        files += found[:n]
    if len(files) < 20:
        pytest.skip("corpus not found at %s" % CORPUS)
    msgs = [read(p) for p in files]
    srv, c = start(msgs)
    ok(c, "s", "EXAMINE INBOX")
    res, _ = fetch(c, "a", "FETCH 1:* (RFC822.SIZE BODY.PEEK[] "
                   "BODY.PEEK[HEADER] BODY.PEEK[TEXT])", timeout=60)
    assert [seq for seq, _ in res] == list(range(1, len(msgs) + 1))
    for (seq, items), data, path in zip(res, msgs, files):
        want = crlf(data)
        assert items[0] == ("RFC822.SIZE", str(len(want)).encode()), path
        assert literal(items[1][1]) == want, path
        # The header (with its empty line) and the text make the message.
        assert literal(items[2][1]) + literal(items[3][1]) == want, path


def _golden_records(path):
    with open(path, "rb") as f:
        g = f.read()
    i = 0
    while i < len(g):
        nl = g.index(b"\n", i)
        name = g[i:nl].decode()
        nl2 = g.index(b"\n", nl + 1)
        n = int(g[nl + 1:nl2])
        yield name, g[nl2 + 1:nl2 + 1 + n]
        i = nl2 + 1 + n + 1


@pytest.mark.timeout_s(120)
def test_golden_answers_of_dovecot(start):
    """Every item of tests/unit/data/mime/golden/ (Dovecot's answers for
    those messages), fetched through the server, byte for byte."""
    cases = []
    for g in sorted(glob.glob(os.path.join(MIME_DATA, "golden",
                                           "*.golden"))):
        name = os.path.basename(g)[:-len(".golden")]
        if "__" in name:
            path = os.path.join(CORPUS, name.replace("__", "/") + ".eml")
        else:
            path = os.path.join(MIME_DATA, "msgs", name + ".eml")
        if os.path.exists(path):
            cases.append((name, read(path), list(_golden_records(g))))
    if len(cases) < 10:
        pytest.skip("golden data not found")
    srv, c = start([m for _, m, _ in cases])
    ok(c, "s", "EXAMINE INBOX")
    compared = 0
    for seq, (name, _, records) in enumerate(cases, 1):
        # BODY[...] asked as BODY.PEEK[...]; Dovecot names them BODY[...].
        asked = " ".join(n.replace("BODY[", "BODY.PEEK[", 1) for n, _ in
                         records)
        res, _ = fetch(c, "g%d" % seq, "FETCH %d (%s)" % (seq, asked))
        assert len(res) == 1 and res[0][0] == seq
        got = dict(res[0][1])
        for n, want in records:
            if want == b'""':
                want = b"{0}\r\n"
            assert got.get(n) == want, (name, n, got.get(n, b"")[:300],
                                        want[:300])
            compared += 1
    assert compared > 1000


# --- \Seen ---

def _flags(c, tag, seq):
    res, _ = fetch(c, tag, "FETCH %s FLAGS" % seq)
    return [v for _, items in res for n, v in items if n == "FLAGS"]


def test_seen_set_by_body_not_by_peek(start):
    srv, c = start([SIMPLE] * 6)
    ok(c, "s", "SELECT INBOX")
    # PEEK, RFC822.HEADER and the simple items leave \Seen alone.
    res, other = fetch(c, "a", "FETCH 1:6 (BODY.PEEK[] RFC822.HEADER "
                       "BODY.PEEK[TEXT]<0.4> ENVELOPE RFC822.SIZE)")
    assert len(res) == 6 and other == []
    assert _flags(c, "b", "1:6") == [b"(\\Recent)"] * 6
    # BODY[...] sets it and adds FLAGS after the simple items.
    untagged, tagged = command(c, "c", "FETCH 1 (BODY[TEXT] UID)")
    assert tagged == "c OK Fetch completed."
    assert untagged == [b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) "
                        b"BODY[TEXT] {20}\r\nline one\r\nline two\r\n)"]
    # RFC822 and RFC822.TEXT set it too; RFC822.HEADER did not (above).
    res, _ = fetch(c, "d", "FETCH 2 RFC822.TEXT")
    assert [n for n, _ in res[0][1]] == ["FLAGS", "RFC822.TEXT"]
    res, _ = fetch(c, "e", "FETCH 3 RFC822")
    assert [n for n, _ in res[0][1]] == ["FLAGS", "RFC822"]
    # Already seen: no FLAGS added.
    untagged, _ = command(c, "f", "FETCH 1 BODY[TEXT]<0.4>")
    assert untagged == [b"* 1 FETCH (BODY[TEXT]<0> {4}\r\nline)"]
    # Asked for explicitly, FLAGS shows \Seen and comes once.
    res, _ = fetch(c, "g", "FETCH 4 (FLAGS BODY[HEADER.FIELDS (TO)])")
    assert res[0][1][0] == ("FLAGS", b"(\\Seen \\Recent)")
    assert len(res[0][1]) == 2
    # UID FETCH over several messages: each newly seen one gets FLAGS.
    untagged, tagged = command(c, "h", "UID FETCH 4:6 BODY[]<0.1>")
    assert tagged == "h OK Fetch completed."
    assert untagged == [
        b"* 4 FETCH (UID 4 BODY[]<0> {1}\r\nF)",
        b"* 5 FETCH (UID 5 FLAGS (\\Seen \\Recent) BODY[]<0> {1}\r\nF)",
        b"* 6 FETCH (UID 6 FLAGS (\\Seen \\Recent) BODY[]<0> {1}\r\nF)"]
    assert _flags(c, "i", "1:6") == [b"(\\Seen \\Recent)"] * 6
    # The flag is stored: in the file name, and for another session.
    for name in srv.names:
        assert cur_path(srv, name).endswith(":2,S")
    c2 = srv.login()
    try:
        ok(c2, "s", "EXAMINE INBOX")
        assert _flags(c2, "a", "1:6") == [b"(\\Seen)"] * 6
    finally:
        c2.close()


def test_examine_does_not_set_seen(start):
    srv, c = start([SIMPLE, SIMPLE])
    ok(c, "s", "EXAMINE INBOX")
    untagged, tagged = command(c, "a", "FETCH 1 (BODY[TEXT] RFC822.TEXT)")
    assert tagged == "a OK Fetch completed."
    assert untagged == [b"* 1 FETCH (BODY[TEXT] {20}\r\nline one\r\n"
                        b"line two\r\n RFC822.TEXT {20}\r\nline one\r\n"
                        b"line two\r\n)"]
    assert _flags(c, "b", "1:2") == [b"()", b"()"]
    ok(c, "c", "SELECT INBOX")
    assert _flags(c, "d", "1:2") == [b"(\\Recent)", b"(\\Recent)"]


def test_seen_reported_once_to_this_session(start):
    # The FETCH that set \Seen told the client; the end of the command
    # must not send FETCH (FLAGS) again, while another session hears of
    # the change as usual.
    srv, c = start([SIMPLE])
    ok(c, "s", "SELECT INBOX")
    c2 = srv.login()
    try:
        ok(c2, "s", "SELECT INBOX")
        untagged, _ = command(c, "a", "FETCH 1 BODY[]<0.4>")
        assert untagged == [b"* 1 FETCH (FLAGS (\\Seen \\Recent) "
                            b"BODY[]<0> {4}\r\nFrom)"]
        untagged, _ = command(c, "b", "NOOP")
        assert untagged == []
        untagged, _ = command(c2, "a", "NOOP")
        assert untagged == [b"* 1 FETCH (FLAGS (\\Seen))"]
    finally:
        c2.close()


# --- sequence sets and UIDs ---

def test_uid_fetch_ranges(start):
    srv, c = start([SIMPLE] * 5)
    ok(c, "s", "EXAMINE INBOX")
    res, _ = fetch(c, "a", "UID FETCH 1:* FLAGS")
    assert [(s, items[0]) for s, items in res] == \
        [(i, ("UID", str(i).encode())) for i in range(1, 6)]
    # "*" is the highest UID, so 100:* is 5:100 (RFC 9051 6.4.9).
    res, _ = fetch(c, "b", "UID FETCH 100:* UID")
    assert res == [(5, [("UID", b"5")])]
    res, _ = fetch(c, "c", "UID FETCH *:3 (UID)")
    assert [s for s, _ in res] == [3, 4, 5]
    # UIDs that do not exist are no error.
    res, _ = fetch(c, "d", "UID FETCH 6:100 UID")
    assert res == []
    res, _ = fetch(c, "e", "UID FETCH 2,4,9 FLAGS")
    assert res == [(2, [("UID", b"2"), ("FLAGS", b"()")]),
                   (4, [("UID", b"4"), ("FLAGS", b"()")])]
    res, _ = fetch(c, "f", "FETCH 5:4,1 UID")
    assert [s for s, _ in res] == [1, 4, 5]
    res, _ = fetch(c, "g", "FETCH * UID")
    assert res == [(5, [("UID", b"5")])]


@pytest.mark.parametrize("text", [
    "FETCH 6 FLAGS",              # above EXISTS
    "FETCH 1:6 FLAGS",
    "FETCH 0 FLAGS",
    "FETCH x FLAGS",
    "FETCH 1",
    "FETCH 1 FLAGS UID",
    "FETCH 1 ()",
    "FETCH 1 (FLAGS",
    "FETCH 1 BOGUS",
    "FETCH 1 (FLAGS ALL)",        # macros only alone
    "FETCH 1 (FLAGS \"UID\")",
    "FETCH 1 BODY[MIME]",
    "FETCH 1 BODY[1.X]",
    "FETCH 1 BODY[HEADER.FIELDS]",
    "FETCH 1 BODY[HEADER.FIELDS ()]",
    "FETCH 1 BODY[TEXT",
    "FETCH 1 BODY.PEEK",
    "FETCH 1 BODY[]x",
    "FETCH 1 BODY[]<1.2>x",
    "FETCH 1 BODY[]<x>",
    "FETCH 1 BODY[]<1.>",
    "FETCH 1 BODY[]<99999999999999999999.1>",
    "FETCH 1 RFC822.PEEK",
    "FETCH 1 BINARY[]",
    "UID FETCH 0:x UID",
])
def test_bad_fetch(start, text):
    srv, c = start([SIMPLE] * 5)
    ok(c, "s", "SELECT INBOX")
    untagged, tagged = command(c, "a", text)
    assert tagged.startswith("a BAD "), tagged
    assert untagged == []
    # Nothing was set \Seen, and the session goes on.
    assert _flags(c, "b", "1") == [b"(\\Recent)"]


def test_fetch_in_empty_mailbox(start):
    srv, c = start([])
    ok(c, "s", "SELECT INBOX")
    untagged, tagged = command(c, "a", "FETCH 1:* FLAGS")
    assert tagged.startswith("a BAD ") and untagged == []
    res, _ = fetch(c, "b", "UID FETCH 1:* FLAGS")
    assert res == []


def test_fetch_needs_selected_mailbox(start):
    srv, c = start([SIMPLE])
    untagged, tagged = command(c, "a", "FETCH 1 FLAGS")
    assert tagged.startswith("a BAD ") or tagged.startswith("a NO "), tagged
    assert untagged == []


# --- large ranges, caching, expunges ---

@pytest.mark.timeout_s(180)
def test_two_thousand_messages_in_slices(start):
    n = 2000
    msgs = [b"Subject: message %d\nX-Pad: %s\n\n%s\n" %
            (i, b"p" * (i % 50), b"body %d " % i * (1 + i % 200))
            for i in range(1, n + 1)]
    srv, c = start(msgs)
    ok(c, "s", "SELECT INBOX", timeout=60)
    # About 2.5 MB: several slices by bytes and by count.
    c.send(b"a FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS "
           b"(SUBJECT)] BODY.PEEK[TEXT])\r\n")
    for i, data in enumerate(msgs, 1):
        seq, items = parse_fetch(read_response(c, 30))
        assert seq == i
        hdr, text = data.split(b"\n\n", 1)
        assert items == [
            ("UID", str(i).encode()),
            ("RFC822.SIZE", str(len(crlf(data))).encode()),
            ("BODY[HEADER.FIELDS (SUBJECT)]",
             b"{%d}\r\nSubject: message %d\r\n\r\n" % (
                 len(b"Subject: message %d\r\n\r\n" % i), i)),
            ("BODY[TEXT]", b"{%d}\r\n" % len(crlf(text)) + crlf(text))]
        if i == 1:
            # A client that stops reading holds the rest back without
            # blocking other sessions of the same server.
            c2 = srv.login()
            try:
                ok(c2, "s", "EXAMINE INBOX", timeout=60)
                res, _ = fetch(c2, "a", "FETCH %d UID" % n)
                assert res == [(n, [("UID", str(n).encode())])]
            finally:
                c2.close()
    assert read_response(c, 30) == b"a OK Fetch completed."
    # And \Seen over a large range, sliced as well: every message gets
    # FLAGS once.
    c.send(b"b FETCH 1:* BODY[]<0.9>\r\n")
    for i in range(1, n + 1):
        seq, items = parse_fetch(read_response(c, 30))
        assert (seq, items) == (i, [
            ("FLAGS", b"(\\Seen \\Recent)"),
            ("BODY[]<0>", b"{9}\r\nSubject: ")])
    assert read_response(c, 30) == b"b OK Fetch completed."
    res, _ = fetch(c, "c", "FETCH 1:* FLAGS", timeout=60)
    assert len(res) == n and all(items == [("FLAGS", b"(\\Seen \\Recent)")]
                                 for _, items in res)


@pytest.mark.timeout_s(180)
def test_slices_wait_for_a_slow_reader(start):
    # 2000 messages of 6 KB: 12 MB of BODY[], far beyond the output
    # high-water mark and the socket buffers.  While the client does not
    # read, the server must stop producing slices, and so must not have
    # set \Seen on the last messages yet (it marks a few dozen ahead of
    # the output).
    n = 2000
    msgs = [b"Subject: %d\n\n%s\n" % (i, (b"%06d " % i) * 870)
            for i in range(1, n + 1)]
    srv, c = start(msgs)
    ok(c, "s", "SELECT INBOX", timeout=60)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.send(b"a FETCH 1:* BODY[]\r\n")
    time.sleep(1.5)
    c2 = srv.login()
    try:
        ok(c2, "s", "EXAMINE INBOX", timeout=60)
        res, _ = fetch(c2, "a", "FETCH %d:%d FLAGS" % (n - 200, n))
        assert all(items == [("FLAGS", b"()")] for _, items in res), res
        for i, data in enumerate(msgs, 1):
            seq, items = parse_fetch(read_response(c, 30))
            assert seq == i
            assert [n for n, _ in items] == ["FLAGS", "BODY[]"]
            assert literal(items[1][1]) == crlf(data)
        assert read_response(c, 30) == b"a OK Fetch completed."
        # (The update ending the command may repeat the new flags.)
        res, _ = fetch(c2, "b", "FETCH 1:* FLAGS", timeout=60)
        assert dict(res) == {i: [("FLAGS", b"(\\Seen)")]
                             for i in range(1, n + 1)}
    finally:
        c2.close()


def test_parsed_items_are_cached(start):
    # ENVELOPE, BODY, BODYSTRUCTURE and RFC822.SIZE come from the cache
    # the second time: rewriting the file behind the server's back shows
    # it (BODY[] reads the file again).
    srv, c = start([SIMPLE])
    ok(c, "s", "EXAMINE INBOX")
    items = "(ENVELOPE BODY BODYSTRUCTURE RFC822.SIZE)"
    first, _ = fetch(c, "a", "FETCH 1 " + items)
    other = b"Subject: other\n\nshort\n"
    with open(cur_path(srv, srv.names[0]), "wb") as f:
        f.write(other)
    again, _ = fetch(c, "b", "FETCH 1 " + items)
    assert again == first
    res, _ = fetch(c, "c", "FETCH 1 BODY.PEEK[]")
    assert literal(res[0][1][0][1]) == crlf(other)


def test_message_expunged_by_another_program(start):
    srv, c = start([SIMPLE, b"Subject: two\n\n2\n", b"Subject: 3\n\n3\n"])
    ok(c, "s", "SELECT INBOX")
    os.unlink(cur_path(srv, srv.names[1]))
    # The message cannot be read any more: it is left out, the others are
    # answered, and no EXPUNGE comes during FETCH (RFC 9051 7.5.1).
    untagged, tagged = command(c, "a", "FETCH 1:3 (UID BODY.PEEK[TEXT])")
    assert tagged == "a OK [EXPUNGEISSUED] Some messages were already " \
        "expunged.", tagged
    assert untagged == [
        b"* 1 FETCH (UID 1 BODY[TEXT] {20}\r\nline one\r\nline two\r\n)",
        b"* 3 FETCH (UID 3 BODY[TEXT] {3}\r\n3\r\n)"]
    # Sequence numbers still stand until a command may expunge.
    untagged, tagged = command(c, "b", "FETCH 3 UID")
    assert untagged == [b"* 3 FETCH (UID 3)"]
    untagged, _ = command(c, "c", "NOOP")
    assert b"* 2 EXPUNGE" in untagged
    res, _ = fetch(c, "d", "FETCH 1:* (UID ENVELOPE)")
    assert [(s, items[0][1]) for s, items in res] == [(1, b"1"), (2, b"3")]


def test_message_expunged_by_another_session(start):
    srv, c = start([SIMPLE, b"Subject: two\n\n2\n", b"Subject: 3\n\n3\n"])
    ok(c, "s", "SELECT INBOX")
    c2 = srv.login()
    try:
        ok(c2, "s", "SELECT INBOX")
        ok(c2, "a", "STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        untagged = ok(c2, "b", "EXPUNGE")
        assert untagged == [b"* 2 EXPUNGE", b"* 1 EXPUNGE"]
    finally:
        c2.close()
    # This session still has three messages; 1 and 2 are gone.  What
    # needs the file is left out; the flags the view has still answer.
    untagged, tagged = command(c, "a", "FETCH 1:3 (UID BODY.PEEK[TEXT])")
    assert tagged == "a OK [EXPUNGEISSUED] Some messages were already " \
        "expunged.", tagged
    assert untagged == [b"* 3 FETCH (UID 3 BODY[TEXT] {3}\r\n3\r\n)"]
    untagged, tagged = command(c, "b", "FETCH 3 BODY[TEXT]")
    assert tagged == "b OK Fetch completed."
    assert untagged == [b"* 3 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT] "
                        b"{3}\r\n3\r\n)"]
    # No EXPUNGE during FETCH (RFC 9051 7.5.1); NOOP sends both.
    untagged, _ = command(c, "c", "NOOP")
    assert untagged == [b"* 2 EXPUNGE", b"* 1 EXPUNGE"]
    res, _ = fetch(c, "d", "FETCH 1:* (UID FLAGS)")
    assert res == [(1, [("UID", b"3"), ("FLAGS", b"(\\Seen \\Recent)")])]


def test_uid_fetch_reports_expunge_at_end(start):
    # UID FETCH may send EXPUNGE (RFC 9051 7.5.1): after its responses.
    srv, c = start([SIMPLE, SIMPLE, SIMPLE])
    ok(c, "s", "SELECT INBOX")
    os.unlink(cur_path(srv, srv.names[0]))
    untagged, tagged = command(c, "a", "UID FETCH 1:* BODY.PEEK[]<0.4>")
    assert tagged.startswith("a OK [EXPUNGEISSUED]"), tagged
    assert untagged == [b"* 2 FETCH (UID 2 BODY[]<0> {4}\r\nFrom)",
                        b"* 3 FETCH (UID 3 BODY[]<0> {4}\r\nFrom)",
                        b"* 1 EXPUNGE"]
    res, _ = fetch(c, "b", "FETCH 1:* UID")
    assert res == [(1, [("UID", b"2")]), (2, [("UID", b"3")])]


@pytest.mark.timeout_s(120)
def test_large_message_streamed(start):
    # 3 MB, more than the connection may buffer (max_output_buffer): the
    # literal must go out over several slices as the client reads.
    big = (b"Subject: big\n\n" +
           b"".join(b"line %07d of a large message\n" % i
                    for i in range(100000)))
    srv, c = start([big, SIMPLE], max_output_buffer="1M",
                   output_high_water="64K")
    ok(c, "s", "SELECT INBOX")
    want = crlf(big)
    res, _ = fetch(c, "a", "FETCH 1:2 (RFC822.SIZE BODY[] UID "
                   "BODY.PEEK[]<1000000.20> BODY.PEEK[TEXT]<5.2500000> "
                   "BODY.PEEK[HEADER])", timeout=60)
    assert len(res) == 2
    (seq, items), (seq2, items2) = res
    assert [n for n, _ in items] == [
        "RFC822.SIZE", "UID", "FLAGS", "BODY[]", "BODY[]<1000000>",
        "BODY[TEXT]<5>", "BODY[HEADER]"]
    assert items[0] == ("RFC822.SIZE", str(len(want)).encode())
    assert items[2] == ("FLAGS", b"(\\Seen \\Recent)")
    assert literal(items[3][1]) == want
    assert literal(items[4][1]) == want[1000000:1000020]
    assert literal(items[5][1]) == want[len(b"Subject: big\r\n\r\n") + 5:][
        :2500000]
    assert literal(items[6][1]) == b"Subject: big\r\n\r\n"
    assert seq2 == 2 and literal(items2[3][1]) == crlf(SIMPLE)
    # A client that leaves in the middle of such a literal.
    c2 = srv.login()
    ok(c2, "s", "EXAMINE INBOX")
    c2.send(b"a FETCH 1 BODY[]\r\n")
    read_exact(c2, 100000, 10)
    c2.close()
    res, _ = fetch(c, "b", "FETCH 1 BODY.PEEK[]<0.12>")
    assert literal(res[0][1][0][1]) == b"Subject: big"


def test_large_message(start):
    big = (b"Subject: big\n\n" +
           b"".join(b"line %07d of a large message\n" % i
                    for i in range(60000)))
    srv, c = start([big])
    ok(c, "s", "EXAMINE INBOX")
    res, _ = fetch(c, "a", "FETCH 1 (RFC822.SIZE BODY.PEEK[] "
                   "BODY.PEEK[]<1000000.20>)", timeout=30)
    want = crlf(big)
    assert res[0][1][0] == ("RFC822.SIZE", str(len(want)).encode())
    assert literal(res[0][1][1][1]) == want
    assert literal(res[0][1][2][1]) == want[1000000:1000020]
