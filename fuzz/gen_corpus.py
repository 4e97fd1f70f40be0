#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets into fuzz/corpus/NAME/.

The seeds are small hand-written inputs in each target's input format (see
the comment at the top of fuzz/fuzz_NAME.c); file names are a hash of the
content, as libFuzzer names its own finds.  Run again after editing:
    python3 fuzz/gen_corpus.py
The MIME target also reads ../shared/corpus/maildir at run time (make fuzz).
"""
import base64
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for s in seeds:
        if isinstance(s, str):
            s = s.encode("utf-8")
        path = os.path.join(d, hashlib.sha1(s).hexdigest())
        with open(path, "wb") as f:
            f.write(s)


# ---- imap_parser: 6 control bytes, then the client's stream ----
# c0: handler policy (bits 0-1), LITERAL- for tiny limits (bit 2), salt
# c1: chunk seed; c2: feed_line mask; c3-5: tiny limits
COMMANDS = [
    b"a1 CAPABILITY\r\n",
    b"a2 LOGIN alice secret\r\n",
    b'a3 LOGIN "alice" "se\\"cr\\\\et"\r\n',
    b"a4 LOGIN {5}\r\nalice {6}\r\nsecret\r\n",
    b"a5 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n",
    b"a6 SELECT INBOX\r\n",
    b"a7 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT)]<0.100>)\r\n",
    b"a8 UID FETCH 1,3:5,7:* (UID RFC822.SIZE BODYSTRUCTURE)\r\n",
    b"a9 STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)\r\n",
    b"b1 APPEND INBOX (\\Seen) \"01-Jan-2024 10:00:00 +0000\" {12}\r\nHello world!\r\n",
    b"b2 APPEND INBOX ~{5}\r\nab\x00cd\r\n",
    b"b3 APPEND INBOX {0+}\r\n\r\n",
    b"b4 SEARCH CHARSET UTF-8 OR (FROM \"smith\" SUBJECT {3}\r\nabc) NOT SEEN\r\n",
    b"b5 LIST \"\" \"*\"\r\n",
    b"b6 CREATE \"&AMk-t&AOk-\"\r\n",
    b"b7 IDLE\r\nDONE\r\n",
    b"b8 AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n",
    b"b9 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    b"c1 NOOP\nc2 NOOP\n",
    b"c3 LOGOUT\r\n",
    b"c4 STATUS INBOX (MESSAGES UIDNEXT UNSEEN)\r\n",
    b"c5 ENABLE UTF8=ACCEPT\r\n",
    b"c6 ID (\"name\" \"client\" \"version\" NIL)\r\n",
    b"c7 X ((((((((a))))))))\r\n",
    b"c8 X \"unterminated\r\n",
    b"c9 X {99999999999999999999}\r\n",
    b"d1 X {4097+}\r\n",
    b"d2 X a(b\r\nd3 NOOP\r\n",
    b"+ bad tag\r\n",
    b"d4 X BODY[1.2.MIME] BODY[HEADER.FIELDS.NOT (A B)] ~atom\r\n",
    b"d5 X NIL nil \"\" {0}\r\n\r\n",
    b"d6 BAD\x00NUL\r\nd7 NOOP\r\n",
    b"d8 X )\r\n",
    b"d9   NOOP   \r\n",
]
HEADERS = [
    bytes([0, 0, 0, 64, 0x33, 0x22]),
    bytes([1, 7, 0, 32, 0x11, 0x1b]),
    bytes([2, 99, 0, 128, 0xff, 0xff]),
    bytes([3, 1, 0, 16, 0x21, 0x0a]),
    bytes([6, 250, 0, 255, 0x4f, 0x13]),
    bytes([0x0f, 3, 0x02, 200, 0x88, 0x22]),
]
parser = []
for i, c in enumerate(COMMANDS):
    parser.append(HEADERS[i % len(HEADERS)] + c)
# A session: pre-auth commands, LOGIN, then post-auth ones.
parser.append(HEADERS[0] + b"".join(COMMANDS[:12]))
parser.append(HEADERS[2] + b"".join(COMMANDS[10:]))
# feed_line for the 2nd command (AUTHENTICATE response, IDLE's DONE).
parser.append(bytes([1, 5, 0x02, 64, 0x33, 0x22]) +
              b"a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n")
parser.append(bytes([0, 5, 0x02, 64, 0x33, 0x22]) +
              b"a IDLE\r\nDONE\r\nb NOOP\r\n")
write("imap_parser", parser)

# ---- seqset: max_ranges byte, 4-byte max (LE), then the set ----
def ss(max_ranges, mx, s):
    return bytes([max_ranges]) + mx.to_bytes(4, "little") + s


write("seqset", [
    ss(10, 10, b"1"), ss(10, 10, b"1:3,5,7:*"), ss(10, 3, b"5:*"),
    ss(10, 0, b"*"), ss(10, 100, b"1,2,3,4,5,6,7,8,9,10"),
    ss(3, 100, b"1,2,3,4"), ss(10, 7, b"4294967295"),
    ss(10, 7, b"5:4294967295,100"), ss(10, 4294967295, b"*:1"),
    ss(10, 10, b"0"), ss(10, 10, b"01"), ss(10, 10, b"1,,2"),
    ss(10, 10, b",1"), ss(10, 10, b"1:"), ss(10, 10, b"4294967296"),
    ss(255, 50, b"3:1,2:4,10:8,20,19,21,*"), ss(0, 1, b"1"),
    ss(10, 10, b"$"), ss(10, 10, b"1 2"),
])

# ---- mutf7: a mailbox name (mUTF-7 or UTF-8) ----
write("mutf7", [
    "INBOX", "&-", "a&-b", "&AMk-t&AOk-", "Entw&APw-rfe", "&ZeVnLIqe-",
    "&2D3eAA-", "&AGE-", "&AGE-&AGE-", "&Jjo-!", "&-&-", "&U,BTFw-",
    "été", "日本語", "\U0001F600", "a&b", "Sent Items",
    "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
    "&", "&-x", "&AAA-", "&2D3-", "&3gA-", "&AMkA6Q-", "\x01", "\x7f",
    b"a\xc3\xa9b", b"\xe9t\xe9",
    b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\xaf",
])

# ---- passwd: a passwd-file ----
write("passwd", [
    "alice:{PLAIN}secret:1000:1000::/home/alice:/bin/sh\n",
    "alice:{PLAIN}secret\nbob:{CLEAR}hunter2::::::\n#carol:{PLAIN}x\n\n",
    "alice:{PLAIN}first\nalice:{PLAIN}second\n",
    "demo:{plain}demo\r\nroot:{CLEARTEXT}toor\r\n",
    "bob:{SHA512-CRYPT}notahash\nalice:{UNKNOWN}x\n",
    ":nouser\nbroken line\nalice:{PLAIN}a:b:c\n",
    "alice:{PLAIN}\nbob:\n",
    "alice:{PLAIN}secret",
    "a:{PLAIN}1\nb:{PLAIN}2\nc:{PLAIN}3\nd:{PLAIN}4\ne:{PLAIN}5\n",
    "user.name-1@example.org:{PLAIN}p@ss w0rd\n",
])

# ---- config: a config file ----
write("config", [
    "data_dir = /var/lib/herald\nworkers = 2\nlog_level = debug\n",
    "imap_listen = 127.0.0.1:1143, [::1]:1143\nimaps_listen =\n",
    "# comment\n\nplaintext_auth = yes # trailing comment\n",
    "max_line_length = 64K\nmax_literal_size = 1M\nmax_command_size = 4G\n",
    "preauth_max_list_depth = 0\nmax_bad_commands = 100000\n",
    "idle_keepalive = 2m\nidle_max = 1h\nidle_poll_interval = 0\n",
    "tls_cert = \"/etc/ssl/a b.pem\"\ntls_key = \"/etc/ssl/a#b.key\"\n",
    "demo_user = no\nfsync = yes\nuser = mail\n",
    "unknown_key = 1\n",
    "workers = 99999999999999999999\n",
    "passwd_file = \"\"\nauth_failure_delay_ms = 0\n",
    "imap_listen = *:143\nimaps_listen = [fe80::1]:993\n",
    "max_connections = 20000\noutput_high_water = 64K\nmax_output_buffer = 16M\n",
    "autologout_timeout = 30m\npreauth_timeout = 60s\nshutdown_timeout = 10\n",
    "auth_throttle_failures = 10\nauth_throttle_window = 300\n"
    "auth_throttle_delay_max = 15\nmax_auth_failures = 3\n",
    "max_message_size = 64M\nmax_list_depth = 16\nmax_command_args = 100000\n"
    "preauth_max_line_length = 8192\npreauth_max_literal_size = 8192\n",
    "key without equals\n",
    "data_dir = \"unterminated\n",
])

# ---- mime: small hand-written messages (the Maildir corpus adds more) ----
write("mime", [
    "From: Alice <alice@example.org>\nTo: bob@example.org\n"
    "Subject: hi\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nHello\n",
    "X-Section: 1.HEADER.FIELDS (From)\r\nContent-Type: multipart/mixed;"
    " boundary=\"b1\"\r\n\r\npre\r\n--b1\r\nContent-Type: text/plain;"
    " charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    "\r\nCaf=E9\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    "Subject: =?utf-8?B?w6l0w6k=?=\r\nFrom: \"A, B\" <a@b>, group: c@d, e@f;"
    "\r\n\r\ninner\r\n--b1--\r\nepilogue\r\n",
    "Content-Type: multipart/digest; boundary=x\n\n--x\n\nSubject: d\n\nb\n"
    "--x\nContent-Type: text/html; name*0*=utf-8''a%20; name*1=b\n"
    "Content-Disposition: attachment; filename=\"f.txt\"\n"
    "Content-Language: en, de\nContent-Location: http://x/\n"
    "Content-MD5: abc\nContent-ID: <id@x>\nContent-Description: d\n\n"
    "<p>x</p>\n--x--\n",
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n\nw6l0w6kK\n",
    "X-Section: TEXT\nContent-Type: multipart/alternative; boundary=\"a\"\n\n"
    "--a\nContent-Type: multipart/related; boundary=\"a2\"\n\n--a2\n\nx\n"
    "--a2--\n--a--\n",
    "Subject: no body",
    "\n",
    "From: (comment) <@route,@r2:user@[1.2.3.4]>\nReply-To: undisclosed:;\n"
    "Message-ID: <x@y>\nIn-Reply-To: <a@b>\nCc: =?iso-8859-1?q?J=F6rg?= "
    "<j@x>\n\nbody\rwith\rcr\n",
    "X-Section: 1.2.3.MIME\nContent-Type: message/rfc822\n\n"
    "Content-Type: message/rfc822\n\nContent-Type: text/plain\n\nx\n",
])
# ---- search: SEARCH arguments, a line end, then a message ----
MSG = (b"From: \"Smith, J.\" <smith@example.org>\r\nTo: a@b, c@d\r\n"
       b"Cc: =?utf-8?q?J=C3=B6rg?= <j@x>\r\nSubject: Re: Gr=?utf-8?b?w7w=?=e\r\n"
       b"Date: Tue, 20 Feb 2024 10:00:00 +0100\r\nX-Tag: Work\r\n"
       b"Content-Type: text/plain; charset=iso-8859-1\r\n"
       b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
       b"Gr=FC=DFe aus K=F6ln\r\n")
MULTI = (b"Subject: multi\nDate: 1 Jan 70 00:00 GMT\n"
         b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
         b"Content-Type: text/html; charset=utf-8\n"
         b"Content-Transfer-Encoding: base64\n\nSGVsbG8gV29ybGQ=\n--b\n"
         b"Content-Type: message/rfc822\n\nFrom: inner@x\nSubject: in\n\n"
         b"inner body\n--b--\n")
CRITERIA = [
    b"ALL", b"FROM smith", b"TO \"a@b\"", b"CC j\xc3\xb6rg",
    b"CHARSET UTF-8 SUBJECT {5}\r\ngr\xc3\xbc\xc3\x9f",
    b"CHARSET ISO-8859-1 BODY \"gr\xfc\xdfe\"", b"CHARSET KOI8-R TEXT x",
    b"CHARSET NOSUCH TEXT x", b"TEXT k\xc3\xb6ln", b"BODY hello",
    b"HEADER X-Tag work", b"HEADER Subject \"\"", b"BCC \"\"",
    b"OR FROM smith NOT SEEN", b"NOT (FLAGGED OR DELETED DRAFT)",
    b"SEEN ANSWERED FLAGGED DELETED DRAFT RECENT NEW OLD",
    b"UNSEEN UNANSWERED UNFLAGGED UNDELETED UNDRAFT",
    b"KEYWORD work UNKEYWORD junk KEYWORD $Forwarded KEYWORD nosuch",
    b"LARGER 100 SMALLER 100000", b"LARGER 4294967295", b"SMALLER 0",
    b"BEFORE 1-Jan-2024 ON 20-Feb-2024 SINCE 01-feb-1994",
    b"SENTBEFORE 1-Mar-2024 SENTON 20-Feb-2024 SENTSINCE 1-Jan-1970",
    b"1:2,*", b"UID 5:*", b"UID 1,10 2", b"$", b"(((ALL)))",
    b"OR OR OR SEEN FLAGGED DRAFT (NOT ANSWERED)", b"NOT NOT NOT ALL",
    b"BEFORE 30-Feb-2024", b"ON 1-Foo-2024", b"LARGER -1", b"FROM",
    b"CHARSET", b"()", b"SUBJECT ~{3}\r\nabc",
]
search = []
for i, c in enumerate(CRITERIA):
    search.append(c + b"\r\n" + (MSG if i % 2 == 0 else MULTI))
search.append(b"ALL\r\n")
write("search", search)
# ---- section: the text of BODY[...] ----
write("section", [
    "", "1", "1.2", "3.1.2", "HEADER", "TEXT", "1.MIME", "2.2.MIME",
    "3.HEADER", "3.TEXT", "3.1", "HEADER.FIELDS (From Subject)",
    "header.fields.not (received \"X-Y\")", "1.HEADER.FIELDS (To)",
    "HEADER.FIELDS ()", "HEADER.FIELDS (\"unterminated)", "0", "MIME",
    "4294967296", "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20."
    "21.22.23.24.25.26.27.28.29.30.31.32.33", "1.", ".1", "1..2",
    "HEADER.FIELDS (From) x", "TEXT.HEADER",
])
# ---- sasl: an AUTHENTICATE PLAIN response line (base64) ----
write("sasl", [base64.b64encode(m) for m in [
    b"\0alice\0secret", b"alice\0alice\0secret", b"bob\0alice\0x",
    b"\0\0secret", b"\0alice\0", b"alice\0secret", b"\0a\0b\0c",
    b"\0" + b"u" * 256 + b"\0p", b"\0u\0" + b"p" * 1025, b"",
    b"\0\xc3\xa9\0\xff",
]] + [b"=", b"*", b"QQ==", b"QR==", b"QUJD", b"QUI=", b"Q", b"QU JD",
      b"!!not base64!!", b"YW=J", b"%%%%"])
# ---- lmtp: one chunk-seed byte, then the client's stream ----
LMTP = [
    b"LHLO mx.example\r\nMAIL FROM:<a@example.org>\r\n"
    b"RCPT TO:<alice@example.org>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n"
    b"..dot\r\n.\r\nQUIT\r\n",
    b"MAIL FROM:<> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<Alice+tag@x>\r\n",
    b"MAIL FROM: <@r1,@r2:u@d>\r\nRCPT TO:<\"q u\\\"x\"@d>\r\n",
    b"RCPT TO:<bob>\r\nRCPT TO:<BOB+x>\r\nRCPT TO:<@x:y@z> FOO=1\r\n",
    b"DATA\r\n.\r\n",
    b"DATA\r\n.\rx\r\n.\r\r\n\nbare lf\n.\r\n",
    b"DATA\r\nno end\r\n.",
    b"DATA\r\nend\r\n.\r",
    b"mail from:<a@b>\nrcpt to:<c@d>\ndata\n",
    b"HELO x\r\nEHLO y\r\n\r\nM@IL x\r\nNOOP \x01\r\nVRFY\r\n",
    b"MAIL FROM:<a@>\r\nMAIL FROM:<@a>\r\nMAIL FROM:<a>b\r\n"
    b"MAIL FROM:a@b\r\nMAIL FROM:<\"a\r\n",
]
write("lmtp", [bytes([i * 37 % 256]) + m for i, m in enumerate(LMTP)])
print("written under", os.path.join(HERE, "corpus"), file=sys.stderr)
