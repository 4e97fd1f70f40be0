#include "mime/bodystructure.h"
#include "mime/envelope.h"
#include "mime/message.h"
#include "mime/quote.h"
#include "core/buf.h"

#include <string.h>
#include <strings.h>

#define DEFAULT_CHARSET "\"charset\" \"us-ascii\""
#define EMPTY_BODY \
	"\"text\" \"plain\" (" DEFAULT_CHARSET ") NIL NIL \"7bit\" 0 0"

static void
str(struct buf *out, const char *s)
{
	mime_quote_nstring(out, s, s != NULL ? strlen(s) : 0);
}

static void
params_write(struct buf *out, const struct mime_param *params,
	     unsigned int n, bool add_charset)
{
	unsigned int i;

	if (n == 0 && !add_charset) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_append(out, "(", 1);
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_append(out, " ", 1);
		str(out, params[i].name);
		buf_append(out, " ", 1);
		str(out, params[i].value);
		if (strcasecmp(params[i].name, "charset") == 0)
			add_charset = false;
	}
	if (add_charset) {
		if (n > 0)
			buf_append(out, " ", 1);
		buf_append_str(out, DEFAULT_CHARSET);
	}
	buf_append(out, ")", 1);
}

/* disposition, language, location: common to both kinds of parts. */
static void
ext_write(struct buf *out, const struct mime_part *part)
{
	unsigned int i;

	buf_append(out, " ", 1);
	if (part->disposition == NULL) {
		buf_append_str(out, "NIL");
	} else {
		buf_append(out, "(", 1);
		str(out, part->disposition);
		buf_append(out, " ", 1);
		params_write(out, part->disp_params, part->ndisp_params,
			     false);
		buf_append(out, ")", 1);
	}
	buf_append(out, " ", 1);
	if (part->nlanguages == 0) {
		buf_append_str(out, "NIL");
	} else {
		buf_append(out, "(", 1);
		for (i = 0; i < part->nlanguages; i++) {
			if (i > 0)
				buf_append(out, " ", 1);
			str(out, part->languages[i]);
		}
		buf_append(out, ")", 1);
	}
	buf_append(out, " ", 1);
	str(out, part->location);
}

/* Dovecot stores a plain 7-bit us-ascii single-part message as a flag
   and answers with the lower-case default, whatever the header said. */
static bool
is_plain_7bit(const struct mime_part *part)
{
	if (part->parent != NULL || (part->flags & MIME_PART_F_TEXT) == 0)
		return false;
	if (part->subtype != NULL && strcasecmp(part->subtype, "plain") != 0)
		return false;
	if (part->nparams > 1 ||
	    (part->nparams == 1 &&
	     (strcasecmp(part->params[0].name, "charset") != 0 ||
	      strcasecmp(part->params[0].value, "us-ascii") != 0)))
		return false;
	if (part->id != NULL || part->description != NULL)
		return false;
	if (part->encoding != NULL && strcasecmp(part->encoding, "7bit") != 0)
		return false;
	return part->md5 == NULL && part->disposition == NULL &&
		part->nlanguages == 0 && part->location == NULL;
}

static void part_write(struct buf *out, const struct mime_message *msg,
		       const struct mime_part *part, bool extended);

static void
multipart_write(struct buf *out, const struct mime_message *msg,
		const struct mime_part *part, bool extended)
{
	const struct mime_part *child;

	if (part->children == NULL) {
		buf_append_str(out, "(" EMPTY_BODY);
		if (extended)
			buf_append_str(out, " NIL NIL NIL NIL");
		buf_append(out, ")", 1);
	}
	for (child = part->children; child != NULL; child = child->next) {
		buf_append(out, "(", 1);
		part_write(out, msg, child, extended);
		buf_append(out, ")", 1);
	}
	buf_append(out, " ", 1);
	str(out, part->subtype != NULL ? part->subtype : "x-unknown");
	if (!extended)
		return;
	buf_append(out, " ", 1);
	params_write(out, part->params, part->nparams, false);
	ext_write(out, part);
}

static void
part_write(struct buf *out, const struct mime_message *msg,
	   const struct mime_part *part, bool extended)
{
	const struct mime_part *child;
	bool text = (part->flags & MIME_PART_F_TEXT) != 0;

	if ((part->flags & MIME_PART_F_MULTIPART) != 0) {
		multipart_write(out, msg, part, extended);
		return;
	}
	if (is_plain_7bit(part)) {
		buf_printf(out, "\"text\" \"plain\" (" DEFAULT_CHARSET
			   ") NIL NIL \"7bit\" %zu %zu", part->body_vsize,
			   part->body_lines);
		if (extended)
			buf_append_str(out, " NIL NIL NIL NIL");
		return;
	}

	if ((part->flags & MIME_PART_F_TRUNCATED) != 0) {
		buf_append_str(out, "\"application\" \"octet-stream\"");
	} else if ((part->flags & MIME_PART_F_MESSAGE) != 0) {
		buf_append_str(out, "\"message\" \"rfc822\"");
	} else if (part->type == NULL) {
		buf_append_str(out, "\"text\" \"plain\"");
	} else {
		str(out, part->type);
		buf_append(out, " ", 1);
		str(out, part->subtype);
	}
	buf_append(out, " ", 1);
	params_write(out, part->params, part->nparams, text);
	buf_append(out, " ", 1);
	str(out, part->id);
	buf_append(out, " ", 1);
	str(out, part->description);
	buf_append(out, " ", 1);
	str(out, part->encoding != NULL ? part->encoding : "7bit");
	buf_printf(out, " %zu", part->body_vsize);
	if (text) {
		buf_printf(out, " %zu", part->body_lines);
	} else if ((child = mime_part_message(part)) != NULL) {
		buf_append(out, " ", 1);
		mime_envelope_write(out, msg, child);
		buf_append(out, " (", 2);
		part_write(out, msg, child, extended);
		buf_printf(out, ") %zu", part->body_lines);
	}
	if (!extended)
		return;
	buf_append(out, " ", 1);
	str(out, part->md5);
	ext_write(out, part);
}

void
mime_bodystructure_write(struct buf *out, const struct mime_message *msg,
			 const struct mime_part *part, bool extended)
{
	buf_append(out, "(", 1);
	part_write(out, msg, part, extended);
	buf_append(out, ")", 1);
}
