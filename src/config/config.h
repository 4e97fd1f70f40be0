/*
 * Configuration: one file of "key = value" lines, '#' starts a comment.
 * Every key can also be given on the command line (-o key=value), applied
 * after the file.  Options are table-driven (config.c): a new option is one
 * row in the table plus one field here.
 *
 * The defaults are the embedded set-up used by "herald serve" without -c:
 * data under ./var, IMAP on 127.0.0.1:1143, IMAPS on 127.0.0.1:1993.
 *
 * A loaded config is immutable: reload builds a new one and swaps pointers.
 */
#ifndef HERALD_CONFIG_CONFIG_H
#define HERALD_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log/log.h"

enum config_plaintext_auth {
	CONFIG_PLAINTEXT_AUTH_NO,	/* only after TLS */
	CONFIG_PLAINTEXT_AUTH_LOOPBACK,	/* also on plain text from 127/8, ::1 */
	CONFIG_PLAINTEXT_AUTH_YES,	/* also on plain text from anywhere */
};

struct config_strlist {
	char **items;
	unsigned count;
};

struct config {
	/* Paths.  Relative paths are relative to the working directory at
	 * start; config_finish() makes them absolute. */
	char *data_dir;			/* ./var */
	char *tls_cert;			/* "" = DATA_DIR/tls/cert.pem */
	char *tls_key;			/* "" = DATA_DIR/tls/key.pem */
	char *passwd_file;		/* "" = DATA_DIR/passwd */

	/* Listeners: "host:port" or "[v6]:port"; empty list = off. */
	struct config_strlist imap_listen;	/* 127.0.0.1:1143 */
	struct config_strlist imaps_listen;	/* 127.0.0.1:1993 */
	/* LMTP delivery (RFC 2033): the same forms, or the path of a UNIX
	 * socket (an entry starting with '/', created mode 0660). */
	struct config_strlist lmtp_listen;	/* 127.0.0.1:2424 */

	/* Processes. */
	unsigned workers;		/* 0 in the file = number of cores */
	char *user;			/* "" = do not switch */
	enum log_level log_level;	/* info */
	bool demo_user;			/* create "demo" on first start: yes */
	bool fsync;			/* fsync mail before acknowledging: yes */
	bool fts_index_on_delivery;	/* search data stored at APPEND: yes */

	/* Authentication. */
	enum config_plaintext_auth plaintext_auth;	/* loopback */
	unsigned auth_failure_delay_ms;	/* 2000: delay of a failed login */
	unsigned auth_throttle_failures;/* 10 failures from one IP ... */
	unsigned auth_throttle_window;	/* ... within 300 s start throttling */
	unsigned auth_throttle_delay_max; /* 15 s: cap of the growing delay */
	unsigned max_auth_failures;	/* 3 per connection, then BYE */

	/* Parser limits after and before authentication. */
	uint64_t max_line_length;		/* 65536 */
	uint64_t max_literal_size;		/* 1 MiB, held in memory */
	uint64_t max_command_size;		/* 2 MiB, text + literals */
	uint64_t max_message_size;		/* 64 MiB: APPEND, streamed */
	unsigned max_list_depth;		/* 16 */
	unsigned max_command_args;		/* 100000 */
	uint64_t preauth_max_line_length;	/* 8192 */
	uint64_t preauth_max_literal_size;	/* 8192 */
	unsigned preauth_max_list_depth;	/* 2 */
	unsigned max_bad_commands;	/* 20 BADs in a row, then BYE */

	/* Connections. */
	unsigned max_connections;	/* 20000 per worker, incl. listeners */
	uint64_t output_high_water;	/* 64 KiB: stop reading commands */
	uint64_t max_output_buffer;	/* 16 MiB: disconnect a stuck reader */
	unsigned preauth_timeout;	/* 60 s to log in */
	unsigned autologout_timeout;	/* 1800 s without a command */
	unsigned shutdown_timeout;	/* 10 s: SIGTERM grace period */

	/* IDLE (used by the IDLE issue). */
	unsigned idle_keepalive;	/* 120 s */
	unsigned idle_max;		/* 1800 s */
	unsigned idle_poll_interval;	/* 30 s: mtime poll where inotify is
					   blind; 0 = off */
	unsigned idle_release;		/* 10 s: close the store of a user
					   whose sessions all idle; 0 = never */

	/* Where the config came from ("" = embedded defaults). */
	char *source;
};

/* A config holding the defaults. */
struct config *config_new(void);
void config_free(struct config **cfg);

/*
 * Apply a file.  Errors name the file and line: "FILE:LINE: unknown key
 * 'x'".  Returns 0, or -1 with *error_r (allocated; caller frees).
 */
int config_load_file(struct config *cfg, const char *path, char **error_r);
/* Apply one setting ("-o key=value"). Same return convention. */
int config_set(struct config *cfg, const char *key, const char *value,
    char **error_r);
/* Apply "key=value" as given on the command line. */
int config_set_kv(struct config *cfg, const char *kv, char **error_r);
/*
 * Validate cross-field rules, resolve defaults that depend on data_dir and
 * make paths absolute.  Call once after loading; returns 0 or -1.
 */
int config_finish(struct config *cfg, char **error_r);
/* Print the effective settings as a valid config file. */
void config_dump(const struct config *cfg, FILE *out);

/* Parse "host:port" / "[v6]:port" / "*:port" into a sockaddr.  0 or -1. */
struct sockaddr_storage;
int config_parse_listen(const char *s, struct sockaddr_storage *ss,
    char **error_r);

#endif
