"""SEARCH with the search data of the index (docs/DESIGN.md, "Search"):
header values stored by the first search of a field, BODY text under a
trigram full-text index.  The answers must be the same whether or not
the index holds the data; these tests also show that the data is used
(a file changed behind the server's back is not read again), that
expunge removes it, COPY carries it, and that an index that was rebuilt
or written by an older version gets it back.
"""
import os
import sqlite3
import zlib

import pytest

from helpers import Server
from test_search import (MESSAGES, USER, find_file, search, seed, select,
                         start_server, stop_server)

CRITERIA = [
    'HEADER Subject "meeting"',
    'HEADER Subject "tomorrow"',
    'HEADER Subject "meeting   tomorrow"',
    'SUBJECT "meeting tomorrow"',
    'SUBJECT "grüße"',
    'SUBJECT "CAFÉ"',
    'SUBJECT ""',
    'HEADER X-Priority ""',
    'HEADER X-Priority "HIGH"',
    'HEADER Message-ID "example.com"',
    'HEADER "X Odd" "x"',
    'FROM "doe, john"',
    'FROM "\\"doe, john\\" <john@"',
    'FROM "jürgen"',
    'FROM "françois"',
    'TO "bob@example.org"',
    'CC "carol"',
    'BCC "secret"',
    'BODY "noon"',
    'BODY "conference room"',
    'BODY "grüße aus dem"',
    'BODY "straße 5"',
    'BODY "crème"',
    'BODY "quarterly"',
    'BODY "hidden-attachment"',
    'BODY "embedded body"',
    'BODY "embedded subject"',
    'BODY "amet lorem"',
    'BODY "добрый"',
    'BODY "no"',
    'BODY "a"',
    'BODY "nowhere-to-be-found"',
    'TEXT "embedded subject"',
    'TEXT "meeting"',
    'OR SUBJECT "report" BODY "noon"',
    'NOT BODY "lorem"',
    'SEEN BODY "e"',
    'FLAGGED SUBJECT "café"',
    'NOT HEADER Subject ""',
]


def index_path(srv):
    return os.path.join(srv.data_dir, "users", USER, "index.sqlite")


def unzip(z, size):
    text = zlib.decompress(z)
    assert len(text) == size
    return text.decode()


def db(srv):
    d = sqlite3.connect(index_path(srv), timeout=10)
    d.execute("PRAGMA foreign_keys = ON")
    # The server's functions that the search_text view and the triggers
    # keeping search_fts in step call (index/sqlite.c).
    d.create_function("herald_unzip", 2, unzip, deterministic=True)
    d.create_function("herald_zip", 1,
                      lambda t: zlib.compress(t.encode()),
                      deterministic=True)
    return d


def count(srv, sql, *args):
    d = db(srv)
    try:
        return d.execute(sql, args).fetchone()[0]
    finally:
        d.close()


def wipe(srv):
    d = db(srv)
    try:
        with d:
            d.execute("DELETE FROM search_header")
            d.execute("DELETE FROM search_header_fields")
            d.execute("DELETE FROM search_body")
    finally:
        d.close()


def answers(c, criteria=CRITERIA):
    return [search(c, "CHARSET UTF-8 " + k if any(ord(ch) > 127
                                                    for ch in k) else k,
                   uid=True)
            for k in criteria]


def fts_ok(srv):
    d = db(srv)
    try:
        d.execute("INSERT INTO search_fts (search_fts, rank)"
                  " VALUES ('integrity-check', 1)")
    finally:
        d.close()


@pytest.fixture
def srv(tmp_path):
    s = start_server(tmp_path / "srv", lambda d: seed(d, USER, MESSAGES))
    yield s
    stop_server(s)


def test_same_answers_with_and_without_index(srv):
    c = srv.login(USER)
    select(c)
    # Messages found by a rescan have no search data yet.
    assert count(srv, "SELECT count(*) FROM search_text") == 0
    assert count(srv, "SELECT count(*) FROM search_header") == 0
    first = answers(c)          # from the files; fills the index
    assert count(srv, "SELECT count(*) FROM search_text") == len(MESSAGES)
    assert count(srv, "SELECT count(*) FROM search_header"
                 " WHERE field = 'h:subject'") == len(MESSAGES)
    # Stored compressed; the view serves the text back.
    assert count(srv, "SELECT sum(length(ztext)) < sum(size)"
                 " FROM search_body") == 1
    assert count(srv, "SELECT count(*) FROM search_text"
                 " WHERE text LIKE '%conference room%'") == 1
    second = answers(c)         # from the index
    assert second == first
    wipe(srv)
    third = answers(c)          # from the files again
    assert third == first
    fts_ok(srv)
    # Spot checks against the known answers (test_search.py).
    assert first[CRITERIA.index('SUBJECT ""')] == [1, 2, 3, 4, 6, 7]
    assert first[CRITERIA.index('BODY "embedded body"')] == [7]
    assert first[CRITERIA.index('BODY "embedded subject"')] == []
    assert first[CRITERIA.index('TEXT "embedded subject"')] == [7]
    assert first[CRITERIA.index('BODY "crème"')] == [3]
    c.close()


