#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/xmalloc.h"

static char tmpdir[] = "/tmp/herald-test-config-XXXXXX";
static char *start_dir;

static int
group_setup(void **state)
{
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	start_dir = getcwd(NULL, 0);
	return start_dir == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	char *cmd;
	int rc;

	if (chdir(start_dir) < 0)
		return -1;
	free(start_dir);
	cmd = xasprintf("rm -rf '%s'", tmpdir);
	rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* Write text to a file under the test directory; returns its path. */
static char *
write_file(const char *name, const char *text, size_t len)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Load text as a config file on top of cfg; returns the error or NULL. */
static char *
load_text(struct config *cfg, const char *text)
{
	char *path = write_file("t.conf", text, strlen(text));
	char *error = NULL;
	int rc;

	rc = config_load_file(cfg, path, &error);
	free(path);
	if (rc == 0) {
		assert_null(error);
		return NULL;
	}
	assert_int_equal(rc, -1);
	assert_non_null(error);
	return error;
}

/* Expect loading text to fail with exactly "PATH:" + expected. */
static void
expect_load_error(const char *text, const char *expected)
{
	struct config *cfg = config_new();
	char *error = load_text(cfg, text);
	char *full = xasprintf("%s/t.conf:%s", tmpdir, expected);

	if (error == NULL)
		fail_msg("loaded: %s", text);
	assert_string_equal(error, full);
	free(error);
	free(full);
	config_free(&cfg);
}

static void
set_ok(struct config *cfg, const char *key, const char *value)
{
	char *error = NULL;

	if (config_set(cfg, key, value, &error) != 0)
		fail_msg("-o %s=%s: %s", key, value, error);
}

static char *
set_error(struct config *cfg, const char *key, const char *value)
{
	char *error = NULL;

	if (config_set(cfg, key, value, &error) == 0)
		fail_msg("accepted -o %s=%s", key, value);
	assert_non_null(error);
	return error;
}

static void
expect_set_error(const char *key, const char *value, const char *expected)
{
	struct config *cfg = config_new();
	char *error = set_error(cfg, key, value);

	assert_string_equal(error, expected);
	free(error);
	config_free(&cfg);
}

/* config_dump() output without its comment lines. */
static char *
dump(const struct config *cfg)
{
	char *text = NULL, *line = NULL, *out;
	size_t size = 0, lsize = 0;
	FILE *mem = open_memstream(&text, &size);
	FILE *res;

	assert_non_null(mem);
	config_dump(cfg, mem);
	assert_int_equal(fclose(mem), 0);
	res = fmemopen(text, size, "r");
	assert_non_null(res);
	mem = open_memstream(&out, &size);
	while (getline(&line, &lsize, res) >= 0) {
		if (line[0] != '#')
			fputs(line, mem);
	}
	fclose(res);
	fclose(mem);
	free(line);
	free(text);
	return out;
}

/* The "key = value" line of key in a dump. */
static char *
dump_line(const struct config *cfg, const char *key)
{
	char *text = dump(cfg), *p, *end, *found = NULL;
	size_t klen = strlen(key);

	for (p = text; *p != '\0'; p = end + 1) {
		end = strchr(p, '\n');
		assert_non_null(end);
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
			found = xstrndup(p, (size_t)(end - p));
			break;
		}
	}
	free(text);
	if (found == NULL)
		fail_msg("%s not in dump", key);
	return found;
}

static void
assert_dump_line(const struct config *cfg, const char *key,
    const char *expected)
{
	char *line = dump_line(cfg, key);

	assert_string_equal(line, expected);
	free(line);
}

static void
test_defaults(void **state)
{
	struct config *cfg = config_new();

	assert_string_equal(cfg->data_dir, "./var");
	assert_string_equal(cfg->tls_cert, "");
	assert_string_equal(cfg->tls_key, "");
	assert_string_equal(cfg->passwd_file, "");
	assert_int_equal(cfg->imap_listen.count, 1);
	assert_string_equal(cfg->imap_listen.items[0], "127.0.0.1:1143");
	assert_null(cfg->imap_listen.items[1]);
	assert_int_equal(cfg->imaps_listen.count, 1);
	assert_string_equal(cfg->imaps_listen.items[0], "127.0.0.1:1993");
	assert_int_equal(cfg->lmtp_listen.count, 1);
	assert_string_equal(cfg->lmtp_listen.items[0], "127.0.0.1:2424");
	assert_int_equal(cfg->workers, 0);
	assert_string_equal(cfg->user, "");
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	assert_true(cfg->demo_user);
	assert_int_equal(cfg->plaintext_auth, CONFIG_PLAINTEXT_AUTH_LOOPBACK);
	assert_int_equal(cfg->auth_failure_delay_ms, 2000);
	assert_int_equal(cfg->auth_throttle_failures, 10);
	assert_int_equal(cfg->auth_throttle_window, 300);
	assert_int_equal(cfg->auth_throttle_delay_max, 15);
	assert_int_equal(cfg->max_auth_failures, 3);
	assert_int_equal(cfg->max_line_length, 65536);
	assert_int_equal(cfg->max_literal_size, 1024 * 1024);
	assert_int_equal(cfg->max_command_size, 2 * 1024 * 1024);
	assert_int_equal(cfg->max_message_size, 64 * 1024 * 1024);
	assert_int_equal(cfg->max_list_depth, 16);
	assert_int_equal(cfg->max_command_args, 100000);
	assert_int_equal(cfg->preauth_max_line_length, 8192);
	assert_int_equal(cfg->preauth_max_literal_size, 8192);
	assert_int_equal(cfg->preauth_max_list_depth, 2);
	assert_int_equal(cfg->max_bad_commands, 20);
	assert_int_equal(cfg->max_connections, 20000);
	assert_int_equal(cfg->output_high_water, 64 * 1024);
	assert_int_equal(cfg->max_output_buffer, 16 * 1024 * 1024);
	assert_int_equal(cfg->preauth_timeout, 60);
	assert_int_equal(cfg->autologout_timeout, 1800);
	assert_int_equal(cfg->shutdown_timeout, 10);
	assert_int_equal(cfg->idle_keepalive, 120);
	assert_int_equal(cfg->idle_max, 1800);
	assert_string_equal(cfg->source, "");
	config_free(&cfg);
	assert_null(cfg);
	config_free(&cfg);
}

