'use strict';
// An imapflow client idling on a mailbox (HERALD_MAILBOX, default INBOX),
// driven by the Python test over stdin/stdout.
//
// stdout, one JSON object per line:
//   {"event":"opened","exists":N}          mailbox selected
//   {"event":"idling","exists":N}          the server accepted IDLE ("+")
//   {"event":"exists"|"flags"|"expunge", ..., "idling":bool, "hrtimeNs":"..."}
//                                          imapflow's events; hrtimeNs is
//                                          CLOCK_MONOTONIC, comparable with
//                                          Python's time.monotonic_ns()
//   {"event":"fetched", ...}               answer to "fetch-last"
//   {"event":"done","transcript":[...]}    after "quit"
// stdin, one command per line: "fetch-last", "quit".
// imapflow starts IDLE by itself once the connection has been quiet for
// autoIdleDelay after mailboxOpen (and after each command run later).
const readline = require('readline');
const { settings, makeClient, emit, run, transcript } = require('./common');

const now = () => process.hrtime.bigint().toString();

run(async () => {
    const cfg = settings();
    const mailbox = process.env.HERALD_MAILBOX || 'INBOX';
    const client = makeClient(cfg, { disableAutoIdle: false, autoIdleDelay: 200 }, (level, entry) => {
        if (entry && typeof entry.msg === 'string' && entry.msg.startsWith('Initiated IDLE')) {
            emit({ event: 'idling', exists: client.mailbox ? client.mailbox.exists : null, hrtimeNs: now() });
        }
    });

    let finished;
    const done = new Promise(resolve => (finished = resolve));
    client.on('error', err => emit({ event: 'error', error: String(err) }));
    client.on('close', () => finished());
    client.on('exists', data =>
        emit({ event: 'exists', path: data.path, count: data.count, prevCount: data.prevCount, idling: client.idling, hrtimeNs: now() })
    );
    client.on('flags', data =>
        emit({
            event: 'flags',
            path: data.path,
            seq: data.seq,
            uid: data.uid || null,
            flags: Array.from(data.flags || []),
            idling: client.idling,
            hrtimeNs: now()
        })
    );
    client.on('expunge', data => emit({ event: 'expunge', path: data.path, seq: data.seq, idling: client.idling, hrtimeNs: now() }));

    await client.connect();
    const box = await client.mailboxOpen(mailbox);
    emit({ event: 'opened', exists: box.exists, uidNext: box.uidNext });

    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', line => {
        const cmd = line.trim();
        const act = async () => {
            if (cmd === 'fetch-last') {
                const msg = await client.fetchOne('*', { uid: true, envelope: true, flags: true });
                emit({
                    event: 'fetched',
                    exists: client.mailbox.exists,
                    uid: msg.uid,
                    seq: msg.seq,
                    subject: msg.envelope.subject,
                    messageId: msg.envelope.messageId,
                    flags: Array.from(msg.flags || [])
                });
            } else if (cmd === 'quit') {
                rl.close();
                process.stdin.destroy();
                await client.logout();
                emit({ event: 'done', usable: client.usable, transcript });
            } else if (cmd) {
                emit({ event: 'error', error: `unknown command ${cmd}` });
            }
        };
        act().catch(err => {
            emit({ event: 'error', error: String((err && err.stack) || err), transcript });
            process.exit(1);
        });
    });
    await done;
});
