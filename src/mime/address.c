#include "mime/address.h"
#include "mime/mime_private.h"
#include "mime/quote.h"
#include "core/arena.h"
#include "core/buf.h"

#include <string.h>

#define MISSING_MAILBOX "MISSING_MAILBOX"
#define MISSING_DOMAIN "MISSING_DOMAIN"

struct addr_ctx {
	struct arena *arena;
	bool local_quoted;	/* the local part had a quoted-string */
	struct rfc822_lexer lx;
	struct mime_address *head, *tail;
	struct buf name, local, domain, route, comment;
};

static const char *
bufdup(struct addr_ctx *ctx, const struct buf *b)
{
	return arena_strndup(ctx->arena, b->data != NULL ? b->data : "",
			     b->len);
}

static struct mime_address *
add(struct addr_ctx *ctx)
{
	struct mime_address *a = arena_alloc(ctx->arena, sizeof(*a));

	if (ctx->tail == NULL)
		ctx->head = a;
	else
		ctx->tail->next = a;
	ctx->tail = a;
	return a;
}

static void
add_invalid(struct addr_ctx *ctx)
{
	struct mime_address *a = add(ctx);

	a->mailbox = MISSING_MAILBOX;
	a->domain = MISSING_DOMAIN;
	a->invalid = true;
}

static bool
at(struct addr_ctx *ctx, char c)
{
	return ctx->lx.p < ctx->lx.end && *ctx->lx.p == (unsigned char)c;
}

/* phrase = 1*(atom / quoted-string); words are joined by one space and
   dots belong to words (obs-phrase). */
static bool
parse_phrase(struct addr_ctx *ctx)
{
	struct rfc822_lexer *lx = &ctx->lx;
	bool any = false;

	buf_reset(&ctx->name);
	for (;;) {
		size_t before = ctx->name.len;

		if (!rfc822_skip_cfws(lx))
			break;
		if (any)
			buf_append(&ctx->name, " ", 1);
		if (*lx->p == '"') {
			if (!rfc822_quoted(lx, &ctx->name))
				return false;
		} else if (!rfc822_phrase_word(lx, &ctx->name)) {
			ctx->name.len = before;
			if (ctx->name.data != NULL)
				ctx->name.data[before] = '\0';
			break;
		}
		any = true;
	}
	return any;
}

/* local-part = dot-atom / quoted-string, obs: words joined by dots. */
static void
parse_local(struct addr_ctx *ctx)
{
	struct rfc822_lexer *lx = &ctx->lx;

	buf_reset(&ctx->local);
	ctx->local_quoted = false;
	for (;;) {
		if (!rfc822_skip_cfws(lx))
			return;
		if (*lx->p == '"') {
			if (!rfc822_quoted(lx, &ctx->local))
				return;
			ctx->local_quoted = true;
		} else if (!rfc822_atom(lx, &ctx->local)) {
			return;
		}
		if (!rfc822_skip_cfws(lx) || *lx->p != '.')
			return;
		buf_append(&ctx->local, ".", 1);
		lx->p++;
	}
}

static void
parse_domain(struct addr_ctx *ctx)
{
	struct rfc822_lexer *lx = &ctx->lx;

	buf_reset(&ctx->domain);
	if (!rfc822_skip_cfws(lx))
		return;
	if (*lx->p == '[')
		rfc822_domain_literal(lx, &ctx->domain);
	else
		rfc822_dot_atom(lx, &ctx->domain);
	rfc822_skip_cfws(lx);
}

/*
 * addr-spec; comments seen on the way are the fallback name.  In <...>
 * (angle), anything but '@' or '>' after the local part makes the domain
 * "SYNTAX_ERROR"; outside, a lone quoted-string is a display name without
 * an address (both as Dovecot).
 */
static void
parse_addr_spec(struct addr_ctx *ctx, bool use_comment, bool angle)
{
	struct mime_address *a;
	bool syntax_error = false, name_only = false;

	buf_reset(&ctx->comment);
	ctx->lx.last_comment = use_comment ? &ctx->comment : NULL;
	parse_local(ctx);
	buf_reset(&ctx->domain);
	if (at(ctx, '@')) {
		ctx->lx.p++;
		parse_domain(ctx);
	} else if (angle && ctx->lx.p < ctx->lx.end && !at(ctx, '>')) {
		syntax_error = true;
		while (ctx->lx.p < ctx->lx.end && !at(ctx, '>'))
			ctx->lx.p++;
	} else if (!angle && ctx->local_quoted) {
		name_only = true;
	}
	rfc822_skip_cfws(&ctx->lx);
	ctx->lx.last_comment = NULL;

	a = add(ctx);
	if (use_comment && ctx->comment.len > 0)
		a->name = bufdup(ctx, &ctx->comment);
	if (name_only) {
		a->name = ctx->local.len > 0 ? bufdup(ctx, &ctx->local) : NULL;
		buf_reset(&ctx->local);
	}
	if (ctx->local.len == 0) {
		a->mailbox = MISSING_MAILBOX;
		a->invalid = true;
	} else {
		a->mailbox = bufdup(ctx, &ctx->local);
	}
	if (syntax_error) {
		a->domain = "SYNTAX_ERROR";
		a->invalid = true;
	} else if (ctx->domain.len == 0) {
		a->domain = MISSING_DOMAIN;
		a->invalid = true;
	} else {
		a->domain = bufdup(ctx, &ctx->domain);
	}
}

