/* tls13.h — the TLS 1.3 record layer (RFC 8446 section 5) of an
 * established connection, without the SSL object (issue 18, P13 memory).
 *
 * OpenSSL's SSL object of a finished TLS 1.3 handshake stays ~11 KB per
 * connection (the SSL struct alone is 7.6 KB: 32 record slots for
 * pipelining, the handshake's digests and keys, the CERT copy...), which an
 * idle WSS connection would hold for hours. tls.c does the handshake with
 * OpenSSL, takes the two application traffic secrets (keylog callback) and
 * the server's record count, frees the SSL object, and protects the rest of
 * the connection here: AEAD records with libcrypto's ciphers (AES-128-GCM,
 * AES-256-GCM, ChaCha20-Poly1305: the three suites we offer), nonces from the
 * per-direction IV and sequence number, KeyUpdate both ways (the peer's;
 * ours before 2^23 records under one key, RFC 8446 5.5), alerts.
 * A connection holds only its secrets, keys, IVs and sequence numbers (~250
 * bytes); the cipher contexts are per thread and keyed for each record.
 *
 * What it does not do (tls.c keeps the SSL object then): TLS 1.2, other
 * suites, a negotiated max_fragment_length, post-handshake client
 * authentication, early data. A post-handshake handshake message other than
 * KeyUpdate, a KeyUpdate not alone in its record, a record over 2^14 + 256
 * bytes, a failed tag or an alert ends the connection (fatal alert sent). */
#ifndef SB_TLS13_H
#define SB_TLS13_H

#include <stddef.h>
#include <stdint.h>

#define TLS13_HDR 5
#define TLS13_TAG 16
#define TLS13_MAX_PLAIN 16384                          /* 2^14 */
#define TLS13_MAX_CIPHER (TLS13_MAX_PLAIN + 256)        /* record body limit (RFC 8446 5.2) */
#define TLS13_MAX_RECORD (TLS13_HDR + TLS13_MAX_CIPHER) /* header + body */
#define TLS13_OVERHEAD (TLS13_HDR + 1 + TLS13_TAG)      /* sealed size = plaintext + this */
#define TLS13_REKEY_RECORDS (1ull << 23)                /* we update our key before this many */

/* content types */
enum { TLS13_ALERT = 21, TLS13_HANDSHAKE = 22, TLS13_APPDATA = 23 };
/* alert descriptions we send */
enum {
    TLS13_A_CLOSE_NOTIFY = 0,
    TLS13_A_UNEXPECTED = 10,
    TLS13_A_BAD_MAC = 20,
    TLS13_A_OVERFLOW = 22,
    TLS13_A_DECODE = 50,
    TLS13_A_ILLEGAL = 47,
    TLS13_A_INTERNAL = 80,
};

typedef struct tls13_dir {
    unsigned char secret[48]; /* the current application traffic secret */
    unsigned char key[32];
    unsigned char iv[12];
    uint64_t seq;
} tls13_dir;

typedef struct tls13_rec {
    uint8_t suite;   /* 0: none; 1 AES-128-GCM-SHA256, 2 AES-256-GCM-SHA384, 3 CHACHA20-POLY1305-SHA256 */
    tls13_dir rd;    /* the client's records */
    tls13_dir wr;    /* ours */
} tls13_rec;

/* Fetches the ciphers and the KDF once (main thread, at start). 0 or -1. */
int tls13_rec_global_init(void);
/* The suite's index for its IANA id (0x1301..0x1303), 0 when not ours (or
 * its cipher is not available from the providers). */
int tls13_suite_of(uint16_t iana_id);
/* Sets r up for `suite` from the client's and the server's application
 * traffic secrets (secret_len: the suite hash's size) with `wseq` records
 * already sent under the server's (the session tickets). 0 or -1. */
int tls13_rec_init(tls13_rec *r, int suite, const unsigned char *client_secret,
                   const unsigned char *server_secret, size_t secret_len, uint64_t wseq);
/* Forgets the keys (cleanses). */
void tls13_rec_wipe(tls13_rec *r);
/* Seals one record of `type` with plaintext in[0..len) (len <= 2^14) into
 * out (len + TLS13_OVERHEAD bytes). Returns the bytes written or -1. */
long tls13_seal(tls13_rec *r, uint8_t type, const unsigned char *in, size_t len, unsigned char *out);
/* The length of the record at the start of p (n >= TLS13_HDR bytes):
 * header + body, or -1 when the header is not an application_data record
 * of a legal length (the caller sends *alert). */
long tls13_record_len(const unsigned char *p, size_t n, int *alert);
/* Opens the whole record rec[0..len) into out (at least TLS13_MAX_CIPHER
 * bytes): sets *type and returns the content's length, or -1 with *alert. */
long tls13_open(tls13_rec *r, const unsigned char *rec, size_t len, unsigned char *out, uint8_t *type,
                int *alert);
/* Moves dir d to its next traffic secret (KeyUpdate). 0 or -1. */
int tls13_next_key(tls13_rec *r, tls13_dir *d);
/* A handshake record's content from the client: its KeyUpdate moves the
 * read key on. Returns 0, 1 when the client asked for ours (seal it with
 * tls13_seal_key_update before the next application data), or -1 with
 * *alert (anything else). */
int tls13_on_handshake(tls13_rec *r, const unsigned char *msg, size_t len, int *alert);
/* Seals our KeyUpdate into out (TLS13_OVERHEAD + 5 bytes) and moves our
 * write key on. Returns the bytes written or -1. */
long tls13_seal_key_update(tls13_rec *r, unsigned char *out);

#endif
