/* sockets: passed, own and inherited listening sockets.  See sockets.h. */
#include "config.h"

#include "sockets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>  /* SD_LISTEN_FDS_START */
#include <unistd.h>

#include "systemd.h"

G_DEFINE_QUARK(spawn-fcgi-socket-error, socket_error)

const char *socket_source_name(SocketSource source)
{
  switch (source) {
  case SOCKET_SOURCE_PASSED: return "passed by systemd (LISTEN_FDS)";
  case SOCKET_SOURCE_UNIX: return "own unix socket";
  case SOCKET_SOURCE_TCP: return "own TCP socket";
  case SOCKET_SOURCE_STDIN: return "inherited on fd 0";
  }
  return "?";
}

/* ---- planning ------------------------------------------------------------ */

static void format_addr(SocketPlan *plan)
{
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  g_free(plan->addr_text);
  if (plan->addr.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &plan->addr;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    plan->addr_text = g_strdup_printf("[%s]:%u", host, port);
  } else {
    const struct sockaddr_in *in = (const struct sockaddr_in *) &plan->addr;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    plan->addr_text = g_strdup_printf("%s:%u", host, port);
  }
}

gboolean socket_plan_tcp(SocketPlan *plan, const char *address, guint16 port,
                         GError **error)
{
  g_autofree char *host = NULL;
  struct addrinfo hints = { 0 }, *res = NULL;
  char service[8];
  int rc;

  plan->source = SOCKET_SOURCE_TCP;
  if (address == NULL || address[0] == '\0')
    address = "0.0.0.0";

  /* "[::1]" is the bracketed form of an IPv6 literal. */
  size_t len = strlen(address);
  if (address[0] == '[') {
    if (len < 3 || address[len - 1] != ']') {
      g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID,
                  "invalid address '%s': unbalanced brackets", address);
      return FALSE;
    }
    host = g_strndup(address + 1, len - 2);
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_family = AF_INET6;
  } else {
    host = g_strdup(address);
  }

  g_snprintf(service, sizeof service, "%u", (unsigned) port);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags |= AI_PASSIVE | AI_NUMERICSERV;
  rc = getaddrinfo(host, service, &hints, &res);
  if (rc != 0) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID,
                "cannot resolve address '%s': %s", address,
                rc == EAI_SYSTEM ? g_strerror(errno) : gai_strerror(rc));
    return FALSE;
  }
  if (res->ai_addrlen > sizeof plan->addr) {
    freeaddrinfo(res);
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID,
                "unsupported address '%s'", address);
    return FALSE;
  }
  memcpy(&plan->addr, res->ai_addr, res->ai_addrlen);
  plan->addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  format_addr(plan);
  return TRUE;
}

gboolean socket_plan_unix(SocketPlan *plan, const char *path, GError **error)
{
  struct sockaddr_un un;

  plan->source = SOCKET_SOURCE_UNIX;
  if (path[0] == '\0') {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID, "empty socket path");
    return FALSE;
  }
  if (strlen(path) >= sizeof un.sun_path) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID,
                "socket path '%s' is too long (%zu bytes, at most %zu)",
                path, strlen(path), sizeof un.sun_path - 1);
    return FALSE;
  }
  g_free(plan->path);
  plan->path = g_strdup(path);
  plan->set_mode = true;
  return TRUE;
}

/* libsystemd's errors are about the socket source. */
static gboolean as_socket_error(GError **error, const GError *why)
{
  g_set_error_literal(error, SOCKET_ERROR, SOCKET_ERROR_FAILED, why->message);
  return FALSE;
}

/* A passed or inherited fd must be a listening stream socket: a connected
 * socket (Accept=yes) would make libfcgi fall back to plain CGI. */
static gboolean check_listening(int fd, const char *what, GError **error)
{
  int accepting = 0;
  socklen_t len = sizeof accepting;
  g_autoptr(GError) local = NULL;
  int is_socket = systemd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, -1, &local);

  if (is_socket < 0)
    return as_socket_error(error, local);
  if (is_socket == 0) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "%s is not a stream socket", what);
    return FALSE;
  }
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0 || !accepting) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "%s is a connected socket, not a listening one "
                "(is the socket unit Accept=yes? use Accept=no)", what);
    return FALSE;
  }
  return TRUE;
}

/* The filesystem path of a passed unix socket, if it has one. */
static char *unix_path_of(int fd)
{
  struct sockaddr_un un = { 0 };
  socklen_t len = sizeof un;
  if (getsockname(fd, (struct sockaddr *) &un, &len) < 0 || un.sun_family != AF_UNIX ||
      len <= offsetof(struct sockaddr_un, sun_path) || un.sun_path[0] == '\0')
    return NULL;
  return g_strndup(un.sun_path, len - offsetof(struct sockaddr_un, sun_path));
}