static void
test_dump_defaults(void **state)
{
	struct config *cfg = config_new();
	char *text = dump(cfg);

	assert_string_equal(text,
	    "data_dir = ./var\n"
	    "tls_cert = \"\"\n"
	    "tls_key = \"\"\n"
	    "passwd_file = \"\"\n"
	    "imap_listen = 127.0.0.1:1143\n"
	    "imaps_listen = 127.0.0.1:1993\n"
	    "lmtp_listen = 127.0.0.1:2424\n"
	    "workers = 0\n"
	    "user = \"\"\n"
	    "log_level = info\n"
	    "demo_user = yes\n"
	    "fsync = yes\n"
	    "fts_index_on_delivery = yes\n"
	    "plaintext_auth = loopback\n"
	    "auth_failure_delay_ms = 2000\n"
	    "auth_throttle_failures = 10\n"
	    "auth_throttle_window = 5m\n"
	    "auth_throttle_delay_max = 15s\n"
	    "max_auth_failures = 3\n"
	    "max_line_length = 64K\n"
	    "max_literal_size = 1M\n"
	    "max_command_size = 2M\n"
	    "max_message_size = 64M\n"
	    "max_list_depth = 16\n"
	    "max_command_args = 100000\n"
	    "preauth_max_line_length = 8K\n"
	    "preauth_max_literal_size = 8K\n"
	    "preauth_max_list_depth = 2\n"
	    "max_bad_commands = 20\n"
	    "max_connections = 20000\n"
	    "output_high_water = 64K\n"
	    "max_output_buffer = 16M\n"
	    "preauth_timeout = 1m\n"
	    "autologout_timeout = 30m\n"
	    "shutdown_timeout = 10s\n"
	    "idle_keepalive = 2m\n"
	    "idle_max = 30m\n"
	    "idle_poll_interval = 30s\n"
	    "idle_release = 10s\n");
	free(text);
	config_free(&cfg);
}

static void
test_dump_source_comment(void **state)
{
	struct config *cfg = config_new();
	char *text = NULL, *error, *expected;
	size_t size;
	FILE *mem = open_memstream(&text, &size);

	config_dump(cfg, mem);
	fclose(mem);
	assert_non_null(strstr(text, "# source: built-in defaults\n"));
	free(text);

	error = load_text(cfg, "workers = 2\n");
	assert_null(error);
	expected = xasprintf("%s/t.conf", tmpdir);
	assert_string_equal(cfg->source, expected);
	mem = open_memstream(&text, &size);
	config_dump(cfg, mem);
	fclose(mem);
	free(expected);
	expected = xasprintf("# source: %s/t.conf\n", tmpdir);
	assert_non_null(strstr(text, expected));
	free(expected);
	free(text);

	/* A newline in the file name cannot break out of the comment. */
	{
		char *path = write_file("a\nb.conf", "", 0);

		assert_int_equal(config_load_file(cfg, path, &error), 0);
		free(path);
		mem = open_memstream(&text, &size);
		config_dump(cfg, mem);
		fclose(mem);
		expected = xasprintf("# source: %s/a?b.conf\n", tmpdir);
		assert_non_null(strstr(text, expected));
		free(expected);
		free(text);
	}
	config_free(&cfg);
}

static void
test_type_string_path(void **state)
{
	struct config *cfg = config_new();

	set_ok(cfg, "user", "mail");
	assert_string_equal(cfg->user, "mail");
	set_ok(cfg, "user", "");
	assert_string_equal(cfg->user, "");
	set_ok(cfg, "data_dir", "/srv/herald");
	assert_string_equal(cfg->data_dir, "/srv/herald");
	/* config_set takes the value verbatim: no quotes, no comments. */
	set_ok(cfg, "user", "\"a b\" # c");
	assert_string_equal(cfg->user, "\"a b\" # c");
	config_free(&cfg);

	expect_set_error("user", "a\nb", "-o user: control character in value");
}

