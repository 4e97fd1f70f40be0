#include "mime/message.h"
#include "mime/mime_private.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/xmalloc.h"

#include <string.h>
#include <strings.h>

/* Where a part's data ended: at a boundary line of stack entry bidx that
   starts at pos, or at the end of the data (bidx < 0). */
struct part_end {
	size_t pos;
	int bidx;
	bool close;		/* the boundary line was "--b--" */
	size_t next;		/* first byte after the boundary line */
};

struct boundary {
	const char *str;
	size_t len;
};

struct parse_ctx {
	struct arena *arena;
	struct mime_message *msg;
	const char *data;
	size_t size;
	unsigned int max_depth, max_parts;
	struct boundary *bstack;
	unsigned int nbounds;
	bool parts_exhausted;
};

size_t
mime_count_bare_lf(const char *data, size_t offset, size_t len)
{
	const char *p = data + offset, *end = p + len;
	size_t n = 0;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (p == data || p[-1] != '\r')
			n++;
		p++;
	}
	return n;
}

static size_t
count_lf(const char *data, size_t offset, size_t len)
{
	const char *p = data + offset, *end = p + len;
	size_t n = 0;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		n++;
		p++;
	}
	return n;
}

/* Index after the LF ending the line at pos, or the data size. */
static size_t
line_next(const struct parse_ctx *ctx, size_t pos)
{
	const char *lf = memchr(ctx->data + pos, '\n', ctx->size - pos);

	return lf == NULL ? ctx->size : (size_t)(lf - ctx->data) + 1;
}

/* Innermost boundary that the line at pos starts with, or -1. */
static int
boundary_match(const struct parse_ctx *ctx, size_t pos, bool *close_r)
{
	const char *p = ctx->data + pos;
	size_t left = ctx->size - pos;
	int i;

	if (ctx->nbounds == 0 || left < 2 || p[0] != '-' || p[1] != '-')
		return -1;
	for (i = (int)ctx->nbounds - 1; i >= 0; i--) {
		const struct boundary *b = &ctx->bstack[i];

		if (left - 2 >= b->len && memcmp(p + 2, b->str, b->len) == 0) {
			*close_r = left - 2 - b->len >= 2 &&
				p[2 + b->len] == '-' && p[3 + b->len] == '-';
			return i;
		}
	}
	return -1;
}

/* Scan lines from pos (a line start) to the next boundary line. */
static void
scan_to_boundary(const struct parse_ctx *ctx, size_t pos,
		 struct part_end *end_r)
{
	while (pos < ctx->size) {
		bool close = false;
		int b = boundary_match(ctx, pos, &close);

		if (b >= 0) {
			end_r->pos = pos;
			end_r->bidx = b;
			end_r->close = close;
			end_r->next = line_next(ctx, pos);
			return;
		}
		pos = line_next(ctx, pos);
	}
	end_r->pos = ctx->size;
	end_r->bidx = -1;
	end_r->close = false;
	end_r->next = ctx->size;
}

/* The line end before a boundary line belongs to the boundary (RFC 2046
   section 5.1.1), but only if it lies inside the current segment. */
static size_t
strip_eol(const struct parse_ctx *ctx, size_t seg_start, size_t pos)
{
	if (pos > seg_start && ctx->data[pos - 1] == '\n') {
		pos--;
		if (pos > seg_start && ctx->data[pos - 1] == '\r')
			pos--;
	}
	return pos;
}

static void
fields_add(struct parse_ctx *ctx, struct mime_part *part, unsigned int *cap,
	   const struct mime_header_field *f)
{
	if (part->nfields == *cap) {
		struct mime_header_field *na;

		*cap = *cap == 0 ? 16 : *cap * 2;
		na = arena_alloc(ctx->arena, *cap * sizeof(*na));
		if (part->nfields > 0)
			memcpy(na, part->fields,
			       part->nfields * sizeof(*na));
		part->fields = na;
	}
	part->fields[part->nfields++] = *f;
}

static void
field_finish(const struct parse_ctx *ctx, struct mime_header_field *f,
	     size_t end)
{
	const char *d = ctx->data;
	size_t vend = end;

	f->len = end - f->offset;
	f->has_eol = end > f->offset && d[end - 1] == '\n';
	if (f->has_eol) {
		vend--;
		if (vend > f->offset && d[vend - 1] == '\r')
			vend--;
	}
	if (!f->has_colon) {
		f->name_len = vend - f->offset;
		f->value_offset = vend;
		f->value_len = 0;
	} else {
		f->value_len = vend > f->value_offset ?
			vend - f->value_offset : 0;
	}
}

