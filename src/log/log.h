/*
 * Logging: one line per event to stderr (foreground) with a timestamp, the
 * process role and pid, a level, and the message.  Session lines add
 * "session=ID ip=ADDR user=NAME" and key=value fields; see log_session().
 * The _warn/_err variants without an x append strerror(errno) (OpenSMTPD).
 * Credentials are never passed to these functions.
 */
#ifndef HERALD_LOG_LOG_H
#define HERALD_LOG_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void log_init(const char *role, enum log_level level);
void log_set_role(const char *role);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_level_parse(const char *s, enum log_level *level_r);
const char *log_level_name(enum log_level level);

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
void log_errx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_err(const char *fmt, ...) LOG_PRINTF(1, 2);	/* + strerror */
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);	/* + strerror */
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void log_vwrite(enum log_level level, const char *fmt, va_list ap)
	LOG_PRINTF(2, 0);
void log_write(enum log_level level, const char *fmt, ...) LOG_PRINTF(2, 3);

/* Always-on assertion: logs file:line and aborts. */
#define ASSERT(expr) \
	((expr) ? (void)0 : log_assert_fail(#expr, __FILE__, __LINE__))
void log_assert_fail(const char *expr, const char *file, int line)
	__attribute__((noreturn));

#endif
