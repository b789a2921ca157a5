/* status-server: the pool's status over HTTP/1.0.  See status-server.h. */
#include "config.h"

#include "status-server.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "status.h"

/* epoll data: what kind of fd, and its index. */
enum { TAG_LISTENER = 1, TAG_TIMER = 2, TAG_CLIENT = 3 };
#define TAG(kind, index) (((guint64) (kind) << 32) | (guint32) (index))
#define TAG_KIND(tag) ((int) ((tag) >> 32))
#define TAG_INDEX(tag) ((guint) ((tag) & 0xffffffffu))

#define MAX_LISTENERS 2

typedef struct {
  int fd;                        /* -1: free */
  gint64 deadline_us;            /* monotonic */
  char request[STATUS_MAX_REQUEST];
  size_t request_len;
  GString *response;             /* NULL while the request is read */
  size_t sent;
} Client;

struct StatusServer {
  int epoll_fd;
  int timer_fd;
  bool timer_armed;
  int listen_fds[MAX_LISTENERS];
  guint n_listen;
  PoolStatus base;               /* strings owned */
  StatusPssCache *pss;
  Client clients[STATUS_MAX_CLIENTS];
};

/* ---- requests ------------------------------------------------------------ */

static const char *find_header_end(const char *buf, size_t len)
{
  for (size_t i = 0; i + 1 < len; i++) {
    if (buf[i] == '\n' && buf[i + 1] == '\n')
      return buf + i;
    if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0)
      return buf + i;
  }
  return NULL;
}

static StatusRequest route(const char *target)
{
  const char *query = strchr(target, '?');
  g_autofree char *path = g_strndup(target, query ? (gsize) (query - target) : strlen(target));

  if (strcmp(path, "/metrics") == 0)
    return STATUS_REQUEST_PROMETHEUS;
  if (strcmp(path, "/status.json") == 0)
    return STATUS_REQUEST_JSON;
  if (strcmp(path, "/status") == 0)
    return query && strcmp(query, "?json") == 0 ? STATUS_REQUEST_JSON : STATUS_REQUEST_TEXT;
  return STATUS_REQUEST_NOT_FOUND;
}

StatusRequest status_request_parse(const char *buf, size_t len, bool *head)
{
  const char *end = find_header_end(buf, len);
  *head = false;

  if (memchr(buf, '\0', len) != NULL)
    return STATUS_REQUEST_BAD;
  if (end == NULL)
    return len >= STATUS_MAX_REQUEST ? STATUS_REQUEST_BAD : STATUS_REQUEST_INCOMPLETE;

  /* METHOD SP TARGET SP HTTP/1.x */
  size_t line_len = strcspn(buf, "\r\n");
  g_autofree char *line = g_strndup(buf, line_len);
  g_auto(GStrv) parts = g_strsplit(line, " ", -1);
  if (g_strv_length(parts) != 3 || parts[0][0] == '\0' || parts[1][0] != '/' ||
      !(strcmp(parts[2], "HTTP/1.0") == 0 || strcmp(parts[2], "HTTP/1.1") == 0))
    return STATUS_REQUEST_BAD;
  for (const char *m = parts[0]; *m; m++)
    if (!g_ascii_isupper(*m))
      return STATUS_REQUEST_BAD;
  *head = strcmp(parts[0], "HEAD") == 0;
  if (strcmp(parts[0], "GET") != 0 && !*head)
    return STATUS_REQUEST_BAD_METHOD;
  return route(parts[1]);
}

/* ---- responses ----------------------------------------------------------- */

static void respond(GString *out, const char *status_line, const char *extra_header,
                    const char *type, const GString *body, bool head)
{
  g_string_append_printf(out, "HTTP/1.0 %s\r\n"
                              "Content-Type: %s\r\n"
                              "Content-Length: %" G_GSIZE_FORMAT "\r\n"
                              "Cache-Control: no-store\r\n"
                              "Connection: close\r\n"
                              "%s"
                              "\r\n",
                         status_line, type, body->len, extra_header ? extra_header : "");
  if (!head)
    g_string_append_len(out, body->str, (gssize) body->len);  /* a page, far below G_MAXSSIZE */
}

static void respond_error(GString *out, const char *status_line, const char *extra_header,
                          bool head)
{
  g_autoptr(GString) body = g_string_new(status_line);
  g_string_append_c(body, '\n');
  respond(out, status_line, extra_header, "text/plain; charset=utf-8", body, head);
}

