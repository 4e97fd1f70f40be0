#include "imap/search.h"

#include "core/xmalloc.h"
#include "imap/seqset.h"
#include "mime/decode.h"
#include "mime/message.h"
#include "mime/search.h"
#include "store/store.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Ranges in one sequence set of a search (as view.c allows). */
#define SEARCH_MAX_SET_RANGES 100000

enum key_type {
	K_ALL,
	K_AND,
	K_OR,
	K_NOT,
	K_FLAG,		/* a system flag (or \Recent) is set */
	K_NEW,		/* \Recent and not \Seen */
	K_KEYWORD,
	K_SEQ,
	K_UID,
	K_BEFORE,	/* internal date, by local day */
	K_ON,
	K_SINCE,
	K_SENTBEFORE,	/* Date: header, by the day written */
	K_SENTON,
	K_SENTSINCE,
	K_LARGER,	/* RFC822.SIZE */
	K_SMALLER,
	K_HEADER,	/* HEADER name string */
	K_ADDRESS,	/* FROM/TO/CC/BCC: address lists */
	K_SUBJECT,
	K_BODY,
	K_TEXT,
};

/* Evaluation cost classes: AND/OR children run cheapest first. */
enum key_cost {
	COST_INDEX = 0,		/* flags, numbers, internal date */
	COST_SIZE = 1,		/* maybe the file, only to count LFs */
	COST_HEADER = 2,	/* parse the message */
	COST_BODY = 3,		/* decode the body */
	COST_TEXT = 4,
};

struct search_key {
	enum key_type type;
	enum key_cost cost;
	const char *kname;		/* key as the client wrote it */
	struct search_key *children;	/* AND, OR, NOT */
	struct search_key *next;
	uint32_t flag;			/* K_FLAG */
	const char *name;		/* K_KEYWORD, K_HEADER field name */
	const char *str;		/* folded UTF-8 needle */
	size_t len;
	uint64_t num;			/* K_LARGER, K_SMALLER */
	int64_t day;			/* date keys */
	struct imap_seqset set;		/* K_SEQ, K_UID */
	uint64_t kw_mask;		/* K_KEYWORD, after prepare */
	struct imap_search_aux *aux;	/* index data, if any */
};

struct imap_search {
	struct search_key *root;
	struct imap_search_aux *aux;
};

struct parse_ctx {
	struct arena *arena;
	const char *charset;	/* NULL: UTF-8 */
	const char *error;
	struct imap_search_aux *aux;	/* list being built */
};

struct cursor {
	const struct imap_arg *args;
	unsigned count, pos;
};

static const char *const month_names[12] = {
	"january", "february", "march", "april", "may", "june", "july",
	"august", "september", "october", "november", "december",
};

/* ---- dates ------------------------------------------------------------ */

