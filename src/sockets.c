/* sockets: passed, own and inherited listening sockets.  See sockets.h. */
#include "config.h"

#include "sockets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>  /* SD_LISTEN_FDS_START */
#include <unistd.h>

#include "autofd.h"
#include "log.h"
#include "systemd.h"
#include "unix-diag.h"

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

typedef enum {
  FD_NOT_STREAM_SOCKET,
  FD_CONNECTED,           /* a stream socket, but not listening */
  FD_LISTENING,
} FdKind;

/* What fd is, as libsystemd's sd_is_socket and SO_ACCEPTCONN say; -1 with
 * error when libsystemd cannot be used. */
static int fd_kind(int fd, GError **error)
{
  int accepting = 0;
  socklen_t len = sizeof accepting;
  int is_socket = systemd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, -1, error);

  if (is_socket <= 0)
    return is_socket < 0 ? -1 : FD_NOT_STREAM_SOCKET;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0 || !accepting)
    return FD_CONNECTED;
  return FD_LISTENING;
}

/* A passed fd must be a listening stream socket: a connected socket
 * (Accept=yes) would make libfcgi fall back to plain CGI. */
static gboolean check_listening(int fd, const char *what, GError **error)
{
  g_autoptr(GError) local = NULL;

  switch (fd_kind(fd, &local)) {
  case FD_LISTENING:
    return TRUE;
  case FD_NOT_STREAM_SOCKET:
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "%s is not a stream socket", what);
    return FALSE;
  case FD_CONNECTED:
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "%s is a connected socket, not a listening one "
                "(is the socket unit Accept=yes? use Accept=no)", what);
    return FALSE;
  }
  return as_socket_error(error, local);
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
  g_autoptr(GError) local = NULL;

  /* Most often fd 0 is no socket at all (the socket was forgotten): that
   * needs no libsystemd. */
  if (fstat(STDIN_FILENO, &st) < 0 || !S_ISSOCK(st.st_mode))
    return 0;
  int kind = fd_kind(STDIN_FILENO, &local);
  if (kind < 0) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED, "fd 0 is a socket, but %s",
                local->message);
    return -1;
  }
  return kind == FD_LISTENING;
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

static const char *file_type(mode_t mode)
{
  return S_ISLNK(mode) ? "a symbolic link" : S_ISDIR(mode) ? "a directory" :
         S_ISREG(mode) ? "a regular file" : S_ISSOCK(mode) ? "a socket" : "a special file";
}

/* 1 if a server accepts connections at un (a full queue counts: the server
 * is there, only busy), 0 if nobody does (a stale socket), -1 with error.
 * The connect is non-blocking: a unix socket answers at once, and a full
 * queue is EAGAIN instead of a wait. */
static int probe_listener(const struct sockaddr_un *un, const char *path, GError **error)
{
  auto_fd int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0)
    return fail_errno(error, errno, "cannot create a unix socket");
  if (connect(probe, (const struct sockaddr *) un, sizeof *un) == 0 ||
      errno == EAGAIN || errno == EINPROGRESS)
    return 1;
  if (errno == ECONNREFUSED)
    return 0;
  return fail_errno(error, errno, "cannot tell whether socket '%s' is in use", path);
}

/* probe_listener on the file name in dir_fd, reached through the working
 * directory, so that no path outside dir_fd is resolved. */
static int probe_listener_in(int dir_fd, const char *name, const char *path, GError **error)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  g_strlcpy(un.sun_path, name, sizeof un.sun_path);
  auto_fd int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cwd < 0)
    return fail_errno(error, errno, "cannot open the working directory");
  if (fchdir(dir_fd) < 0)
    return fail_errno(error, errno, "cannot check socket '%s'", path);
  int live = probe_listener(&un, path, error);
  if (fchdir(cwd) < 0) {
    g_clear_error(error);
    return fail_errno(error, errno, "cannot return to the working directory");
  }
  return live;
}

/* ---- the stash: a root-only directory next to the socket file ------------
 *
 * In a directory others can write to, a file can be renamed or replaced
 * between any two calls that name it.  A file moved into the stash (one
 * atomic rename, never replacing anything) can be examined and removed
 * there, where nobody else can reach it; what turns out not to be ours is
 * moved back.  See SECURITY.md, "Socket files". */

#define STASHED "socket"