static void
test_type_uint(void **state)
{
	struct config *cfg = config_new();

	set_ok(cfg, "workers", "4");
	assert_int_equal(cfg->workers, 4);
	set_ok(cfg, "workers", "064");
	assert_int_equal(cfg->workers, 64);
	set_ok(cfg, "auth_failure_delay_ms", "0");
	assert_int_equal(cfg->auth_failure_delay_ms, 0);
	set_ok(cfg, "max_command_args", "10000000");
	assert_int_equal(cfg->max_command_args, 10000000);
	config_free(&cfg);

	expect_set_error("workers", "abc", "-o workers: 'abc' is not a number");
	expect_set_error("workers", "", "-o workers: missing value");
	expect_set_error("workers", "-1", "-o workers: '-1' is not a number");
	expect_set_error("workers", "+1", "-o workers: '+1' is not a number");
	expect_set_error("workers", " 1", "-o workers: ' 1' is not a number");
	expect_set_error("workers", "0x10", "-o workers: '0x10' is not a number");
	expect_set_error("workers", "4k", "-o workers: '4k' is not a number");
	expect_set_error("workers", "1.5", "-o workers: '1.5' is not a number");
}

static void
test_type_size(void **state)
{
	struct config *cfg = config_new();

	set_ok(cfg, "max_literal_size", "0");
	assert_int_equal(cfg->max_literal_size, 0);
	set_ok(cfg, "max_literal_size", "1000");
	assert_int_equal(cfg->max_literal_size, 1000);
	set_ok(cfg, "max_literal_size", "3k");
	assert_int_equal(cfg->max_literal_size, 3 * 1024);
	set_ok(cfg, "max_literal_size", "3K");
	assert_int_equal(cfg->max_literal_size, 3 * 1024);
	set_ok(cfg, "max_literal_size", "5M");
	assert_int_equal(cfg->max_literal_size, 5 * 1024 * 1024);
	set_ok(cfg, "max_literal_size", "1G");
	assert_int_equal(cfg->max_literal_size, 1024 * 1024 * 1024);
	set_ok(cfg, "max_command_size", "4G");
	assert_int_equal(cfg->max_command_size, 4ULL << 30);
	set_ok(cfg, "max_literal_size", "0k");
	assert_int_equal(cfg->max_literal_size, 0);
	set_ok(cfg, "max_command_size", "100");
	assert_int_equal(cfg->max_command_size, 100);
	config_free(&cfg);

	static const char *const bad[] = {
		"1KB", "1 K", "1T", "1m", "1g", "K", "1KK", "-1K", "1.5M", "",
	};
	cfg = config_new();
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *error = set_error(cfg, "max_literal_size", bad[i]);

		assert_non_null(strstr(error, "-o max_literal_size: "));
		free(error);
	}
	config_free(&cfg);
	expect_set_error("max_literal_size", "1KB",
	    "-o max_literal_size: '1KB' is not a size (a number with an "
	    "optional k, K, M or G suffix)");
}

static void
test_type_duration(void **state)
{
	struct config *cfg = config_new();

	set_ok(cfg, "idle_keepalive", "45");
	assert_int_equal(cfg->idle_keepalive, 45);
	set_ok(cfg, "idle_keepalive", "45s");
	assert_int_equal(cfg->idle_keepalive, 45);
	set_ok(cfg, "idle_keepalive", "2m");
	assert_int_equal(cfg->idle_keepalive, 120);
	set_ok(cfg, "idle_max", "2h");
	assert_int_equal(cfg->idle_max, 7200);
	set_ok(cfg, "shutdown_timeout", "0");
	assert_int_equal(cfg->shutdown_timeout, 0);
	config_free(&cfg);

	expect_set_error("idle_keepalive", "1d",
	    "-o idle_keepalive: '1d' is not a duration (seconds, or a number "
	    "with an s, m or h suffix)");
	expect_set_error("idle_keepalive", "1M",
	    "-o idle_keepalive: '1M' is not a duration (seconds, or a number "
	    "with an s, m or h suffix)");
	expect_set_error("idle_keepalive", "1ms",
	    "-o idle_keepalive: '1ms' is not a duration (seconds, or a number "
	    "with an s, m or h suffix)");
	expect_set_error("idle_keepalive", "s",
	    "-o idle_keepalive: 's' is not a duration (seconds, or a number "
	    "with an s, m or h suffix)");
}

static void
test_type_bool(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	struct config *cfg = config_new();

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		set_ok(cfg, "demo_user", no[i]);
		assert_false(cfg->demo_user);
		set_ok(cfg, "demo_user", yes[i]);
		assert_true(cfg->demo_user);
	}
	config_free(&cfg);
	expect_set_error("demo_user", "YES",
	    "-o demo_user: 'YES' is not a boolean (use yes or no)");
	expect_set_error("demo_user", "",
	    "-o demo_user: '' is not a boolean (use yes or no)");
	expect_set_error("demo_user", "2",
	    "-o demo_user: '2' is not a boolean (use yes or no)");
}

static void
test_type_enum(void **state)
{
	struct config *cfg = config_new();

	set_ok(cfg, "log_level", "error");
	assert_int_equal(cfg->log_level, LOG_LEVEL_ERROR);
	set_ok(cfg, "log_level", "warn");
	assert_int_equal(cfg->log_level, LOG_LEVEL_WARN);
	set_ok(cfg, "log_level", "debug");
	assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
	set_ok(cfg, "log_level", "info");
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	set_ok(cfg, "plaintext_auth", "no");
	assert_int_equal(cfg->plaintext_auth, CONFIG_PLAINTEXT_AUTH_NO);
	set_ok(cfg, "plaintext_auth", "yes");
	assert_int_equal(cfg->plaintext_auth, CONFIG_PLAINTEXT_AUTH_YES);
	set_ok(cfg, "plaintext_auth", "loopback");
	assert_int_equal(cfg->plaintext_auth, CONFIG_PLAINTEXT_AUTH_LOOPBACK);
	config_free(&cfg);

	expect_set_error("log_level", "verbose",
	    "-o log_level: 'verbose' is not one of error, warn, info, debug");
	expect_set_error("plaintext_auth", "true",
	    "-o plaintext_auth: 'true' is not one of no, loopback, yes");
}