/*
 * Read the header starting at pos.  Returns true if it ended at an empty
 * line or at the end of the data; false if a boundary line ended it, with
 * *end_r describing that line.
 */
static bool
parse_header(struct parse_ctx *ctx, struct mime_part *part, size_t pos,
	     struct part_end *end_r)
{
	const char *d = ctx->data;
	struct mime_header_field f;
	bool in_field = false;
	unsigned int cap = 0;

	part->hdr_offset = pos;
	memset(&f, 0, sizeof(f));
	while (pos < ctx->size) {
		size_t next = line_next(ctx, pos);
		bool close = false;
		int b;

		if (d[pos] == '\n' || (d[pos] == '\r' && pos + 1 < ctx->size &&
				       d[pos + 1] == '\n')) {
			if (in_field) {
				field_finish(ctx, &f, pos);
				fields_add(ctx, part, &cap, &f);
			}
			part->flags |= MIME_PART_F_HAS_EOH;
			part->hdr_len = next - part->hdr_offset;
			part->body_offset = next;
			return true;
		}
		b = boundary_match(ctx, pos, &close);
		if (b >= 0) {
			if (in_field) {
				field_finish(ctx, &f, pos);
				fields_add(ctx, part, &cap, &f);
			}
			part->hdr_len = pos - part->hdr_offset;
			part->body_offset = pos;
			end_r->pos = pos;
			end_r->bidx = b;
			end_r->close = close;
			end_r->next = next;
			return false;
		}
		if (d[pos] == ' ' || d[pos] == '\t') {
			/* A continuation line; one with nothing to continue
			   is dropped. */
			pos = next;
			continue;
		}
		if (in_field) {
			field_finish(ctx, &f, pos);
			fields_add(ctx, part, &cap, &f);
		}
		memset(&f, 0, sizeof(f));
		f.offset = pos;
		in_field = true;
		{
			const char *colon = memchr(d + pos, ':', next - pos);

			if (colon != NULL) {
				size_t nl = (size_t)(colon - d) - pos;

				while (nl > 0 && (d[pos + nl - 1] == ' ' ||
						  d[pos + nl - 1] == '\t'))
					nl--;
				f.has_colon = true;
				f.name_len = nl;
				f.value_offset = (size_t)(colon - d) + 1;
			}
		}
		pos = next;
	}
	if (in_field) {
		field_finish(ctx, &f, ctx->size);
		fields_add(ctx, part, &cap, &f);
	}
	part->hdr_len = ctx->size - part->hdr_offset;
	part->body_offset = ctx->size;
	return true;
}

static const char *
header_value(const struct mime_message *msg,
	     const struct mime_header_field *field, bool keep_eol,
	     size_t *len_r)
{
	const char *p = msg->data + field->value_offset;
	const char *end = p + field->value_len;
	char *out, *o;

	/* Only the first line's leading blanks go: after "Name:\n x" the
	   value keeps " x", as in Dovecot. */
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	/* UNSAFE: each NUL grows to the 3 bytes of U+FFFD. */
	o = out = arena_alloc(msg->arena, (size_t)(end - p) * 3 + 1);
	for (; p < end; p++) {
		if (!keep_eol && *p == '\n')
			continue;
		if (!keep_eol && *p == '\r' && p + 1 < end && p[1] == '\n')
			continue;
		if (*p == '\0') {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			continue;
		}
		*o++ = *p;
	}
	*o = '\0';
	if (len_r != NULL)
		*len_r = (size_t)(o - out);
	return out;
}

const char *
mime_header_value(const struct mime_message *msg,
		  const struct mime_header_field *field, size_t *len_r)
{
	return header_value(msg, field, false, len_r);
}

const char *
mime_header_value_raw(const struct mime_message *msg,
		      const struct mime_header_field *field, size_t *len_r)
{
	return header_value(msg, field, true, len_r);
}

bool
mime_header_is(const struct mime_message *msg,
	       const struct mime_header_field *field, const char *name)
{
	return field->has_colon &&
		mime_memcaseeq(msg->data + field->offset, field->name_len,
			       name);
}

const struct mime_header_field *
mime_header_find(const struct mime_message *msg, const struct mime_part *part,
		 const char *name, bool get_last)
{
	const struct mime_header_field *found = NULL;
	unsigned int i;

	for (i = 0; i < part->nfields; i++) {
		if (mime_header_is(msg, &part->fields[i], name)) {
			found = &part->fields[i];
			if (!get_last)
				break;
		}
	}
	return found;
}