int64_t
imap_search_days_from_civil(int year, unsigned month, unsigned day)
{
	/* Days since 1970-01-01 in the proleptic Gregorian calendar, with
	 * the year starting in March so that leap days come last. */
	int64_t y = (int64_t)year - (month <= 2 ? 1 : 0);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t mp = month > 2 ? month - 3 : month + 9;
	int64_t doy = (153 * mp + 2) / 5 + day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static unsigned
days_in_month(int year, unsigned month)
{
	static const unsigned char mdays[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
	};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : mdays[month - 1];
}

/* Month number (1-12) of a 3-letter abbreviation or, if full is set, a
 * full English name; 0 if none. */
static unsigned
month_number(const char *s, size_t len, bool full)
{
	for (unsigned i = 0; i < 12; i++) {
		if (len == 3 && strncasecmp(s, month_names[i], 3) == 0)
			return i + 1;
		if (full && len == strlen(month_names[i]) &&
		    strncasecmp(s, month_names[i], len) == 0)
			return i + 1;
	}
	return 0;
}

static bool
all_digits(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static unsigned
digits_value(const char *s, size_t len)
{
	unsigned v = 0;

	for (size_t i = 0; i < len; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	return v;
}

bool
imap_search_parse_date(const char *s, int64_t *day_r)
{
	/* RFC 3501: date-day "-" date-month "-" date-year, with date-day
	 * 1*2DIGIT, date-month a 3-letter name, date-year 4DIGIT. */
	const char *d1 = strchr(s, '-'), *d2;
	unsigned day, month;
	int year;

	if (d1 == NULL || (d2 = strchr(d1 + 1, '-')) == NULL)
		return false;
	if (d1 - s < 1 || d1 - s > 2 || !all_digits(s, (size_t)(d1 - s)))
		return false;
	day = digits_value(s, (size_t)(d1 - s));
	month = month_number(d1 + 1, (size_t)(d2 - d1 - 1), false);
	if (month == 0 || strlen(d2 + 1) != 4 || !all_digits(d2 + 1, 4))
		return false;
	year = (int)digits_value(d2 + 1, 4);
	if (day < 1 || day > days_in_month(year, month))
		return false;
	*day_r = imap_search_days_from_civil(year, month, day);
	return true;
}

/* A small RFC 5322 tokenizer for Date: values: comments and white space
 * are skipped, specials are one-character tokens, anything else runs as
 * an atom. */
struct date_lexer {
	const char *p, *end;
};

static bool
date_special(char c)
{
	return strchr("()<>[]:;@\\,.\"", c) != NULL;
}

static void
date_skip_cfws(struct date_lexer *lx)
{
	while (lx->p < lx->end) {
		char c = *lx->p;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->p++;
		} else if (c == '(') {
			unsigned depth = 0;

			for (; lx->p < lx->end; lx->p++) {
				if (*lx->p == '\\' && lx->p + 1 < lx->end) {
					lx->p++;
				} else if (*lx->p == '(') {
					depth++;
				} else if (*lx->p == ')' && --depth == 0) {
					lx->p++;
					break;
				}
			}
		} else {
			break;
		}
	}
}

static bool
date_token(struct date_lexer *lx, const char **tok_r, size_t *len_r)
{
	const char *start;

	date_skip_cfws(lx);
	if (lx->p >= lx->end)
		return false;
	start = lx->p;
	if (date_special(*lx->p)) {
		lx->p++;
	} else {
		while (lx->p < lx->end) {
			unsigned char c = (unsigned char)*lx->p;

			if (c <= ' ' || c == 0x7f || date_special((char)c))
				break;
			lx->p++;
		}
	}
	*tok_r = start;
	*len_r = (size_t)(lx->p - start);
	return true;
}

static bool
is_alpha_token(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return len > 0;
}

bool
imap_search_sent_day(const char *s, size_t len, int64_t *day_r)
{
	struct date_lexer lx = { s, s + len };
	const char *t;
	size_t tl;
	unsigned day, month, hour;
	int year;

	/* [day-of-week ","] day month year hour [":" minute [":" second]]
	 * [zone].  The zone is not looked at: the day is taken as written
	 * (RFC 3501: "disregarding time and timezone"). */
	if (!date_token(&lx, &t, &tl))
		return false;
	if (is_alpha_token(t, tl)) {
		if (tl != 3 || !date_token(&lx, &t, &tl) || tl != 1 ||
		    *t != ',' || !date_token(&lx, &t, &tl))
			return false;
	}
	if (tl > 2 || !all_digits(t, tl))
		return false;
	day = digits_value(t, tl);
	if (!date_token(&lx, &t, &tl) ||
	    (month = month_number(t, tl, true)) == 0)
		return false;
	if (!date_token(&lx, &t, &tl) || !all_digits(t, tl))
		return false;
	if (tl == 2) {
		/* RFC 5322 section 4.3: 00-49 are 2000-2049; Dovecot moves
		 * the cut to 70, as mktime() conventions do. */
		year = (int)digits_value(t, tl);
		year += year < 70 ? 2000 : 1900;
	} else if (tl == 4) {
		year = (int)digits_value(t, tl);
		if (year < 1900)
			return false;
	} else {
		return false;
	}
	if (day < 1 || day > days_in_month(year, month))
		return false;
	/* A time of day must follow; its hour must be valid.  The rest is
	 * taken leniently. */
	if (!date_token(&lx, &t, &tl) || tl > 2 || !all_digits(t, tl))
		return false;
	hour = digits_value(t, tl);
	if (hour > 23)
		return false;
	if (date_token(&lx, &t, &tl) && tl == 1 && *t == ':' &&
	    date_token(&lx, &t, &tl) && all_digits(t, tl)) {
		if (tl > 2 || digits_value(t, tl) > 59)
			return false;
		if (date_token(&lx, &t, &tl) && tl == 1 && *t == ':' &&
		    date_token(&lx, &t, &tl) && all_digits(t, tl) &&
		    (tl > 2 || digits_value(t, tl) > 60))
			return false;
	}
	*day_r = imap_search_days_from_civil(year, month, day);
	return true;
}

/* ---- parsing ------------------------------------------------------------ */

static struct search_key *
key_new(struct parse_ctx *pc, enum key_type type, enum key_cost cost,
    const char *kname)
{
	struct search_key *k = arena_alloc(pc->arena, sizeof(*k));

	k->type = type;
	k->cost = cost;
	k->kname = kname;
	return k;
}

static struct search_key *
key_not(struct parse_ctx *pc, struct search_key *child)
{
	struct search_key *k = key_new(pc, K_NOT, child->cost, "NOT");

	k->children = child;
	return k;
}

static const struct imap_arg *
cursor_next(struct cursor *c)
{
	if (c->pos >= c->count)
		return NULL;
	return &c->args[c->pos++];
}

static bool
is_utf8_charset(const char *cs)
{
	return strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "UTF8") == 0 ||
	    strcasecmp(cs, "US-ASCII") == 0 || strcasecmp(cs, "ASCII") == 0;
}

/* A string argument (astring), converted to UTF-8 and folded. */
static bool
get_string(struct parse_ctx *pc, struct cursor *c, const char *what,
    const char **str_r, size_t *len_r)
{
	const struct imap_arg *arg = cursor_next(c);
	const char *s;
	struct buf conv, folded;

	if (arg == NULL || !imap_arg_get_astring(arg, &s)) {
		pc->error = arena_printf(pc->arena, "%s needs a string.", what);
		return false;
	}
	buf_init(&conv, 0);
	buf_init(&folded, 0);
	if (pc->charset != NULL) {
		buf_append(&conv, "", 0);
		mime_decode_charset_utf8(&conv, pc->charset, s,
		    (size_t)arg->len);
		mime_search_fold(&folded, conv.data != NULL ? conv.data : "",
		    conv.len);
	} else {
		mime_search_fold(&folded, s, (size_t)arg->len);
	}
	*len_r = folded.len;
	*str_r = arena_memdup(pc->arena, folded.data != NULL ? folded.data :
	    "", folded.len + 1);
	buf_free(&conv);
	buf_free(&folded);
	return true;
}

static bool
get_date(struct parse_ctx *pc, struct cursor *c, int64_t *day_r)
{
	const struct imap_arg *arg = cursor_next(c);
	const char *s;

	if (arg == NULL || !imap_arg_get_astring(arg, &s) ||
	    !imap_search_parse_date(s, day_r)) {
		pc->error = "Invalid search date.";
		return false;
	}
	return true;
}

static bool
get_number(struct parse_ctx *pc, struct cursor *c, uint64_t *num_r)
{
	const struct imap_arg *arg = cursor_next(c);
	const char *s;
	uint64_t v = 0;

	if (arg == NULL || !imap_arg_get_atom(arg, &s) ||
	    !all_digits(s, strlen(s))) {
		pc->error = "Invalid search size.";
		return false;
	}
	for (; *s != '\0'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) {
			pc->error = "Search size too large.";
			return false;
		}
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*num_r = v;
	return true;
}

static bool
get_seqset(struct parse_ctx *pc, const char *s, struct imap_seqset *set)
{
	const char *error;

	if (imap_seqset_parse(s, pc->arena, SEARCH_MAX_SET_RANGES, set,
	    &error) < 0) {
		pc->error = arena_printf(pc->arena, "Invalid sequence set: %s.",
		    error);
		return false;
	}
	return true;
}

static struct search_key *parse_key(struct parse_ctx *pc, struct cursor *c,
    unsigned depth);

/*
 * The store field id of a header key: "h:" (HEADER), "s:" (SUBJECT) or
 * "a:" (FROM, TO, CC, BCC: the rewritten address list) and the field name
 * in lower case.  NULL for names that are not plain header field names
 * (RFC 5322 section 2.2: printable ASCII but ':'), which are not cached.
 */
static const char *
aux_field(struct parse_ctx *pc, const struct search_key *k)
{
	size_t len = strlen(k->name);
	char *id;

	if (len == 0 || len + 2 > STORE_SEARCH_FIELD_MAX)
		return NULL;
	id = arena_alloc(pc->arena, len + 3);
	id[0] = k->type == K_HEADER ? 'h' : k->type == K_SUBJECT ? 's' : 'a';
	id[1] = ':';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k->name[i];

		if (c <= ' ' || c >= 0x7f || c == ':')
			return NULL;
		id[i + 2] = (char)tolower(c);
	}
	id[len + 2] = '\0';
	return id;
}