def test_index_is_used(srv):
    """Once stored, header values and the text index answer without the
    file: a file rewritten behind the server's back (which no Maildir
    writer does) is not read for what the index settles."""
    c = srv.login(USER)
    select(c)
    assert search(c, 'HEADER Subject "meeting"', uid=True) == [1]
    assert search(c, 'BODY "conference"', uid=True) == [1]
    assert search(c, 'BODY "lorem ipsum"', uid=True) == [5]
    m1 = find_file(srv.data_dir, b"Subject: Meeting")
    with open(m1, "wb") as f:
        f.write(b"Subject: changed\n\nnothing here, lorem ipsum\n")
    # Header: from the stored value.
    assert search(c, 'HEADER Subject "meeting"', uid=True) == [1]
    assert search(c, 'HEADER Subject "changed"', uid=True) == []
    # BODY: the text index rules message 1 out for "lorem ipsum"...
    assert search(c, 'BODY "lorem ipsum"', uid=True) == [5]
    # ...but a candidate is always confirmed on the file.
    assert search(c, 'BODY "conference"', uid=True) == []
    # Without the index data, the file decides.
    wipe(srv)
    assert search(c, 'HEADER Subject "changed"', uid=True) == [1]
    assert search(c, 'BODY "lorem ipsum"', uid=True) == [1, 5]
    c.close()


def append(c, data, box="INBOX", tag="A1"):
    c.send(("%s APPEND %s {%d+}\r\n" % (tag, box, len(data))).encode() +
           data + b"\r\n")
    untagged, tagged = c.read_tagged(tag)
    assert tagged.startswith(tag + " OK"), tagged


def test_append_expunge_copy(srv):
    c = srv.login(USER)
    select(c)
    n = len(MESSAGES)
    for i in range(3):
        append(c, b"Subject: new %d\r\n\r\nappended text number%d\r\n"
               % (i, i), tag="A%d" % i)
    # Indexed when appended (fts_index_on_delivery = yes).
    assert count(srv, "SELECT count(*) FROM search_text") == 3
    assert count(srv, "SELECT count(*) FROM search_text"
                 " WHERE text LIKE '%appended text number1%'") == 1
    select(c)
    assert search(c, 'BODY "text number"', uid=True) == [n + 1, n + 2, n + 3]
    assert search(c, 'SUBJECT "new 1"', uid=True) == [n + 2]
    # COPY and MOVE carry the search data along.
    _, tagged = c.command("K1", "CREATE Archive")
    _, tagged = c.command("C1", "UID COPY %d Archive" % (n + 1))
    assert tagged.startswith("C1 OK"), tagged
    _, tagged = c.command("C2", "UID MOVE %d Archive" % (n + 3))
    assert tagged.startswith("C2 OK"), tagged
    assert count(srv, "SELECT count(*) FROM search_text t JOIN mailboxes m"
                 " ON m.id = t.mailbox_id WHERE m.name = 'Archive'") == 2
    # (The five fields stored at delivery, for each message.)
    assert count(srv, "SELECT count(*) FROM search_header h JOIN mailboxes"
                 " m ON m.id = h.mailbox_id WHERE m.name = 'Archive'") == 10
    # Expunge removes the rows, and with them the full-text entries.
    _, tagged = c.command("S1", "UID STORE %d +FLAGS.SILENT (\\Deleted)"
                          % (n + 2))
    assert tagged.startswith("S1 OK"), tagged
    _, tagged = c.command("E1", "EXPUNGE")
    assert tagged.startswith("E1 OK"), tagged
    # (Message 6 had \Deleted too.)
    left = search(c, "ALL", uid=True)
    assert n + 1 in left and n + 2 not in left and 6 not in left
    assert count(srv, "SELECT count(*) FROM search_text t JOIN mailboxes m"
                 " ON m.id = t.mailbox_id WHERE m.name = 'INBOX'") == len(left)
    assert count(srv, "SELECT count(*) FROM search_header h JOIN mailboxes"
                 " m ON m.id = h.mailbox_id WHERE m.name = 'INBOX'"
                 " AND h.uid = ?", n + 2) == 0
    assert count(srv, "SELECT count(*) FROM search_fts"
                 " WHERE search_fts MATCH '\"er1\"'") == 0
    fts_ok(srv)
    assert search(c, 'BODY "text number"', uid=True) == [n + 1]
    select(c, "Archive")
    assert search(c, 'BODY "text number"', uid=True) == [1, 2]
    assert search(c, 'SUBJECT "new"', uid=True) == [1, 2]
    # Deleting the mailbox drops its rows (and full-text entries).
    select(c)
    _, tagged = c.command("D1", "DELETE Archive")
    assert tagged.startswith("D1 OK"), tagged
    assert count(srv, "SELECT count(*) FROM search_fts"
                 " WHERE search_fts MATCH '\"er2\"'") == 0
    fts_ok(srv)
    c.close()