static void
parse_content_type(struct parse_ctx *ctx, struct mime_part *part,
		   const char *value, size_t len)
{
	struct rfc822_lexer lx;
	struct buf type, sub;
	bool ok = false;

	buf_init(&type, 0);
	buf_init(&sub, 0);
	rfc822_lexer_init(&lx, value, len);
	rfc822_skip_cfws(&lx);
	if (rfc822_token(&lx, &type)) {
		rfc822_skip_cfws(&lx);
		if (lx.p < lx.end && *lx.p == '/') {
			lx.p++;
			rfc822_skip_cfws(&lx);
			ok = rfc822_token(&lx, &sub);
		} else {
			/* "text" alone: Dovecot keeps the type and reports
			   an empty subtype. */
			buf_append(&sub, "", 0);
			ok = true;
		}
		if (ok && rfc822_skip_cfws(&lx) && *lx.p != ';')
			ok = false;
	}
	if (!ok) {
		part->type = "";
		part->subtype = "";
	} else {
		part->type = arena_strndup(ctx->arena, type.data, type.len);
		part->subtype = arena_strndup(ctx->arena, sub.data, sub.len);
		mime_params_parse(ctx->arena, &lx, &part->params,
				  &part->nparams);
	}
	buf_free(&type);
	buf_free(&sub);
}

static void
parse_disposition(struct parse_ctx *ctx, struct mime_part *part,
		  const char *value, size_t len)
{
	struct rfc822_lexer lx;
	struct buf tok;

	buf_init(&tok, 0);
	buf_append(&tok, "", 0);
	rfc822_lexer_init(&lx, value, len);
	rfc822_skip_cfws(&lx);
	rfc822_token(&lx, &tok);
	part->disposition = arena_strndup(ctx->arena, tok.data, tok.len);
	mime_params_parse(ctx->arena, &lx, &part->disp_params,
			  &part->ndisp_params);
	buf_free(&tok);
}

static void
parse_language(struct parse_ctx *ctx, struct mime_part *part,
	       const char *value, size_t len)
{
	struct rfc822_lexer lx;
	struct buf tok;
	const char **langs = NULL;
	unsigned int n = 0, cap = 0;

	buf_init(&tok, 0);
	rfc822_lexer_init(&lx, value, len);
	rfc822_skip_cfws(&lx);
	for (;;) {
		buf_reset(&tok);
		if (!rfc822_atom(&lx, &tok))
			break;
		if (n == cap) {
			const char **na;

			cap = cap == 0 ? 4 : cap * 2;
			na = arena_alloc(ctx->arena, cap * sizeof(*na));
			if (n > 0)
				memcpy(na, langs, n * sizeof(*na));
			langs = na;
		}
		langs[n++] = arena_strndup(ctx->arena, tok.data, tok.len);
		if (!rfc822_skip_cfws(&lx) || *lx.p != ',')
			break;
		lx.p++;
		rfc822_skip_cfws(&lx);
	}
	buf_free(&tok);
	part->languages = langs;
	part->nlanguages = n;
}

static void
parse_content_fields(struct parse_ctx *ctx, struct mime_part *part)
{
	const struct mime_message *msg = ctx->msg;
	unsigned int i;

	for (i = 0; i < part->nfields; i++) {
		const struct mime_header_field *f = &part->fields[i];
		const char *name = ctx->data + f->offset, *v;
		size_t nlen = f->name_len, vlen;

		if (!f->has_colon || nlen < 8 ||
		    strncasecmp(name, "Content-", 8) != 0)
			continue;
		name += 8;
		nlen -= 8;
		v = mime_header_value(msg, f, &vlen);
		if (mime_memcaseeq(name, nlen, "Type")) {
			if (part->type == NULL)
				parse_content_type(ctx, part, v, vlen);
		} else if (mime_memcaseeq(name, nlen, "Transfer-Encoding")) {
			struct rfc822_lexer lx;
			struct buf tok;

			if (part->encoding != NULL)
				continue;
			buf_init(&tok, 0);
			rfc822_lexer_init(&lx, v, vlen);
			rfc822_skip_cfws(&lx);
			if (rfc822_token(&lx, &tok))
				part->encoding = arena_strndup(ctx->arena,
							       tok.data,
							       tok.len);
			buf_free(&tok);
		} else if (mime_memcaseeq(name, nlen, "ID")) {
			if (part->id == NULL)
				part->id = v;
		} else if (mime_memcaseeq(name, nlen, "Description")) {
			if (part->description == NULL)
				part->description = v;
		} else if (mime_memcaseeq(name, nlen, "MD5")) {
			if (part->md5 == NULL)
				part->md5 = v;
		} else if (mime_memcaseeq(name, nlen, "Location")) {
			if (part->location == NULL)
				part->location = v;
		} else if (mime_memcaseeq(name, nlen, "Disposition")) {
			if (part->disposition == NULL)
				parse_disposition(ctx, part, v, vlen);
		} else if (mime_memcaseeq(name, nlen, "Language")) {
			if (part->languages == NULL)
				parse_language(ctx, part, v, vlen);
		}
	}
}