static void
test_bounds(void **state)
{
	struct config *cfg = config_new();

	set_ok(cfg, "workers", "64");
	set_ok(cfg, "max_line_length", "64");
	assert_int_equal(cfg->max_line_length, 64);
	set_ok(cfg, "max_line_length", "16M");
	assert_int_equal(cfg->max_line_length, 16 << 20);
	set_ok(cfg, "autologout_timeout", "1");
	assert_int_equal(cfg->autologout_timeout, 1);
	set_ok(cfg, "auth_throttle_window", "24h");
	config_free(&cfg);

	expect_set_error("workers", "65",
	    "-o workers: '65' is out of range (0 to 64)");
	expect_set_error("max_line_length", "63",
	    "-o max_line_length: '63' is out of range (64 to 16M)");
	expect_set_error("max_line_length", "16385k",
	    "-o max_line_length: '16385k' is out of range (64 to 16M)");
	expect_set_error("autologout_timeout", "0",
	    "-o autologout_timeout: '0' is out of range (1s to 168h)");
	expect_set_error("auth_throttle_window", "25h",
	    "-o auth_throttle_window: '25h' is out of range (1s to 24h)");
	expect_set_error("max_auth_failures", "0",
	    "-o max_auth_failures: '0' is out of range (1 to 1000)");
	/* Overflow is out of range, not wrapped around. */
	expect_set_error("workers", "4294967297",
	    "-o workers: '4294967297' is out of range (0 to 64)");
	expect_set_error("max_command_size", "18446744073709551615G",
	    "-o max_command_size: '18446744073709551615G' is out of range "
	    "(64 to 4G)");
	expect_set_error("max_command_size", "99999999999999999999",
	    "-o max_command_size: '99999999999999999999' is not a size (a "
	    "number with an optional k, K, M or G suffix)");
}

static void
test_type_strlist(void **state)
{
	struct config *cfg = config_new();

	set_ok(cfg, "imap_listen", "127.0.0.1:1143, [::1]:1143");
	assert_int_equal(cfg->imap_listen.count, 2);
	assert_string_equal(cfg->imap_listen.items[0], "127.0.0.1:1143");
	assert_string_equal(cfg->imap_listen.items[1], "[::1]:1143");
	assert_null(cfg->imap_listen.items[2]);
	set_ok(cfg, "imap_listen", "a,b c\t d ,, ,e,");
	assert_int_equal(cfg->imap_listen.count, 5);
	assert_string_equal(cfg->imap_listen.items[0], "a");
	assert_string_equal(cfg->imap_listen.items[1], "b");
	assert_string_equal(cfg->imap_listen.items[2], "c");
	assert_string_equal(cfg->imap_listen.items[3], "d");
	assert_string_equal(cfg->imap_listen.items[4], "e");
	set_ok(cfg, "imap_listen", "");
	assert_int_equal(cfg->imap_listen.count, 0);
	assert_non_null(cfg->imap_listen.items);
	assert_null(cfg->imap_listen.items[0]);
	set_ok(cfg, "imaps_listen", " , ");
	assert_int_equal(cfg->imaps_listen.count, 0);
	assert_dump_line(cfg, "imap_listen", "imap_listen = \"\"");
	set_ok(cfg, "imap_listen", "x:1,y:2");
	assert_dump_line(cfg, "imap_listen", "imap_listen = x:1, y:2");
	config_free(&cfg);
}

static void
test_file_basic(void **state)
{
	struct config *cfg = config_new();
	char *error;

	error = load_text(cfg,
	    "# a comment\n"
	    "\n"
	    "   \t\n"
	    "  # indented comment\n"
	    "workers=3\n"
	    "  user   =   mail  \n"
	    "\tlog_level\t=\tdebug\t\n"
	    "max_literal_size = 2M # trailing comment\n"
	    "data_dir = /srv/a#b\n"
	    "imaps_listen =\n"
	    "demo_user = no\r\n"
	    "idle_max = 1h");
	assert_null(error);
	assert_int_equal(cfg->workers, 3);
	assert_string_equal(cfg->user, "mail");
	assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(cfg->max_literal_size, 2 << 20);
	assert_string_equal(cfg->data_dir, "/srv/a#b");
	assert_int_equal(cfg->imaps_listen.count, 0);
	assert_false(cfg->demo_user);
	assert_int_equal(cfg->idle_max, 3600);
	/* Untouched options keep their values. */
	assert_int_equal(cfg->imap_listen.count, 1);
	config_free(&cfg);

	/* An empty file is a valid config. */
	cfg = config_new();
	assert_null(load_text(cfg, ""));
	assert_int_equal(cfg->workers, 0);
	config_free(&cfg);
}