/* Link a header or BODY key to the index data that may answer it: keys
 * of one header field id share one. */
static void
attach_aux(struct parse_ctx *pc, struct search_key *k)
{
	struct imap_search_aux *a;
	const char *field = NULL;

	if (k->type == K_TEXT)
		return;		/* headers are not in the text index */
	if (k->type != K_BODY) {
		if ((field = aux_field(pc, k)) == NULL)
			return;
		for (a = pc->aux; a != NULL; a = a->next) {
			if (a->field != NULL && strcmp(a->field, field) == 0) {
				k->aux = a;
				return;
			}
		}
	}
	a = arena_alloc(pc->arena, sizeof(*a));
	a->kind = field != NULL ? IMAP_SEARCH_AUX_HEADER :
	    IMAP_SEARCH_AUX_BODY;
	a->field = field;
	a->key_type = (int)k->type;
	a->name = k->name;
	a->needle = k->str;
	a->len = k->len;
	a->next = pc->aux;
	pc->aux = a;
	k->aux = a;
}

static void
sort_children(struct search_key *k)
{
	struct search_key *sorted = NULL, **pp, *ch, *next;

	/* Stable insertion sort by cost: the lists are short. */
	for (ch = k->children; ch != NULL; ch = next) {
		next = ch->next;
		for (pp = &sorted; *pp != NULL && (*pp)->cost <= ch->cost;
		    pp = &(*pp)->next)
			;
		ch->next = *pp;
		*pp = ch;
	}
	k->children = sorted;
	k->cost = COST_INDEX;
	for (ch = sorted; ch != NULL; ch = ch->next)
		if (ch->cost > k->cost)
			k->cost = ch->cost;
}

/* One or more keys up to the end of c, ANDed; a single key stands for
 * itself. */
