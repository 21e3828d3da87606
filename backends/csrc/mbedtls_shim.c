/*
 * A thin shim over Mbed TLS 3.6 so that Rust needs no bindgen: opaque handles, plain ints.
 *
 * Why private access: Mbed TLS has no public getter for the alert a peer sent. After
 * MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE the decrypted alert is still in ssl->in_msg, which is
 * a private field in 3.x; MBEDTLS_ALLOW_PRIVATE_ACCESS is the library's own switch for that.
 */
#define MBEDTLS_ALLOW_PRIVATE_ACCESS

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <mbedtls/build_info.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#if MBEDTLS_VERSION_MAJOR != 3 || MBEDTLS_VERSION_MINOR != 6
#error "handshake-matrix needs Mbed TLS 3.6.x headers; run scripts/setup.sh"
#endif

typedef struct hm_server {
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
    mbedtls_ssl_ticket_context ticket;
    mbedtls_ssl_cache_context cache;
    int resumption;
} hm_server;

/* The byte tap (see src/tap.rs): direction 0 = received from the client, 1 = sent to it; n >= 0
 * bytes (0 received: the client's FIN), n < 0: -errno of a failed call. */
typedef void (*hm_tap_io_fn)(void *tap, int direction, const unsigned char *buf, long n);
/* One NSS key log line, NUL-terminated, without a line break. */
typedef void (*hm_tap_key_fn)(void *tap, const char *line);

typedef struct hm_conn {
    mbedtls_ssl_context ssl;
    int fd;
    hm_tap_io_fn tap_io;
    hm_tap_key_fn tap_key;
    void *tap;
    int os_errno;
    /* The last bytes received, to read an alert that arrived in plaintext. */
    unsigned char tail[16];
    size_t tail_len;
    char sni[256];
} hm_conn;

static const char *alpn_list[] = {"http/1.1", NULL};

static pthread_once_t psa_once = PTHREAD_ONCE_INIT;
static int psa_status = -1;
static void psa_init_once(void) { psa_status = (int)psa_crypto_init(); }

void hm_version(char *buf, size_t len) {
    char v[32];
    mbedtls_version_get_string_full(v);
    strncpy(buf, v, len - 1);
    buf[len - 1] = 0;
}

void hm_strerror(int code, char *buf, size_t len) { mbedtls_strerror(code, buf, len); }

static void remember(hm_conn *c, const unsigned char *buf, size_t n) {
    const size_t cap = sizeof c->tail;
    if (n >= cap) {
        memcpy(c->tail, buf + n - cap, cap);
        c->tail_len = cap;
        return;
    }
    if (c->tail_len + n > cap) {
        size_t drop = c->tail_len + n - cap;
        memmove(c->tail, c->tail + drop, c->tail_len - drop);
        c->tail_len -= drop;
    }
    memcpy(c->tail + c->tail_len, buf, n);
    c->tail_len += n;
}

static int recv_cb(void *ctx, unsigned char *buf, size_t len) {
    hm_conn *c = ctx;
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0) {
            remember(c, buf, (size_t)n);
            if (c->tap_io != NULL && len > 0) c->tap_io(c->tap, 0, buf, (long)n);
            return (int)n;
        }
        if (errno == EINTR) continue;
        c->os_errno = errno;
        if (c->tap_io != NULL) c->tap_io(c->tap, 0, NULL, -(long)errno);
        if (errno == EAGAIN || errno == EWOULDBLOCK) return MBEDTLS_ERR_SSL_TIMEOUT;
        if (errno == ECONNRESET || errno == EPIPE) return MBEDTLS_ERR_NET_CONN_RESET;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

static int send_cb(void *ctx, const unsigned char *buf, size_t len) {
    hm_conn *c = ctx;
    for (;;) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            if (c->tap_io != NULL) c->tap_io(c->tap, 1, buf, (long)n);
            return (int)n;
        }
        if (errno == EINTR) continue;
        c->os_errno = errno;
        if (c->tap_io != NULL) c->tap_io(c->tap, 1, NULL, -(long)errno);
        if (errno == EAGAIN || errno == EWOULDBLOCK) return MBEDTLS_ERR_SSL_TIMEOUT;
        if (errno == ECONNRESET || errno == EPIPE) return MBEDTLS_ERR_NET_CONN_RESET;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

static int sni_cb(void *p, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len) {
    (void)p;
    hm_conn *c = mbedtls_ssl_get_user_data_p(ssl);
    if (c != NULL) {
        size_t n = len < sizeof c->sni - 1 ? len : sizeof c->sni - 1;
        memcpy(c->sni, name, n);
        c->sni[n] = 0;
    }
    return 0;
}