static void
test_file_last_wins(void **state)
{
	struct config *cfg = config_new();

	assert_null(load_text(cfg,
	    "workers = 2\n"
	    "imap_listen = 127.0.0.1:1, 127.0.0.1:2\n"
	    "workers = 5\n"
	    "imap_listen = 127.0.0.1:3\n"));
	assert_int_equal(cfg->workers, 5);
	assert_int_equal(cfg->imap_listen.count, 1);
	assert_string_equal(cfg->imap_listen.items[0], "127.0.0.1:3");
	config_free(&cfg);
}

static void
test_file_quoting(void **state)
{
	struct config *cfg = config_new();

	assert_null(load_text(cfg,
	    "user = \"a b # c\"\n"
	    "data_dir = \"/x/\\\"q\\\"/\\\\/\\n\" # comment\n"
	    "passwd_file = \"\"\n"
	    "tls_cert = \"  spaced  \"#comment\n"
	    "tls_key = a\"b\\c\n"
	    "imap_listen = \"127.0.0.1:1, 127.0.0.1:2\"\n"));
	assert_string_equal(cfg->user, "a b # c");
	assert_string_equal(cfg->data_dir, "/x/\"q\"/\\/\\n");
	assert_string_equal(cfg->passwd_file, "");
	assert_string_equal(cfg->tls_cert, "  spaced  ");
	assert_string_equal(cfg->tls_key, "a\"b\\c");
	assert_int_equal(cfg->imap_listen.count, 2);
	assert_dump_line(cfg, "user", "user = \"a b # c\"");
	assert_dump_line(cfg, "data_dir", "data_dir = /x/\"q\"/\\/\\n");
	assert_dump_line(cfg, "tls_cert", "tls_cert = \"  spaced  \"");
	config_free(&cfg);

	expect_load_error("user = \"abc\n",
	    "1: user: missing closing '\"'");
	expect_load_error("\n\nuser = \"abc\" def\n",
	    "3: user: text after closing '\"': 'def'");
	expect_load_error("user = \"abc\"\"\n",
	    "1: user: text after closing '\"': '\"'");
}

static void
test_file_errors(void **state)
{
	expect_load_error("workers = 1\n\n# x\nnope = 1\n",
	    "4: unknown key 'nope'");
	expect_load_error("Workers = 1\n", "1: unknown key 'Workers'");
	expect_load_error("workers = 1\nworkers = abc\n",
	    "2: workers: 'abc' is not a number");
	expect_load_error("workers = 100\n",
	    "1: workers: '100' is out of range (0 to 64)");
	expect_load_error("workers 4\n", "1: missing '=' after 'workers 4'");
	expect_load_error("workers\n", "1: missing '=' after 'workers'");
	expect_load_error("workers # = 4\n", "1: missing '=' after 'workers'");
	expect_load_error("= 4\n", "1: missing key before '='");
	expect_load_error("demo_user = maybe\n",
	    "1: demo_user: 'maybe' is not a boolean (use yes or no)");
	expect_load_error("log_level = loud\n",
	    "1: log_level: 'loud' is not one of error, warn, info, debug");
	expect_load_error("user = a\x01\n", "1: control character in line");
	/* A '#' right after '=' is a comment too: the value is empty. */
	expect_load_error("workers =# 4\n", "1: workers: missing value");
	expect_load_error("workers = # 4\n", "1: workers: missing value");

	/* A NUL byte is an error, not the end of the line. */
	{
		struct config *cfg = config_new();
		char *path = write_file("nul.conf", "user = a\0b\n", 11);
		char *error = NULL, *expected;

		assert_int_equal(config_load_file(cfg, path, &error), -1);
		expected = xasprintf("%s:1: NUL byte in line", path);
		assert_string_equal(error, expected);
		free(expected);
		free(error);
		free(path);
		config_free(&cfg);
	}
}

static void
test_file_missing(void **state)
{
	struct config *cfg = config_new();
	char *error = NULL, *path = xasprintf("%s/nonexistent", tmpdir);
	char *expected = xasprintf("%s: No such file or directory", path);

	assert_int_equal(config_load_file(cfg, path, &error), -1);
	assert_string_equal(error, expected);
	assert_string_equal(cfg->source, "");
	free(error);
	free(expected);
	free(path);

	assert_int_equal(config_load_file(cfg, tmpdir, &error), -1);
	assert_non_null(strstr(error, "read error"));
	free(error);
	config_free(&cfg);
}

/* A file with an error changes nothing, even settings before the error. */
static void
test_file_atomic(void **state)
{
	struct config *cfg = config_new();
	char *error;

	set_ok(cfg, "workers", "7");
	error = load_text(cfg, "workers = 2\nuser = x\nbogus = 1\n");
	assert_non_null(error);
	free(error);
	assert_int_equal(cfg->workers, 7);
	assert_string_equal(cfg->user, "");
	assert_string_equal(cfg->source, "");
	config_free(&cfg);
}