static struct search_key *
parse_and(struct parse_ctx *pc, struct cursor *c, unsigned depth)
{
	struct search_key *first = NULL, **tail = &first, *k;
	unsigned n = 0;

	while (c->pos < c->count) {
		if ((k = parse_key(pc, c, depth)) == NULL)
			return NULL;
		*tail = k;
		tail = &k->next;
		n++;
	}
	if (n == 1)
		return first;
	k = key_new(pc, K_AND, COST_INDEX, "AND");
	k->children = first;
	sort_children(k);
	return k;
}

static const struct {
	const char *name;
	uint32_t flag;
	bool negate;
} flag_keys[] = {
	{ "ANSWERED", STORE_F_ANSWERED, false },
	{ "DELETED", STORE_F_DELETED, false },
	{ "DRAFT", STORE_F_DRAFT, false },
	{ "FLAGGED", STORE_F_FLAGGED, false },
	{ "RECENT", STORE_F_RECENT, false },
	{ "SEEN", STORE_F_SEEN, false },
	{ "OLD", STORE_F_RECENT, true },
	{ "UNANSWERED", STORE_F_ANSWERED, true },
	{ "UNDELETED", STORE_F_DELETED, true },
	{ "UNDRAFT", STORE_F_DRAFT, true },
	{ "UNFLAGGED", STORE_F_FLAGGED, true },
	{ "UNSEEN", STORE_F_SEEN, true },
};

static const struct {
	const char *name;
	enum key_type type;
	const char *header;	/* field name for header keys */
} string_keys[] = {
	{ "BCC", K_ADDRESS, "Bcc" },
	{ "CC", K_ADDRESS, "Cc" },
	{ "FROM", K_ADDRESS, "From" },
	{ "TO", K_ADDRESS, "To" },
	{ "SUBJECT", K_SUBJECT, "Subject" },
	{ "BODY", K_BODY, NULL },
	{ "TEXT", K_TEXT, NULL },
};

static const struct {
	const char *name;
	enum key_type type;
} date_keys[] = {
	{ "BEFORE", K_BEFORE },
	{ "ON", K_ON },
	{ "SINCE", K_SINCE },
	{ "SENTBEFORE", K_SENTBEFORE },
	{ "SENTON", K_SENTON },
	{ "SENTSINCE", K_SENTSINCE },
};

static struct search_key *
parse_atom_key(struct parse_ctx *pc, struct cursor *c, const char *name,
    unsigned depth)
{
	struct search_key *k;

	if ((name[0] >= '0' && name[0] <= '9') || name[0] == '*') {
		k = key_new(pc, K_SEQ, COST_INDEX, "SEQ");
		return get_seqset(pc, name, &k->set) ? k : NULL;
	}
	if (strcasecmp(name, "ALL") == 0)
		return key_new(pc, K_ALL, COST_INDEX, "ALL");
	if (strcasecmp(name, "NEW") == 0)
		return key_new(pc, K_NEW, COST_INDEX, "NEW");
	for (size_t i = 0; i < ARRAY_SIZE(flag_keys); i++) {
		if (strcasecmp(name, flag_keys[i].name) != 0)
			continue;
		k = key_new(pc, K_FLAG, COST_INDEX,
		    flag_keys[i].negate ? (flag_keys[i].flag ==
		    STORE_F_RECENT ? "RECENT" : flag_keys[i].name + 2) :
		    flag_keys[i].name);
		k->flag = flag_keys[i].flag;
		return flag_keys[i].negate ? key_not(pc, k) : k;
	}
	for (size_t i = 0; i < ARRAY_SIZE(string_keys); i++) {
		if (strcasecmp(name, string_keys[i].name) != 0)
			continue;
		k = key_new(pc, string_keys[i].type,
		    string_keys[i].type == K_BODY ? COST_BODY :
		    string_keys[i].type == K_TEXT ? COST_TEXT : COST_HEADER,
		    string_keys[i].name);
		k->name = string_keys[i].header;
		if (!get_string(pc, c, string_keys[i].name, &k->str, &k->len))
			return NULL;
		/* An empty BODY or TEXT string is in every message. */
		if (k->len == 0 && k->name == NULL)
			return key_new(pc, K_ALL, COST_INDEX, "ALL");
		attach_aux(pc, k);
		return k;
	}
	for (size_t i = 0; i < ARRAY_SIZE(date_keys); i++) {
		if (strcasecmp(name, date_keys[i].name) != 0)
			continue;
		k = key_new(pc, date_keys[i].type,
		    date_keys[i].type >= K_SENTBEFORE ? COST_HEADER :
		    COST_INDEX, date_keys[i].name);
		return get_date(pc, c, &k->day) ? k : NULL;
	}
	if (strcasecmp(name, "HEADER") == 0) {
		const struct imap_arg *arg = cursor_next(c);
		const char *field;

		k = key_new(pc, K_HEADER, COST_HEADER, "HEADER");
		if (arg == NULL || !imap_arg_get_astring(arg, &field)) {
			pc->error = "HEADER needs a field name.";
			return NULL;
		}
		k->name = arena_strdup(pc->arena, field);
		if (!get_string(pc, c, "HEADER", &k->str, &k->len))
			return NULL;
		attach_aux(pc, k);
		return k;
	}
	if (strcasecmp(name, "KEYWORD") == 0 ||
	    strcasecmp(name, "UNKEYWORD") == 0) {
		const struct imap_arg *arg = cursor_next(c);
		const char *kw;

		if (arg == NULL || !imap_arg_get_atom(arg, &kw)) {
			pc->error = "KEYWORD needs a flag keyword.";
			return NULL;
		}
		k = key_new(pc, K_KEYWORD, COST_INDEX, "KEYWORD");
		k->name = arena_strdup(pc->arena, kw);
		return toupper((unsigned char)name[0]) == 'U' ?
		    key_not(pc, k) : k;
	}
	if (strcasecmp(name, "LARGER") == 0 ||
	    strcasecmp(name, "SMALLER") == 0) {
		bool larger = toupper((unsigned char)name[0]) == 'L';

		k = key_new(pc, larger ? K_LARGER : K_SMALLER, COST_SIZE,
		    larger ? "LARGER" : "SMALLER");
		return get_number(pc, c, &k->num) ? k : NULL;
	}
	if (strcasecmp(name, "UID") == 0) {
		const struct imap_arg *arg = cursor_next(c);
		const char *set;

		if (arg == NULL || !imap_arg_get_atom(arg, &set)) {
			pc->error = "UID needs a sequence set.";
			return NULL;
		}
		k = key_new(pc, K_UID, COST_INDEX, "UID");
		return get_seqset(pc, set, &k->set) ? k : NULL;
	}
	if (strcasecmp(name, "NOT") == 0) {
		struct search_key *child;

		if (c->pos >= c->count) {
			pc->error = "NOT needs a search key.";
			return NULL;
		}
		if ((child = parse_key(pc, c, depth + 1)) == NULL)
			return NULL;
		/* NOT NOT x is x. */
		if (child->type == K_NOT)
			return child->children;
		return key_not(pc, child);
	}
	if (strcasecmp(name, "OR") == 0) {
		struct search_key *a, *b;

		if (c->pos + 2 > c->count) {
			pc->error = "OR needs two search keys.";
			return NULL;
		}
		if ((a = parse_key(pc, c, depth + 1)) == NULL)
			return NULL;
		if (c->pos >= c->count) {
			pc->error = "OR needs two search keys.";
			return NULL;
		}
		if ((b = parse_key(pc, c, depth + 1)) == NULL)
			return NULL;
		k = key_new(pc, K_OR, COST_INDEX, "OR");
		a->next = b;
		k->children = a;
		sort_children(k);
		return k;
	}
	pc->error = arena_printf(pc->arena, "Unknown search key %.40s.",
	    name);
	return NULL;
}

