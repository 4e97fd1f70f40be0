#include "event/tls.h"

#include "core/xmalloc.h"
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *
tls_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e == 0)
		return xasprintf("%s", what);
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return xasprintf("%s: %s", what, buf);
}

void *
tls_ctx_new(const char *cert_path, const char *key_path, char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		*error_r = tls_error("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* Idle TLS connections give their buffers back; writes may be
	 * partial and retried from a buffer that moved (STYLE section 7). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"herald",
	    6);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		char *what = xasprintf("cannot load certificate %s",
		    cert_path);

		*error_r = tls_error(what);
		free(what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) !=
	    1) {
		char *what = xasprintf("cannot load key %s", key_path);

		*error_r = tls_error(what);
		free(what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = tls_error("certificate and key do not match");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void
tls_ctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}

static int
add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return 0;
}

static int
write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd, ok;
	FILE *f;

	/* Never through a link someone left at the temporary name: root
	 * writes here at start, in a directory the service user may own. */
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd < 0) {
		free(tmp);
		return -1;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		free(tmp);
		return -1;
	}
	ok = key != NULL ?
	    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_X509(f, cert);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

int
tls_ensure_self_signed(const char *cert_path, const char *key_path,
    bool *created_r, char **error_r)
{
	struct stat st;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	X509_NAME *name;
	unsigned char serial[16];
	BIGNUM *bn;
	int ret = -1;

	*created_r = false;
	if (stat(cert_path, &st) == 0 && stat(key_path, &st) == 0)
		return 0;
	if (stat(cert_path, &st) == 0 || stat(key_path, &st) == 0) {
		*error_r = xasprintf("only one of %s and %s exists",
		    cert_path, key_path);
		return -1;
	}
	key = EVP_EC_gen("P-256");
	cert = X509_new();
	if (key == NULL || cert == NULL) {
		*error_r = tls_error("key generation failed");
		goto out;
	}
	X509_set_version(cert, 2);
	if (RAND_bytes(serial, sizeof(serial)) != 1) {
		*error_r = tls_error("RAND_bytes");
		goto out;
	}
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 24 * 3600);
	X509_set_pubkey(cert, key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"Herald self-signed", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(cert, name);
	if (add_ext(cert, NID_subject_alt_name,
	    "DNS:localhost,IP:127.0.0.1,IP:::1") < 0 ||
	    add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(cert, NID_ext_key_usage, "serverAuth") < 0) {
		*error_r = tls_error("certificate extensions");
		goto out;
	}
	if (X509_sign(cert, key, EVP_sha256()) == 0) {
		*error_r = tls_error("certificate signing");
		goto out;
	}
	if (write_pem(key_path, 0600, key, NULL) < 0) {
		*error_r = xasprintf("cannot write %s: %s", key_path,
		    strerror(errno));
		goto out;
	}
	if (write_pem(cert_path, 0644, NULL, cert) < 0) {
		*error_r = xasprintf("cannot write %s: %s", cert_path,
		    strerror(errno));
		unlink(key_path);
		goto out;
	}
	*created_r = true;
	ret = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return ret;
}