static void
classify(struct parse_ctx *ctx, struct mime_part *part, bool in_digest)
{
	unsigned int i;

	if (part->type == NULL) {
		if (in_digest)
			part->flags |= MIME_PART_F_MESSAGE;
		else
			part->flags |= MIME_PART_F_TEXT;
		return;
	}
	if (strcasecmp(part->type, "text") == 0) {
		part->flags |= MIME_PART_F_TEXT;
	} else if (strcasecmp(part->type, "message") == 0 &&
		   strcasecmp(part->subtype, "rfc822") == 0) {
		part->flags |= MIME_PART_F_MESSAGE;
	} else if (strcasecmp(part->type, "multipart") == 0) {
		part->flags |= MIME_PART_F_MULTIPART;
		for (i = 0; i < part->nparams; i++) {
			if (strcasecmp(part->params[i].name, "boundary") == 0 &&
			    part->params[i].value[0] != '\0') {
				part->boundary = part->params[i].value;
				break;
			}
		}
	}
}

static struct mime_part *
part_new(struct parse_ctx *ctx, struct mime_part *parent)
{
	struct mime_part *part;

	if (ctx->msg->nparts >= ctx->max_parts) {
		ctx->parts_exhausted = true;
		return NULL;
	}
	part = arena_alloc(ctx->arena, sizeof(*part));
	part->parent = parent;
	part->depth = parent == NULL ? 0 : parent->depth + 1;
	ctx->msg->nparts++;
	return part;
}

static void part_parse(struct parse_ctx *ctx, struct mime_part *part,
		       size_t pos, bool in_digest, struct part_end *end_r);

static void
body_finish(struct parse_ctx *ctx, struct mime_part *part, size_t end)
{
	if (end < part->body_offset)
		end = part->body_offset;
	part->body_len = end - part->body_offset;
	part->body_lines = count_lf(ctx->data, part->body_offset,
				    part->body_len);
	part->body_vsize = part->body_len +
		mime_count_bare_lf(ctx->data, part->body_offset,
				   part->body_len);
}

static void
multipart_parse(struct parse_ctx *ctx, struct mime_part *part,
		struct part_end *end_r)
{
	struct mime_part **tail = &part->children;
	unsigned int own = ctx->nbounds;
	bool digest = strcasecmp(part->subtype, "digest") == 0;
	size_t seg_start = part->body_offset;
	struct part_end e;
	size_t end;

	{
		/* The stack is at most max_depth deep; grow by copying. */
		struct boundary *nb = arena_alloc(ctx->arena,
						  (own + 1) * sizeof(*nb));

		if (own > 0)
			memcpy(nb, ctx->bstack, own * sizeof(*nb));
		nb[own].str = part->boundary;
		nb[own].len = strlen(part->boundary);
		ctx->bstack = nb;
		ctx->nbounds = own + 1;
	}

	scan_to_boundary(ctx, part->body_offset, &e);
	end = e.bidx >= 0 ? strip_eol(ctx, part->body_offset, e.pos) : e.pos;
	while (e.bidx == (int)own && !e.close) {
		struct mime_part *child = part_new(ctx, part);

		if (child == NULL) {
			/* Part budget spent: the rest is opaque. */
			e.pos = e.next = ctx->size;
			e.bidx = -1;
			end = ctx->size;
			break;
		}
		*tail = child;
		tail = &child->next;
		part->nchildren++;
		seg_start = e.next;
		part_parse(ctx, child, e.next, digest, &e);
		/* A part ending at a parent's boundary ends us there too;
		   the line end before it went to the boundary already. */
		end = child->body_offset + child->body_len;
	}
	if (e.bidx == (int)own) {
		/* Close delimiter: the epilogue runs to a parent's
		   boundary. */
		ctx->nbounds = own;
		seg_start = e.next;
		scan_to_boundary(ctx, e.next, &e);
		end = e.bidx >= 0 ? strip_eol(ctx, seg_start, e.pos) : e.pos;
	}
	ctx->nbounds = own;
	body_finish(ctx, part, end);
	*end_r = e;
}