static struct search_key *
parse_key(struct parse_ctx *pc, struct cursor *c, unsigned depth)
{
	const struct imap_arg *arg = cursor_next(c);
	const struct imap_arg *items;
	const char *name;
	unsigned count;

	if (depth > IMAP_SEARCH_MAX_DEPTH) {
		pc->error = "Search keys nested too deeply.";
		return NULL;
	}
	if (arg == NULL) {
		pc->error = "Missing search key.";
		return NULL;
	}
	if (imap_arg_get_list(arg, &items, &count)) {
		struct cursor sub = { items, count, 0 };

		if (count == 0) {
			pc->error = "Empty search key list.";
			return NULL;
		}
		return parse_and(pc, &sub, depth + 1);
	}
	if (!imap_arg_get_atom(arg, &name)) {
		pc->error = "Invalid search key.";
		return NULL;
	}
	return parse_atom_key(pc, c, name, depth);
}

enum imap_search_parse_result
imap_search_parse(const struct imap_arg *args, unsigned nargs,
    struct arena *arena, struct imap_search **search_r, const char **error_r)
{
	struct parse_ctx pc = { .arena = arena };
	struct cursor c = { args, nargs, 0 };
	struct imap_search *search;
	struct search_key *root;

	if (nargs > 0 && imap_arg_atom_equals(&args[0], "CHARSET")) {
		const char *cs;
		struct buf probe;
		bool known;

		if (nargs < 2 || !imap_arg_get_astring(&args[1], &cs)) {
			*error_r = "CHARSET needs a charset name.";
			return IMAP_SEARCH_PARSE_BAD;
		}
		c.pos = 2;
		if (!is_utf8_charset(cs)) {
			/* Anything iconv converts will do; a '/' would pass
			 * iconv options (//IGNORE) instead of a name. */
			buf_init(&probe, 0);
			known = strchr(cs, '/') == NULL && cs[0] != '\0' &&
			    mime_decode_charset_utf8(&probe, cs, "", 0);
			buf_free(&probe);
			if (!known) {
				*error_r = "Unknown charset.";
				return IMAP_SEARCH_PARSE_BADCHARSET;
			}
			pc.charset = arena_strdup(arena, cs);
		}
	}
	if (c.pos >= c.count) {
		*error_r = "Missing search criteria.";
		return IMAP_SEARCH_PARSE_BAD;
	}
	if ((root = parse_and(&pc, &c, 0)) == NULL) {
		*error_r = pc.error != NULL ? pc.error : "Invalid search.";
		return IMAP_SEARCH_PARSE_BAD;
	}
	search = arena_alloc(arena, sizeof(*search));
	search->root = root;
	search->aux = pc.aux;
	*search_r = search;
	return IMAP_SEARCH_PARSE_OK;
}