static void
test_override(void **state)
{
	struct config *cfg = config_new();
	char *error = NULL;

	assert_null(load_text(cfg, "workers = 4\nuser = file\n"));
	/* -o is applied after the file and wins. */
	set_ok(cfg, "workers", "8");
	assert_int_equal(config_set_kv(cfg, "user=cmdline", &error), 0);
	assert_int_equal(cfg->workers, 8);
	assert_string_equal(cfg->user, "cmdline");
	/* The same line syntax as the file. */
	assert_int_equal(config_set_kv(cfg, " user = \"a b\" ", &error), 0);
	assert_string_equal(cfg->user, "a b");
	assert_int_equal(config_set_kv(cfg, "imap_listen=", &error), 0);
	assert_int_equal(cfg->imap_listen.count, 0);
	assert_int_equal(config_set_kv(cfg, "user=a=b", &error), 0);
	assert_string_equal(cfg->user, "a=b");

	assert_int_equal(config_set_kv(cfg, "workers", &error), -1);
	assert_string_equal(error, "-o workers: missing '='");
	free(error);
	assert_int_equal(config_set_kv(cfg, "nope=1", &error), -1);
	assert_string_equal(error, "-o nope: unknown key");
	free(error);
	assert_int_equal(config_set_kv(cfg, "workers=x", &error), -1);
	assert_string_equal(error, "-o workers: 'x' is not a number");
	free(error);
	assert_int_equal(config_set_kv(cfg, "user=\"x", &error), -1);
	assert_string_equal(error, "-o user: missing closing '\"'");
	free(error);
	assert_int_equal(config_set_kv(cfg, "=1", &error), -1);
	assert_string_equal(error, "-o '=1': missing key before '='");
	free(error);
	/* Failed settings leave the value alone. */
	assert_int_equal(cfg->workers, 8);
	config_free(&cfg);

	expect_set_error("nope", "1", "-o nope: unknown key");
}

static void
test_finish_paths(void **state)
{
	struct config *cfg = config_new();
	char *dir = xasprintf("%s/finish", tmpdir), *cwd, *exp, *error = NULL;

	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chdir(dir), 0);
	cwd = getcwd(NULL, 0);
	assert_non_null(cwd);

	set_ok(cfg, "workers", "3");
	assert_int_equal(config_finish(cfg, &error), 0);
	exp = xasprintf("%s/var", cwd);
	assert_string_equal(cfg->data_dir, exp);
	free(exp);
	exp = xasprintf("%s/var/tls/cert.pem", cwd);
	assert_string_equal(cfg->tls_cert, exp);
	free(exp);
	exp = xasprintf("%s/var/tls/key.pem", cwd);
	assert_string_equal(cfg->tls_key, exp);
	free(exp);
	exp = xasprintf("%s/var/passwd", cwd);
	assert_string_equal(cfg->passwd_file, exp);
	free(exp);
	assert_int_equal(cfg->workers, 3);
	config_free(&cfg);

	/* Explicit paths, relative to the working directory, not data_dir. */
	cfg = config_new();
	set_ok(cfg, "data_dir", "/srv/mail/");
	set_ok(cfg, "tls_cert", "certs/c.pem");
	set_ok(cfg, "tls_key", "./././k.pem");
	set_ok(cfg, "passwd_file", "/etc/herald/passwd");
	assert_int_equal(config_finish(cfg, &error), 0);
	assert_string_equal(cfg->data_dir, "/srv/mail");
	exp = xasprintf("%s/certs/c.pem", cwd);
	assert_string_equal(cfg->tls_cert, exp);
	free(exp);
	exp = xasprintf("%s/k.pem", cwd);
	assert_string_equal(cfg->tls_key, exp);
	free(exp);
	assert_string_equal(cfg->passwd_file, "/etc/herald/passwd");
	config_free(&cfg);

	/* data_dir "." is the working directory itself. */
	cfg = config_new();
	set_ok(cfg, "data_dir", ".");
	assert_int_equal(config_finish(cfg, &error), 0);
	assert_string_equal(cfg->data_dir, cwd);
	exp = xasprintf("%s/passwd", cwd);
	assert_string_equal(cfg->passwd_file, exp);
	free(exp);
	config_free(&cfg);

	assert_int_equal(chdir(start_dir), 0);
	free(cwd);
	free(dir);
}

static void
test_finish_workers(void **state)
{
	struct config *cfg = config_new();
	char *error = NULL;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	assert_int_equal(config_finish(cfg, &error), 0);
	assert_true(cfg->workers >= 1 && cfg->workers <= 64);
	if (cores >= 1 && cores <= 64)
		assert_int_equal(cfg->workers, cores);
	config_free(&cfg);
}

static void
expect_finish_error(const char *const *kv, const char *expected)
{
	struct config *cfg = config_new();
	char *error = NULL;

	for (; *kv != NULL; kv++) {
		if (config_set_kv(cfg, *kv, &error) != 0)
			fail_msg("%s", error);
	}
	assert_int_equal(config_finish(cfg, &error), -1);
	assert_string_equal(error, expected);
	free(error);
	config_free(&cfg);
}

