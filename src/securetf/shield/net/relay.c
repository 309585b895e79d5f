/*
 * securetf-relay: the network shield's data path (docs/net-shield.md, ADR 0017).
 *
 * The runtime decides, this process carries bytes. The runtime accepts and opens every TCP
 * connection itself (in the program's namespace or the host's), then hands the sockets over
 * here on a control socket (SCM_RIGHTS). For a tunnel, this process does the TLS 1.3
 * handshake with the instance certificate and the policy's CA (the only CA loaded), reports
 * the verified peer certificate back on the tunnel's own control socket, and carries bytes
 * only after the runtime answers yes (its name, service and liveness checks, the port) and
 * hands over the program's socket. The runtime never touches a byte of the copy.
 *
 *   securetf-relay CERT KEY CA FD     (FD: the control socket, SOCK_SEQPACKET)
 *
 * Control messages (runtime -> relay, on FD), SCM_RIGHTS with two descriptors:
 *   'o' TIMEOUT_MS(u32) NAME   [ctl, peer]  TLS client to a peer runtime; NAME is the DNS
 *                                           name its certificate must carry (no SNI sent)
 *   'i' TIMEOUT_MS(u32)        [ctl, peer]  TLS server for a peer runtime; reads the port
 *   'p'                        [a, b]       plain copy both ways (public ports, egress)
 * On a tunnel's ctl (relay -> runtime): 'C' PORT(u16) DER (handshake done; PORT is what an
 * inbound peer asked for, 0 outbound), 'T' TEXT (refused by TLS), 'I' TEXT (I/O failure:
 * reset, end or timeout during the handshake). Runtime -> relay: 'Y' PORT(u16) with the
 * program's socket (outbound: PORT is sent inside TLS first), or 'N'.
 *
 * Ends, as the Python tunnel had them: the clean end of either side (a FIN from a plain
 * side, close_notify from a TLS side) ends both cleanly (close_notify, then FIN); anything
 * else (a TLS stream that ends without close_notify, a reset, an error) resets both.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int control_fd = -1;
#define NOBODY 65534 /* the kernel's overflow id; a policy may not give it to a program */
#define COPY 262144          /* bytes per read, as COPY_BUFFER in _settings.py */
#define STAGE (COPY + 65536) /* TLS bytes each way between OpenSSL and the socket */
#define MAX_MSG 65536
#define LINGER_MS 1000 /* how long a clean end waits to deliver what is left */

static SSL_CTX *client_ctx, *server_ctx;

enum { IO_OK, IO_AGAIN, IO_EOF, IO_FAIL };

struct end {
    int fd;
    SSL *ssl; /* NULL: a plain side */
    /* TLS: OpenSSL reads and writes records through one end of a BIO pair (two ring
     * buffers); the socket fills and drains the other end in place, with no copy. */
    BIO *net;
    int more; /* the last recv filled all the room it was given: the socket may hold more */
};

