/* fuzz_tls.c — libFuzzer target: bytes a client sends to the public listener
 * with TLS on (a self-signed certificate made at start-up): the handshake
 * driven through tls.c's memory BIOs, failure alerts, close after flush,
 * and whatever plaintext gets through. Seeds are real ClientHellos
 * (TLS 1.2 / 1.3 / 1.1) and plain HTTP.
 * Input: byte 0 = chunk size (0: one write); the rest is what the client
 * writes. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/config.h"
#include "fuzz_env.h"
#include "net/tls.h"

/* Writes a fresh self-signed P-256 certificate and its key to temp files
 * and points the configuration at them. */
static void make_cert(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!k || !x) abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (!X509_sign(x, k, EVP_sha256())) abort();
    char cert[] = "/tmp/sb-fuzz-cert-XXXXXX", key[] = "/tmp/sb-fuzz-key-XXXXXX";
    int cf = mkstemp(cert), kf = mkstemp(key);
    FILE *c = cf >= 0 ? fdopen(cf, "w") : NULL, *f = kf >= 0 ? fdopen(kf, "w") : NULL;
    if (!c || !f || !PEM_write_X509(c, x) || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
        abort();
    fclose(c);
    fclose(f);
    snprintf(g_config.tls_cert, sizeof g_config.tls_cert, "%s", cert);
    snprintf(g_config.tls_key, sizeof g_config.tls_key, "%s", key);
    if (tls_init() != 0 || !tls_enabled()) abort();
    unlink(cert); /* loaded: the files are not needed any more */
    unlink(key);
    X509_free(x);
    EVP_PKEY_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    fz_init();
    if (!ready) {
        make_cert();
        ready = true;
    }
    if (size < 1) return 0;
    fz_open(false);
    fz_send_chunked(data + 1, size - 1, data[0]);
    fz_close();
    return 0;
}
