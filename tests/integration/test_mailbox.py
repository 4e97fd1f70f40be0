"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST,
LSUB, STATUS and NAMESPACE (RFC 3501 6.3), with LIST-EXTENDED (RFC 5258),
CHILDREN (RFC 3348), SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154),
LIST-STATUS (RFC 5819) and modified UTF-7 names (RFC 3501 5.1.3).

Where the RFCs leave a choice the expected answers are Dovecot 2.3's
(compared by hand against Debian's dovecot-imapd): SUBSCRIBE needs an
existing mailbox, subscriptions stay behind on RENAME, DELETE of the
selected mailbox succeeds and disconnects, STATUS echoes the name and
answers in a fixed item order, an extended LIST reports children and
special use only when asked.

Every test logs in as a user of its own, so tests do not see each other's
mailboxes.
"""
import imaplib
import itertools
import os
import time

import pytest

SERVER_SETTINGS = {"fsync": "no"}

PASSWORD = "mailbox-Secret-1"
_users = itertools.count(1)
_tags = itertools.count(1)

DEFAULT_LIST = [
    '* LIST (\\HasNoChildren) "/" INBOX',
    '* LIST (\\HasNoChildren \\Archive) "/" Archive',
    '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
    '* LIST (\\HasNoChildren \\Junk) "/" Junk',
    '* LIST (\\HasNoChildren \\Sent) "/" Sent',
    '* LIST (\\HasNoChildren \\Trash) "/" Trash',
]

SELECTED = "OK [CLIENTBUG] Status on selected mailbox completed."

MESSAGE = ("From: Sender <sender@example.org>\r\n"
           "To: someone@example.org\r\n"
           "Subject: %s\r\n"
           "\r\n"
           "Hello.\r\n")


# --- helpers -----------------------------------------------------------------

def new_user(server):
    name = "mbox%d" % next(_users)
    server.add_user(name, PASSWORD)
    server.users[name] = PASSWORD
    return name


@pytest.fixture
def c(server):
    """A logged-in raw connection of a fresh user (.user is the name)."""
    name = new_user(server)
    conn = server.login(name)
    conn.user = name
    yield conn
    conn.close()


def run(c, text):
    """Send a command with a fresh tag; returns (untagged, tagged) with the
    tag stripped from the tagged line."""
    tag = "M%d" % next(_tags)
    untagged, tagged = c.command(tag, text)
    return untagged, tagged[len(tag) + 1:]


def ok(c, text, reply=None):
    untagged, tagged = run(c, text)
    assert tagged.startswith("OK"), (text, untagged, tagged)
    if reply is not None:
        assert tagged == reply, (text, tagged)
    return untagged


def no(c, text, reply):
    untagged, tagged = run(c, text)
    assert tagged == reply, (text, untagged, tagged)
    return untagged


def bad(c, text):
    untagged, tagged = run(c, text)
    assert tagged.startswith("BAD "), (text, untagged, tagged)
    assert untagged == [], untagged


def maildir(server, user):
    return os.path.join(server.data_dir, "users", user, "Maildir")


def drop(server, user, subject, folder="", seen=False):
    """Put a message into a Maildir folder the way another program would
    (folder is the Maildir++ name, e.g. ".Sent")."""
    base = os.path.join(maildir(server, user), folder)
    name = "%d.P%d.%s.test" % (time.time_ns(), os.getpid(), subject)
    if seen:
        path = os.path.join(base, "cur", name + ":2,S")
    else:
        path = os.path.join(base, "new", name)
    tmp = os.path.join(base, "tmp", name)
    with open(tmp, "w") as f:
        f.write(MESSAGE % subject)
    os.rename(tmp, path)


def status(c, name, items="MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN",
           reply="OK Status completed."):
    """The STATUS values as a dict."""
    untagged = ok(c, "STATUS %s (%s)" % (name, items), reply)
    assert len(untagged) == 1, untagged
    line = untagged[0]
    assert line.startswith("* STATUS ") and line.endswith(")"), line
    words = line[line.rindex("(") + 1:-1].split()
    return {k: int(v) for k, v in zip(words[0::2], words[1::2])}


# --- NAMESPACE and the LIST "" "" special case -------------------------------

def test_namespace(c):
    assert ok(c, "NAMESPACE", "OK Namespace completed.") == \
        ['* NAMESPACE (("" "/")) NIL NIL']
    bad(c, "NAMESPACE x")


@pytest.mark.parametrize("ref,root", [
    ('""', '""'),
    ('"x"', '""'),
    ('"foo/"', "foo/"),
    ('"foo/bar/baz"', "foo/"),
    ('"INBOX"', '""'),
])
def test_list_empty_pattern_gives_delimiter(c, ref, root):
    # RFC 3501 6.3.8: the delimiter and the root of the reference.
    assert ok(c, 'LIST %s ""' % ref, "OK List completed.") == \
        ['* LIST (\\Noselect) "/" %s' % root]


def test_extended_list_ignores_empty_pattern(c):
    # RFC 5258 section 3: no delimiter special case in extended LIST.
    assert ok(c, 'LIST () "" ""') == []
    assert ok(c, 'LIST "" "" RETURN ()') == []
    assert ok(c, 'LIST "" ("")') == []
    assert ok(c, 'LIST "" ("" INBOX)') == ['* LIST () "/" INBOX']


# --- default mailboxes and special use ---------------------------------------

def test_default_mailboxes_and_special_use(c):
    assert ok(c, 'LIST "" "*"', "OK List completed.") == DEFAULT_LIST
    assert ok(c, 'LIST "" "%"') == DEFAULT_LIST
    # All of them are subscribed, with their special use in LSUB too.
    assert ok(c, 'LSUB "" "*"', "OK Lsub completed.") == [
        '* LSUB () "/" INBOX',
        '* LSUB (\\Archive) "/" Archive',
        '* LSUB (\\Drafts) "/" Drafts',
        '* LSUB (\\Junk) "/" Junk',
        '* LSUB (\\Sent) "/" Sent',
        '* LSUB (\\Trash) "/" Trash',
    ]
    # RFC 6154: the selection option lists only special-use mailboxes.
    assert ok(c, 'LIST (SPECIAL-USE) "" "*"') == [
        '* LIST (\\Archive) "/" Archive',
        '* LIST (\\Drafts) "/" Drafts',
        '* LIST (\\Junk) "/" Junk',
        '* LIST (\\Sent) "/" Sent',
        '* LIST (\\Trash) "/" Trash',
    ]
    assert ok(c, 'LIST "" "%" RETURN (SPECIAL-USE)') == [
        '* LIST () "/" INBOX',
        '* LIST (\\Archive) "/" Archive',
        '* LIST (\\Drafts) "/" Drafts',
        '* LIST (\\Junk) "/" Junk',
        '* LIST (\\Sent) "/" Sent',
        '* LIST (\\Trash) "/" Trash',
    ]
    assert ok(c, 'LIST (SPECIAL-USE) "" "*" RETURN (CHILDREN)') == [
        '* LIST (\\HasNoChildren \\Archive) "/" Archive',
        '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        '* LIST (\\HasNoChildren \\Junk) "/" Junk',
        '* LIST (\\HasNoChildren \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren \\Trash) "/" Trash',
    ]
    # Extended LIST without return options: attributes only.
    assert ok(c, 'LIST () "" "*"') == [
        '* LIST () "/" %s' % n for n in
        ("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash")]


def test_special_use_follows_rename(c):
    ok(c, "RENAME Sent Sent-Items", "OK Rename completed.")
    assert ok(c, 'LIST "" "Sent*"') == [
        '* LIST (\\HasNoChildren \\Sent) "/" Sent-Items']
    ok(c, "CREATE Sent")
    assert ok(c, 'LIST "" "Sent*"') == [
        '* LIST (\\HasNoChildren) "/" Sent',
        '* LIST (\\HasNoChildren \\Sent) "/" Sent-Items']


def test_create_special_use(c):
    # RFC 6154 section 3.
    ok(c, "CREATE Spam (USE (\\Junk))", "OK Create completed.")
    ok(c, "CREATE Plain (USE ())")
    assert ok(c, 'LIST "" "Spam"') == [
        '* LIST (\\HasNoChildren \\Junk) "/" Spam']
    assert ok(c, 'LIST "" "Plain"') == ['* LIST (\\HasNoChildren) "/" Plain']
    no(c, "CREATE Everything (USE (\\All))",
       "NO [USEATTR] Special-use attribute not supported.")
    no(c, "CREATE Everything (USE (\\Flagged))",
       "NO [USEATTR] Special-use attribute not supported.")
    no(c, "CREATE Everything (USE (\\Bogus))",
       "NO [USEATTR] Special-use attribute not supported.")
    no(c, "CREATE Two (USE (\\Drafts \\Sent))",
       "NO [USEATTR] Only one special-use attribute per mailbox is "
       "supported.")
    bad(c, "CREATE Two (USE \\Drafts)")
    bad(c, "CREATE Two (USE (Drafts))")
    bad(c, "CREATE Two (FOO (\\Drafts))")
    bad(c, "CREATE Two (USE)")
    bad(c, "CREATE Two extra")
    # Nothing was created by the failures.
    assert ok(c, 'LIST "" "Everything"') == []
    assert ok(c, 'LIST "" "Two"') == []


# --- CREATE and wildcards ----------------------------------------------------

def test_create_hierarchy_and_wildcards(c):
    ok(c, "CREATE a/b/c", "OK Create completed.")
    ok(c, "CREATE a/x")
    ok(c, "CREATE ab")
    # Missing parents were created as real mailboxes.
    assert ok(c, 'LIST "" "a*"') == [
        '* LIST (\\HasChildren) "/" a',
        '* LIST (\\HasChildren) "/" a/b',
        '* LIST (\\HasNoChildren) "/" a/b/c',
        '* LIST (\\HasNoChildren) "/" a/x',
        '* LIST (\\HasNoChildren) "/" ab',
    ]
    assert ok(c, 'LIST "" "a%"') == [
        '* LIST (\\HasChildren) "/" a',
        '* LIST (\\HasNoChildren) "/" ab',
    ]
    assert ok(c, 'LIST "" "a/%"') == [
        '* LIST (\\HasChildren) "/" a/b',
        '* LIST (\\HasNoChildren) "/" a/x',
    ]
    assert ok(c, 'LIST "" "%/%/%"') == [
        '* LIST (\\HasNoChildren) "/" a/b/c']
    assert ok(c, 'LIST "" "%/%"') == [
        '* LIST (\\HasChildren) "/" a/b',
        '* LIST (\\HasNoChildren) "/" a/x',
    ]
    assert ok(c, 'LIST "" "*/c"') == ['* LIST (\\HasNoChildren) "/" a/b/c']
    assert ok(c, 'LIST "" "%c"') == []
    assert ok(c, 'LIST "" "*c"') == ['* LIST (\\HasNoChildren) "/" a/b/c']
    assert ok(c, 'LIST "" "a/*"') == [
        '* LIST (\\HasChildren) "/" a/b',
        '* LIST (\\HasNoChildren) "/" a/b/c',
        '* LIST (\\HasNoChildren) "/" a/x',
    ]
    assert ok(c, 'LIST "" "%*%"') == ok(c, 'LIST "" "*"')
    # Exact names, and case sensitivity outside INBOX.
    assert ok(c, 'LIST "" a/b') == ['* LIST (\\HasChildren) "/" a/b']
    assert ok(c, 'LIST "" A/B') == []
    assert ok(c, 'LIST "" "/a"') == []
    assert ok(c, 'LIST "" "a/"') == []


@pytest.mark.parametrize("ref,pattern,names", [
    ("a", "%", ["a", "ab"]),            # plain concatenation: "a%"
    ("a/", "%", ["a/b", "a/x"]),
    ("a/", "*", ["a/b", "a/b/c", "a/x"]),
    ("a/b/", "%", ["a/b/c"]),
    ("a/b", "/%", ["a/b/c"]),
    ("a/", "b", ["a/b"]),
    ("nothere/", "*", []),
    ("", "a/b/c", ["a/b/c"]),
])
def test_list_reference(c, ref, pattern, names):
    ok(c, "CREATE a/b/c")
    ok(c, "CREATE a/x")
    ok(c, "CREATE ab")
    got = ok(c, 'LIST "%s" "%s"' % (ref, pattern))
    assert [line.split('"/" ')[1] for line in got] == names


def test_inbox_is_case_insensitive(c):
    ok(c, "CREATE inbox/sub", "OK Create completed.")
    inbox = '* LIST (\\HasChildren) "/" INBOX'
    sub = '* LIST (\\HasNoChildren) "/" INBOX/sub'
    for pattern in ("inbox", "Inbox", "INBOX", "iNbOx"):
        assert ok(c, 'LIST "" %s' % pattern) == [inbox]
    assert ok(c, 'LIST "" "i%"') == [inbox]
    assert ok(c, 'LIST "" "inb*"') == [inbox, sub]
    assert ok(c, 'LIST "" "Inbox/%"') == [sub]
    assert ok(c, 'LIST "inbox/" "%"') == [sub]
    assert ok(c, 'LIST "" INBOX/SUB') == []
    no(c, "CREATE INBOX", "NO [ALREADYEXISTS] Mailbox already exists")
    no(c, "CREATE Inbox/sub", "NO [ALREADYEXISTS] Mailbox already exists")
    assert status(c, "inbox/sub", "MESSAGES") == {"MESSAGES": 0}


def test_create_trailing_delimiter(c):
    # RFC 3501 6.3.3: "foo/" declares that names will be made under it.
    ok(c, 'CREATE "foo/"', "OK Create completed.")
    assert ok(c, 'LIST "" "foo*"') == ['* LIST (\\HasNoChildren) "/" foo']
    no(c, "CREATE foo", "NO [ALREADYEXISTS] Mailbox already exists")
    no(c, 'CREATE "foo/"', "NO [ALREADYEXISTS] Mailbox already exists")
    no(c, 'CREATE "bar//"',
       "NO [CANNOT] Mailbox name has an empty component")
    no(c, 'CREATE "/"', "NO [CANNOT] Mailbox name has an empty component")


@pytest.mark.parametrize("name,reply", [
    ('""', "NO [CANNOT] Mailbox name is empty"),
    ('"/lead"', "NO [CANNOT] Mailbox name has an empty component"),
    ('"a//b"', "NO [CANNOT] Mailbox name has an empty component"),
    ('".."', "NO [CANNOT] Mailbox name has a '.' or '..' component"),
    ('"../x"', "NO [CANNOT] Mailbox name has a '.' or '..' component"),
    ('"a/../b"', "NO [CANNOT] Mailbox name has a '.' or '..' component"),
    ('"a/."', "NO [CANNOT] Mailbox name has a '.' or '..' component"),
    ('"a*b"', "NO [CANNOT] Mailbox name contains a wildcard"),
    ('"a%b"', "NO [CANNOT] Mailbox name contains a wildcard"),
    ('"a\tb"', "NO [CANNOT] Invalid modified UTF-7 in mailbox name."),
    ('"&Jjo"', "NO [CANNOT] Invalid modified UTF-7 in mailbox name."),
    ('"&AGE-"', "NO [CANNOT] Invalid modified UTF-7 in mailbox name."),
    ('"&AAA-x"', "NO [CANNOT] Invalid modified UTF-7 in mailbox name."),
    ('"&AOk-&AOk-"', "NO [CANNOT] Invalid modified UTF-7 in mailbox name."),
    ('"&2D0-"', "NO [CANNOT] Invalid modified UTF-7 in mailbox name."),
    ('"' + "x" * 256 + '"', "NO [CANNOT] Mailbox name is too long"),
    ("/".join(["l"] * 33), "NO [CANNOT] Mailbox hierarchy is too deep"),
])
def test_create_invalid_names(c, name, reply):
    no(c, "CREATE %s" % name, reply)
    assert ok(c, 'LIST "" "*"') == DEFAULT_LIST


def test_names_with_nul_or_8bit_are_refused(c):
    # A literal may carry a NUL, which no mailbox name may hold.
    c.send("N1 CREATE {3}\r\n")
    assert c.readline().startswith("+ ")
    c.send("a\0b\r\n")
    assert c.read_tagged("N1") == ([], "N1 NO [CANNOT] Invalid mailbox name.")
    # 8-bit names need UTF8=ACCEPT, which is not enabled.
    c.send('N2 CREATE "caf\xc3\xa9"\r\n'.encode("latin-1"))
    assert c.read_tagged("N2") == (
        [], "N2 NO [CANNOT] Invalid modified UTF-7 in mailbox name.")
    assert ok(c, 'LIST "" "*"') == DEFAULT_LIST


def test_wrong_arguments_are_bad(c):
    for cmd in ("CREATE", "DELETE", "RENAME", "RENAME a", "RENAME a b c",
                "SUBSCRIBE", "SUBSCRIBE a b", "UNSUBSCRIBE",
                "UNSUBSCRIBE a b", "DELETE a b", "DELETE (a)",
                "CREATE (a)", "LIST", 'LIST ""', 'LIST "" * extra',
                'LIST "" * RETURN', 'LIST "" * RETURN CHILDREN',
                'LIST "" * RETURN (CHILDREN) extra', 'LIST (a) "" *',
                'LIST (SUBSCRIBED) ""', 'LIST () "" ()', 'LIST () () *',
                "LSUB", 'LSUB ""', 'LSUB "" * x', 'LSUB "" (*)',
                "STATUS", "STATUS INBOX", "STATUS INBOX MESSAGES",
                "STATUS INBOX ()", "STATUS INBOX (MESSAGES) x",
                "STATUS INBOX (BOGUS)", "STATUS INBOX (HIGHESTMODSEQ)",
                "STATUS INBOX (SIZE)", "STATUS INBOX ((MESSAGES))",
                "STATUS (INBOX) (MESSAGES)", "NAMESPACE x"):
        bad(c, cmd)
        # Too many BADs in a row would end the session.
        ok(c, "NOOP")
    # The session is fine afterwards.
    assert ok(c, 'LIST "" INBOX') == ['* LIST (\\HasNoChildren) "/" INBOX']


def test_unknown_list_options_are_bad(c):
    _, tagged = run(c, 'LIST (BOGUS) "" "%"')
    assert tagged == "BAD Unknown LIST selection option."
    _, tagged = run(c, 'LIST "" "%" RETURN (BOGUS)')
    assert tagged == "BAD Unknown LIST return option."
    # RFC 5258 3.1: RECURSIVEMATCH alone (or with REMOTE) is BAD.
    for opts in ("(RECURSIVEMATCH)", "(REMOTE RECURSIVEMATCH)",
                 "(SPECIAL-USE RECURSIVEMATCH)"):
        _, tagged = run(c, 'LIST %s "" "%%"' % opts)
        assert tagged == \
            "BAD RECURSIVEMATCH must not be the only selection option."
    ok(c, "NOOP")       # resets the count of BADs in a row
    bad(c, 'LIST "" "%" RETURN (STATUS)')
    bad(c, 'LIST "" "%" RETURN (STATUS ())')
    bad(c, 'LIST "" "%" RETURN (STATUS (BOGUS))')
    # REMOTE is accepted and changes nothing: no remote mailboxes.
    assert ok(c, 'LIST (REMOTE) "" "%"') == ok(c, 'LIST () "" "%"')


# --- quoting and modified UTF-7 ----------------------------------------------

def test_names_are_quoted_as_needed(c):
    names = [
        ('"with space"', '"with space"'),
        ('"q\\"uote"', '"q\\"uote"'),
        ('"back\\\\slash"', '"back\\\\slash"'),
        ('NIL', '"NIL"'),
        ('nil', '"nil"'),
        ('"br]ack"', "br]ack"),
        ('"{brace}"', '"{brace}"'),
        ('"(paren)"', '"(paren)"'),
        ('a.b', "a.b"),
        ('"~x+y,z&-"', "~x+y,z&-"),
    ]
    for arg, listed in names:
        ok(c, "CREATE %s" % arg, "OK Create completed.")
        assert ok(c, 'LIST "" %s' % arg) == [
            '* LIST (\\HasNoChildren) "/" %s' % listed]
        assert status(c, arg, "MESSAGES") == {"MESSAGES": 0}
    # A literal name.
    c.send("N1 CREATE {7}\r\n")
    assert c.readline().startswith("+ ")
    c.send("lit ral\r\n")
    assert c.read_tagged("N1") == ([], "N1 OK Create completed.")
    assert ok(c, 'LIST "" "lit*"') == [
        '* LIST (\\HasNoChildren) "/" "lit ral"']
    # STATUS echoes the name as written.
    assert ok(c, 'STATUS {7+}\r\nlit ral (MESSAGES)') == [
        '* STATUS "lit ral" (MESSAGES 0)']


def test_non_ascii_names_round_trip(server, c):
    # U+65E5 U+672C U+8A9E and U+53F0 U+5317 (RFC 3501 5.1.3), an e-acute,
    # and an emoji outside the BMP (a surrogate pair in UTF-16).
    ok(c, "CREATE &ZeVnLIqe-", "OK Create completed.")
    ok(c, "CREATE &ZeVnLIqe-/&U,BTFw-")
    ok(c, 'CREATE "Caf&AOk-"')
    ok(c, 'CREATE "&2D3eAA- smile"')
    # Sorted by UTF-8 bytes: "Caf\u00e9" between Archive and Drafts.
    assert ok(c, 'LIST "" "*"') == DEFAULT_LIST[:2] + [
        '* LIST (\\HasNoChildren) "/" Caf&AOk-'] + DEFAULT_LIST[2:] + [
        '* LIST (\\HasChildren) "/" &ZeVnLIqe-',
        '* LIST (\\HasNoChildren) "/" &ZeVnLIqe-/&U,BTFw-',
        '* LIST (\\HasNoChildren) "/" "&2D3eAA- smile"',
    ]
    # Stored as UTF-8 on disk.
    md = maildir(server, c.user)
    assert os.path.isdir(os.path.join(md, ".\u65e5\u672c\u8a9e"))
    assert os.path.isdir(os.path.join(md, ".\u65e5\u672c\u8a9e.\u53f0\u5317"))
    assert os.path.isdir(os.path.join(md, ".Caf\u00e9"))
    # Patterns are decoded too; wildcards sit between characters.
    assert ok(c, 'LIST "" "&ZeVnLA-*"') == [
        '* LIST (\\HasChildren) "/" &ZeVnLIqe-',
        '* LIST (\\HasNoChildren) "/" &ZeVnLIqe-/&U,BTFw-',
    ]
    assert ok(c, 'LIST "&ZeVnLIqe-/" "%"') == [
        '* LIST (\\HasNoChildren) "/" &ZeVnLIqe-/&U,BTFw-']
    assert ok(c, 'LIST "" "%&AOk-"') == [
        '* LIST (\\HasNoChildren) "/" Caf&AOk-']
    # An invalid pattern matches nothing.
    assert ok(c, 'LIST "" "&Jjo*"') == []
    ok(c, "SUBSCRIBE Caf&AOk-", "OK Subscribe completed.")
    assert '* LSUB () "/" Caf&AOk-' in ok(c, 'LSUB "" "*"')
    ok(c, "RENAME Caf&AOk- &AMk-t&AOk-", "OK Rename completed.")
    assert ok(c, 'LIST "" "%t&AOk-"') == [
        '* LIST (\\HasNoChildren) "/" &AMk-t&AOk-']
    drop(server, c.user, "m1", folder=".\u00c9t\u00e9")
    assert ok(c, 'STATUS "&AMk-t&AOk-" (MESSAGES UNSEEN)') == [
        '* STATUS &AMk-t&AOk- (MESSAGES 1 UNSEEN 1)']
    ok(c, "DELETE &AMk-t&AOk-", "OK Delete completed.")
    assert ok(c, 'LIST "" "%t&AOk-"') == []


# --- DELETE ------------------------------------------------------------------

def test_delete(server, c):
    ok(c, "CREATE leaf")
    drop(server, c.user, "m1", folder=".leaf")
    assert status(c, "leaf", "MESSAGES") == {"MESSAGES": 1}
    ok(c, "DELETE leaf", "OK Delete completed.")
    assert ok(c, 'LIST "" "leaf"') == []
    assert not os.path.exists(os.path.join(maildir(server, c.user), ".leaf"))
    no(c, "DELETE leaf", "NO [NONEXISTENT] Mailbox doesn't exist: leaf")
    no(c, "DELETE nothere", "NO [NONEXISTENT] Mailbox doesn't exist: nothere")
    no(c, "STATUS leaf (MESSAGES)",
       "NO [NONEXISTENT] Mailbox doesn't exist: leaf")
    # INBOX, in any case, cannot be deleted.
    for name in ("INBOX", "inbox", "InBoX"):
        no(c, "DELETE %s" % name, "NO [CANNOT] INBOX cannot be deleted")
    # A new mailbox of the same name starts afresh.
    ok(c, "CREATE leaf")
    assert status(c, "leaf", "MESSAGES UIDNEXT") == {
        "MESSAGES": 0, "UIDNEXT": 1}


def test_delete_parent_keeps_children(c):
    # RFC 3501 6.3.4: the children stay and the name becomes \Noselect.
    ok(c, "CREATE p/q/r")
    ok(c, "DELETE p", "OK Delete completed.")
    assert ok(c, 'LIST "" "p*"') == [
        '* LIST (\\Noselect \\HasChildren) "/" p',
        '* LIST (\\HasChildren) "/" p/q',
        '* LIST (\\HasNoChildren) "/" p/q/r',
    ]
    assert ok(c, 'LIST () "" "p" RETURN (CHILDREN)') == [
        '* LIST (\\NonExistent \\HasChildren) "/" p']
    # A \Noselect name with children cannot be deleted (6.3.4) nor
    # selected, opened by STATUS or subscribed.
    no(c, "DELETE p", "NO [NONEXISTENT] Mailbox doesn't exist: p")
    no(c, "STATUS p (MESSAGES)", "NO [NONEXISTENT] Mailbox doesn't exist: p")
    no(c, "SUBSCRIBE p", "NO [NONEXISTENT] Mailbox doesn't exist: p")
    # CREATE makes it a mailbox again.
    ok(c, "CREATE p", "OK Create completed.")
    assert ok(c, 'LIST "" "p"') == ['* LIST (\\HasChildren) "/" p']
    # The placeholder goes away with its last child.
    ok(c, "DELETE p")
    ok(c, "DELETE p/q")
    ok(c, "DELETE p/q/r")
    assert ok(c, 'LIST "" "p*"') == []


def test_delete_keeps_subscription(c):
    # RFC 3501 6.3.6: a deleted mailbox's subscription is not removed.
    ok(c, "CREATE gone")
    ok(c, "SUBSCRIBE gone")
    ok(c, "DELETE gone")
    assert ok(c, 'LSUB "" "gone"') == ['* LSUB () "/" gone']
    assert ok(c, 'LIST (SUBSCRIBED) "" "gone" RETURN (CHILDREN)') == [
        '* LIST (\\Subscribed \\NonExistent \\HasNoChildren) "/" gone']
    assert ok(c, 'LIST "" "gone"') == []
    ok(c, "UNSUBSCRIBE gone", "OK Unsubscribe completed.")
    assert ok(c, 'LSUB "" "gone"') == []


def test_delete_selected_mailbox_disconnects(server, c):
    ok(c, "CREATE del")
    drop(server, c.user, "m1", folder=".del")
    untagged = ok(c, "SELECT del")
    assert "* 1 EXISTS" in untagged
    c.send("D1 DELETE del\r\n")
    assert c.readline() == "D1 OK Delete completed."
    assert c.expect_eof() == [
        "* BYE Selected mailbox was deleted, have to disconnect."]
    with server.login(c.user) as c2:
        assert ok(c2, 'LIST "" "del"') == []


def test_delete_other_mailbox_while_selected(c):
    ok(c, "CREATE keep")
    ok(c, "CREATE other")
    ok(c, "SELECT keep")
    ok(c, "DELETE other", "OK Delete completed.")
    # Still selected.
    assert ok(c, "NOOP", "OK NOOP completed.") == []
    ok(c, "CLOSE", "OK Close completed.")


# --- RENAME ------------------------------------------------------------------

def test_rename_with_children(server, c):
    ok(c, "CREATE a/b/c")
    ok(c, "SUBSCRIBE a/b")
    drop(server, c.user, "m1", folder=".a.b")
    drop(server, c.user, "m2", folder=".a.b.c", seen=True)
    before = status(c, "a/b/c")
    ok(c, "RENAME a/b x/y", "OK Rename completed.")
    # The new parent x was created; a stays, without children now.
    assert ok(c, 'LIST "" "*"') == DEFAULT_LIST + [
        '* LIST (\\HasNoChildren) "/" a',
        '* LIST (\\HasChildren) "/" x',
        '* LIST (\\HasChildren) "/" x/y',
        '* LIST (\\HasNoChildren) "/" x/y/c',
    ]
    # Messages, UIDs and UIDVALIDITY move along.
    assert status(c, "x/y/c") == before
    assert status(c, "x/y", "MESSAGES UNSEEN") == {"MESSAGES": 1,
                                                   "UNSEEN": 1}
    # As Dovecot: subscriptions are not renamed.
    assert ok(c, 'LSUB "" "a*"') == ['* LSUB () "/" a/b']
    assert ok(c, 'LSUB "" "x*"') == []


def test_rename_errors(c):
    ok(c, "CREATE q/r")
    ok(c, "CREATE s")
    no(c, "RENAME nothere foo", "NO [NONEXISTENT] Mailbox doesn't exist: "
       "nothere")
    no(c, "RENAME q/r s", "NO [ALREADYEXISTS] Mailbox already exists")
    no(c, "RENAME q/r Sent", "NO [ALREADYEXISTS] Mailbox already exists")
    # A name with children of the target counts as existing too.
    no(c, "RENAME s q", "NO [ALREADYEXISTS] Mailbox already exists")
    no(c, "RENAME q q/r/z", "NO [CANNOT] Cannot rename a mailbox into itself")
    no(c, "RENAME s s", "NO [ALREADYEXISTS] Can't rename mailbox to itself.")
    no(c, "RENAME s INBOX", "NO [ALREADYEXISTS] Mailbox already exists")
    no(c, "RENAME s inbox", "NO [ALREADYEXISTS] Mailbox already exists")
    no(c, "RENAME s a//b", "NO [CANNOT] Mailbox name has an empty component")
    no(c, "RENAME s a*", "NO [CANNOT] Mailbox name contains a wildcard")
    no(c, "RENAME a* s", "NO [CANNOT] Mailbox name contains a wildcard")
    no(c, "RENAME s &Jjo", "NO [CANNOT] Invalid modified UTF-7 in mailbox "
       "name.")
    # Case matters outside INBOX: this is a real rename.
    ok(c, "RENAME s S", "OK Rename completed.")
    assert ok(c, 'LIST "" "s"') == []
    assert ok(c, 'LIST "" "S"') == ['* LIST (\\HasNoChildren) "/" S']
    assert ok(c, 'LIST "" "q*"') == [
        '* LIST (\\HasChildren) "/" q',
        '* LIST (\\HasNoChildren) "/" q/r',
    ]


def test_rename_inbox_moves_messages(server, c):
    # RFC 3501 6.3.5: INBOX's messages move to the new mailbox and INBOX
    # stays, empty.
    ok(c, "LIST \"\" INBOX")        # opens the store: the Maildir exists
    for i in range(3):
        drop(server, c.user, "new%d" % i)
    drop(server, c.user, "old", seen=True)
    before = status(c, "INBOX", "MESSAGES UNSEEN UIDNEXT")
    assert before == {"MESSAGES": 4, "UNSEEN": 3, "UIDNEXT": 5}
    ok(c, "RENAME INBOX saved", "OK Rename completed.")
    assert status(c, "saved", "MESSAGES UNSEEN") == {"MESSAGES": 4,
                                                     "UNSEEN": 3}
    after = status(c, "INBOX", "MESSAGES UNSEEN UIDNEXT")
    assert after == {"MESSAGES": 0, "UNSEEN": 0, "UIDNEXT": 5}
    assert ok(c, 'LIST "" "%"') == DEFAULT_LIST + [
        '* LIST (\\HasNoChildren) "/" saved']
    assert os.listdir(os.path.join(maildir(server, c.user), "cur")) == []
    assert os.listdir(os.path.join(maildir(server, c.user), "new")) == []
    # New mail arrives in INBOX as before.
    drop(server, c.user, "later")
    assert status(c, "INBOX", "MESSAGES UIDNEXT") == {"MESSAGES": 1,
                                                      "UIDNEXT": 6}
    # Renaming INBOX to a child of itself is refused, as by Dovecot.
    no(c, "RENAME INBOX INBOX/old",
       "NO [CANNOT] Cannot rename a mailbox into itself")
    no(c, "RENAME INBOX saved", "NO [ALREADYEXISTS] Mailbox already exists")


def test_rename_inbox_while_selected(server, c):
    ok(c, "LIST \"\" INBOX")
    for i in range(3):
        drop(server, c.user, "m%d" % i)
    untagged = ok(c, "SELECT INBOX")
    assert "* 3 EXISTS" in untagged
    # The selected INBOX loses its messages: the client is told.
    assert ok(c, "RENAME INBOX moved", "OK Rename completed.") == [
        "* 3 EXPUNGE", "* 2 EXPUNGE", "* 1 EXPUNGE"]
    assert ok(c, "NOOP") == []
    assert status(c, "INBOX", "MESSAGES", SELECTED) == {"MESSAGES": 0}
    assert status(c, "moved", "MESSAGES") == {"MESSAGES": 3}


def test_rename_selected_mailbox_keeps_the_session(server, c):
    ok(c, "CREATE r/s")
    drop(server, c.user, "m1", folder=".r.s")
    untagged = ok(c, "SELECT r/s")
    assert "* 1 EXISTS" in untagged
    uidvalidity = status(c, "r/s", "UIDVALIDITY",
                         SELECTED)["UIDVALIDITY"]
    ok(c, "RENAME r t", "OK Rename completed.")
    assert ok(c, "NOOP", "OK NOOP completed.") == []
    # The view follows the folder: new mail in it is seen.
    drop(server, c.user, "m2", folder=".t.s")
    assert ok(c, "NOOP") == ["* 2 EXISTS", "* 2 RECENT"]
    assert status(c, "t/s", "MESSAGES UIDVALIDITY UIDNEXT", SELECTED) == {
        "MESSAGES": 2, "UIDVALIDITY": uidvalidity, "UIDNEXT": 3}
    # Renaming the mailbox itself works the same way.
    ok(c, "RENAME t/s u")
    drop(server, c.user, "m3", folder=".u")
    assert ok(c, "NOOP") == ["* 3 EXISTS", "* 3 RECENT"]
    ok(c, "CLOSE", "OK Close completed.")
    assert status(c, "u", "MESSAGES") == {"MESSAGES": 3}


# --- SUBSCRIBE, UNSUBSCRIBE, LSUB --------------------------------------------

def test_subscribe_and_unsubscribe(c):
    ok(c, "CREATE news/tech")
    no(c, "SUBSCRIBE nothere",
       "NO [NONEXISTENT] Mailbox doesn't exist: nothere")
    ok(c, "SUBSCRIBE news/tech", "OK Subscribe completed.")
    ok(c, "SUBSCRIBE news/tech")        # twice is fine
    assert ok(c, 'LSUB "" "news*"') == ['* LSUB () "/" news/tech']
    ok(c, "UNSUBSCRIBE news/tech", "OK Unsubscribe completed.")
    ok(c, "UNSUBSCRIBE news/tech")      # as Dovecot: not an error
    ok(c, "UNSUBSCRIBE nothere")
    assert ok(c, 'LSUB "" "news*"') == []
    # The default subscriptions can be dropped too, INBOX in any case.
    ok(c, "UNSUBSCRIBE inbox")
    ok(c, "UNSUBSCRIBE Trash")
    assert ok(c, 'LSUB "" "*"') == [
        '* LSUB (\\Archive) "/" Archive',
        '* LSUB (\\Drafts) "/" Drafts',
        '* LSUB (\\Junk) "/" Junk',
        '* LSUB (\\Sent) "/" Sent',
    ]
    ok(c, "SUBSCRIBE iNbOx")
    assert ok(c, 'LSUB "" "INBOX"') == ['* LSUB () "/" INBOX']
    no(c, "SUBSCRIBE a//b", "NO [CANNOT] Mailbox name has an empty component")
    no(c, "UNSUBSCRIBE a//b",
       "NO [CANNOT] Mailbox name has an empty component")


def test_lsub_noselect_parents(c):
    # RFC 3501 6.3.9: with "%", a parent that is not subscribed but has
    # subscribed children is listed as \Noselect.
    ok(c, "CREATE p/q/r")
    ok(c, "CREATE p/z")
    for name in ("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"):
        ok(c, "UNSUBSCRIBE %s" % name)
    ok(c, "SUBSCRIBE p/q/r")
    assert ok(c, 'LSUB "" "%"') == ['* LSUB (\\Noselect) "/" p']
    assert ok(c, 'LSUB "" "p/%"') == ['* LSUB (\\Noselect) "/" p/q']
    assert ok(c, 'LSUB "p/" "%"') == ['* LSUB (\\Noselect) "/" p/q']
    assert ok(c, 'LSUB "" "%/%"') == ['* LSUB (\\Noselect) "/" p/q']
    assert ok(c, 'LSUB "" "*"') == ['* LSUB () "/" p/q/r']
    assert ok(c, 'LSUB "" "p/q/%"') == ['* LSUB () "/" p/q/r']
    assert ok(c, 'LSUB "" "*q"') == ['* LSUB (\\Noselect) "/" p/q']
    assert ok(c, 'LSUB "" "z*"') == []
    # Once the parent is subscribed it is listed normally.
    ok(c, "SUBSCRIBE p")
    assert ok(c, 'LSUB "" "%"') == ['* LSUB () "/" p']
    assert ok(c, 'LSUB "" "*"') == ['* LSUB () "/" p',
                                    '* LSUB () "/" p/q/r']
    # LSUB "" "" has no special meaning.
    assert ok(c, 'LSUB "" ""') == []


# --- LIST-EXTENDED -----------------------------------------------------------

def test_list_subscribed(c):
    ok(c, "CREATE Foo/Bar")
    ok(c, "CREATE Foo/Baz")
    ok(c, "CREATE Moo")
    ok(c, "CREATE gone")
    for name in ("Archive", "Drafts", "Junk", "Sent", "Trash"):
        ok(c, "UNSUBSCRIBE %s" % name)
    ok(c, "SUBSCRIBE Foo/Baz")
    ok(c, "SUBSCRIBE gone")
    ok(c, "DELETE gone")
    # RFC 5258 examples 2, 6 and 8.
    assert ok(c, 'LIST (SUBSCRIBED) "" "*"') == [
        '* LIST (\\Subscribed) "/" INBOX',
        '* LIST (\\Subscribed) "/" Foo/Baz',
        '* LIST (\\Subscribed \\NonExistent) "/" gone',
    ]
    assert ok(c, 'LIST (SUBSCRIBED) "" "%"') == [
        '* LIST (\\Subscribed) "/" INBOX',
        '* LIST (\\Subscribed \\NonExistent) "/" gone',
    ]
    assert ok(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == [
        '* LIST (\\Subscribed) "/" INBOX',
        '* LIST () "/" Foo (CHILDINFO ("SUBSCRIBED"))',
        '* LIST (\\Subscribed \\NonExistent) "/" gone',
    ]
    assert ok(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" '
                 'RETURN (CHILDREN)') == [
        '* LIST (\\Subscribed \\HasNoChildren) "/" INBOX',
        '* LIST (\\HasChildren) "/" Foo (CHILDINFO ("SUBSCRIBED"))',
        '* LIST (\\Subscribed \\NonExistent \\HasNoChildren) "/" gone',
    ]
    # Every subscribed child matches: the parent would be redundant.
    assert ok(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"') == [
        '* LIST (\\Subscribed) "/" INBOX',
        '* LIST (\\Subscribed) "/" Foo/Baz',
        '* LIST (\\Subscribed \\NonExistent) "/" gone',
    ]
    assert ok(c, '''LIST (REMOTE) "" "*" RETURN (SUBSCRIBED)''') == [
        '* LIST (\\Subscribed) "/" INBOX',
        '* LIST () "/" Archive',
        '* LIST () "/" Drafts',
        '* LIST () "/" Foo',
        '* LIST () "/" Foo/Bar',
        '* LIST (\\Subscribed) "/" Foo/Baz',
        '* LIST () "/" Junk',
        '* LIST () "/" Moo',
        '* LIST () "/" Sent',
        '* LIST () "/" Trash',
    ]
    # A subscribed parent with a subscribed child: listed, with CHILDINFO.
    ok(c, "SUBSCRIBE Foo")
    assert ok(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Foo"') == [
        '* LIST (\\Subscribed) "/" Foo (CHILDINFO ("SUBSCRIBED"))']
    assert ok(c, 'LIST (SUBSCRIBED) "" "Foo"') == [
        '* LIST (\\Subscribed) "/" Foo']


def test_list_recursivematch_nonexistent_parent(c):
    # RFC 5258 example 9: parents that do not exist at all.
    ok(c, "CREATE foo2/bar1")
    ok(c, "CREATE foo2/bar2")
    ok(c, "CREATE eps2/mamba")
    ok(c, "CREATE qux2/bar2")
    for name in ("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"):
        ok(c, "UNSUBSCRIBE %s" % name)
    for name in ("foo2/bar1", "foo2/bar2", "eps2", "eps2/mamba",
                 "qux2/bar2"):
        ok(c, "SUBSCRIBE %s" % name)
    ok(c, "RENAME qux2 gone2")
    ok(c, "SUBSCRIBE gone2/bar2")
    ok(c, "CREATE zz")
    ok(c, "SUBSCRIBE zz")
    ok(c, "DELETE zz")
    assert ok(c, 'LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"') == [
        '* LIST (\\Subscribed) "/" eps2 (CHILDINFO ("SUBSCRIBED"))',
        '* LIST () "/" foo2 (CHILDINFO ("SUBSCRIBED"))',
        '* LIST (\\Subscribed) "/" foo2/bar2',
        '* LIST (\\Subscribed) "/" gone2/bar2',
        '* LIST (\\Subscribed \\NonExistent) "/" qux2/bar2',
    ]
    # qux2 does not exist: \NonExistent, with CHILDINFO.
    assert ok(c, 'LIST (RECURSIVEMATCH SUBSCRIBED) "" "qux%" '
                 'RETURN (CHILDREN)') == [
        '* LIST (\\NonExistent \\HasNoChildren) "/" qux2 '
        '(CHILDINFO ("SUBSCRIBED"))']
    assert ok(c, 'LSUB "" "qux%"') == ['* LSUB (\\Noselect) "/" qux2']


def test_list_multiple_patterns(c):
    ok(c, "CREATE Sent/March")
    ok(c, "CREATE Sent/April")
    # RFC 5258 example 7; a name matching twice is listed once.
    assert ok(c, 'LIST "" ("INBOX" "Drafts" "Sent/%" "Sent/*")') == [
        '* LIST () "/" INBOX',
        '* LIST () "/" Drafts',
        '* LIST () "/" Sent/April',
        '* LIST () "/" Sent/March',
    ]
    assert ok(c, 'LIST "" (inbox "&Jjo" "Nothing*") RETURN (CHILDREN)') == [
        '* LIST (\\HasNoChildren) "/" INBOX']
    assert ok(c, 'LIST "Sent/" (March April)') == [
        '* LIST () "/" Sent/April',
        '* LIST () "/" Sent/March',
    ]


def test_list_return_children_and_subscribed(c):
    ok(c, "CREATE Fruit/Apple")
    ok(c, "CREATE Tofu")
    ok(c, "SUBSCRIBE Fruit/Apple")
    assert ok(c, 'LIST () "" "%" RETURN (CHILDREN)') == [
        '* LIST (\\HasNoChildren) "/" INBOX',
        '* LIST (\\HasNoChildren) "/" Archive',
        '* LIST (\\HasNoChildren) "/" Drafts',
        '* LIST (\\HasChildren) "/" Fruit',
        '* LIST (\\HasNoChildren) "/" Junk',
        '* LIST (\\HasNoChildren) "/" Sent',
        '* LIST (\\HasNoChildren) "/" Tofu',
        '* LIST (\\HasNoChildren) "/" Trash',
    ]
    assert ok(c, 'LIST "" "*" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)') == [
        '* LIST (\\Subscribed \\HasNoChildren) "/" INBOX',
        '* LIST (\\Subscribed \\HasNoChildren \\Archive) "/" Archive',
        '* LIST (\\Subscribed \\HasNoChildren \\Drafts) "/" Drafts',
        '* LIST (\\HasChildren) "/" Fruit',
        '* LIST (\\Subscribed \\HasNoChildren) "/" Fruit/Apple',
        '* LIST (\\Subscribed \\HasNoChildren \\Junk) "/" Junk',
        '* LIST (\\Subscribed \\HasNoChildren \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren) "/" Tofu',
        '* LIST (\\Subscribed \\HasNoChildren \\Trash) "/" Trash',
    ]
    # Options are case-insensitive; repeating one changes nothing.
    assert ok(c, 'list (subscribed subscribed) "" "F*" '
                 'return (children Children)') == [
        '* LIST (\\Subscribed \\HasNoChildren) "/" Fruit/Apple']


def test_list_status(server, c):
    # LIST-STATUS (RFC 5819): a STATUS after each selectable mailbox.
    ok(c, "CREATE box/sub")
    ok(c, "DELETE box")
    drop(server, c.user, "m1", folder=".box.sub")
    drop(server, c.user, "m2", folder=".box.sub", seen=True)
    assert ok(c, 'LIST "" "box*" RETURN (STATUS (MESSAGES UNSEEN))') == [
        '* LIST (\\NonExistent) "/" box',
        '* LIST () "/" box/sub',
        '* STATUS box/sub (MESSAGES 2 UNSEEN 1)',
    ]
    assert ok(c, 'LIST "" "Drafts" RETURN (CHILDREN STATUS (UIDNEXT))') == [
        '* LIST (\\HasNoChildren) "/" Drafts',
        '* STATUS Drafts (UIDNEXT 1)',
    ]


# --- STATUS ------------------------------------------------------------------

def test_status_counts_dropped_messages(server, c):
    ok(c, 'LIST "" INBOX')
    st = status(c, "INBOX")
    assert st["MESSAGES"] == 0 and st["UIDNEXT"] == 1 and st["UNSEEN"] == 0
    uidvalidity = st["UIDVALIDITY"]
    for i in range(3):
        drop(server, c.user, "new%d" % i)
    drop(server, c.user, "seen", seen=True)
    assert status(c, "INBOX") == {
        "MESSAGES": 4, "RECENT": 4, "UIDNEXT": 5,
        "UIDVALIDITY": uidvalidity, "UNSEEN": 3}
    # Fixed order whatever the order asked; duplicates once.
    assert ok(c, "STATUS INBOX (UNSEEN UIDNEXT MESSAGES MESSAGES)") == [
        "* STATUS INBOX (MESSAGES 4 UIDNEXT 5 UNSEEN 3)"]
    assert ok(c, "STATUS inbox (recent)") == ["* STATUS inbox (RECENT 4)"]
    # Other mailboxes.
    drop(server, c.user, "s1", folder=".Sent", seen=True)
    assert status(c, "Sent", "MESSAGES UNSEEN RECENT") == {
        "MESSAGES": 1, "UNSEEN": 0, "RECENT": 1}
    no(c, "STATUS nothere (MESSAGES)",
       "NO [NONEXISTENT] Mailbox doesn't exist: nothere")
    no(c, "STATUS a//b (MESSAGES)",
       "NO [CANNOT] Mailbox name has an empty component")


def test_status_of_the_selected_mailbox(server, c):
    ok(c, 'LIST "" INBOX')
    drop(server, c.user, "m1")
    drop(server, c.user, "m2")
    untagged = ok(c, "SELECT INBOX")
    assert "* 2 EXISTS" in untagged and "* 2 RECENT" in untagged
    # This session holds the \Recent messages: STATUS agrees with SELECT.
    # Dovecot answers this, with [CLIENTBUG] (RFC 9051 6.3.11: SHOULD
    # NOT).
    assert status(c, "INBOX", "MESSAGES RECENT UNSEEN UIDNEXT",
                  SELECTED) == {
        "MESSAGES": 2, "RECENT": 2, "UNSEEN": 2, "UIDNEXT": 3}
    # Another session sees them as no longer recent.
    with server.login(c.user) as other:
        assert status(other, "INBOX", "MESSAGES RECENT") == {
            "MESSAGES": 2, "RECENT": 0}
    # New mail: the client learns of it before the STATUS that counts it.
    drop(server, c.user, "m3")
    assert ok(c, "STATUS INBOX (MESSAGES RECENT UIDNEXT)", SELECTED) == [
        "* 3 EXISTS", "* 3 RECENT",
        "* STATUS INBOX (MESSAGES 3 RECENT 3 UIDNEXT 4)"]
    assert ok(c, "NOOP") == []
    # Read-only: EXAMINE claims nothing.
    drop(server, c.user, "m4")
    untagged = ok(c, "EXAMINE INBOX")
    assert "* 4 EXISTS" in untagged
    assert status(c, "INBOX", "MESSAGES RECENT", SELECTED) == {
        "MESSAGES": 4, "RECENT": 0}


# --- a client library --------------------------------------------------------

def test_imaplib_session(server):
    user = new_user(server)
    # imaplib sends arguments as given: "" must be written quoted.
    m = server.client()
    try:
        m.login(user, PASSWORD)
        typ, data = m.create("Projects/2024")
        assert typ == "OK", data
        typ, data = m.list('""', "Projects*")
        assert (typ, data) == ("OK", [
            b'(\\HasChildren) "/" Projects',
            b'(\\HasNoChildren) "/" Projects/2024'])
        assert m.subscribe("Projects/2024")[0] == "OK"
        typ, data = m.lsub('""', "Projects/%")
        assert (typ, data) == ("OK", [b'() "/" Projects/2024'])
        assert m.rename("Projects", "Archive/Projects")[0] == "OK"
        typ, data = m.list("Archive/", "*")
        assert (typ, data) == ("OK", [
            b'(\\HasChildren) "/" Archive/Projects',
            b'(\\HasNoChildren) "/" Archive/Projects/2024'])
        typ, data = m.status("Archive/Projects/2024", "(MESSAGES UIDNEXT)")
        assert (typ, data) == ("OK", [
            b'Archive/Projects/2024 (MESSAGES 0 UIDNEXT 1)'])
        typ, data = m.delete("Archive/Projects/2024")
        assert typ == "OK", data
        typ, data = m.delete("Archive/Projects/2024")
        assert typ == "NO"
        assert data == [b"[NONEXISTENT] Mailbox doesn't exist: "
                        b"Archive/Projects/2024"]
        typ, data = m.namespace()
        assert (typ, data) == ("OK", [b'(("" "/")) NIL NIL'])
        typ, data = m.list()
        assert typ == "OK"
        assert b'(\\HasChildren \\Archive) "/" Archive' in data
        m.logout()
    finally:
        try:
            m.shutdown()
        except OSError:
            pass