def test_delivery_indexing_off(tmp_path):
    s = Server(tmp_path / "srv", settings={
        "fsync": "no", "fts_index_on_delivery": "no"})
    s.start()
    try:
        c = s.login(USER)
        select(c)
        append(c, b"Subject: x\r\n\r\nlate indexing\r\n")
        assert count(s, "SELECT count(*) FROM search_text") == 0
        assert count(s, "SELECT count(*) FROM search_header") == 0
        select(c)
        assert search(c, 'BODY "late index"', uid=True) == [1]
        assert count(s, "SELECT count(*) FROM search_text") == 1
        c.close()
    finally:
        stop_server(s)


def test_rebuilt_and_old_index(srv):
    c = srv.login(USER)
    select(c)
    want = answers(c)
    c.close()
    srv.stop()
    # A version 1 index (before the search tables) is upgraded.
    d = db(srv)
    with d:
        d.execute("DROP VIEW search_text")
        for t in ("search_fts", "search_body", "search_header",
                  "search_header_fields"):
            d.execute("DROP TABLE %s" % t)
        d.execute("UPDATE schema_version SET version = 1")
    d.close()
    srv.launch()
    c = srv.login(USER)
    select(c)
    assert count(srv, "SELECT version FROM schema_version") == 3
    assert answers(c) == want
    assert count(srv, "SELECT count(*) FROM search_text") == len(MESSAGES)
    c.close()
    srv.stop()
    # A lost index is rebuilt from the Maildir; searches refill it.
    for sfx in ("", "-wal", "-shm"):
        if os.path.exists(index_path(srv) + sfx):
            os.unlink(index_path(srv) + sfx)
    srv.launch()
    c = srv.login(USER)
    select(c)
    assert answers(c) == want
    assert count(srv, "SELECT count(*) FROM search_text") == len(MESSAGES)
    fts_ok(srv)
    c.close()


DELIVERED = [
    b"From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.org>\r\n"
    b"To: \"Doe, John\" <john@example.com>, bob@example.org\r\n"
    b"Cc: team: carol@example.net, dave@example.net;\r\n"
    b"Subject: Quarterly   report\r\n\tfolded\r\n"
    b"\r\nbody one\r\n",
    b"From: bob@example.org\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\n"
    b"Subject: second subject\r\n\r\nbody two\r\n",
    b"To: nobody@example.org\r\n\r\nno subject, no from\r\n",
]

DELIVERED_CRITERIA = [
    'SUBJECT "quarterly report folded"', 'SUBJECT "report"',
    'HEADER Subject "quarterly   report"', 'SUBJECT "café"',
    'SUBJECT "second"', 'SUBJECT ""', 'HEADER Subject ""',
    'FROM "jürgen"', 'FROM "<j@example.org>"', 'FROM ""', 'FROM "bob"',
    'TO "\\"doe, john\\" <john@"', 'TO "bob@example.org"', 'TO ""',
    'CC "team: <carol@example.net>"', 'CC "dave"', 'CC ""',
    'OR FROM "bob" CC "carol"', 'NOT TO "nobody"',
]