typedef struct {
  int dir_fd;             /* the socket's directory (borrowed) */
  int fd;                 /* the stash */
  char name[32];
} Stash;

/* Removes the stash if it is empty (a file that could not be put back
 * keeps it).  By name: at worst an empty directory that whoever replaced
 * it could remove herself. */
static void stash_close(Stash *s)
{
  autofd_close(&s->fd);
  s->fd = -1;
  unlinkat(s->dir_fd, s->name, AT_REMOVEDIR);
}

static gboolean stash_open(Stash *s, int dir_fd, const char *path, GError **error)
{
  struct stat st;

  s->dir_fd = dir_fd;
  s->fd = -1;
  for (int tries = 0;; tries++) {
    g_snprintf(s->name, sizeof s->name, ".spawn-fcgi-%08x%08x", g_random_int(),
               g_random_int());
    if (mkdirat(dir_fd, s->name, 0700) == 0)
      break;
    if (errno != EEXIST || tries == 16) {
      fail_errno(error, errno, "cannot create a private directory next to socket '%s'",
                 path);
      return FALSE;
    }
  }
  /* Until it is open, someone could rename it and put her own directory
   * there: she cannot make one that is ours, empty and closed to others. */
  s->fd = openat(dir_fd, s->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (s->fd < 0 || fstat(s->fd, &st) < 0 || st.st_uid != geteuid() ||
      (st.st_mode & 077) != 0 || st.st_nlink != 2) {
    fail_errno(error, s->fd < 0 ? errno : EPERM,
               "cannot use the private directory next to socket '%s'", path);
    stash_close(s);
    return FALSE;
  }
  return TRUE;
}

/* Moves name into the stash.  FALSE with errno when that fails (ENOENT:
 * nothing is there). */
static gboolean stash_take(Stash *s, const char *name)
{
  return renameat2(s->dir_fd, name, s->fd, STASHED, RENAME_NOREPLACE) == 0;
}

/* Moves the stashed file back to name; if something new is there, it
 * stays in the stash and the error says where. */
static void stash_put_back(Stash *s, const char *name, const char *path, GError **error)
{
  if (renameat2(s->fd, STASHED, s->dir_fd, name, RENAME_NOREPLACE) == 0)
    return;
  int err = errno;
  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *where = g_build_filename(dir, s->name, STASHED, NULL);
  if (error != NULL && *error != NULL) {
    char *msg = g_strdup_printf("%s (it could not be put back: %s; it is now '%s')",
                                (*error)->message, g_strerror(err), where);
    g_free((*error)->message);
    (*error)->message = msg;
  } else {
    log_warning("'%s' was not spawn-fcgi's socket and could not be put back: %s; "
                "it is now '%s'", path, g_strerror(err), where);
  }
}

static gboolean same_file(const struct stat *st, dev_t dev, ino_t ino)
{
  return st->st_dev == dev && st->st_ino == ino;
}

/* The stale socket `probed` found at name: removed only if the file moved
 * into the stash is that very socket and nobody answers on it there. */
static gboolean remove_stale(Stash *s, const char *name, const char *path,
                             const struct stat *probed, GError **error)
{
  struct stat st;

  if (!stash_take(s, name)) {
    if (errno == ENOENT)
      return TRUE;   /* gone meanwhile: the room is made */
    fail_errno(error, errno, "cannot move stale socket '%s' aside to remove it", path);
    return FALSE;
  }
  if (fstatat(s->fd, STASHED, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode) ||
      !same_file(&st, probed->st_dev, probed->st_ino)) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "'%s' changed while being checked: refusing to replace it", path);
    stash_put_back(s, name, path, error);
    return FALSE;
  }
  int live = probe_listener_in(s->fd, STASHED, path, error);
  if (live > 0)
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "socket '%s' is already in use by a running server", path);
  else if (live == 0 && unlinkat(s->fd, STASHED, 0) < 0)
    live = fail_errno(error, errno, "cannot remove stale socket '%s'", path);
  if (live != 0) {
    stash_put_back(s, name, path, error);
    return FALSE;
  }
  return TRUE;
}

/* Makes room at the path: nothing there, or a stale socket that we remove.
 * A live socket and anything that is not a socket are refused and left
 * untouched.  The first probe is at the path, so that a running server's
 * socket is never moved, not even for a moment. */
