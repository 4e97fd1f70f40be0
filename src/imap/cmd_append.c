/*
 * APPEND (RFC 9051 6.3.12, RFC 3501 6.3.11) with APPENDUID (UIDPLUS, RFC
 * 4315) and MULTIAPPEND (RFC 3502: several messages, all or none).
 *
 * The messages never sit in memory: the parser hands their literals to
 * append_stream.c, which writes them to unlinked temporary files while they
 * arrive.  This handler takes those files, checks the arguments, and the
 * run function copies each file into the mailbox in one store transaction.
 */
#include "imap/commands.h"

#include "imap/append_stream.h"
#include "imap/view.h"
#include "log/log.h"
#include "store/store.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct append_msg {
	struct store_append_msg msg;	/* flags, keywords, date */
	struct imap_append_literal lit;	/* streamed: the file */
	const char *data;		/* in-memory literal (0-byte) */
	uint64_t size;
};

struct append_ctx {
	char name[STORE_NAME_MAX + 1];
	struct append_msg *msgs;
	unsigned count;
	/* The files taken from the stream, closed by append_cleanup(). */
	struct imap_append_literal *lits;
	unsigned nlits;
};

static const char *const month_names[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static bool
digits(const char *p, unsigned n, int *value_r)
{
	int v = 0;

	for (unsigned i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*value_r = v;
	return true;
}

static int
days_in_month(int month, int year)
{
	static const int days[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
	};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 1 && leap ? 29 : days[month];
}

/* Days from 1970-01-01 to y-m-d (month 1..12), proleptic Gregorian. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * RFC 9051 date-time, without its quotes: "dd-Mon-yyyy hh:mm:ss +zzzz".
 * The day may be " d" (date-day-fixed) or, as Dovecot and some clients
 * have it, a single digit; the month is case-insensitive.  Every field is
 * range-checked (the day against its month), unlike Dovecot, which lets
 * "31-Feb" or a zone without its sign through.
 */
static bool
parse_datetime(const char *s, int64_t *time_r)
{
	int day, month = -1, year, hh, mm, ss, zh, zm, sign;
	const char *p = s;

	if (p[0] == ' ' && digits(p + 1, 1, &day))
		p += 2;
	else if (digits(p, 2, &day))
		p += 2;
	else if (digits(p, 1, &day) && p[1] == '-')
		p += 1;
	else
		return false;
	if (*p++ != '-')
		return false;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(p, month_names[i], 3) == 0) {
			month = i;
			break;
		}
	}
	if (month < 0)
		return false;
	p += 3;
	if (*p++ != '-' || !digits(p, 4, &year))
		return false;
	p += 4;
	if (p[0] != ' ' || !digits(p + 1, 2, &hh) || p[3] != ':' ||
	    !digits(p + 4, 2, &mm) || p[6] != ':' || !digits(p + 7, 2, &ss) ||
	    p[9] != ' ')
		return false;
	p += 10;
	if (*p != '+' && *p != '-')
		return false;
	sign = *p == '-' ? -1 : 1;
	if (!digits(p + 1, 2, &zh) || !digits(p + 3, 2, &zm) || p[5] != '\0')
		return false;
	if (day < 1 || day > days_in_month(month, year) || hh > 23 ||
	    mm > 59 || ss > 60 || zh > 23 || zm > 59)
		return false;
	*time_r = days_from_civil(year, month + 1, day) * 86400 +
	    hh * 3600 + mm * 60 + ss - sign * (zh * 3600 + zm * 60);
	return true;
}

static void
append_cleanup(struct imap_cmd *cmd)
{
	struct append_ctx *ctx = cmd->ctx;

	for (unsigned i = 0; i < ctx->nlits; i++) {
		if (ctx->lits[i].fd >= 0)
			(void)close(ctx->lits[i].fd);
		ctx->lits[i].fd = -1;
	}
}

/* The reply for a temporary file that could not be written. */
static void
append_file_error(struct imap_cmd *cmd, int error)
{
	if (error == ENOSPC || error == EDQUOT)
		imap_cmd_result(cmd, "NO", "[OVERQUOTA]",
		    "Not enough disk space.");
	else
		imap_cmd_result(cmd, "NO", "[SERVERBUG]",
		    "Internal error saving the message.");
}