def test_header_values_stored_at_delivery(tmp_path):
    """APPEND stores the values of Subject, From, To and Cc that SUBJECT,
    HEADER Subject, FROM, TO and CC compare against: the first search
    opens no file, and the answers are those of the files."""
    s = Server(tmp_path / "srv", settings={"fsync": "no"})
    s.start()
    try:
        c = s.login(USER)
        select(c)
        for i, m in enumerate(DELIVERED):
            append(c, m, tag="A%d" % i)
        fields = ("a:cc", "a:from", "a:to", "h:subject", "s:subject")
        for f in fields:
            assert count(s, "SELECT count(*) FROM search_header"
                         " WHERE field = ?", f) == len(DELIVERED)
            assert count(s, "SELECT count(*) FROM search_header_fields"
                         " WHERE field = ?", f) == 1
        select(c)
        stored = answers(c, DELIVERED_CRITERIA)       # from the stored values
        assert stored[DELIVERED_CRITERIA.index('SUBJECT "café"')] == [2]
        assert stored[DELIVERED_CRITERIA.index('CC "dave"')] == [1]
        assert stored[DELIVERED_CRITERIA.index('SUBJECT ""')] == [1, 2]
        # The same as from the files.
        d = db(s)
        with d:
            d.execute("DELETE FROM search_header")
        d.close()
        assert answers(c, DELIVERED_CRITERIA) == stored
        # Stored values are used: a file rewritten behind the server's
        # back (which no Maildir writer does) is not read.
        append(c, b"From: zed@example.org\r\nSubject: marker-42\r\n\r\n"
               b"x\r\n", tag="B1")
        select(c)
        uid = len(DELIVERED) + 1
        with open(find_file(s.data_dir, b"marker-42"), "wb") as f:
            f.write(b"From: other@example.org\r\nSubject: changed\r\n\r\n"
                    b"x\r\n")
        assert search(c, 'SUBJECT "marker-42"', uid=True) == [uid]
        assert search(c, 'FROM "zed@"', uid=True) == [uid]
        assert search(c, 'SUBJECT "changed"', uid=True) == []
        c.close()
    finally:
        stop_server(s)


# The search tables of version 2 (commit ec855c6): the text uncompressed.
V2_SQL = """
DROP TRIGGER search_body_ai;
DROP TRIGGER search_body_ad;
DROP VIEW search_text;
CREATE TABLE search_text (
 id INTEGER PRIMARY KEY,
 mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
 uid INTEGER NOT NULL,
 text TEXT NOT NULL,
 UNIQUE (mailbox_id, uid));
INSERT INTO search_text (id, mailbox_id, uid, text)
 SELECT id, mailbox_id, uid, herald_unzip(ztext, size) FROM search_body;
DROP TABLE search_body;
CREATE TRIGGER search_text_ai AFTER INSERT ON search_text BEGIN
 INSERT INTO search_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER search_text_ad AFTER DELETE ON search_text BEGIN
 INSERT INTO search_fts (search_fts, rowid, text)
  VALUES ('delete', old.id, old.text);
END;
UPDATE schema_version SET version = 2;
"""


def test_version_2_index_upgraded(srv):
    """A version 2 index keeps its full-text index and its texts, now
    compressed, and is vacuumed."""
    c = srv.login(USER)
    select(c)
    for i in range(2):
        append(c, b"Subject: v2 %d\r\n\r\nupgraded text number%d\r\n"
               % (i, i), tag="A%d" % i)
    select(c)
    want = answers(c)
    want_new = search(c, 'BODY "text number"', uid=True)
    assert len(want_new) == 2
    c.close()
    srv.stop()
    d = db(srv)
    d.executescript(V2_SQL)
    # Consistent as version 2 wrote it.
    d.execute("INSERT INTO search_fts (search_fts, rank)"
              " VALUES ('integrity-check', 1)")
    n_texts = d.execute("SELECT count(*) FROM search_text").fetchone()[0]
    d.close()
    assert n_texts == len(MESSAGES) + 2
    srv.launch()
    c = srv.login(USER)
    select(c)
    assert count(srv, "SELECT version FROM schema_version") == 3
    assert count(srv, "SELECT type FROM sqlite_master"
                 " WHERE name = 'search_text'") == "view"
    assert count(srv, "SELECT count(*) FROM search_body") == n_texts
    assert count(srv, "SELECT count(*) FROM sqlite_master"
                 " WHERE name LIKE 'search_text_a_'") == 0
    assert count(srv, "PRAGMA freelist_count") == 0
    fts_ok(srv)
    # The migrated texts are used (no file is read for them) and give
    # the same answers.
    assert answers(c) == want
    assert count(srv, "SELECT count(*) FROM search_body") == n_texts
    assert search(c, 'BODY "text number"', uid=True) == want_new
    # Expunging a migrated text removes exactly what was indexed.
    _, tagged = c.command("S1", "UID STORE %d +FLAGS.SILENT (\\Deleted)"
                          % want_new[0])
    assert tagged.startswith("S1 OK"), tagged
    _, tagged = c.command("E1", "EXPUNGE")
    assert tagged.startswith("E1 OK"), tagged
    assert count(srv, "SELECT count(*) FROM search_fts"
                 " WHERE search_fts MATCH '\"er0\"'") == 0
    assert search(c, 'BODY "text number"', uid=True) == want_new[1:]
    fts_ok(srv)
    c.close()
