/*
 * Local delivery: put one message into a user's mailbox.  Shared by the
 * LMTP server (one call per accepted recipient, on the thread pool) and by
 * `herald deliver` (procmail, Postfix mailbox_command, cron).
 *
 * The message is appended through the store (tmp/ -> cur/, fsynced when
 * cfg->fsync is on, then indexed), so a successful return means the message
 * is durable and visible to IMAP; only then may the caller acknowledge it.
 * Watchers of the mailbox (IDLE) are then told through
 * notify_mailbox_changed_ext(), also across processes.
 *
 * Mailbox choice follows dovecot-lda: the requested mailbox if it can be
 * used, else INBOX.  "Cannot be used" means it does not exist (it is never
 * created), its name is invalid or too long, or it cannot hold messages
 * (STORE_ERR_NOTFOUND, _BADNAME, _LIMIT, _NOTPOSSIBLE, _NOPERM).  Other
 * failures (I/O, disk full, index busy) are returned as they are: the MTA
 * must retry rather than have the message land elsewhere.
 *
 * The message bytes are stored unchanged; only the header fields of the
 * envelope (Return-Path, Delivered-To, an optional Received) are put in
 * front, as Dovecot's LMTP does.  Their line ends copy the message's first
 * line end (CRLF from LMTP, usually LF from a pipe), so a message keeps
 * one convention.
 *
 * Blocking (file I/O, fsync, SQLite): call it from a thread pool or a
 * process without a loop.
 */
#ifndef HERALD_LMTP_DELIVER_H
#define HERALD_LMTP_DELIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct config;

struct deliver_envelope {
	/* Envelope sender without angle brackets; "" is the null sender
	 * <>.  NULL: no Return-Path field is added. */
	const char *return_path;
	/* Envelope recipient; NULL: no Delivered-To field. */
	const char *delivered_to;
	/* A complete trace field ("Received: ...", folded with line ends
	 * of "\n" only: they are converted) or NULL. */
	const char *received;
};

struct deliver_result {
	/* Canonical name of the mailbox the message went to. */
	char mailbox[STORE_NAME_MAX + 1];
	uint32_t uidvalidity;
	uint32_t uid;
	bool fell_back;		/* the requested mailbox was not usable */
	uint64_t size;		/* bytes stored, added fields included */
};

/*
 * Deliver the message in fd (a regular file, read from offset 0 to EOF;
 * its offset is changed) to user's mailbox (canonical UTF-8 name; NULL
 * means INBOX).  user must be a name passwd_user_name_valid() accepts; its
 * storage is cfg->data_dir/users/USER (created on first use).  env may be
 * NULL.  Returns 0 with *result_r filled, or -1 with *err set (err->text
 * is client-safe; details are logged).
 */
int deliver_message(const struct config *cfg, const char *user,
    const char *mailbox, int fd, const struct deliver_envelope *env,
    struct deliver_result *result_r, struct store_error *err);

/*
 * An unlinked temporary file for spooling a message: O_TMPFILE in dir, or
 * a mkstemp() file there that is unlinked at once.  Returns the fd
 * (O_RDWR, O_CLOEXEC) or -1 with errno set.
 */
int deliver_spool_open(const char *dir);

#endif
