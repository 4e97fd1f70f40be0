/*
 * libFuzzer target: the configuration file (src/config/config.h).
 *
 * Input: a config file.  It is written to an in-memory file (memfd) and
 * applied with config_load_file() over the defaults.  An error must come
 * with a message; a success must survive a round trip: config_dump()
 * writes "a valid config file", so loading that dump into a fresh config
 * must succeed and dump the same text again.  config_finish() then runs
 * its cross-field checks (numeric listen addresses only, so no DNS).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "log/log.h"

#include "fuzz_common.h"

static struct fuzz_memfile in_file, dump_file;

/* The dump without its "# source:" line, which names the file. */
static char *
dump(const struct config *cfg, size_t *len_r)
{
	char *text = NULL, *src, *eol;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	FUZZ_CHECK(f != NULL);
	config_dump(cfg, f);
	FUZZ_CHECK(fclose(f) == 0);
	if ((src = strstr(text, "# source: ")) != NULL &&
	    (eol = strchr(src, '\n')) != NULL) {
		memmove(src, eol + 1, strlen(eol + 1) + 1);
		len -= (size_t)(eol + 1 - src);
	}
	*len_r = len;
	return text;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_LEVEL_ERROR);
	fuzz_memfile_init(&in_file, "herald.conf");
	fuzz_memfile_init(&dump_file, "herald.conf.dump");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg, *again;
	char *err = NULL, *d1, *d2;
	size_t l1, l2;

	if (size > 65536)
		return -1;
	fuzz_memfile_set(&in_file, data, size);
	cfg = config_new();
	FUZZ_CHECK(cfg != NULL);
	if (config_load_file(cfg, in_file.path, &err) < 0) {
		FUZZ_CHECK(err != NULL && err[0] != '\0');
		free(err);
		config_free(&cfg);
		FUZZ_CHECK(cfg == NULL);
		return 0;
	}

	d1 = dump(cfg, &l1);
	fuzz_memfile_set(&dump_file, d1, l1);
	again = config_new();
	if (config_load_file(again, dump_file.path, &err) < 0) {
		fprintf(stderr, "dump does not load: %s\n--- dump:\n%s\n",
		    err, d1);
		FUZZ_CHECK(!"config_dump() output does not load");
	}
	d2 = dump(again, &l2);
	if (l1 != l2 || memcmp(d1, d2, l1) != 0) {
		fprintf(stderr, "--- first dump:\n%s\n--- second dump:\n%s\n",
		    d1, d2);
		FUZZ_CHECK(!"config_dump() round trip changed a setting");
	}
	free(d1);
	free(d2);
	config_free(&again);

	if (config_finish(cfg, &err) < 0) {
		FUZZ_CHECK(err != NULL && err[0] != '\0');
		free(err);
	}
	config_free(&cfg);
	return 0;
}
