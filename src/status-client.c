/* status-client: spawn-fcgi --status.  See status-client.h. */
#include "config.h"

#include "status-client.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockets.h"

G_DEFINE_QUARK(spawn-fcgi-status-client-error, status_client_error)

static const char *const request_paths[] = {
  [STATUS_FORMAT_TEXT] = "/status",
  [STATUS_FORMAT_JSON] = "/status?json",
  [STATUS_FORMAT_PROMETHEUS] = "/metrics",
};

static int connect_error(GError **error, int err, const char *where)
{
  /* Nothing there, or nothing listening: the pool is not running. */
  bool not_running = err == ENOENT || err == ECONNREFUSED || err == ENOTDIR;
  g_set_error(error, STATUS_CLIENT_ERROR,
              not_running ? STATUS_CLIENT_ERROR_NOT_RUNNING : STATUS_CLIENT_ERROR_UNKNOWN,
              "%s: %s%s", where, g_strerror(err),
              not_running ? " (the pool is not running)" : "");
  return -1;
}

static int connect_to(const struct sockaddr *addr, socklen_t len, const char *where,
                      GError **error)
{
  struct timeval tv = { .tv_sec = STATUS_CLIENT_TIMEOUT_S };
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return connect_error(error, errno, where);
  /* The timeouts bound connect() on a full backlog, and each read. */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, addr, len) < 0) {
    int err = errno;
    close(fd);
    return connect_error(error, err, where);
  }
  return fd;
}

static int connect_status(const Settings *s, char **where, GError **error)
{
  if (s->status_socket != NULL) {
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    *where = g_strdup_printf("status socket '%s'", s->status_socket);
    if (strlen(s->status_socket) >= sizeof un.sun_path) {
      g_set_error(error, STATUS_CLIENT_ERROR, STATUS_CLIENT_ERROR_UNKNOWN,
                  "%s: the path is too long", *where);
      return -1;
    }
    g_strlcpy(un.sun_path, s->status_socket, sizeof un.sun_path);
    return connect_to((struct sockaddr *) &un, sizeof un, *where, error);
  }
  SocketPlan tcp = { 0 };
  g_autoptr(GError) local = NULL;
  if (!socket_plan_tcp(&tcp, s->status_listen_address, s->status_listen_port, &local)) {
    *where = g_strdup("--status-listen");
    g_set_error(error, STATUS_CLIENT_ERROR, STATUS_CLIENT_ERROR_UNKNOWN, "%s", local->message);
    return -1;
  }
  *where = g_strdup_printf("status address %s", tcp.addr_text);
  int fd = connect_to((struct sockaddr *) &tcp.addr, tcp.addr_len, *where, error);
  socket_plan_clear(&tcp);
  return fd;
}

static gboolean unknown(GError **error, const char *where, const char *what)
{
  g_set_error(error, STATUS_CLIENT_ERROR, STATUS_CLIENT_ERROR_UNKNOWN, "%s: %s", where, what);
  return FALSE;
}

static gboolean exchange(int fd, const char *request, GString *answer, const char *where,
                         GError **error)
{
  char buf[65536];
  size_t len = strlen(request), off = 0;

  while (off < len) {
    ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return unknown(error, where, n < 0 ? g_strerror(errno) : "closed");
    off += (size_t) n;
  }
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return unknown(error, where, errno == EAGAIN ? "no answer in time" : g_strerror(errno));
    if (n == 0)
      return TRUE;
    if (answer->len + (size_t) n > STATUS_CLIENT_MAX_ANSWER)
      return unknown(error, where, "the answer is too long");
    g_string_append_len(answer, buf, n);
  }
}

GString *status_client_fetch(const Settings *s, GError **error)
{
  g_autofree char *where = NULL;
  g_autoptr(GString) answer = g_string_new(NULL);
  int fd = connect_status(s, &where, error);

  if (fd < 0)
    return NULL;
  g_autofree char *request = g_strdup_printf("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n",
                                             request_paths[s->status_format]);
  gboolean ok = exchange(fd, request, answer, where, error);
  close(fd);
  if (!ok)
    return NULL;

  const char *end = strstr(answer->str, "\r\n\r\n");
  size_t line_len = strcspn(answer->str, "\r\n");
  if (end == NULL || !g_str_has_prefix(answer->str, "HTTP/1.")) {
    unknown(error, where, "the answer is not HTTP");
    return NULL;
  }
  if (line_len < 12 || strncmp(answer->str + 8, " 200", 4) != 0) {
    g_autofree char *line = g_utf8_make_valid(answer->str, MIN(line_len, 80));
    g_autofree char *msg = g_strdup_printf("the supervisor answered '%s'", line);
    unknown(error, where, msg);
    return NULL;
  }
  g_string_erase(answer, 0, end + 4 - answer->str);
  return g_steal_pointer(&answer);
}