gboolean socket_plan_passed(SocketPlan *plan, const char *fd_name, bool *found,
                            GError **error)
{
  g_auto(GStrv) names = NULL;
  g_autoptr(GError) local = NULL;
  int n, chosen = -1;

  *found = false;
  n = systemd_listen_fds_with_names(&names, &local);
  if (n < 0)
    return as_socket_error(error, local);
  if (n == 0) {
    if (fd_name != NULL) {
      g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID,
                  "--fd-name '%s' given, but no sockets were passed", fd_name);
      return FALSE;
    }
    return TRUE;
  }

  if (fd_name != NULL) {
    for (int i = 0; i < n; i++) {
      if (names != NULL && g_strcmp0(names[i], fd_name) == 0) {
        if (chosen >= 0) {
          g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID,
                      "several passed sockets are named '%s'", fd_name);
          return FALSE;
        }
        chosen = i;
      }
    }
  } else if (n == 1) {
    chosen = 0;
  }
  if (chosen < 0) {
    g_autofree char *list = names ? g_strjoinv(", ", names) : g_strdup("?");
    if (fd_name != NULL)
      g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID,
                  "no passed socket is named '%s' (passed: %s)", fd_name, list);
    else
      g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID,
                  "%d sockets were passed (%s): choose one with --fd-name", n, list);
    return FALSE;
  }

  int fd = SD_LISTEN_FDS_START + chosen;
  g_autofree char *what = g_strdup_printf("passed socket '%s' (fd %d)",
                                          names ? names[chosen] : "unknown", fd);
  if (!check_listening(fd, what, error))
    return FALSE;

  plan->source = SOCKET_SOURCE_PASSED;
  plan->passed_fd = fd;
  plan->passed_name = g_strdup(names ? names[chosen] : "unknown");
  g_free(plan->path);
  plan->path = unix_path_of(fd);
  *found = true;
  return TRUE;
}

int socket_stdin_is_listening(GError **error)
{
  struct stat st;
  int accepting = 0;
  socklen_t len = sizeof accepting;
  g_autoptr(GError) local = NULL;

  /* Most often fd 0 is no socket at all (the socket was forgotten): that
   * needs no libsystemd. */
  if (fstat(STDIN_FILENO, &st) < 0 || !S_ISSOCK(st.st_mode))
    return 0;
  int is_socket = systemd_is_socket(STDIN_FILENO, AF_UNSPEC, SOCK_STREAM, -1, &local);
  if (is_socket < 0) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED, "fd 0 is a socket, but %s",
                local->message);
    return -1;
  }
  return is_socket > 0 &&
         getsockopt(STDIN_FILENO, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 &&
         accepting;
}

/* ---- acquiring ----------------------------------------------------------- */

static int fail_errno(GError **error, int err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static int fail_errno(GError **error, int err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED, "%s: %s", msg, g_strerror(err));
  return -1;
}

/* Makes room at the path: nothing there, or a stale socket that we remove.
 * A live socket and anything that is not a socket are refused and left
 * untouched. */
static gboolean clear_unix_path(const char *path, const struct sockaddr_un *un,
                                GError **error)
{
  struct stat st;

  if (lstat(path, &st) < 0) {
    if (errno == ENOENT)
      return TRUE;
    fail_errno(error, errno, "cannot inspect socket path '%s'", path);
    return FALSE;
  }
  if (!S_ISSOCK(st.st_mode)) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "'%s' exists and is not a socket (%s): refusing to replace it",
                path, S_ISLNK(st.st_mode) ? "a symbolic link" :
                      S_ISDIR(st.st_mode) ? "a directory" :
                      S_ISREG(st.st_mode) ? "a regular file" : "a special file");
    return FALSE;
  }

  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) {
    fail_errno(error, errno, "cannot create a unix socket");
    return FALSE;
  }
  int rc = connect(probe, (const struct sockaddr *) un, sizeof *un);
  int err = errno;
  close(probe);
  if (rc == 0 || err == EAGAIN) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "socket '%s' is already in use by a running server", path);
    return FALSE;
  }
  if (err != ECONNREFUSED) {
    fail_errno(error, err, "cannot tell whether socket '%s' is in use", path);
    return FALSE;
  }
  /* Stale.  Check again right before removing that it is still a socket. */
  if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "'%s' changed while being checked: refusing to replace it", path);
    return FALSE;
  }
  if (unlink(path) < 0 && errno != ENOENT) {
    fail_errno(error, errno, "cannot remove stale socket '%s'", path);
    return FALSE;
  }
  return TRUE;
}

/* Owner and group of a passed socket's file, never following a symlink;
 * checks that the path is still a socket afterwards. */
static gboolean set_unix_owner(SocketPlan *plan, GError **error)
{
  struct stat st;

  if (plan->owner == (uid_t) -1 && plan->group == (gid_t) -1)
    return TRUE;
  if (fchownat(AT_FDCWD, plan->path, plan->owner, plan->group, AT_SYMLINK_NOFOLLOW) < 0) {
    fail_errno(error, errno, "cannot change owner of socket '%s'", plan->path);
    return FALSE;
  }
  if (lstat(plan->path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "socket '%s' was replaced while being set up", plan->path);
    return FALSE;
  }
  return TRUE;
}

