'use strict';
// A mail client session: connect (implicit TLS or STARTTLS), log in, list
// the mailboxes, append two messages to INBOX, fetch them back (envelope,
// flags, source), move one to Archive and read the counts.  Prints one JSON
// object; test_client_imapflow.py checks every part of it.
const { settings, makeClient, emit, run, transcript } = require('./common');

const tag = process.env.HERALD_TAG || String(Date.now());

function message(n, subject) {
    return [
        'From: Imapflow Sender <sender@example.org>',
        'To: Alice <alice@example.org>',
        `Subject: ${subject}`,
        `Message-ID: <imapflow-${tag}-${n}@example.org>`,
        'Date: Mon, 02 Jan 2023 10:00:00 +0000',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        '',
        `Body of message ${n}.`,
        ''
    ].join('\r\n');
}

run(async () => {
    const cfg = settings();
    const client = makeClient(cfg);
    const result = { mode: cfg.mode };

    await client.connect();
    result.secure = client.secureConnection;
    result.tlsProtocol = client.socket && typeof client.socket.getProtocol === 'function' ? client.socket.getProtocol() : null;
    result.authorized = client.socket ? client.socket.authorized === true : false;
    result.capabilities = Array.from(client.capabilities.keys());
    result.authenticated = client.authenticated;

    result.list = (await client.list()).map(box => ({
        path: box.path,
        delimiter: box.delimiter,
        flags: Array.from(box.flags || []),
        specialUse: box.specialUse || null
    }));

    const subjects = [`imapflow one ${tag}`, `imapflow two ${tag}`];
    const sources = subjects.map((s, i) => message(i + 1, s));
    result.appended = [];
    result.appended.push(await client.append('INBOX', sources[0], ['\\Seen']));
    result.appended.push(await client.append('INBOX', sources[1], ['\\Flagged', '$Important']));
    result.sentSources = sources;

    const box = await client.mailboxOpen('INBOX');
    result.inboxOnOpen = { exists: box.exists, uidValidity: String(box.uidValidity), uidNext: box.uidNext };

    const uids = result.appended.map(a => a.uid);
    result.fetched = [];
    for await (const msg of client.fetch(uids.join(','), { uid: true, envelope: true, flags: true, source: true, size: true }, { uid: true })) {
        result.fetched.push({
            seq: msg.seq,
            uid: msg.uid,
            size: msg.size,
            flags: Array.from(msg.flags || []),
            subject: msg.envelope.subject,
            messageId: msg.envelope.messageId,
            from: msg.envelope.from,
            to: msg.envelope.to,
            date: msg.envelope.date ? new Date(msg.envelope.date).toISOString() : null,
            source: msg.source.toString('utf8')
        });
    }

    // Move the first message to Archive.
    result.moved = await client.messageMove(String(uids[0]), 'Archive', { uid: true });
    if (result.moved && result.moved.uidMap) {
        result.moved.uidMap = Array.from(result.moved.uidMap.entries());
    }
    result.inboxAfterMove = { exists: client.mailbox.exists };
    result.inboxUidsAfterMove = [];
    for await (const msg of client.fetch('1:*', { uid: true }, {})) {
        result.inboxUidsAfterMove.push(msg.uid);
    }
    await client.mailboxClose();

    result.status = {};
    for (const path of ['INBOX', 'Archive']) {
        const st = await client.status(path, { messages: true, unseen: true, uidNext: true });
        result.status[path] = { messages: st.messages, unseen: st.unseen, uidNext: st.uidNext };
    }

    // The moved message, read back from Archive.
    await client.mailboxOpen('Archive', { readOnly: true });
    result.archive = [];
    for await (const msg of client.fetch('1:*', { uid: true, envelope: true, flags: true }, {})) {
        result.archive.push({ uid: msg.uid, subject: msg.envelope.subject, flags: Array.from(msg.flags || []) });
    }
    await client.mailboxClose();

    await client.logout();
    result.usable = client.usable;
    result.transcript = transcript;
    emit(result);
});