static gboolean clear_unix_path(int dir_fd, const char *name, const char *path,
                                const struct sockaddr_un *un, GError **error)
{
  struct stat st;

  if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT)
      return TRUE;
    fail_errno(error, errno, "cannot inspect socket path '%s'", path);
    return FALSE;
  }
  if (!S_ISSOCK(st.st_mode)) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "'%s' exists and is not a socket (%s): refusing to replace it",
                path, file_type(st.st_mode));
    return FALSE;
  }
  int live = probe_listener(un, path, error);
  if (live < 0)
    return FALSE;
  if (live > 0) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "socket '%s' is already in use by a running server", path);
    return FALSE;
  }
  Stash s;
  if (!stash_open(&s, dir_fd, path, error))
    return FALSE;
  gboolean ok = remove_stale(&s, name, path, &st, error);
  stash_close(&s);
  return ok;
}

/* ---- the socket's own file ----------------------------------------------- */

/* Opens name in dir_fd without following a symbolic link and checks that it
 * is the file (dev, ino), a socket with one name; *other (if not NULL) is
 * set when another file is there.  passed: for messages. */
static int open_socket_file(int dir_fd, const char *name, const char *path, dev_t dev,
                            ino_t ino, bool passed, bool *other, GError **error)
{
  struct stat st;
  auto_fd int fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) < 0)
    return fail_errno(error, errno, "cannot open socket '%s'", path);
  if (other != NULL)
    *other = !S_ISSOCK(st.st_mode) || !same_file(&st, dev, ino) || st.st_nlink != 1;
  if (!S_ISSOCK(st.st_mode) || !same_file(&st, dev, ino)) {
    if (passed)
      g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                  "'%s' is not the passed socket's file (it is %s put there "
                  "since): refusing to change it", path, file_type(st.st_mode));
    else
      g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                  "socket '%s' was replaced right after it was created (by %s): "
                  "refusing to touch it", path, file_type(st.st_mode));
    return -1;
  }
  if (st.st_nlink != 1) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_FAILED,
                "socket '%s' has %ju hard links: refusing to change it", path,
                (uintmax_t) st.st_nlink);
    return -1;
  }
  return g_steal_fd(&fd);
}

/* Owner and group through an O_PATH descriptor of the file itself. */
static gboolean set_owner(int file_fd, const SocketPlan *plan, GError **error)
{
  if (plan->owner == (uid_t) -1 && plan->group == (gid_t) -1)
    return TRUE;
  if (fchownat(file_fd, "", plan->owner, plan->group, AT_EMPTY_PATH) < 0) {
    fail_errno(error, errno, "cannot give socket '%s' the owner or group asked for "
               "(--socket-user, --socket-group, or --user/--group)", plan->path);
    return FALSE;
  }
  return TRUE;
}

/* The mode through /proc/self/fd: an O_PATH descriptor has no fchmod. */
static gboolean set_mode(int file_fd, const SocketPlan *plan, GError **error)
{
  char proc[64];
  g_snprintf(proc, sizeof proc, "/proc/self/fd/%d", file_fd);
  if (chmod(proc, plan->mode) < 0) {
    fail_errno(error, errno, "cannot change mode of socket '%s' (through %s)",
               plan->path, proc);
    return FALSE;
  }
  return TRUE;
}

/* The device and inode of the file sock_fd is bound to.  TRUE with *ino 0
 * for a socket that has no file. */
static gboolean bound_file(int sock_fd, const char *path, dev_t *dev, ino_t *ino,
                           GError **error)
{
  int rc = unix_diag_bound_file(sock_fd, dev, ino);
  if (rc == -ENODATA) {
    *dev = 0;
    *ino = 0;
    return TRUE;
  }
  if (rc < 0) {
    fail_errno(error, -rc, "cannot find out which file socket '%s' is bound to "
               "(sock_diag, kernel module unix_diag)", path);
    return FALSE;
  }
  return TRUE;
}

/* ---- opening and adopting ------------------------------------------------ */

static int bind_with_mode(int fd, const struct sockaddr_un *un, mode_t mode)
{
  /* bind() creates the file with 0777 & ~umask: the mode is right from the
   * first moment. */
  mode_t old = umask(~mode & 0777);
  int rc = bind(fd, (const struct sockaddr *) un, sizeof *un);
  int err = errno;
  umask(old);
  errno = err;
  return rc;
}