/* Our own unix socket.  bind() creates the file with 0777 & ~umask, so the
 * mode is right from the first moment.  Owner and group are set before
 * listen(), through an O_PATH descriptor of the file itself: a symlink or
 * any other file put in its place is refused, never changed. */
static int open_unix(SocketPlan *plan, GError **error)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  g_autofree char *dir = g_path_get_dirname(plan->path);
  g_autofree char *name = g_path_get_basename(plan->path);
  struct stat st;
  int fd, file_fd = -1, dir_fd;

  g_strlcpy(un.sun_path, plan->path, sizeof un.sun_path);
  if (!clear_unix_path(plan->path, &un, error))
    return -1;

  dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0)
    return fail_errno(error, errno, "cannot open the directory of socket '%s'", plan->path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    close(dir_fd);
    return fail_errno(error, errno, "cannot create a unix socket");
  }
  mode_t old = umask(~plan->mode & 0777);
  int rc = bind(fd, (struct sockaddr *) &un, sizeof un);
  int err = errno;
  umask(old);
  if (rc < 0) {
    close(fd);
    close(dir_fd);
    return fail_errno(error, err, "cannot bind to '%s'", plan->path);
  }

  /* What bind() made, so that only that file is ever removed again. */
  if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode)) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "socket '%s' was replaced right after it was created: "
                "refusing to touch it", plan->path);
    close(dir_fd);
    goto fail;
  }
  plan->created = true;
  plan->created_dir_fd = dir_fd;
  plan->created_name = g_steal_pointer(&name);
  plan->created_dev = st.st_dev;
  plan->created_ino = st.st_ino;

  file_fd = openat(dir_fd, plan->created_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (file_fd < 0) {
    fail_errno(error, errno, "cannot open socket '%s'", plan->path);
    goto fail;
  }
  if (fstat(file_fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_ino != plan->created_ino) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "socket '%s' was replaced right after it was created: "
                "refusing to touch it", plan->path);
    goto fail;
  }

  if ((plan->owner != (uid_t) -1 || plan->group != (gid_t) -1) &&
      fchownat(file_fd, "", plan->owner, plan->group, AT_EMPTY_PATH) < 0) {
    fail_errno(error, errno, "cannot give socket '%s' the owner or group asked for "
               "(--socket-user, --socket-group, or --user/--group)", plan->path);
    goto fail;
  }
  if (listen(fd, plan->backlog) < 0) {
    fail_errno(error, errno, "cannot listen on '%s'", plan->path);
    goto fail;
  }
  close(file_fd);
  return fd;

fail:
  if (file_fd >= 0)
    close(file_fd);
  close(fd);
  socket_remove_own(plan);
  return -1;
}

static int open_tcp(const SocketPlan *plan, GError **error)
{
  int one = 1;
  int fd = socket(plan->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return fail_errno(error, errno, "cannot create a TCP socket for %s", plan->addr_text);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return fail_errno(error, err, "cannot set SO_REUSEADDR on %s", plan->addr_text);
  }
  if (bind(fd, (const struct sockaddr *) &plan->addr, plan->addr_len) < 0) {
    int err = errno;
    close(fd);
    return fail_errno(error, err, "cannot bind to %s", plan->addr_text);
  }
  if (listen(fd, plan->backlog) < 0) {
    int err = errno;
    close(fd);
    return fail_errno(error, err, "cannot listen on %s", plan->addr_text);
  }
  return fd;
}

/* A passed unix socket: owner, group and mode are changed only when asked. */
static int adopt_passed(SocketPlan *plan, GError **error)
{
  if (plan->path != NULL) {
    if (!set_unix_owner(plan, error))
      return -1;
    if (plan->set_mode && fchmodat(AT_FDCWD, plan->path, plan->mode, 0) < 0)
      return fail_errno(error, errno, "cannot change mode of socket '%s'", plan->path);
  }
  return plan->passed_fd;
}

int socket_acquire(SocketPlan *plan, GError **error)
{
  switch (plan->source) {
  case SOCKET_SOURCE_UNIX: return open_unix(plan, error);
  case SOCKET_SOURCE_TCP: return open_tcp(plan, error);
  case SOCKET_SOURCE_PASSED: return adopt_passed(plan, error);
  case SOCKET_SOURCE_STDIN: return STDIN_FILENO;
  }
  g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED, "no socket");
  return -1;
}

void socket_remove_own(const SocketPlan *plan)
{
  struct stat st;
  if (!plan->created)
    return;
  if (fstatat(plan->created_dir_fd, plan->created_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISSOCK(st.st_mode) &&
      st.st_dev == plan->created_dev && st.st_ino == plan->created_ino)
    unlinkat(plan->created_dir_fd, plan->created_name, 0);
}

void socket_plan_clear(SocketPlan *plan)
{
  if (plan->created)
    close(plan->created_dir_fd);
  g_free(plan->created_name);
  g_free(plan->path);
  g_free(plan->addr_text);
  g_free(plan->passed_name);
  memset(plan, 0, sizeof *plan);
}