/* ---- formatting (tests) -------------------------------------------------- */

static void
format_string(struct buf *b, const char *s, size_t len)
{
	buf_append(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_append(b, "\\", 1);
		buf_append(b, &s[i], 1);
	}
	buf_append(b, "\"", 1);
}

static void
format_key(struct buf *b, const struct search_key *k, struct arena *arena)
{
	const struct search_key *ch;

	switch (k->type) {
	case K_ALL:
	case K_FLAG:
	case K_NEW:
		buf_append_str(b, k->kname);
		return;
	case K_AND:
	case K_OR:
	case K_NOT:
		buf_printf(b, "(%s", k->kname);
		for (ch = k->children; ch != NULL; ch = ch->next) {
			buf_append(b, " ", 1);
			format_key(b, ch, arena);
			if (k->type == K_NOT)
				break;
		}
		buf_append(b, ")", 1);
		return;
	case K_KEYWORD:
		buf_printf(b, "(KEYWORD %s)", k->name);
		return;
	case K_SEQ:
	case K_UID:
		buf_printf(b, "(%s %s)", k->kname,
		    imap_seqset_format(&k->set, arena));
		return;
	case K_BEFORE:
	case K_ON:
	case K_SINCE:
	case K_SENTBEFORE:
	case K_SENTON:
	case K_SENTSINCE:
		buf_printf(b, "(%s %lld)", k->kname, (long long)k->day);
		return;
	case K_LARGER:
	case K_SMALLER:
		buf_printf(b, "(%s %llu)", k->kname,
		    (unsigned long long)k->num);
		return;
	case K_HEADER:
		buf_printf(b, "(HEADER %s ", k->name);
		format_string(b, k->str, k->len);
		buf_append(b, ")", 1);
		return;
	case K_ADDRESS:
	case K_SUBJECT:
	case K_BODY:
	case K_TEXT:
		buf_printf(b, "(%s ", k->kname);
		format_string(b, k->str, k->len);
		buf_append(b, ")", 1);
		return;
	}
}

char *
imap_search_format(const struct imap_search *search, struct arena *arena)
{
	struct buf b;
	char *out;

	buf_init(&b, 0);
	format_key(&b, search->root, arena);
	out = arena_strndup(arena, b.data != NULL ? b.data : "", b.len);
	buf_free(&b);
	return out;
}

/* ---- binding to a mailbox ------------------------------------------------ */

static void
prepare_key(struct search_key *k, uint32_t count, uint32_t max_uid,
    const char *const *keywords, unsigned keyword_count)
{
	struct search_key *ch;

	switch (k->type) {
	case K_SEQ:
		imap_seqset_resolve(&k->set, count);
		break;
	case K_UID:
		imap_seqset_resolve(&k->set, max_uid);
		break;
	case K_KEYWORD:
		k->kw_mask = 0;
		for (unsigned i = 0; i < keyword_count && i < 64; i++)
			if (strcasecmp(keywords[i], k->name) == 0)
				k->kw_mask |= (uint64_t)1 << i;
		break;
	case K_AND:
	case K_OR:
	case K_NOT:
		for (ch = k->children; ch != NULL; ch = ch->next)
			prepare_key(ch, count, max_uid, keywords,
			    keyword_count);
		break;
	default:
		break;
	}
}

void
imap_search_prepare(struct imap_search *search, uint32_t count,
    uint32_t max_uid, const char *const *keywords, unsigned keyword_count)
{
	prepare_key(search->root, count, max_uid, keywords, keyword_count);
}

/* ---- matching ---------------------------------------------------------- */

void
imap_search_msg_init(struct imap_search_msg *m, struct arena *arena)
{
	memset(m, 0, sizeof(*m));
	m->arena = arena;
	buf_init(&m->hdr_text, 0);
	buf_init(&m->body_text, 0);
	buf_init(&m->scratch, 0);
}

void
imap_search_msg_deinit(struct imap_search_msg *m)
{
	buf_free(&m->hdr_text);
	buf_free(&m->body_text);
	buf_free(&m->scratch);
	m->mime = NULL;
}

static struct mime_message *
msg_mime(struct imap_search_msg *m)
{
	if (m->mime == NULL)
		m->mime = mime_message_parse(m->arena, m->data != NULL ?
		    m->data : "", m->len, NULL);
	return m->mime;
}

static bool
buf_contains(const struct buf *b, const char *s, size_t len)
{
	if (len == 0)
		return true;
	if (b->len < len)
		return false;
	return memmem(b->data, b->len, s, len) != NULL;
}

