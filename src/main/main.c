/*
 * herald: one binary, several subcommands.
 *
 *	herald serve        [-c FILE] [-o key=value ...]
 *	herald check-config [-c FILE] [-o key=value ...]
 *	herald user add|passwd|del|list [NAME] [-s SCHEME] [-c FILE] [-o ...]
 *	herald deliver -u USER [-m MAILBOX] [-f SENDER] [-a ADDRESS] [-c ...]
 *	herald version
 */
#include "main/main.h"
#include "main/cmd_deliver.h"
#include "main/cmd_user.h"

#include "config/config.h"
#include "core/xmalloc.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: herald <command> [options]\n"
	    "\n"
	    "commands:\n"
	    "  serve          run the server in the foreground\n"
	    "  check-config   validate the configuration and print the "
	    "effective settings\n"
	    "  user add NAME | passwd NAME | del NAME | list\n"
	    "                 manage the passwd file (password read from "
	    "the terminal or stdin)\n"
	    "  deliver -u USER [-m MAILBOX] [-f SENDER] [-a ADDRESS]\n"
	    "                 deliver the message on stdin (exit codes "
	    "of sysexits.h)\n"
	    "  version        print the version\n"
	    "\n"
	    "options:\n"
	    "  -c FILE        configuration file (default: embedded "
	    "defaults, data in ./var)\n"
	    "  -o key=value   override one setting (repeatable)\n"
	    "  -s SCHEME      password scheme for user add/passwd "
	    "(default SHA512-CRYPT)\n");
}

struct config *
config_source_load(const struct config_source *src, char **error_r)
{
	struct config *cfg = config_new();

	if (src->path != NULL &&
	    config_load_file(cfg, src->path, error_r) < 0)
		goto fail;
	for (int i = 0; i < src->noverrides; i++)
		if (config_set_kv(cfg, src->overrides[i], error_r) < 0)
			goto fail;
	if (config_finish(cfg, error_r) < 0)
		goto fail;
	return cfg;
fail:
	config_free(&cfg);
	return NULL;
}

static int
run_command(const char *cmd, int nrest, char **rest,
    const struct config_source *src, struct config *cfg)
{
	if (strcmp(cmd, "serve") == 0) {
		if (nrest != 1) {
			usage(stderr);
			return 2;
		}
		return serve_main(src, cfg);
	}
	if (strcmp(cmd, "check-config") == 0) {
		if (nrest != 1) {
			usage(stderr);
			return 2;
		}
		config_dump(cfg, stdout);
		fprintf(stderr, "herald: configuration OK\n");
		return 0;
	}
	if (strcmp(cmd, "user") == 0)
		return cmd_user(nrest, rest, cfg);
	if (strcmp(cmd, "deliver") == 0)
		return cmd_deliver(nrest, rest, cfg);
	fprintf(stderr, "herald: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}

int
main(int argc, char **argv)
{
	static struct config_source src;
	char **rest;
	int nrest = 0;
	struct config *cfg;
	char *error = NULL;
	const char *cmd;
	int ret;

	log_init("herald", LOG_LEVEL_INFO);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("herald %s\n", HERALD_VERSION_STRING);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	/* -c and -o are understood by every subcommand; the rest is the
	 * subcommand's own. */
	rest = xcalloc((size_t)argc, sizeof(*rest));
	src.overrides = xcalloc((size_t)argc, sizeof(*src.overrides));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 ||
		    strcmp(argv[i], "--config") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "herald: -c needs a file\n");
				return 2;
			}
			src.path = argv[i];
		} else if (strcmp(argv[i], "-o") == 0) {
			if (++i >= argc) {
				fprintf(stderr,
				    "herald: -o needs key=value\n");
				return 2;
			}
			src.overrides[src.noverrides++] = argv[i];
		} else {
			rest[nrest++] = argv[i];
		}
	}
	cfg = config_source_load(&src, &error);
	if (cfg == NULL) {
		fprintf(stderr, "herald: %s\n", error);
		free(error);
		free(rest);
		free(src.overrides);
		/* A delivery agent's MTA must keep the mail and retry. */
		return strcmp(cmd, "deliver") == 0 ? EX_TEMPFAIL : 1;
	}
	log_set_level(cfg->log_level);
	ret = run_command(cmd, nrest, rest, &src, cfg);
	/* serve_main() may have swapped in a reloaded config. */
	if (strcmp(cmd, "serve") != 0)
		config_free(&cfg);
	free(rest);
	free(src.overrides);
	return ret;
}