static void
test_finish_errors(void **state)
{
	expect_finish_error((const char *[]){ "tls_cert=/c.pem", NULL },
	    "tls_cert and tls_key must both be set or both be empty");
	expect_finish_error((const char *[]){ "tls_key=/k.pem", NULL },
	    "tls_cert and tls_key must both be set or both be empty");
	expect_finish_error(
	    (const char *[]){ "imap_listen=", "imaps_listen=", NULL },
	    "no listener: imap_listen and imaps_listen are both empty");
	expect_finish_error((const char *[]){ "data_dir=", NULL },
	    "data_dir: must not be empty");
	expect_finish_error(
	    (const char *[]){ "imaps_listen=127.0.0.1:993 127.0.0.1:0",
		NULL },
	    "imaps_listen: invalid listen address '127.0.0.1:0': port must "
	    "be a number from 1 to 65535");
	expect_finish_error((const char *[]){ "imap_listen=localhost:143",
		NULL },
	    "imap_listen: invalid listen address 'localhost:143': not a "
	    "numeric IPv4 address");
	expect_finish_error(
	    (const char *[]){ "imaps_listen=127.0.0.1:1143", NULL },
	    "imaps_listen: address '127.0.0.1:1143' is listed twice");
	expect_finish_error(
	    (const char *[]){ "imap_listen=[::1]:1, [0::1]:1", NULL },
	    "imap_listen: address '[0::1]:1' is listed twice");
	expect_finish_error(
	    (const char *[]){ "lmtp_listen=127.0.0.1:1143", NULL },
	    "lmtp_listen: address '127.0.0.1:1143' is listed twice");
	expect_finish_error(
	    (const char *[]){ "lmtp_listen=/run/l, 127.0.0.1:24, /run/l",
	    NULL },
	    "lmtp_listen: socket path '/run/l' is listed twice");
	expect_finish_error(
	    (const char *[]){ "lmtp_listen=/run/"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", NULL },
	    "lmtp_listen: socket path '/run/"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is too "
	    "long");
	expect_finish_error(
	    (const char *[]){ "lmtp_listen=localhost:24", NULL },
	    "lmtp_listen: invalid listen address 'localhost:24': not a "
	    "numeric IPv4 address");

	/* Either listener alone is enough. */
	{
		struct config *cfg = config_new();
		char *error = NULL;

		set_ok(cfg, "imap_listen", "");
		assert_int_equal(config_finish(cfg, &error), 0);
		config_free(&cfg);
		cfg = config_new();
		set_ok(cfg, "imaps_listen", "");
		assert_int_equal(config_finish(cfg, &error), 0);
		config_free(&cfg);
	}
}

static void
test_listen(void **state)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	char *error = NULL;

	assert_int_equal(config_parse_listen("127.0.0.1:1143", &ss, &error),
	    0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 1143);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);

	assert_int_equal(config_parse_listen("*:993", &ss, &error), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 993);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_ANY);

	assert_int_equal(config_parse_listen("0.0.0.0:65535", &ss, &error),
	    0);
	assert_int_equal(ntohs(sin->sin_port), 65535);

	assert_int_equal(config_parse_listen("[::1]:1143", &ss, &error), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 1143);
	assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback,
	    sizeof(in6addr_loopback));

	assert_int_equal(config_parse_listen("[::]:1", &ss, &error), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 1);
	assert_memory_equal(&sin6->sin6_addr, &in6addr_any,
	    sizeof(in6addr_any));

	assert_int_equal(config_parse_listen("[::ffff:10.0.0.1]:143", &ss,
	    &error), 0);
	assert_int_equal(ss.ss_family, AF_INET6);

	/* The address may be left out when only checking. */
	assert_int_equal(config_parse_listen("10.1.2.3:143", NULL, &error),
	    0);
}

static void
test_listen_bad(void **state)
{
	static const struct {
		const char *addr, *why;
	} bad[] = {
		{ "127.0.0.1", "expected HOST:PORT" },
		{ "", "expected HOST:PORT" },
		{ "127.0.0.1:", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:0", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:65536", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:99999999999999999999999",
		    "port must be a number from 1 to 65535" },
		{ "127.0.0.1:-1", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:+1", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:imap", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:14 3", "port must be a number from 1 to 65535" },
		{ ":1143", "missing address (use * for any IPv4 address)" },
		{ "::1:1143", "an IPv6 address needs brackets: [ADDR]:PORT" },
		{ "[::1]1143", "expected ':PORT' after ']'" },
		{ "[::1]", "expected ':PORT' after ']'" },
		{ "[::1:1143", "missing ']'" },
		{ "[]:1143", "missing address (use * for any IPv4 address)" },
		{ "[::1]:0", "port must be a number from 1 to 65535" },
		{ "[::1]:70000", "port must be a number from 1 to 65535" },
		{ "[127.0.0.1]:143", "not a numeric IPv6 address" },
		{ "[*]:143", "not a numeric IPv6 address" },
		{ "**:143", "not a numeric IPv4 address" },
		{ "10.0.0.*:143", "not a numeric IPv4 address" },
		{ "localhost:143", "not a numeric IPv4 address" },
		{ "256.1.1.1:143", "not a numeric IPv4 address" },
		{ "example.org:143", "not a numeric IPv4 address" },
	};
	struct sockaddr_storage ss;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *error = NULL;
		char *exp = xasprintf("invalid listen address '%s': %s",
		    bad[i].addr, bad[i].why);

		if (config_parse_listen(bad[i].addr, &ss, &error) == 0)
			fail_msg("accepted '%s'", bad[i].addr);
		assert_string_equal(error, exp);
		free(exp);
		free(error);
	}
}

