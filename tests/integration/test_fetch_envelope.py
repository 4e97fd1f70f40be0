"""FETCH ENVELOPE alone parses the top-level header only (cmd_fetch.c,
imap_msg_parse_header()); it must give what the full parse gives.  Each
message is stored twice: one copy is asked for ENVELOPE alone, the other
for BODYSTRUCTURE and ENVELOPE (full parse), and the envelopes compared.
"""
import os
import re
import time

SERVER_SETTINGS = {"fsync": "no"}
PASSWORD = "envelope-Secret-1"

MESSAGES = [
    # CRLF, ordinary.
    b"From: A <a@example.org>\r\nTo: b@example.org\r\nSubject: one\r\n"
    b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n",
    # Bare LF, folded fields, a blank-looking line inside a fold.
    b"From: A <a@example.org>\nSubject: two\n  folded\n\t again\n"
    b"Message-ID: <x@y>\n\nbody\nFrom: Not <header@example.org>\n",
    # No empty line: header up to the end.
    b"From: c@example.org\r\nSubject: no body\r\nTo: d@example.org",
    # Starts with an empty line: no header at all.
    b"\r\nFrom: e@example.org\r\nSubject: in the body\r\n",
    b"\nFrom: e@example.org\nSubject: in the body\n",
    # CR CR LF and a lone CR in the header.
    b"From: f@example.org\r\r\nSubject: cr\rcr\r\n\r\nbody\r\n",
    # Multipart root: the body has parts, the envelope is the root's.
    b"From: g@example.org\r\nSubject: multi\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
    b"Content-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\n"
    b"Subject: inner\r\n\r\ninner body\r\n--XX--\r\n",
]


def raw(c, tag, text):
    """The untagged bytes of a command, literals and all."""
    c.send("%s %s\r\n" % (tag, text))
    end = ("\r\n%s " % tag).encode()
    data = c.buf
    c.buf = b""
    deadline = time.monotonic() + 10
    while end not in data or not data.endswith(b"\r\n"):
        assert time.monotonic() < deadline, data[-300:]
        data += c._recv(deadline - time.monotonic())
    body, tagged = data.split(end, 1)
    assert tagged.startswith(b"OK"), tagged
    return body + b"\r\n"


def test_envelope_from_the_header_alone_equals_the_full_parse(server):
    user = "envuser"
    server.add_user(user, PASSWORD)
    server.users[user] = PASSWORD
    base = os.path.join(server.data_dir, "users", user, "Maildir")
    with server.login(user, PASSWORD) as c:
        c.command("a", 'LIST "" INBOX')
        for i, msg in enumerate(MESSAGES):
            for copy in range(2):
                name = "%d.M%dP%d.envtest" % (1700000000 + 2 * i + copy,
                                             2 * i + copy, os.getpid())
                with open(os.path.join(base, "tmp", name), "wb") as f:
                    f.write(msg)
                os.utime(os.path.join(base, "tmp", name),
                         (1700000000 + 2 * i + copy,) * 2)
                os.rename(os.path.join(base, "tmp", name),
                          os.path.join(base, "new", name))
        untagged, tagged = c.command("b", "SELECT INBOX")
        assert tagged.startswith("b OK"), (untagged, tagged)
        n = len(MESSAGES)
        odd = ",".join(str(2 * i + 1) for i in range(n))
        even = ",".join(str(2 * i + 2) for i in range(n))
        alone = raw(c, "c", "FETCH %s (ENVELOPE)" % odd)
        full = raw(c, "d", "FETCH %s (BODYSTRUCTURE ENVELOPE)" % even)

    def envelopes(data):
        # Each response ends its line with "))"; literals may sit inside.
        out = []
        for part in re.split(rb"\* \d+ FETCH \(", data)[1:]:
            i = part.index(b"ENVELOPE ")
            out.append(part[i:part.rindex(b"))")])
        return out

    a, f = envelopes(alone), envelopes(full)
    assert len(a) == n and len(f) == n, (alone, full)
    for i in range(n):
        assert a[i] == f[i], (i, a[i], f[i])