static int64_t
local_day(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	return imap_search_days_from_civil(tm.tm_year + 1900,
	    (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
}

static int64_t
sent_day(struct imap_search_msg *m)
{
	struct mime_message *msg;
	const struct mime_header_field *f;

	if (!m->sent_done) {
		msg = msg_mime(m);
		f = mime_header_find(msg, msg->root, "Date", false);
		m->sent_day = 0;	/* 1-Jan-1970, as Dovecot */
		if (f != NULL) {
			size_t vlen;
			const char *v = mime_header_value(msg, f, &vlen);

			if (!imap_search_sent_day(v, vlen, &m->sent_day))
				m->sent_day = 0;
		}
		m->sent_done = true;
	}
	return m->sent_day;
}

/*
 * The values a header key compares against (mime_search_header_values()):
 * also what the index stores for the key's field id.
 */
static void
header_values(enum key_type type, const char *name,
    struct imap_search_msg *m, struct buf *out)
{
	mime_search_header_values(out, msg_mime(m), m->arena,
	    type == K_ADDRESS ? MIME_SEARCH_VALUES_ADDRESS :
	    type == K_SUBJECT ? MIME_SEARCH_VALUES_SUBJECT :
	    MIME_SEARCH_VALUES_HEADER, name);
}

static enum imap_search_result
match_values(const struct search_key *k, const char *data, size_t len)
{
	/* An empty string matches every message having the field. */
	if (k->len == 0)
		return len > 0 ? IMAP_SEARCH_YES : IMAP_SEARCH_NO;
	return len >= k->len && memmem(data, len, k->str, k->len) != NULL ?
	    IMAP_SEARCH_YES : IMAP_SEARCH_NO;
}

static const struct store_search_value *
aux_value(const struct imap_search_aux *a, uint32_t uid)
{
	unsigned lo = 0, hi = a->value_count;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (a->values[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < a->value_count && a->values[lo].uid == uid ?
	    &a->values[lo] : NULL;
}

static bool
uid_listed(const uint32_t *uids, unsigned count, uint32_t uid)
{
	unsigned lo = 0, hi = count;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < count && uids[lo] == uid;
}

static enum imap_search_result
match_header(const struct search_key *k, struct imap_search_msg *m)
{
	const struct store_search_value *v;

	if (!m->loaded) {
		if (k->aux != NULL && k->aux->loaded &&
		    (v = aux_value(k->aux, m->uid)) != NULL) {
			m->from_index = true;
			return match_values(k, v->data, v->len);
		}
		return IMAP_SEARCH_MAYBE;
	}
	buf_reset(&m->scratch);
	header_values(k->type, k->name, m, &m->scratch);
	return match_values(k, m->scratch.data, m->scratch.len);
}

/* "name: value" lines of one part's header, decoded and folded. */
static void
part_headers(struct buf *out, const struct mime_message *msg,
    const struct mime_part *part)
{
	for (unsigned i = 0; i < part->nfields; i++) {
		const struct mime_header_field *f = &part->fields[i];

		if (!f->has_colon)
			continue;
		mime_search_fold(out, msg->data + f->offset, f->name_len);
		buf_append(out, ": ", 2);
		mime_search_header(out, msg, f);
		if (!buf_append(out, "\n", 1))
			return;
	}
}

/*
 * The text BODY and TEXT search, as Dovecot draws the line: BODY is the
 * decoded bodies of the searchable leaf parts, nothing else (no preamble,
 * no MIME headers, no headers of embedded messages); TEXT adds every
 * header of the message: the top-level one, each part's MIME header and
 * the headers of embedded messages.
 */
static void
build_text(struct imap_search_msg *m, bool headers)
{
	struct mime_message *msg = msg_mime(m);
	struct buf *out = headers ? &m->hdr_text : &m->body_text;

	out->max = mime_search_text_cap(m->len);
	if (!headers) {
		mime_search_body(out, msg);
		m->body_done = true;
		return;
	}
	for (const struct mime_part *p = msg->root; p != NULL;
	    p = mime_part_next(p)) {
		if (out->len >= out->max)
			break;
		part_headers(out, msg, p);
	}
	m->hdr_done = true;
}

static enum imap_search_result
match_text(const struct search_key *k, struct imap_search_msg *m)
{
	const struct imap_search_aux *a = k->aux;

	if (!m->loaded) {
		/* Indexed, and not among the candidates of the text index:
		 * the text cannot hold the needle. */
		if (a != NULL && a->loaded && a->usable &&
		    uid_listed(a->indexed, a->indexed_count, m->uid) &&
		    !uid_listed(a->candidates, a->candidate_count, m->uid)) {
			m->from_index = true;
			return IMAP_SEARCH_NO;
		}
		return IMAP_SEARCH_MAYBE;
	}
	if (k->type == K_TEXT) {
		if (!m->hdr_done)
			build_text(m, true);
		if (buf_contains(&m->hdr_text, k->str, k->len))
			return IMAP_SEARCH_YES;
	}
	if (!m->body_done)
		build_text(m, false);
	return buf_contains(&m->body_text, k->str, k->len) ?
	    IMAP_SEARCH_YES : IMAP_SEARCH_NO;
}

static enum imap_search_result
result_of(bool b)
{
	return b ? IMAP_SEARCH_YES : IMAP_SEARCH_NO;
}

static enum imap_search_result
match_size(const struct search_key *k, struct imap_search_msg *m)
{
	uint64_t lo, hi;

	if (!m->vsize_known && m->loaded) {
		m->vsize = m->len + mime_count_bare_lf(m->data != NULL ?
		    m->data : "", 0, m->len);
		m->vsize_known = true;
	}
	if (m->vsize_known) {
		lo = m->vsize;
		hi = m->vsize;
	} else {
		/* Every LF may become CRLF: the size is at most doubled. */
		lo = m->size;
		hi = m->size > UINT64_MAX / 2 ? UINT64_MAX : m->size * 2;
	}
	if (k->type == K_LARGER) {
		if (lo > k->num)
			return IMAP_SEARCH_YES;
		if (hi <= k->num)
			return IMAP_SEARCH_NO;
	} else {
		if (hi < k->num)
			return IMAP_SEARCH_YES;
		if (lo >= k->num)
			return IMAP_SEARCH_NO;
	}
	m->vsize_wanted = true;
	return IMAP_SEARCH_MAYBE;
}

static enum imap_search_result
match_key(const struct search_key *k, struct imap_search_msg *m)
{
	enum imap_search_result r, res;
	const struct search_key *ch;
	int64_t day;

	switch (k->type) {
	case K_ALL:
		return IMAP_SEARCH_YES;
	case K_AND:
		res = IMAP_SEARCH_YES;
		for (ch = k->children; ch != NULL; ch = ch->next) {
			r = match_key(ch, m);
			if (r == IMAP_SEARCH_NO)
				return r;
			if (r == IMAP_SEARCH_MAYBE)
				res = r;
		}
		return res;
	case K_OR:
		res = IMAP_SEARCH_NO;
		for (ch = k->children; ch != NULL; ch = ch->next) {
			r = match_key(ch, m);
			if (r == IMAP_SEARCH_YES)
				return r;
			if (r == IMAP_SEARCH_MAYBE)
				res = r;
		}
		return res;
	case K_NOT:
		r = match_key(k->children, m);
		if (r == IMAP_SEARCH_MAYBE)
			return r;
		return result_of(r == IMAP_SEARCH_NO);
	case K_FLAG:
		return result_of((m->flags & k->flag) != 0);
	case K_NEW:
		return result_of((m->flags & STORE_F_RECENT) != 0 &&
		    (m->flags & STORE_F_SEEN) == 0);
	case K_KEYWORD:
		return result_of((m->keywords & k->kw_mask) != 0);
	case K_SEQ:
		return result_of(imap_seqset_contains(&k->set, m->seq));
	case K_UID:
		return result_of(imap_seqset_contains(&k->set, m->uid));
	case K_BEFORE:
	case K_ON:
	case K_SINCE:
		day = local_day(m->internal_date);
		goto compare_day;
	case K_SENTBEFORE:
	case K_SENTON:
	case K_SENTSINCE:
		if (!m->loaded)
			return IMAP_SEARCH_MAYBE;
		day = sent_day(m);
compare_day:
		if (k->type == K_BEFORE || k->type == K_SENTBEFORE)
			return result_of(day < k->day);
		if (k->type == K_ON || k->type == K_SENTON)
			return result_of(day == k->day);
		return result_of(day >= k->day);
	case K_LARGER:
	case K_SMALLER:
		return match_size(k, m);
	case K_HEADER:
	case K_ADDRESS:
	case K_SUBJECT:
		return match_header(k, m);
	case K_BODY:
	case K_TEXT:
		return match_text(k, m);
	}
	return IMAP_SEARCH_NO;
}

enum imap_search_result
imap_search_match(const struct imap_search *search, struct imap_search_msg *m)
{
	return match_key(search->root, m);
}

struct imap_search_aux *
imap_search_aux_list(struct imap_search *search)
{
	return search->aux;
}

void
imap_search_aux_missing(struct imap_search *search,
    struct imap_search_msg *m, imap_search_aux_cb *cb, void *ctx)
{
	bool text_done = false;
	struct buf b;

	if (!m->loaded)
		return;
	buf_init(&b, 0);
	for (struct imap_search_aux *a = search->aux; a != NULL; a = a->next) {
		if (!a->loaded)
			continue;
		if (a->kind == IMAP_SEARCH_AUX_HEADER) {
			if (aux_value(a, m->uid) != NULL)
				continue;
			buf_reset(&b);
			header_values((enum key_type)a->key_type, a->name, m,
			    &b);
			cb(ctx, a, b.data != NULL ? b.data : "", b.len);
			continue;
		}
		if (text_done || uid_listed(a->indexed, a->indexed_count,
		    m->uid))
			continue;
		if (!m->body_done)
			build_text(m, false);
		cb(ctx, a, m->body_text.data != NULL ? m->body_text.data : "",
		    m->body_text.len);
		text_done = true;
	}
	buf_free(&b);
}
