#!/usr/bin/python3
"""Capture Dovecot's FETCH answers for messages, as golden files for
tests/unit/test_mime_golden.c.

How the files in golden/ were produced (run once, as root, on a machine with
Debian's dovecot-imapd 2.3.19.1):

    python3 tests/unit/data/mime/capture.py OUTDIR MSG.eml...

Each message is put alone into a fresh Maildir, Dovecot's imap binary is run
in PREAUTH mode on stdin (as uid 65534, from a throw-away config) and the
FETCH items listed in ITEMS are split out of the untagged FETCH response.
The golden file has one record per item:

    <item name>\\n<byte count>\\n<bytes>\\n

where bytes is the item's value exactly as Dovecot sent it (literals
included).  Names of messages taken from the corpus are the corpus path with
'/' replaced by '__'.
"""
import os
import shutil
import subprocess
import sys
import tempfile

SECTIONS = ['', 'HEADER', 'TEXT', '1', '1.MIME', '2', '2.MIME', '1.1',
            '2.1', '2.HEADER', '2.TEXT', '3', '3.1', '2.2.1',
            'HEADER.FIELDS (From To Subject Content-Type)',
            'HEADER.FIELDS.NOT (Received From Content-Type)',
            '2.HEADER.FIELDS (Subject)']
ITEMS = ['ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'RFC822.SIZE'] + \
        ['BODY.PEEK[%s]' % s for s in SECTIONS]

CONF = """protocols = imap
base_dir = {d}/run
mail_location = maildir:{d}/md
ssl = no
log_path = {d}/dovecot.log
passdb {{
  driver = static
  args = password=x
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={d}/home
}}
mail_uid = 65534
mail_gid = 65534
first_valid_uid = 0
first_valid_gid = 0
"""


def parse_value(b, i):
    """Return the index after the IMAP value starting at b[i]."""
    c = b[i:i + 1]
    if c == b'(':
        i += 1
        while b[i:i + 1] != b')':
            if b[i:i + 1] == b' ':
                i += 1
                continue
            i = parse_value(b, i)
        return i + 1
    if c == b'"':
        i += 1
        while b[i:i + 1] != b'"':
            if b[i:i + 1] == b'\\':
                i += 1
            i += 1
        return i + 1
    if c == b'{':
        j = b.index(b'}', i)
        n = int(b[i + 1:j].rstrip(b'+'))
        return j + 3 + n
    while b[i:i + 1] not in (b' ', b')'):
        i += 1
    return i


def fetch_items(resp):
    start = resp.index(b'* 1 FETCH (') + len(b'* 1 FETCH (')
    i = start
    out = []
    while resp[i:i + 1] != b')':
        if resp[i:i + 1] == b' ':
            i += 1
            continue
        j = i
        depth = 0
        while True:
            ch = resp[j:j + 1]
            if ch == b'[':
                depth += 1
            elif ch == b']':
                depth -= 1
            elif ch == b' ' and depth == 0:
                break
            j += 1
        name = resp[i:j].decode()
        k = parse_value(resp, j + 1)
        out.append((name, resp[j + 1:k]))
        i = k
    return out


def capture(path, outdir, name):
    d = tempfile.mkdtemp(prefix='herald-mime-')
    try:
        for sub in ('md/cur', 'md/new', 'md/tmp', 'home', 'run'):
            os.makedirs(os.path.join(d, sub))
        shutil.copy(path, os.path.join(d, 'md/cur/1000000000.M1P1.h:2,'))
        with open(os.path.join(d, 'dovecot.conf'), 'w') as f:
            f.write(CONF.format(d=d))
        subprocess.run(['chown', '-R', '65534:65534', d], check=True)
        os.chmod(d, 0o755)
        cmd = 'a SELECT INBOX\r\nb FETCH 1 (%s)\r\nc LOGOUT\r\n' % \
            ' '.join(ITEMS)
        env = dict(USER='nobody', HOME=d + '/home',
                   MAIL='maildir:' + d + '/md')
        r = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534',
                            '--clear-groups', '/usr/lib/dovecot/imap',
                            '-c', d + '/dovecot.conf'],
                           input=cmd.encode(), capture_output=True,
                           env=env, timeout=30)
        items = fetch_items(r.stdout)
        with open(os.path.join(outdir, name + '.golden'), 'wb') as f:
            for n, v in items:
                # Dovecot answers BODY.PEEK[x] as BODY[x].
                f.write(n.encode() + b'\n' + str(len(v)).encode() + b'\n' +
                        v + b'\n')
    finally:
        shutil.rmtree(d)


def main():
    outdir = sys.argv[1]
    for p in sys.argv[2:]:
        name = os.path.basename(p)[:-4]
        corpus = os.environ.get('HERALD_CORPUS')
        if corpus and os.path.abspath(p).startswith(
                os.path.abspath(corpus) + '/'):
            name = os.path.relpath(p, corpus)[:-4].replace('/', '__')
        capture(p, outdir, name)


if __name__ == '__main__':
    main()