static enum imap_run_result
append_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct append_ctx *ctx = cmd->ctx;
	struct store_mailbox *box;
	struct store_append *tx;
	struct store_error err;
	uint32_t uidvalidity, first;
	unsigned n;
	const char *code;

	if (imap_session_store(s, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	if (store_mailbox_open(s->store, ctx->name, 0, &box, &err) < 0) {
		/* RFC 9051 6.3.12: the client may CREATE and retry. */
		if (err.code == STORE_ERR_NOTFOUND)
			imap_cmd_result(cmd, "NO", "[TRYCREATE]",
			    "Mailbox doesn't exist.");
		else
			imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	tx = store_append_begin(box);
	for (unsigned i = 0; i < ctx->count; i++) {
		struct append_msg *m = &ctx->msgs[i];
		int ret;

		if (m->data != NULL) {
			ret = store_append_buf(tx, m->data, (size_t)m->size,
			    &m->msg, &err);
		} else if (m->lit.fd < 0) {
			store_append_rollback(&tx);
			store_mailbox_close(&box);
			append_file_error(cmd, m->lit.error);
			return IMAP_RUN_DONE;
		} else if (lseek(m->lit.fd, 0, SEEK_SET) < 0) {
			int e = errno;

			log_err("append: seek in a temporary file");
			store_append_rollback(&tx);
			store_mailbox_close(&box);
			append_file_error(cmd, e);
			return IMAP_RUN_DONE;
		} else {
			ret = store_append_fd(tx, m->lit.fd, &m->msg, &err);
		}
		if (ret < 0) {
			store_append_rollback(&tx);
			store_mailbox_close(&box);
			imap_cmd_store_error(cmd, &err);
			return IMAP_RUN_DONE;
		}
	}
	if (store_append_commit(&tx, &uidvalidity, &first, &n, &err) < 0) {
		store_mailbox_close(&box);
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	store_mailbox_close(&box);
	/* Free the disk space now rather than when the command is freed. */
	append_cleanup(cmd);
	/* An APPEND to the selected mailbox gets its EXISTS from the update
	 * that ends every command. */
	if (n > 1)
		code = arena_printf(&cmd->arena, "[APPENDUID %u %u:%u]",
		    uidvalidity, first, first + n - 1);
	else
		code = arena_printf(&cmd->arena, "[APPENDUID %u %u]",
		    uidvalidity, first);
	imap_cmd_result(cmd, "OK", code, "Append completed.");
	return IMAP_RUN_DONE;
}

void
cmd_append(struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args;
	unsigned positions[IMAP_APPEND_MAX_MESSAGES];
	unsigned npos = 0, k = 0, i;
	bool too_many = false, empty = false;
	struct append_ctx *ctx;
	const char *mbox, *error;

	/* Take the streamed files first, so that every way out of here
	 * closes them (append_cleanup, when the command is freed). */
	for (i = 0; i < cmd->nargs; i++) {
		if (args[i].type != IMAP_ARG_LITERAL_STREAMED)
			continue;
		if (npos == IMAP_APPEND_MAX_MESSAGES)
			too_many = true;
		else
			positions[npos++] = i;
	}
	ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	ctx->lits = arena_alloc(&cmd->arena, (npos + 1) * sizeof(*ctx->lits));
	ctx->msgs = arena_alloc(&cmd->arena, (cmd->nargs + 1) *
	    sizeof(*ctx->msgs));
	cmd->ctx = ctx;
	cmd->cleanup = append_cleanup;
	if (imap_append_stream_take(cmd->s, positions, npos,
	    ctx->lits) < 0 || too_many) {
		imap_cmd_bad(cmd, "Invalid arguments.");
		return;
	}
	ctx->nlits = npos;

	if (cmd->nargs < 2 || !imap_arg_get_astring(&args[0], &mbox)) {
		imap_cmd_bad(cmd, "APPEND needs a mailbox and a message.");
		return;
	}
	/* Then 1*(SP [flag-list SP] [date-time SP] literal). */
	for (i = 1; i < cmd->nargs; i++) {
		struct append_msg *m = &ctx->msgs[ctx->count];
		const struct imap_arg *list;
		const char *date;
		unsigned n;

		if (imap_arg_get_list(&args[i], &list, &n)) {
			uint32_t flags;
			const char **kw;
			unsigned nkw;

			if (imap_flags_parse(list, n, &cmd->arena, &flags,
			    &kw, &nkw, &error) < 0) {
				imap_cmd_bad(cmd, "%s", error);
				return;
			}
			m->msg.flags = flags;
			m->msg.keywords = kw;
			m->msg.keyword_count = nkw;
			i++;
		}
		if (i < cmd->nargs && args[i].type == IMAP_ARG_STRING) {
			imap_arg_get_string(&args[i], &date);
			if (!parse_datetime(date, &m->msg.internal_date)) {
				imap_cmd_bad(cmd, "Invalid internal date.");
				return;
			}
			i++;
		}
		if (i >= cmd->nargs) {
			imap_cmd_bad(cmd, "Invalid arguments.");
			return;
		}
		if (args[i].type == IMAP_ARG_LITERAL_STREAMED) {
			m->lit = ctx->lits[k++];
			m->size = m->lit.size;
		} else if (args[i].type == IMAP_ARG_LITERAL) {
			/* Only a 0-byte literal stays in memory. */
			m->data = args[i].v.str;
			m->size = args[i].len;
		} else {
			imap_cmd_bad(cmd, "Invalid arguments.");
			return;
		}
		if (m->size == 0)
			empty = true;
		ctx->count++;
	}
	if (imap_mailbox_name(mbox, ctx->name, &error) < 0) {
		imap_cmd_reply(cmd, "NO", "[CANNOT]", "%s", error);
		return;
	}
	if (empty) {
		/* As Dovecot; RFC 5322 has no empty message. */
		imap_cmd_reply(cmd, "NO", NULL,
		    "Can't save a zero byte message.");
		return;
	}
	imap_cmd_run(cmd, append_run);
}