/* Dump, reload the dump into a fresh config, dump again: same text. */
static void
check_dump_reload(struct config *cfg)
{
	struct config *again = config_new();
	char *first = dump(cfg), *second, *error = NULL;
	char *path;
	FILE *f;

	path = xasprintf("%s/dump.conf", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	config_dump(cfg, f);
	assert_int_equal(fclose(f), 0);
	if (config_load_file(again, path, &error) != 0)
		fail_msg("%s", error);
	second = dump(again);
	assert_string_equal(first, second);
	free(first);
	free(second);
	free(path);
	config_free(&again);
}

static void
test_dump_reload(void **state)
{
	struct config *cfg = config_new();
	char *error = NULL;

	check_dump_reload(cfg);

	set_ok(cfg, "user", "we \"quote\" # and \\ escape\t");
	set_ok(cfg, "data_dir", "/srv/with space/#x");
	set_ok(cfg, "tls_cert", "\"lead-quote");
	set_ok(cfg, "tls_key", "back\\slash\"");
	set_ok(cfg, "passwd_file", " ");
	set_ok(cfg, "imap_listen", "127.0.0.1:1, [::1]:2, #x, \"y");
	set_ok(cfg, "imaps_listen", "");
	set_ok(cfg, "workers", "17");
	set_ok(cfg, "log_level", "debug");
	set_ok(cfg, "demo_user", "off");
	set_ok(cfg, "plaintext_auth", "no");
	set_ok(cfg, "max_line_length", "65537");
	set_ok(cfg, "max_literal_size", "0");
	set_ok(cfg, "max_command_size", "3G");
	set_ok(cfg, "max_output_buffer", "1025");
	set_ok(cfg, "autologout_timeout", "61");
	set_ok(cfg, "idle_max", "7200");
	set_ok(cfg, "shutdown_timeout", "0");
	set_ok(cfg, "idle_keepalive", "90m");
	check_dump_reload(cfg);
	assert_dump_line(cfg, "max_command_size", "max_command_size = 3G");
	assert_dump_line(cfg, "autologout_timeout",
	    "autologout_timeout = 61s");
	assert_dump_line(cfg, "idle_max", "idle_max = 2h");
	assert_dump_line(cfg, "idle_keepalive", "idle_keepalive = 90m");
	assert_dump_line(cfg, "shutdown_timeout", "shutdown_timeout = 0s");
	assert_dump_line(cfg, "max_literal_size", "max_literal_size = 0");
	assert_dump_line(cfg, "max_line_length", "max_line_length = 65537");
	assert_dump_line(cfg, "demo_user", "demo_user = no");
	config_free(&cfg);

	/* After finish(): absolute paths and a resolved worker count. */
	cfg = config_new();
	assert_int_equal(config_finish(cfg, &error), 0);
	check_dump_reload(cfg);
	config_free(&cfg);
}

/*
 * herald.conf.sample sets every option to its default: loading it gives
 * the same dump as config_new(), and every key appears exactly once.
 */
static char *
sample_path(void)
{
	const char *src = getenv("HERALD_SOURCE");
	const char *file = __FILE__, *tail = "tests/unit/test_config.c";
	size_t flen = strlen(file), tlen = strlen(tail);

	if (src != NULL && *src != '\0')
		return xasprintf("%s/herald.conf.sample", src);
	if (file[0] == '/' && flen > tlen &&
	    strcmp(file + flen - tlen, tail) == 0)
		return xasprintf("%.*s/herald.conf.sample",
		    (int)(flen - tlen), file);
	return NULL;
}

static void
test_sample_file(void **state)
{
	struct config *defaults = config_new(), *cfg = config_new();
	char *path = sample_path(), *error = NULL, *want, *got;
	char *line = NULL, *p, *end;
	size_t lsize = 0;
	FILE *f;

	if (path == NULL)
		skip();
	if (config_load_file(cfg, path, &error) != 0)
		fail_msg("%s", error);
	want = dump(defaults);
	got = dump(cfg);
	assert_string_equal(got, want);

	/* Each key of the table is set on exactly one line. */
	for (p = want; *p != '\0'; p = end + 1) {
		size_t klen = strcspn(p, " ");
		unsigned seen = 0;

		end = strchr(p, '\n');
		f = fopen(path, "r");
		assert_non_null(f);
		while (getline(&line, &lsize, f) >= 0) {
			if (strncmp(line, p, klen) == 0 && line[klen] == ' ')
				seen++;
		}
		fclose(f);
		if (seen != 1)
			fail_msg("%.*s: set %u times in %s", (int)klen, p,
			    seen, path);
	}
	free(line);
	free(want);
	free(got);
	free(path);
	config_free(&cfg);
	config_free(&defaults);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_dump_defaults),
		cmocka_unit_test(test_dump_source_comment),
		cmocka_unit_test(test_type_string_path),
		cmocka_unit_test(test_type_uint),
		cmocka_unit_test(test_type_size),
		cmocka_unit_test(test_type_duration),
		cmocka_unit_test(test_type_bool),
		cmocka_unit_test(test_type_enum),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_type_strlist),
		cmocka_unit_test(test_file_basic),
		cmocka_unit_test(test_file_last_wins),
		cmocka_unit_test(test_file_quoting),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_file_atomic),
		cmocka_unit_test(test_override),
		cmocka_unit_test(test_finish_paths),
		cmocka_unit_test(test_finish_workers),
		cmocka_unit_test(test_finish_errors),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_listen_bad),
		cmocka_unit_test(test_dump_reload),
		cmocka_unit_test(test_sample_file),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