static void
part_parse(struct parse_ctx *ctx, struct mime_part *part, size_t pos,
	   bool in_digest, struct part_end *end_r)
{
	bool can_nest = part->depth + 1 < ctx->max_depth &&
		!ctx->parts_exhausted;

	if (!parse_header(ctx, part, pos, end_r)) {
		parse_content_fields(ctx, part);
		classify(ctx, part, in_digest);
		if ((part->flags & MIME_PART_F_MULTIPART) != 0)
			part->boundary = NULL;
		if ((part->flags & MIME_PART_F_MESSAGE) != 0) {
			part->flags &= ~(unsigned int)MIME_PART_F_MESSAGE;
			part->flags |= MIME_PART_F_TRUNCATED;
		}
		body_finish(ctx, part, part->body_offset);
		return;
	}
	parse_content_fields(ctx, part);
	classify(ctx, part, in_digest);

	if ((part->flags & MIME_PART_F_MULTIPART) != 0 &&
	    part->boundary != NULL && can_nest) {
		multipart_parse(ctx, part, end_r);
		return;
	}
	if ((part->flags & MIME_PART_F_MESSAGE) != 0 && can_nest) {
		struct mime_part *child = part_new(ctx, part);

		if (child != NULL) {
			part->children = child;
			part->nchildren = 1;
			part_parse(ctx, child, part->body_offset, false,
				   end_r);
			body_finish(ctx, part, child->body_offset +
				    child->body_len);
			return;
		}
	}
	if (!can_nest && (part->flags & (MIME_PART_F_MULTIPART |
					 MIME_PART_F_MESSAGE)) != 0) {
		part->flags |= MIME_PART_F_TRUNCATED;
		part->flags &= ~(unsigned int)(MIME_PART_F_MULTIPART |
					       MIME_PART_F_MESSAGE);
	}
	if ((part->flags & MIME_PART_F_MESSAGE) != 0 &&
	    part->children == NULL) {
		/* Part budget spent. */
		part->flags |= MIME_PART_F_TRUNCATED;
		part->flags &= ~(unsigned int)MIME_PART_F_MESSAGE;
	}
	if (ctx->parts_exhausted) {
		end_r->pos = end_r->next = ctx->size;
		end_r->bidx = -1;
		end_r->close = false;
		body_finish(ctx, part, ctx->size);
		return;
	}
	scan_to_boundary(ctx, part->body_offset, end_r);
	body_finish(ctx, part, end_r->bidx >= 0 ?
		    strip_eol(ctx, part->body_offset, end_r->pos) :
		    end_r->pos);
}

struct mime_message *
mime_message_parse(struct arena *arena, const char *data, size_t size,
		   const struct mime_limits *limits)
{
	struct parse_ctx ctx;
	struct mime_message *msg = arena_alloc(arena, sizeof(*msg));
	struct part_end end;

	memset(&ctx, 0, sizeof(ctx));
	msg->data = data != NULL ? data : "";
	msg->size = data != NULL ? size : 0;
	msg->arena = arena;
	ctx.arena = arena;
	ctx.msg = msg;
	ctx.data = msg->data;
	ctx.size = msg->size;
	ctx.max_depth = limits != NULL && limits->max_depth > 0 ?
		limits->max_depth : MIME_DEFAULT_MAX_DEPTH;
	ctx.max_parts = limits != NULL && limits->max_parts > 0 ?
		limits->max_parts : MIME_DEFAULT_MAX_PARTS;
	msg->root = arena_alloc(arena, sizeof(*msg->root));
	msg->nparts = 1;
	part_parse(&ctx, msg->root, 0, false, &end);
	return msg;
}

struct mime_part *
mime_part_next(const struct mime_part *part)
{
	if (part->children != NULL)
		return part->children;
	while (part != NULL) {
		if (part->next != NULL)
			return part->next;
		part = part->parent;
	}
	return NULL;
}

struct mime_part *
mime_part_message(const struct mime_part *part)
{
	return (part->flags & MIME_PART_F_MESSAGE) != 0 ?
		part->children : NULL;
}
