#include "mime/envelope.h"
#include "mime/address.h"
#include "mime/message.h"
#include "mime/quote.h"
#include "core/buf.h"

#include <string.h>

enum env_field {
	ENV_DATE, ENV_SUBJECT, ENV_FROM, ENV_SENDER, ENV_REPLY_TO, ENV_TO,
	ENV_CC, ENV_BCC, ENV_IN_REPLY_TO, ENV_MESSAGE_ID, ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {
	"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
	"In-Reply-To", "Message-ID"
};

static bool
is_addr_field(enum env_field f)
{
	return f >= ENV_FROM && f <= ENV_BCC;
}

void
mime_envelope_write(struct buf *out, const struct mime_message *msg,
		    const struct mime_part *part)
{
	const char *str[ENV_COUNT];
	size_t len[ENV_COUNT];
	struct mime_address *head[ENV_COUNT], *tail[ENV_COUNT];
	unsigned int i, f;

	memset(str, 0, sizeof(str));
	memset(len, 0, sizeof(len));
	memset(head, 0, sizeof(head));
	memset(tail, 0, sizeof(tail));
	for (i = 0; i < part->nfields; i++) {
		const struct mime_header_field *hf = &part->fields[i];

		for (f = 0; f < ENV_COUNT; f++) {
			if (mime_header_is(msg, hf, env_names[f]))
				break;
		}
		if (f == ENV_COUNT)
			continue;
		/* Line ends stay: a folded subject counts as changed text
		   for mime_quote_human(), and a bare CR elsewhere becomes a
		   space in mime_quote_nstring_nolf(). */
		if (!is_addr_field(f))
			str[f] = mime_header_value_raw(msg, hf, &len[f]);
		else
			str[f] = mime_header_value(msg, hf, &len[f]);
		if (is_addr_field(f)) {
			struct mime_address *h, *t;

			h = mime_address_parse(msg->arena, str[f], len[f],
					       &t);
			if (h == NULL)
				continue;
			if (tail[f] == NULL)
				head[f] = h;
			else
				tail[f]->next = h;
			tail[f] = t;
		}
	}
	if (head[ENV_SENDER] == NULL)
		head[ENV_SENDER] = head[ENV_FROM];
	if (head[ENV_REPLY_TO] == NULL)
		head[ENV_REPLY_TO] = head[ENV_FROM];

	buf_append(out, "(", 1);
	for (f = 0; f < ENV_COUNT; f++) {
		if (f > 0)
			buf_append(out, " ", 1);
		if (is_addr_field(f))
			mime_address_write(out, head[f]);
		else if (f == ENV_SUBJECT && str[f] != NULL)
			mime_quote_human(out, str[f], len[f]);
		else
			mime_quote_nstring_nolf(out, str[f], len[f]);
	}
	buf_append(out, ")", 1);
}