hm_server *hm_server_new(const char *chain_pem, const char *key_pem, int min_minor, int max_minor,
                         int resumption, int *err_out) {
    pthread_once(&psa_once, psa_init_once);
    if (psa_status != 0) {
        *err_out = psa_status;
        return NULL;
    }
    hm_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        *err_out = MBEDTLS_ERR_SSL_ALLOC_FAILED;
        return NULL;
    }
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    mbedtls_x509_crt_init(&s->chain);
    mbedtls_pk_init(&s->key);
    mbedtls_ssl_ticket_init(&s->ticket);
    mbedtls_ssl_cache_init(&s->cache);
    s->resumption = resumption;

    int ret;
    static const char pers[] = "handshake-matrix";
    if ((ret = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
                                     (const unsigned char *)pers, sizeof pers)) != 0) goto fail;
    /* PEM parsers want the length including the terminating NUL. */
    if ((ret = mbedtls_x509_crt_parse(&s->chain, (const unsigned char *)chain_pem, strlen(chain_pem) + 1)) != 0) goto fail;
    if ((ret = mbedtls_pk_parse_key(&s->key, (const unsigned char *)key_pem, strlen(key_pem) + 1, NULL, 0,
                                    mbedtls_ctr_drbg_random, &s->drbg)) != 0) goto fail;
    if ((ret = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT)) != 0) goto fail;
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
    if ((ret = mbedtls_ssl_conf_own_cert(&s->conf, &s->chain, &s->key)) != 0) goto fail;
    mbedtls_ssl_conf_min_tls_version(&s->conf, min_minor == 4 ? MBEDTLS_SSL_VERSION_TLS1_3 : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(&s->conf, max_minor == 4 ? MBEDTLS_SSL_VERSION_TLS1_3 : MBEDTLS_SSL_VERSION_TLS1_2);
    if ((ret = mbedtls_ssl_conf_alpn_protocols(&s->conf, alpn_list)) != 0) goto fail;
    mbedtls_ssl_conf_sni(&s->conf, sni_cb, NULL);
    if (resumption) {
        if ((ret = mbedtls_ssl_ticket_setup(&s->ticket, mbedtls_ctr_drbg_random, &s->drbg,
                                            MBEDTLS_CIPHER_AES_256_GCM, 86400)) != 0) goto fail;
        mbedtls_ssl_conf_session_tickets_cb(&s->conf, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &s->ticket);
        mbedtls_ssl_conf_session_cache(&s->conf, &s->cache, mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
    } else {
        mbedtls_ssl_conf_session_tickets(&s->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
        mbedtls_ssl_conf_new_session_tickets(&s->conf, 0);
#endif
    }
    *err_out = 0;
    return s;
fail:
    *err_out = ret;
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_ssl_ticket_free(&s->ticket);
    mbedtls_ssl_cache_free(&s->cache);
    mbedtls_pk_free(&s->key);
    mbedtls_x509_crt_free(&s->chain);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    free(s);
    return NULL;
}

void hm_server_free(hm_server *s) {
    if (s == NULL) return;
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_ssl_ticket_free(&s->ticket);
    mbedtls_ssl_cache_free(&s->cache);
    mbedtls_pk_free(&s->key);
    mbedtls_x509_crt_free(&s->chain);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    free(s);
}

/* Secrets as NSS key log lines, with the labels of Mbed TLS's own programs/ssl/ssl_server2.c
 * (nss_keylog_export): the TLS 1.2 master secret needs the client random to be found. */
static void export_keys(void *p, mbedtls_ssl_key_export_type type, const unsigned char *secret,
                        size_t secret_len, const unsigned char client_random[32],
                        const unsigned char server_random[32], mbedtls_tls_prf_types prf) {
    (void)server_random;
    (void)prf;
    hm_conn *c = p;
    const char *label = NULL;
    switch (type) {
    case MBEDTLS_SSL_KEY_EXPORT_TLS12_MASTER_SECRET: label = "CLIENT_RANDOM"; break;
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_EARLY_SECRET: label = "CLIENT_EARLY_TRAFFIC_SECRET"; break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_EARLY_EXPORTER_SECRET: label = "EARLY_EXPORTER_SECRET"; break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_HANDSHAKE_TRAFFIC_SECRET: label = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"; break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_HANDSHAKE_TRAFFIC_SECRET: label = "SERVER_HANDSHAKE_TRAFFIC_SECRET"; break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_APPLICATION_TRAFFIC_SECRET: label = "CLIENT_TRAFFIC_SECRET_0"; break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_APPLICATION_TRAFFIC_SECRET: label = "SERVER_TRAFFIC_SECRET_0"; break;
#endif
    }
    if (label == NULL || c->tap_key == NULL || secret_len > 64) return;
    char line[64 + 1 + 64 + 1 + 128 + 1];
    size_t at = (size_t)snprintf(line, sizeof line, "%s ", label);
    for (size_t i = 0; i < 32; i++) at += (size_t)snprintf(line + at, sizeof line - at, "%02x", client_random[i]);
    line[at++] = ' ';
    for (size_t i = 0; i < secret_len; i++) at += (size_t)snprintf(line + at, sizeof line - at, "%02x", secret[i]);
    line[at] = 0;
    c->tap_key(c->tap, line);
}

hm_conn *hm_conn_new(hm_server *s, int fd, hm_tap_io_fn tap_io, hm_tap_key_fn tap_key, void *tap,
                     int *err_out) {
    hm_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        *err_out = MBEDTLS_ERR_SSL_ALLOC_FAILED;
        return NULL;
    }
    c->fd = fd;
    c->tap_io = tap_io;
    c->tap_key = tap_key;
    c->tap = tap;
    mbedtls_ssl_init(&c->ssl);
    int ret = mbedtls_ssl_setup(&c->ssl, &s->conf);
    if (ret != 0) {
        mbedtls_ssl_free(&c->ssl);
        free(c);
        *err_out = ret;
        return NULL;
    }
    mbedtls_ssl_set_user_data_p(&c->ssl, c);
    mbedtls_ssl_set_bio(&c->ssl, c, send_cb, recv_cb, NULL);
    if (tap_key != NULL) mbedtls_ssl_set_export_keys_cb(&c->ssl, export_keys, c);
    *err_out = 0;
    return c;
}

void hm_conn_free(hm_conn *c) {
    if (c == NULL) return;
    mbedtls_ssl_free(&c->ssl);
    free(c);
}

int hm_conn_handshake(hm_conn *c) {
    int ret;
    do {
        ret = mbedtls_ssl_handshake(&c->ssl);
    } while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
    return ret;
}

/* Returns 1 and the two alert bytes if the last failure was an alert we can read. */
int hm_conn_alert(hm_conn *c, int ret, unsigned char *level, unsigned char *desc) {
    if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        if (c->ssl.in_msgtype == MBEDTLS_SSL_MSG_ALERT && c->ssl.in_msg != NULL) {
            *level = c->ssl.in_msg[0];
            *desc = c->ssl.in_msg[1];
            return 1;
        }
        return 0;
    }
    /* A TLS 1.3 peer that sends its alert in plaintext (as OpenSSL's s_client does) makes
     * Mbed TLS fail the record's decryption; the record header still says "alert, 2 bytes". */
    if (ret == MBEDTLS_ERR_SSL_INVALID_MAC || ret == MBEDTLS_ERR_SSL_INVALID_RECORD) {
        if (c->tail_len >= 7) {
            const unsigned char *r = c->tail + c->tail_len - 7;
            if (r[0] == MBEDTLS_SSL_MSG_ALERT && r[1] == 3 && r[3] == 0 && r[4] == 2) {
                *level = r[5];
                *desc = r[6];
                return 1;
            }
        }
    }
    return 0;
}

int hm_conn_os_errno(hm_conn *c) { return c->os_errno; }

int hm_conn_read(hm_conn *c, unsigned char *buf, size_t len) {
    int ret;
    do {
        ret = mbedtls_ssl_read(&c->ssl, buf, len);
    } while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
    return ret;
}

int hm_conn_write(hm_conn *c, const unsigned char *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        int ret = mbedtls_ssl_write(&c->ssl, buf + done, len - done);
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
        if (ret < 0) return ret;
        done += (size_t)ret;
    }
    return 0;
}

void hm_conn_close_notify(hm_conn *c) { (void)mbedtls_ssl_close_notify(&c->ssl); }

const char *hm_conn_version(hm_conn *c) { return mbedtls_ssl_get_version(&c->ssl); }
int hm_conn_suite_id(hm_conn *c) { return mbedtls_ssl_get_ciphersuite_id_from_ssl(&c->ssl); }
const char *hm_conn_suite_name(hm_conn *c) { return mbedtls_ssl_get_ciphersuite(&c->ssl); }
const char *hm_conn_sni(hm_conn *c) { return c->sni[0] ? c->sni : NULL; }
const char *hm_conn_alpn(hm_conn *c) { return mbedtls_ssl_get_alpn_protocol(&c->ssl); }
