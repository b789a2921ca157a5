/* sockets: where the listening socket comes from.
 *
 * Three sources, one result (a listening stream socket, close-on-exec):
 * a socket passed by systemd (LISTEN_FDS), our own unix or TCP socket, or a
 * listening socket inherited on fd 0.  Choosing and parsing are separate
 * from the calls that create or adopt a socket. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#define SOCKET_ERROR (socket_error_quark())
GQuark socket_error_quark(void);

typedef enum {
  SOCKET_ERROR_INVALID,   /* a bad address, path or --fd-name given by the user */
  SOCKET_ERROR_FAILED,    /* the system refused, or what was passed is unusable */
} SocketError;

typedef enum {
  SOCKET_SOURCE_PASSED,   /* LISTEN_FDS from systemd */
  SOCKET_SOURCE_UNIX,     /* our own, at a path */
  SOCKET_SOURCE_TCP,      /* our own, on an address and port */
  SOCKET_SOURCE_STDIN,    /* a listening socket inherited on fd 0 */
} SocketSource;

typedef struct {
  SocketSource source;
  int backlog;

  /* SOCKET_SOURCE_UNIX, or the path of a passed unix socket */
  char *path;
  bool set_mode;          /* always for our own; for a passed one only if asked */
  mode_t mode;
  uid_t owner;            /* (uid_t) -1: leave as is */
  gid_t group;            /* (gid_t) -1: leave as is */

  /* SOCKET_SOURCE_TCP */
  struct sockaddr_storage addr;
  socklen_t addr_len;
  char *addr_text;        /* for messages: "127.0.0.1:9000", "[::1]:9000" */

  /* SOCKET_SOURCE_PASSED */
  int passed_fd;
  char *passed_name;

  /* filled by socket_acquire for a socket file it created: its directory
   * (held open, so that it can be found again after a chroot) and name */
  bool created;
  int created_dir_fd;
  char *created_name;
  dev_t created_dev;
  ino_t created_ino;
} SocketPlan;

/* Parses a TCP address ("127.0.0.1", "::1", "[::1]", a host name; NULL for
 * 0.0.0.0) and a port into plan->addr.  Host names are resolved. */
gboolean socket_plan_tcp(SocketPlan *plan, const char *address, guint16 port,
                         GError **error);

/* Checks that path fits a unix socket address. */
gboolean socket_plan_unix(SocketPlan *plan, const char *path, GError **error);

/* Looks for sockets passed by systemd.  Returns TRUE and fills plan (source
 * PASSED) when one was chosen, TRUE with *found = false when none were
 * passed, FALSE on error (garbage LISTEN_*, several and no matching name, a
 * passed fd that is not a listening stream socket). */
gboolean socket_plan_passed(SocketPlan *plan, const char *fd_name, bool *found,
                            GError **error);

/* 1 if fd 0 is a listening stream socket, 0 if not, -1 with error when
 * that cannot be checked (libsystemd cannot be loaded). */
int socket_stdin_is_listening(GError **error);

/* Creates (unix, TCP) or adopts (passed, stdin) the socket.  Returns a
 * close-on-exec fd, or -1 with error. */
int socket_acquire(SocketPlan *plan, GError **error);

/* Removes the socket file that socket_acquire created, if it is still the
 * same socket (also from inside a chroot entered later).  Never removes
 * anything else. */
void socket_remove_own(const SocketPlan *plan);

const char *socket_source_name(SocketSource source);

void socket_plan_clear(SocketPlan *plan);
