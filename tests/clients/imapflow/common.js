'use strict';
// Shared by the imapflow scripts that tests/integration/test_client_imapflow.py
// runs.  Settings come from the environment:
//   HERALD_HOST, HERALD_PORT   where to connect (127.0.0.1 only in the tests)
//   HERALD_USER, HERALD_PASS   the account
//   HERALD_MODE                "tls" (implicit TLS) or "starttls"
//   HERALD_CA                  PEM file to trust (the server's self-signed
//                              certificate); the host name is checked too
//   HERALD_SCRIPT_TIMEOUT_MS   hard limit for the whole script (default 20000)
// Results go to stdout as JSON, one object per line.  The IMAP transcript
// imapflow logs is kept (bounded) so a failing test can show it.
const fs = require('fs');
const { ImapFlow } = require('imapflow');

const transcript = [];
const TRANSCRIPT_MAX = 400;

function note(entry) {
    if (!entry || typeof entry !== 'object' || !entry.src || !entry.msg) {
        return;
    }
    if (transcript.length < TRANSCRIPT_MAX) {
        transcript.push(`${entry.src === 's' ? 'S' : 'C'}: ${String(entry.msg).slice(0, 300)}`);
    }
}

// A pino-like logger that records the protocol lines and lets a script watch
// for imapflow's own messages (e.g. "Initiated IDLE").
function makeLogger(onEntry) {
    const logger = {};
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
        logger[level] = entry => {
            note(entry);
            if (onEntry) {
                onEntry(level, entry);
            }
        };
    }
    return logger;
}

function settings() {
    const need = name => {
        const v = process.env[name];
        if (!v) {
            throw new Error(`${name} is not set`);
        }
        return v;
    };
    const mode = process.env.HERALD_MODE || 'tls';
    if (mode !== 'tls' && mode !== 'starttls') {
        throw new Error(`HERALD_MODE must be tls or starttls, not ${mode}`);
    }
    return {
        host: need('HERALD_HOST'),
        port: Number(need('HERALD_PORT')),
        user: need('HERALD_USER'),
        pass: need('HERALD_PASS'),
        ca: need('HERALD_CA'),
        mode
    };
}

function makeClient(cfg, extra, onLog) {
    return new ImapFlow(
        Object.assign(
            {
                host: cfg.host,
                port: cfg.port,
                secure: cfg.mode === 'tls',
                // STARTTLS required, never opportunistic.
                doSTARTTLS: cfg.mode === 'starttls' ? true : undefined,
                // Verified against HERALD_CA, host name included (the
                // certificate names 127.0.0.1).
                tls: { ca: [fs.readFileSync(cfg.ca)], rejectUnauthorized: true },
                auth: { user: cfg.user, pass: cfg.pass },
                logger: makeLogger(onLog),
                connectionTimeout: 10000,
                greetingTimeout: 10000,
                socketTimeout: 30000,
                disableAutoIdle: true
            },
            extra || {}
        )
    );
}

// JSON has no BigInt (imapflow gives UIDVALIDITY and MODSEQ as BigInt).
function emit(obj) {
    process.stdout.write(JSON.stringify(obj, (key, value) => (typeof value === 'bigint' ? value.toString() : value)) + '\n');
}

// Runs main(); prints {"error": ...} and exits 1 on failure or after the
// time limit, so the Python side never waits on a hung script.
function run(main) {
    // The test sends SIGTERM when it gives up waiting: leave the transcript
    // on stderr for its failure message.
    process.on('SIGTERM', () => {
        process.stderr.write('imapflow transcript:\n' + transcript.join('\n') + '\n');
        process.exit(143);
    });
    const limit = Number(process.env.HERALD_SCRIPT_TIMEOUT_MS || 20000);
    const timer = setTimeout(() => {
        emit({ error: `script timed out after ${limit} ms`, transcript });
        process.exit(3);
    }, limit);
    main()
        .then(() => {
            clearTimeout(timer);
            process.exitCode = 0;
        })
        .catch(err => {
            clearTimeout(timer);
            emit({
                error: String((err && err.stack) || err),
                responseText: err && err.responseText,
                serverResponseCode: err && err.serverResponseCode,
                transcript
            });
            process.exit(1);
        });
}

module.exports = { settings, makeClient, emit, run, transcript };