static const char *const content_types[] = {
  [STATUS_FORMAT_TEXT] = "text/plain; charset=utf-8",
  [STATUS_FORMAT_JSON] = "application/json",
  [STATUS_FORMAT_PROMETHEUS] = "text/plain; version=0.0.4; charset=utf-8",
};

static GString *answer(StatusServer *server, StatusRequest req, bool head,
                       StatusFillFunc fill, gpointer data)
{
  GString *out = g_string_new(NULL);
  StatusFormat format;

  switch (req) {
  case STATUS_REQUEST_TEXT: format = STATUS_FORMAT_TEXT; break;
  case STATUS_REQUEST_JSON: format = STATUS_FORMAT_JSON; break;
  case STATUS_REQUEST_PROMETHEUS: format = STATUS_FORMAT_PROMETHEUS; break;
  case STATUS_REQUEST_NOT_FOUND:
    respond_error(out, "404 Not Found", NULL, head);
    return out;
  case STATUS_REQUEST_BAD_METHOD:
    respond_error(out, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", head);
    return out;
  case STATUS_REQUEST_BAD:
  case STATUS_REQUEST_INCOMPLETE:
  default:
    respond_error(out, "400 Bad Request", NULL, false);
    return out;
  }

  PoolStatus st = server->base;
  g_autoptr(GString) body = g_string_new(NULL);
  fill(&st, data);
  pool_status_read_proc_cached(&st, server->pss);
  status_format(&st, format, body);
  respond(out, "200 OK", NULL, content_types[format], body, head);
  return out;
}

/* ---- clients ------------------------------------------------------------- */

static void drop_client(StatusServer *server, Client *c)
{
  epoll_ctl(server->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  if (c->response)
    g_string_free(c->response, TRUE);
  c->response = NULL;
}

/* Sends what the socket takes now; drops the client when all is sent or
 * the peer is gone. */
static void write_client(StatusServer *server, Client *c)
{
  while (c->sent < c->response->len) {
    ssize_t n = send(c->fd, c->response->str + c->sent, c->response->len - c->sent,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n <= 0)
      break;
    c->sent += (size_t) n;
  }
  /* All sent (or the peer left): no more to say; anything it still sends
   * is not read. */
  shutdown(c->fd, SHUT_WR);
  drop_client(server, c);
}

static void read_client(StatusServer *server, Client *c, StatusFillFunc fill, gpointer data)
{
  bool head;

  for (;;) {
    ssize_t n = recv(c->fd, c->request + c->request_len,
                     sizeof c->request - c->request_len, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n <= 0) {
      /* Gone before its request was complete. */
      drop_client(server, c);
      return;
    }
    c->request_len += (size_t) n;
    StatusRequest req = status_request_parse(c->request, c->request_len, &head);
    if (req == STATUS_REQUEST_INCOMPLETE)
      continue;
    c->response = answer(server, req, head, fill, data);
    struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = TAG(TAG_CLIENT, c - server->clients) };
    epoll_ctl(server->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
    write_client(server, c);
    return;
  }
}

static void refuse_busy(int fd)
{
  static const char busy[] = "HTTP/1.0 503 Service Unavailable\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Length: 24\r\n"
                             "Connection: close\r\n"
                             "\r\n"
                             "503 Service Unavailable\n";
  /* Best effort: a fresh socket's buffer takes this at once, or never. */
  (void) !send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(fd, SHUT_WR);
  close(fd);
}

static void accept_clients(StatusServer *server, int listen_fd)
{
  for (int i = 0; i < STATUS_ACCEPTS_PER_DISPATCH; i++) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;               /* EAGAIN, or a connection that went away */
    Client *c = NULL;
    for (guint k = 0; k < STATUS_MAX_CLIENTS && c == NULL; k++)
      if (server->clients[k].fd < 0)
        c = &server->clients[k];
    if (c == NULL) {
      refuse_busy(fd);
      continue;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG(TAG_CLIENT, c - server->clients) };
    if (epoll_ctl(server->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->request_len = 0;
    c->sent = 0;
    c->deadline_us = g_get_monotonic_time() + STATUS_CLIENT_TIMEOUT_MS * 1000;
  }
}

static void drop_late_clients(StatusServer *server)
{
  gint64 now = g_get_monotonic_time();
  guint64 expirations;

  (void) !read(server->timer_fd, &expirations, sizeof expirations);
  for (guint k = 0; k < STATUS_MAX_CLIENTS; k++)
    if (server->clients[k].fd >= 0 && now >= server->clients[k].deadline_us)
      drop_client(server, &server->clients[k]);
}

/* The timer runs only while a client is connected. */
static void arm_timer(StatusServer *server)
{
  gint64 next = G_MAXINT64;
  struct itimerspec its = { 0 };

  for (guint k = 0; k < STATUS_MAX_CLIENTS; k++)
    if (server->clients[k].fd >= 0)
      next = MIN(next, server->clients[k].deadline_us);
  if (next == G_MAXINT64 && !server->timer_armed)
    return;
  if (next != G_MAXINT64) {
    /* Absolute on CLOCK_MONOTONIC, which g_get_monotonic_time() uses. */
    next = MAX(next, 1);
    its.it_value.tv_sec = next / G_USEC_PER_SEC;
    its.it_value.tv_nsec = (next % G_USEC_PER_SEC) * 1000;
  }
  timerfd_settime(server->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
  server->timer_armed = next != G_MAXINT64;
}

void status_server_dispatch(StatusServer *server, StatusFillFunc fill, gpointer data)
{
  struct epoll_event events[STATUS_MAX_CLIENTS + MAX_LISTENERS + 1];
  int n = epoll_wait(server->epoll_fd, events, G_N_ELEMENTS(events), 0);

  for (int i = 0; i < n; i++) {
    guint64 tag = events[i].data.u64;
    Client *c = &server->clients[TAG_INDEX(tag) % STATUS_MAX_CLIENTS];
    switch (TAG_KIND(tag)) {
    case TAG_LISTENER:
      accept_clients(server, server->listen_fds[TAG_INDEX(tag)]);
      break;
    case TAG_TIMER:
      drop_late_clients(server);
      break;
    case TAG_CLIENT:
      if (c->fd < 0)
        break;                /* dropped earlier in this round */
      if (c->response)
        write_client(server, c);
      else
        read_client(server, c, fill, data);
      break;
    }
  }
  arm_timer(server);
}

/* ---- life ---------------------------------------------------------------- */

int status_server_fd(const StatusServer *server)
{
  return server->epoll_fd;
}

StatusServer *status_server_new(const int *listen_fds, guint n_fds, const PoolStatus *base,
                                GError **error)
{
  StatusServer *server = g_new0(StatusServer, 1);

  g_return_val_if_fail(n_fds <= MAX_LISTENERS, NULL);
  server->timer_fd = -1;
  server->pss = status_pss_cache_new();
  for (guint k = 0; k < STATUS_MAX_CLIENTS; k++)
    server->clients[k].fd = -1;
  for (guint i = 0; i < n_fds; i++)
    server->listen_fds[server->n_listen++] = listen_fds[i];
  server->base = (PoolStatus) {
    .instance = g_strdup(base->instance),
    .listen = g_strdup(base->listen),
    .listen_source = g_strdup(base->listen_source),
    .backlog = base->backlog,
    .version = g_strdup(base->version),
  };

  server->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  server->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (server->epoll_fd < 0 || server->timer_fd < 0)
    goto fail;
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG(TAG_TIMER, 0) };
  if (epoll_ctl(server->epoll_fd, EPOLL_CTL_ADD, server->timer_fd, &ev) < 0)
    goto fail;
  for (guint i = 0; i < server->n_listen; i++) {
    int fd = server->listen_fds[i];
    ev = (struct epoll_event) { .events = EPOLLIN, .data.u64 = TAG(TAG_LISTENER, i) };
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
        epoll_ctl(server->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
      goto fail;
  }
  return server;

fail:
  g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
              "cannot set up the status server: %s", g_strerror(errno));
  status_server_free(server);
  return NULL;
}

void status_server_free(StatusServer *server)
{
  if (server == NULL)
    return;
  for (guint k = 0; k < STATUS_MAX_CLIENTS; k++)
    if (server->clients[k].fd >= 0)
      drop_client(server, &server->clients[k]);
  for (guint i = 0; i < server->n_listen; i++)
    close(server->listen_fds[i]);
  if (server->timer_fd >= 0)
    close(server->timer_fd);
  if (server->epoll_fd >= 0)
    close(server->epoll_fd);
  g_free((char *) server->base.instance);
  g_free((char *) server->base.listen);
  g_free((char *) server->base.listen_source);
  g_free((char *) server->base.version);
  status_pss_cache_free(server->pss);
  g_free(server);
}
