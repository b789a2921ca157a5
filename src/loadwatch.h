/* loadwatch: what the kernel says about the load on a listening socket,
 * without ever entering the request path.
 *
 *   queue: connections waiting to be accepted, and the backlog, from
 *          sock_diag (unix_diag UDIAG_SHOW_RQLEN for unix sockets,
 *          inet_diag idiag_rqueue/idiag_wqueue for TCP over IPv4/IPv6);
 *   busy:  a child is busy while it holds a connection accepted from this
 *          listening socket: the socket inodes in /proc/PID/fd matched
 *          against the connected sockets of the listening address from the
 *          same sock_diag dump.
 *
 * Nothing here blocks or allocates per call beyond what a dump needs; the
 * caller decides when to sample (the supervisor samples only while it has
 * a reason to).
 *
 * The children are hostile: a child can look busy by holding a connection
 * (the caller needs a timeout for a child that never becomes idle), and
 * the time to read its /proc/PID/fd grows with its open fds (bounded by
 * its RLIMIT_NOFILE).  It cannot make another child look busy, nor pass
 * its own socket off as an accepted one: accepted unix sockets are
 * matched on the listener's name and bound file as the kernel reports
 * them, which nobody else can bind while the listener lives, and only
 * inodes from the kernel's dump of this listener's address count. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

#define LOADWATCH_ERROR (loadwatch_error_quark())
GQuark loadwatch_error_quark(void);

typedef enum {
  LOADWATCH_ERROR_UNSUPPORTED, /* not a listening socket sock_diag can describe */
  LOADWATCH_ERROR_GONE,        /* sock_diag no longer finds the listening socket */
  LOADWATCH_ERROR_FAILED,      /* netlink or /proc refused */
} LoadWatchError;

typedef struct LoadWatch LoadWatch;

typedef struct {
  guint queued;    /* connections waiting to be accepted */
  guint backlog;   /* the listen() backlog the kernel applies */
} LoadQueue;

/* Learns what identifies the listening socket fd (family, inode, bound
 * name or address).  NULL with error for a socket sock_diag cannot
 * describe (then the caller runs without load signals and says so).
 * listen_fd is not kept: the caller keeps it open while lw is used. */
LoadWatch *loadwatch_new(int listen_fd, GError **error);

/* The accept queue now. */
gboolean loadwatch_queue(LoadWatch *lw, LoadQueue *out, GError **error);

/* For each of n pids: busy[i] = it holds at least one connection accepted
 * from this listening socket.  A pid that is gone counts as not busy.
 * One sock_diag dump of the connected sockets of the listening address
 * (TCP: filtered to its port in the kernel), then /proc/PID/fd of each
 * pid, read only while some accepted connection exists.  A web server
 * that keeps its FastCGI connections open (nginx fastcgi_keep_conn on)
 * makes the child holding one look busy. */
gboolean loadwatch_busy(LoadWatch *lw, const pid_t *pids, guint n,
                        bool *busy, GError **error);

void loadwatch_free(LoadWatch *lw);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LoadWatch, loadwatch_free)
