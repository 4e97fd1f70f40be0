/*
 * TLS contexts (OpenSSL 3): TLS 1.2 minimum, server cipher preference,
 * SSL_MODE_RELEASE_BUFFERS so an idle TLS connection holds no buffers.
 */
#ifndef HERALD_EVENT_TLS_H
#define HERALD_EVENT_TLS_H

#include <stdbool.h>

/* Load certificate chain and key.  Returns an SSL_CTX *, or NULL with a
 * malloc'ed *error_r. */
void *tls_ctx_new(const char *cert_path, const char *key_path,
    char **error_r);
void tls_ctx_free(void *ctx);

/*
 * Write a self-signed certificate (CN=localhost, subjectAltName localhost,
 * 127.0.0.1, ::1; ten years) and its key if neither file exists.  The key is
 * written with mode 0600.  0 = exists or created, -1 with *error_r.
 */
int tls_ensure_self_signed(const char *cert_path, const char *key_path,
    bool *created_r, char **error_r);

#endif