/* Our own unix socket.  Once bind() made the file, the kernel says which
 * file that is (sock_diag); only that file is ever changed or removed,
 * found through an O_PATH descriptor and compared, never by name alone.
 * Owner and group are set before listen(). */
static int open_unix(SocketPlan *plan, GError **error)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  g_autofree char *dir = g_path_get_dirname(plan->path);
  g_autofree char *name = g_path_get_basename(plan->path);
  dev_t dev;
  ino_t ino;

  g_strlcpy(un.sun_path, plan->path, sizeof un.sun_path);
  auto_fd int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0)
    return fail_errno(error, errno, "cannot open the directory of socket '%s'", plan->path);
  if (!clear_unix_path(dir_fd, name, plan->path, &un, error))
    return -1;
  auto_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return fail_errno(error, errno, "cannot create a unix socket");
  /* sock_diag must answer (an unbound socket has no file) before there is
   * a file that only its answer can tell apart from others. */
  if (!bound_file(fd, plan->path, &dev, &ino, error))
    return -1;
  if (bind_with_mode(fd, &un, plan->mode) < 0)
    return fail_errno(error, errno, "cannot bind to '%s'", plan->path);
  /* Until the file at the path is proven ours, nothing is done to it. */
  if (!bound_file(fd, plan->path, &dev, &ino, error))
    return -1;
  bool replaced = false;
  auto_fd int file_fd = open_socket_file(dir_fd, name, plan->path, dev, ino, false,
                                         &replaced, error);
  if (replaced)
    return -1;   /* someone else's file at the path: not even removed */

  plan->created = true;
  plan->created_dir_fd = g_steal_fd(&dir_fd);
  plan->created_name = g_steal_pointer(&name);
  plan->created_dev = dev;
  plan->created_ino = ino;
  if (file_fd < 0 || !set_owner(file_fd, plan, error))
    goto fail;
  if (listen(fd, plan->backlog) < 0) {
    fail_errno(error, errno, "cannot listen on '%s'", plan->path);
    goto fail;
  }
  return g_steal_fd(&fd);

fail:
  socket_remove_own(plan);
  return -1;
}

static int open_tcp(const SocketPlan *plan, GError **error)
{
  int one = 1;
  auto_fd int fd = socket(plan->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return fail_errno(error, errno, "cannot create a TCP socket for %s", plan->addr_text);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
    return fail_errno(error, errno, "cannot set SO_REUSEADDR on %s", plan->addr_text);
  if (bind(fd, (const struct sockaddr *) &plan->addr, plan->addr_len) < 0)
    return fail_errno(error, errno, "cannot bind to %s", plan->addr_text);
  if (listen(fd, plan->backlog) < 0)
    return fail_errno(error, errno, "cannot listen on %s", plan->addr_text);
  return g_steal_fd(&fd);
}

/* A passed unix socket: owner, group and mode are changed only when asked,
 * and only on the passed socket's own file (see open_unix), with one link. */
static int adopt_passed(SocketPlan *plan, GError **error)
{
  dev_t dev;
  ino_t ino;
  bool owner = plan->owner != (uid_t) -1 || plan->group != (gid_t) -1;

  if (plan->path == NULL || (!owner && !plan->set_mode))
    return plan->passed_fd;
  if (!bound_file(plan->passed_fd, plan->path, &dev, &ino, error))
    return -1;
  auto_fd int file_fd = open_socket_file(AT_FDCWD, plan->path, plan->path, dev, ino,
                                         true, NULL, error);
  if (file_fd < 0 || !set_owner(file_fd, plan, error) ||
      (plan->set_mode && !set_mode(file_fd, plan, error)))
    return -1;
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

/* Moves whatever has our socket's name into a stash and removes it there
 * only if it is the file we created; anything else goes back. */
void socket_remove_own(const SocketPlan *plan)
{
  struct stat st;
  Stash s;
  g_autoptr(GError) ignored = NULL;

  if (!plan->created || !stash_open(&s, plan->created_dir_fd, plan->path, &ignored))
    return;
  if (stash_take(&s, plan->created_name)) {
    if (fstatat(s.fd, STASHED, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) &&
        same_file(&st, plan->created_dev, plan->created_ino))
      unlinkat(s.fd, STASHED, 0);
    else
      stash_put_back(&s, plan->created_name, plan->path, NULL);
  }
  stash_close(&s);
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
