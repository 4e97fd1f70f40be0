/*
 * Process roles and the command-line entry points of the herald binary.
 */
#ifndef HERALD_MAIN_MAIN_H
#define HERALD_MAIN_MAIN_H

struct config;

#define HERALD_VERSION_STRING "0.1.0"

/* Where the configuration comes from, kept so that SIGHUP can load it again
 * in the master and in every worker. */
struct config_source {
	const char *path;	/* NULL = embedded defaults only */
	char **overrides;	/* "key=value" from -o */
	int noverrides;
};

/* Load and finish a config; NULL with *error_r (allocated) on failure. */
struct config *config_source_load(const struct config_source *src,
    char **error_r);

/* herald serve: the master process.  Returns the exit status. */
int serve_main(const struct config_source *src, struct config *cfg);

/* What a listening socket the master hands to the workers serves. */
enum listen_kind {
	LISTEN_IMAP,	/* IMAP, STARTTLS offered */
	LISTEN_IMAPS,	/* IMAP over implicit TLS */
	LISTEN_LMTP,	/* LMTP, TCP or UNIX socket */
};

/* A worker process serving fds[i] as kinds[i]; never returns. */
void worker_process_main(const struct config_source *src,
    struct config *cfg, unsigned index, const int *fds,
    const enum listen_kind *kinds, unsigned nfds, void *tls_ctx)
    __attribute__((noreturn));

#endif
