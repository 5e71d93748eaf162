/*
 * gitd's pre-receive and post-receive hook, in C.
 *
 * The same thin client as gitd_hook.py, for hosts with a C compiler: `gitd init` and
 * `gitd serve` compile it into DATA/hooks (setting [hooks] program = "auto" or "c")
 * because it starts in about a millisecond, where Python needs ten or more, and it
 * runs twice on every push.
 *
 * git runs it as DATA/hooks/pre-receive (objects still in quarantine, no ref moved)
 * and as DATA/hooks/post-receive (refs moved). Either way it sends git's ref lines,
 * the quarantine environment and the push options to the daemon's internal hook API
 * on its Unix socket, authenticated by the token the daemon issued for this push
 * alone, prints the daemon's answer (the pusher sees it as "remote:" lines) and exits
 * non-zero unless the daemon answered 200. Request format: see gitd/hooks/api.py.
 * All policy and every plugin run in the daemon, never here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

static const char NOT_THROUGH_DAEMON[] =
    "gitd: refusing this push: it did not come through the gitd daemon.\n"
    "gitd: push over HTTP or SSH to the server instead of writing to its data directory.\n";

static const char *const QUARANTINE_ENV[] = {
    "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH",
};

struct buf {
    char *data;
    size_t len, cap;
};

static void die_oom(void) {
    fputs("gitd: out of memory in the push hook; push refused.\n", stderr);
    exit(1);
}

static void buf_add(struct buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data)
            die_oom();
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* A header line "<kind> <value>\n" (or "<kind> <key>=<value>\n"). In the value, "%", the
 * ASCII control characters and DEL go as %XX (upper-case hex), so no value can end its
 * line or start another: a push option may hold newlines. The same quoting as quote()
 * in gitd_hook.py, byte for byte. */
static void add_line(struct buf *b, const char *kind, const char *key, const char *value) {
    static const char hex[] = "0123456789ABCDEF";
    buf_str(b, kind);
    buf_str(b, " ");
    if (key) {
        buf_str(b, key);
        buf_str(b, "=");
    }
    const char *run = value;
    for (const char *p = value;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\0' || c < 0x20 || c == '%' || c == 0x7f) {
            buf_add(b, run, (size_t)(p - run));
            if (c == '\0')
                break;
            char escaped[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_add(b, escaped, 3);
            run = p + 1;
        }
    }
    buf_str(b, "\n");
}

/* The request in one go (one writev for head and body), so the daemon reads it in one wake-up. */
static int writev_all(int fd, struct iovec *iov, int count) {
    while (count > 0) {
        ssize_t w = writev(fd, iov, count);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (count > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int read_all(int fd, struct buf *b) {
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            return 0;
        buf_add(b, chunk, (size_t)r);
    }
}

static int token_ok(const char *token) {
    if (!*token)
        return 0;
    for (const char *p = token; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    (void)argc;
    const char *hook = strrchr(argv[0], '/');
    hook = hook ? hook + 1 : argv[0];
    if (strcmp(hook, "pre-receive") != 0 && strcmp(hook, "post-receive") != 0) {
        fprintf(stderr, "gitd: unknown hook '%s'\n", hook);
        return 1;
    }
    const char *socket_path = getenv("GITD_HOOK_SOCKET");
    const char *token = getenv("GITD_PUSH_TOKEN");
    if (!socket_path || !*socket_path || !token || !*token) {
        fputs(NOT_THROUGH_DAEMON, stderr);
        return 1;
    }
    if (!token_ok(token)) {
        fputs("gitd: malformed push token; push refused.\n", stderr);
        return 1;
    }

    struct buf body = {0};
    for (size_t i = 0; i < sizeof QUARANTINE_ENV / sizeof *QUARANTINE_ENV; i++) {
        const char *value = getenv(QUARANTINE_ENV[i]);
        if (value && *value)
            add_line(&body, "env", QUARANTINE_ENV[i], value);
    }
    const char *count_text = getenv("GIT_PUSH_OPTION_COUNT");
    long count = count_text ? strtol(count_text, NULL, 10) : 0;
    for (long i = 0; i < count && i < 10000; i++) {
        char name[64];
        snprintf(name, sizeof name, "GIT_PUSH_OPTION_%ld", i);
        const char *option = getenv(name);
        add_line(&body, "option", NULL, option ? option : "");
    }
    buf_str(&body, "\n");
    if (read_all(0, &body) < 0) {
        perror("gitd: reading the ref lines");
        return 1;
    }

    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(socket_path) >= sizeof addr.sun_path) {
        fputs("gitd: the hook socket path is too long; push refused.\n", stderr);
        return 1;
    }
    strcpy(addr.sun_path, socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "gitd: cannot reach the gitd daemon for the %s hook (%s); push refused.\n", hook,
                strerror(errno));
        return 1;
    }
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /hook/%s HTTP/1.1\r\nHost: gitd\r\nContent-Type: text/plain\r\n"
                     "X-Gitd-Push-Token: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     hook, token, body.len);
    if (n < 0 || (size_t)n >= sizeof head) {
        fputs("gitd: malformed push token; push refused.\n", stderr);
        return 1;
    }
    struct buf reply = {0};
    struct iovec request[2] = {{head, (size_t)n}, {body.data, body.len}};
    if (writev_all(fd, request, 2) < 0 || read_all(fd, &reply) < 0) {
        fprintf(stderr, "gitd: lost the gitd daemon during the %s hook (%s); push refused.\n", hook,
                strerror(errno));
        return 1;
    }
    close(fd);

    int status = 0;
    char *payload = reply.data ? strstr(reply.data, "\r\n\r\n") : NULL;
    if (!payload || strncmp(reply.data, "HTTP/1.", 7) != 0 || sscanf(reply.data, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "gitd: no valid answer from the gitd daemon for the %s hook; push refused.\n", hook);
        return 1;
    }
    payload += 4;
    size_t payload_len = reply.len - (size_t)(payload - reply.data);
    if (payload_len > 0) {
        fwrite(payload, 1, payload_len, stderr);
        if (payload[payload_len - 1] != '\n')
            fputc('\n', stderr);
    } else if (status != 200) {
        fprintf(stderr, "gitd: the daemon refused the %s hook (HTTP %d).\n", hook, status);
    }
    return status == 200 ? 0 : 1;
}