/* At '<': [route ":"] addr-spec ">". */
static void
parse_angle(struct addr_ctx *ctx, bool have_name)
{
	struct rfc822_lexer *lx = &ctx->lx;
	const char *name = have_name && ctx->name.len > 0 ?
		bufdup(ctx, &ctx->name) : NULL;

	lx->p++;
	buf_reset(&ctx->route);
	rfc822_skip_cfws(lx);
	while (at(ctx, '@')) {
		if (ctx->route.len > 0)
			buf_append(&ctx->route, ",", 1);
		buf_append(&ctx->route, "@", 1);
		lx->p++;
		parse_domain(ctx);
		buf_append(&ctx->route, ctx->domain.data, ctx->domain.len);
		while (at(ctx, ',')) {
			lx->p++;
			rfc822_skip_cfws(lx);
		}
		if (at(ctx, ':')) {
			lx->p++;
			break;
		}
	}
	parse_addr_spec(ctx, false, true);
	ctx->tail->name = name;
	if (ctx->route.len > 0)
		ctx->tail->route = bufdup(ctx, &ctx->route);
	if (at(ctx, '>'))
		lx->p++;
	rfc822_skip_cfws(lx);
}

struct mime_address *
mime_address_parse(struct arena *arena, const char *s, size_t len,
		   struct mime_address **tail_r)
{
	struct addr_ctx ctx;
	struct rfc822_lexer *lx = &ctx.lx;
	bool in_group = false;

	memset(&ctx, 0, sizeof(ctx));
	ctx.arena = arena;
	buf_init(&ctx.name, 0);
	buf_init(&ctx.local, 0);
	buf_init(&ctx.domain, 0);
	buf_init(&ctx.route, 0);
	buf_init(&ctx.comment, 0);
	rfc822_lexer_init(lx, s, len);

	while (rfc822_skip_cfws(lx)) {
		const unsigned char *start = lx->p;

		if (*lx->p == ',') {
			/* An empty list element. */
			add_invalid(&ctx);
			lx->p++;
			continue;
		}
		if (*lx->p == ';') {
			if (!in_group) {
				add_invalid(&ctx);
				break;
			}
			add(&ctx);
			in_group = false;
			lx->p++;
			if (rfc822_skip_cfws(lx) && *lx->p == ',')
				lx->p++;
			continue;
		}
		if (parse_phrase(&ctx) && rfc822_skip_cfws(lx) &&
		    *lx->p == ':' && !in_group) {
			struct mime_address *g = add(&ctx);

			g->mailbox = bufdup(&ctx, &ctx.name);
			in_group = true;
			lx->p++;
			continue;
		}
		if (lx->p < lx->end && *lx->p == '<') {
			parse_angle(&ctx, lx->p != start);
		} else {
			lx->p = start;
			parse_addr_spec(&ctx, true, false);
		}
		if (lx->p >= lx->end)
			break;
		if (*lx->p == ',') {
			lx->p++;
			continue;
		}
		if (*lx->p == ';' && in_group)
			continue;
		break;	/* garbage: Dovecot stops here too */
	}
	if (in_group)
		add(&ctx);

	buf_free(&ctx.name);
	buf_free(&ctx.local);
	buf_free(&ctx.domain);
	buf_free(&ctx.route);
	buf_free(&ctx.comment);
	if (tail_r != NULL)
		*tail_r = ctx.tail;
	return ctx.head;
}

static void
nstr(struct buf *out, const char *s)
{
	mime_quote_nstring(out, s, s != NULL ? strlen(s) : 0);
}

void
mime_address_write(struct buf *out, const struct mime_address *a)
{
	if (a == NULL) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_append(out, "(", 1);
	for (; a != NULL; a = a->next) {
		buf_append(out, "(", 1);
		if (a->name != NULL)
			mime_quote_human(out, a->name, strlen(a->name));
		else
			buf_append_str(out, "NIL");
		buf_append(out, " ", 1);
		nstr(out, a->route);
		buf_append(out, " ", 1);
		nstr(out, a->mailbox);
		buf_append(out, " ", 1);
		nstr(out, a->domain);
		buf_append(out, ")", 1);
	}
	buf_append(out, ")", 1);
}