struct job {
    char kind;
    int ctl, a, b;
    int timeout_ms;
    char name[256];
};

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void abort_fd(int fd) {
    struct linger l = {1, 0}; /* close() then sends a reset, not a clean end */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- one side of a copy ------------------------------------------------------------- */

static int end_flush(struct end *e) {
    if (!e->ssl)
        return IO_OK;
    for (;;) {
        char *data;
        int n = BIO_nread0(e->net, &data);
        if (n <= 0)
            return IO_OK;
        ssize_t sent = send(e->fd, data, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent > 0) {
            BIO_nread(e->net, &data, (int)sent);
            continue;
        }
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return IO_AGAIN;
        return IO_FAIL;
    }
}

static int end_pending(struct end *e) { return e->ssl && BIO_ctrl_pending(e->net) > 0; }

/* Network bytes into the pair, received in place. */
static int end_fill(struct end *e) {
    char *room;
    int n = BIO_nwrite0(e->net, &room);
    if (n <= 0)
        return IO_AGAIN; /* full: OpenSSL has records to read first */
    ssize_t got = recv(e->fd, room, (size_t)n, MSG_DONTWAIT);
    if (got > 0) {
        BIO_nwrite(e->net, &room, (int)got);
        e->more = got == n;
        return IO_OK;
    }
    if (got == 0)
        return IO_EOF;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_FAIL;
}

static int end_read(struct end *e, unsigned char *buf, size_t cap, size_t *got) {
    *got = 0;
    if (!e->ssl) {
        ssize_t n = recv(e->fd, buf, cap, MSG_DONTWAIT);
        if (n > 0) {
            *got = (size_t)n;
            return IO_OK;
        }
        if (n == 0)
            return IO_EOF;
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_FAIL;
    }
    for (;;) {
        /* Drain every record OpenSSL can give before reading the socket again. */
        while (*got < cap) {
            int r = SSL_read(e->ssl, buf + *got, (int)(cap - *got));
            if (r > 0) {
                *got += (size_t)r;
                continue;
            }
            int err = SSL_get_error(e->ssl, r);
            if (err == SSL_ERROR_WANT_READ)
                break;
            if (*got)
                return IO_OK; /* the end (or the error) comes on the next call */
            return err == SSL_ERROR_ZERO_RETURN ? IO_EOF : IO_FAIL;
        }
        if (*got && (*got == cap || !e->more))
            return IO_OK;
        /* Nothing yet, or the ring's room ended before the socket did: read on. */
        int r = end_fill(e);
        if (r != IO_OK && *got)
            return IO_OK; /* the end (or the error) comes on the next call */
        if (r == IO_EOF)
            return IO_FAIL; /* no close_notify: a truncation, never a clean end */
        if (r != IO_OK)
            return r;
    }
}

static int end_write(struct end *e, const unsigned char *buf, size_t len, size_t *put) {
    *put = 0;
    if (!e->ssl) {
        ssize_t n = send(e->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            *put = (size_t)n;
            return IO_OK;
        }
        return (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) ? IO_AGAIN
                                                                                       : IO_FAIL;
    }
    int f = end_flush(e);
    if (f != IO_OK)
        return f;
    /* Into the pair: as many records as the ring takes (with partial writes on, SSL_write
     * returns after each record), then all of them out in few send()s, not one per record.
     * A write the ring refused is made again from the same bytes (*put is not advanced). */
    while (*put < len) {
        int r = SSL_write(e->ssl, buf + *put, (int)(len - *put));
        if (r <= 0) {
            if (SSL_get_error(e->ssl, r) != SSL_ERROR_WANT_WRITE)
                return IO_FAIL;
            break;
        }
        *put += (size_t)r;
    }
    f = end_flush(e);
    if (f == IO_FAIL)
        return IO_FAIL;
    return *put ? IO_OK : IO_AGAIN;
}

/* ---- the copy ------------------------------------------------------------------------ */

/* Deliver what is left within LINGER_MS, then close_notify on TLS sides; best effort. */
static void finish(struct end *ends[2], unsigned char *buf[2], size_t len[2], size_t off[2]) {
    int64_t deadline = now_ms() + LINGER_MS;
    for (int d = 0; d < 2; d++) {
        struct end *dst = ends[1 - d];
        while (off[d] < len[d]) {
            size_t put;
            int r = end_write(dst, buf[d] + off[d], len[d] - off[d], &put);
            if (r == IO_FAIL || (r == IO_AGAIN && wait_fd(dst->fd, POLLOUT, deadline)))
                break;
            off[d] += put;
        }
    }
    for (int k = 0; k < 2; k++) {
        struct end *e = ends[k];
        if (!e->ssl)
            continue;
        SSL_shutdown(e->ssl); /* writes close_notify; the answer is not awaited */
        while (end_pending(e)) {
            int r = end_flush(e);
            if (r == IO_FAIL || (r == IO_AGAIN && wait_fd(e->fd, POLLOUT, deadline)))
                break;
        }
    }
}

static void copy(struct end *a, struct end *b) {
    struct end *ends[2] = {a, b}; /* direction d: ends[d] -> ends[1 - d] */
    unsigned char *buf[2] = {malloc(COPY), malloc(COPY)};
    size_t len[2] = {0, 0}, off[2] = {0, 0};
    /* What each socket may do without waiting: cleared when a call would block, set again
     * by poll. A side is not asked again until poll says it can go on, so an idle direction
     * costs no system call per pass of the busy one. */
    int readable[2] = {1, 1}, writable[2] = {1, 1};
    int clean = 0, failed = 0;
    if (!buf[0] || !buf[1])
        failed = 1;
    while (!clean && !failed) {
        int progress = 1;
        while (progress && !clean && !failed) {
            progress = 0;
            for (int d = 0; d < 2 && !clean && !failed; d++) {
                struct end *src = ends[d], *dst = ends[1 - d];
                if (off[d] == len[d] && readable[d]) {
                    size_t got;
                    int r = end_read(src, buf[d], COPY, &got);
                    if (r == IO_OK) {
                        len[d] = got;
                        off[d] = 0;
                        progress = 1;
                    } else if (r == IO_EOF) {
                        clean = 1;
                    } else if (r == IO_FAIL) {
                        failed = 1;
                    } else {
                        readable[d] = 0;
                    }
                }
                if (!clean && !failed && off[d] < len[d] && writable[1 - d]) {
                    size_t put;
                    int r = end_write(dst, buf[d] + off[d], len[d] - off[d], &put);
                    if (r == IO_OK) {
                        off[d] += put;
                        if (off[d] == len[d])
                            off[d] = len[d] = 0;
                        progress = 1;
                    } else if (r == IO_FAIL) {
                        failed = 1;
                    } else {
                        writable[1 - d] = 0;
                    }
                }
            }
            for (int k = 0; k < 2 && !failed; k++) {
                if (!writable[k] || !end_pending(ends[k]))
                    continue;
                int r = end_flush(ends[k]); /* also what a read made (a key update) */
                if (r == IO_FAIL)
                    failed = 1;
                else if (r == IO_AGAIN)
                    writable[k] = 0;
            }
        }
        if (clean || failed)
            break;
        struct pollfd p[2];
        for (int k = 0; k < 2; k++) {
            /* in: k's direction has room; out: something waits to go to k */
            short ev = (off[k] == len[k] ? POLLIN : 0) |
                       (off[1 - k] < len[1 - k] || end_pending(ends[k]) ? POLLOUT : 0);
            p[k].fd = ev ? ends[k]->fd : -1; /* no events: no endless POLLHUP either */
            p[k].events = ev;
            p[k].revents = 0;
        }
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            failed = 1;
        for (int k = 0; k < 2; k++) {
            short got = p[k].revents;
            if (got & (POLLIN | POLLHUP | POLLERR))
                readable[k] = 1;
            if (got & (POLLOUT | POLLHUP | POLLERR))
                writable[k] = 1;
        }
    }
    if (clean) {
        finish(ends, buf, len, off);
        close(a->fd);
        close(b->fd);
    } else {
        abort_fd(a->fd);
        abort_fd(b->fd);
    }
    free(buf[0]);
    free(buf[1]);
}

/* ---- handshake and the tunnel's control ---------------------------------------------- */

static int tls_end(struct end *e, int fd, SSL_CTX *ctx) {
    memset(e, 0, sizeof *e);
    e->fd = fd;
    e->ssl = SSL_new(ctx);
    BIO *inner = NULL;
    if (!e->ssl || BIO_new_bio_pair(&inner, STAGE, &e->net, STAGE) != 1)
        return -1;
    SSL_set_bio(e->ssl, inner, inner);
    /* A write takes what the ring has room for; the rest is written again from where it
     * stopped (the same bytes, maybe at a new address). */
    SSL_set_mode(e->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

static void free_end(struct end *e) {
    if (e->ssl)
        SSL_free(e->ssl); /* frees its end of the pair */
    if (e->net)
        BIO_free(e->net);
}

/* Blocking, with a deadline: flush, then read more network bytes. -1: I/O failure. */
static int hs_flush(struct end *e, int64_t deadline) {
    while (end_pending(e)) {
        int r = end_flush(e);
        if (r == IO_FAIL || (r == IO_AGAIN && wait_fd(e->fd, POLLOUT, deadline)))
            return -1;
    }
    return 0;
}

static int hs_fill(struct end *e, int64_t deadline) {
    if (wait_fd(e->fd, POLLIN, deadline))
        return -1;
    int r = end_fill(e);
    return r == IO_OK || r == IO_AGAIN ? 0 : -1;
}

static void say(int ctl, char code, const char *text) {
    char msg[512];
    msg[0] = code;
    size_t n = strlen(text);
    if (n > sizeof msg - 1)
        n = sizeof msg - 1;
    memcpy(msg + 1, text, n);
    send(ctl, msg, n + 1, MSG_NOSIGNAL);
}

static void tls_error(char *out, size_t size) {
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, out, size);
    else
        snprintf(out, size, "TLS failure");
    ERR_clear_error();
}

/* 'C' reported: wait for the runtime's verdict; return the program's socket or -1. */
static int verdict(int ctl, uint16_t *port) {
    char msg[16];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {msg, sizeof msg};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
    int fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
    if (n == 3 && msg[0] == 'Y' && fd >= 0) {
        *port = (uint16_t)(((unsigned char)msg[1] << 8) | (unsigned char)msg[2]);
        return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

static void tunnel(struct job *job) {
    struct end peer, program;
    int server = job->kind == 'i';
    int64_t deadline = now_ms() + job->timeout_ms;
    char text[256];
    if (tls_end(&peer, job->b, server ? server_ctx : client_ctx)) {
        say(job->ctl, 'I', "out of memory");
        goto refused;
    }
    if (server) {
        SSL_set_accept_state(peer.ssl);
    } else {
        /* The name is checked in the certificate; none is sent (no SNI: nothing in clear). */
        X509_VERIFY_PARAM *param = SSL_get0_param(peer.ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                                   X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        X509_VERIFY_PARAM_set1_host(param, job->name, 0);
        SSL_set_connect_state(peer.ssl);
    }
    for (;;) {
        int r = SSL_do_handshake(peer.ssl);
        if (r == 1)
            break;
        int err = SSL_get_error(peer.ssl, r);
        if (err == SSL_ERROR_WANT_READ) {
            if (hs_flush(&peer, deadline) || hs_fill(&peer, deadline)) {
                say(job->ctl, 'I', "reset, closed or timed out during the TLS handshake");
                goto refused;
            }
            continue;
        }
        long v = SSL_get_verify_result(peer.ssl);
        if (v != X509_V_OK)
            snprintf(text, sizeof text, "certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
        else
            tls_error(text, sizeof text);
        hs_flush(&peer, deadline); /* the alert, so the peer learns why */
        say(job->ctl, 'T', text);
        goto refused;
    }
    if (hs_flush(&peer, deadline)) {
        say(job->ctl, 'I', "reset or timed out after the TLS handshake");
        goto refused;
    }
    uint16_t port = 0;
    if (server) { /* the peer names the listen port it wants, inside TLS */
        unsigned char head[2];
        size_t got = 0;
        while (got < 2) {
            int r = SSL_read(peer.ssl, head + got, (int)(2 - got));
            if (r > 0) {
                got += (size_t)r;
                continue;
            }
            if (SSL_get_error(peer.ssl, r) != SSL_ERROR_WANT_READ || hs_flush(&peer, deadline) ||
                hs_fill(&peer, deadline)) {
                say(job->ctl, 'I', "closed before naming a port");
                goto refused;
            }
        }
        port = (uint16_t)((head[0] << 8) | head[1]);
    }
    X509 *cert = SSL_get1_peer_certificate(peer.ssl);
    unsigned char *der = NULL;
    int der_len = cert ? i2d_X509(cert, &der) : -1;
    X509_free(cert);
    if (der_len <= 0 || der_len > MAX_MSG - 3) {
        OPENSSL_free(der);
        say(job->ctl, 'T', "the peer presented no certificate");
        goto refused;
    }
    unsigned char *msg = malloc((size_t)der_len + 3);
    if (!msg) {
        OPENSSL_free(der);
        say(job->ctl, 'I', "out of memory");
        goto refused;
    }
    msg[0] = 'C';
    msg[1] = (unsigned char)(port >> 8);
    msg[2] = (unsigned char)port;
    memcpy(msg + 3, der, (size_t)der_len);
    OPENSSL_free(der);
    ssize_t sent = send(job->ctl, msg, (size_t)der_len + 3, MSG_NOSIGNAL);
    free(msg);
    int fd = sent > 0 ? verdict(job->ctl, &port) : -1;
    close(job->ctl);
    job->ctl = -1;
    if (fd < 0) {
        abort_fd(peer.fd);
        free_end(&peer);
        return;
    }
    if (!server) { /* the listen port the program asked for, as the first bytes */
        unsigned char head[2] = {(unsigned char)(port >> 8), (unsigned char)port};
        if (SSL_write(peer.ssl, head, 2) != 2 || hs_flush(&peer, now_ms() + job->timeout_ms)) {
            abort_fd(fd);
            abort_fd(peer.fd);
            free_end(&peer);
            return;
        }
    }
    memset(&program, 0, sizeof program);
    program.fd = fd;
    copy(&program, &peer);
    free_end(&peer);
    return;
refused:
    if (job->ctl >= 0)
        close(job->ctl);
    abort_fd(job->b);
    free_end(&peer);
}

static void *run_job(void *arg) {
    struct job *job = arg;
    if (job->kind == 'p') {
        struct end a = {0}, b = {0};
        a.fd = job->a;
        b.fd = job->b;
        copy(&a, &b);
    } else {
        tunnel(job);
    }
    free(job);
    OPENSSL_thread_stop();
    return NULL;
}

/* ---- set-up ---------------------------------------------------------------------------- */

static SSL_CTX *context(const SSL_METHOD *method, const char *cert, const char *key,
                        const char *ca, int server) {
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
        /* Only the policy's CA: no system roots, so no certificate of anyone else passes. */
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1 || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       NULL);
    if (server) {
        SSL_CTX_set_num_tickets(ctx, 0); /* no resumption: every tunnel shows its certificate */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    return ctx;
}

static int read_job(struct job *job) {
    unsigned char msg[512];
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov = {msg, sizeof msg - 1};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n;
    do
        n = recvmsg(control_fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1; /* the runtime is gone: so are its tunnels */
    int fds[2] = {-1, -1};
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(2 * sizeof(int)))
            memcpy(fds, CMSG_DATA(c), sizeof fds);
    memset(job, 0, sizeof *job);
    job->ctl = job->a = job->b = -1;
    if (fds[0] < 0 || fds[1] < 0 || (msg[0] != 'p' && n < 5)) {
        for (int k = 0; k < 2; k++)
            if (fds[k] >= 0)
                close(fds[k]);
        return 0; /* malformed: nothing to carry */
    }
    job->kind = (char)msg[0];
    if (job->kind == 'p') {
        job->a = fds[0];
        job->b = fds[1];
        return 1;
    }
    job->ctl = fds[0];
    job->b = fds[1];
    job->timeout_ms = (int)(((uint32_t)msg[1] << 24) | ((uint32_t)msg[2] << 16) |
                            ((uint32_t)msg[3] << 8) | msg[4]);
    size_t name = (size_t)n - 5 < sizeof job->name - 1 ? (size_t)n - 5 : sizeof job->name - 1;
    memcpy(job->name, msg + 5, name);
    job->name[name] = 0;
    return 1;
}

/* Everything it needs from root is done (the key and certificates are loaded; sockets come
 * over the control socket): run on as nobody, with no capability and no way to gain one, so
 * that a flaw in what parses the network's bytes holds nothing of root's. A change of
 * credentials clears the parent-death signal and the dumpable flag: both are set again. */
static int drop_privileges(pid_t parent) {
    if (geteuid() == 0 && (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
                           setresuid(NOBODY, NOBODY, NOBODY))) {
        perror("securetf-relay: cannot drop root");
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_PDEATHSIG, SIGKILL) ||
        prctl(PR_SET_DUMPABLE, 0)) {
        perror("securetf-relay: prctl");
        return -1;
    }
    if (getppid() != parent) /* the runtime died before the signal was set again */
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5 || (control_fd = atoi(argv[4])) < 3) {
        fprintf(stderr, "usage: securetf-relay CERT KEY CA FD  (FD: the control socket)\n");
        return 2;
    }
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the runtime */
    prctl(PR_SET_DUMPABLE, 0);        /* no core dump, no ptrace of the key in memory */
    signal(SIGPIPE, SIG_IGN);
    client_ctx = context(TLS_client_method(), argv[1], argv[2], argv[3], 0);
    server_ctx = context(TLS_server_method(), argv[1], argv[2], argv[3], 1);
    if (!client_ctx || !server_ctx) {
        char text[256];
        tls_error(text, sizeof text);
        fprintf(stderr, "securetf-relay: cannot load the instance certificate or CA: %s\n", text);
        return 1;
    }
    if (drop_privileges(parent))
        return 1;
    if (write(control_fd, "R", 1) != 1) /* ready */
        return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        struct job *job = malloc(sizeof *job);
        if (!job)
            return 1;
        int r = read_job(job);
        if (r < 0)
            return 0;
        pthread_t t;
        if (r == 0) {
            free(job);
        } else if (pthread_create(&t, &attr, run_job, job) != 0) {
            int fds[3] = {job->ctl, job->a, job->b};
            for (int k = 0; k < 3; k++)
                if (fds[k] >= 0)
                    abort_fd(fds[k]);
            free(job);
        }
    }
}
