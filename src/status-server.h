/* status-server: the pool's status over minimal HTTP/1.0, behind one fd.
 *
 *   GET /status                  text   (text/plain; charset=utf-8)
 *   GET /status?json, /status.json  JSON (application/json)
 *   GET /metrics                 Prometheus text format 0.0.4
 *                                (text/plain; version=0.0.4)
 *   HEAD for each; 404 for another path, 405 for another method, 400 for
 *   anything that is not an HTTP/1.x request line.
 *
 * The server owns its listening sockets (a unix socket, optionally a
 * loopback TCP one), its clients and a timerfd, all in an epoll fd of its
 * own: the supervisor polls that one fd and calls status_server_dispatch()
 * when it is readable.  Nothing blocks: accept, read and write are
 * non-blocking; a request is at most STATUS_MAX_REQUEST bytes; a client
 * that has not sent its request and read its answer within
 * STATUS_CLIENT_TIMEOUT_MS is dropped; at most STATUS_MAX_CLIENTS are
 * served at once and further ones get 503.  The status is computed only
 * when a complete request asks for it, and the timer is armed only while
 * a client is connected: an idle server causes no wake-up. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

#include "pool-status.h"

#define STATUS_MAX_REQUEST 2048
#define STATUS_MAX_CLIENTS 8
#define STATUS_CLIENT_TIMEOUT_MS 2000
/* Connections accepted per dispatch: the supervisor's own events come
 * first, a crowd of clients is served a few at a time. */
#define STATUS_ACCEPTS_PER_DISPATCH 16

typedef struct StatusServer StatusServer;

/* Fills the changing part of a snapshot: everything but the fields the
 * server was created with (instance, listen, listen_source, backlog,
 * version).  children may point to memory the caller owns; it must stay
 * valid until the next call. */
typedef void (*StatusFillFunc)(PoolStatus *status, gpointer data);

/* Takes over the listening sockets (closed by status_server_free) and
 * copies the constant fields of base.  NULL with error when the epoll fd
 * or the timer cannot be made. */
StatusServer *status_server_new(const int *listen_fds, guint n_fds,
                                const PoolStatus *base, GError **error);

/* The one fd to poll for POLLIN. */
int status_server_fd(const StatusServer *server);

/* Does what is due now (accepts, reads, answers, drops late clients)
 * without blocking; fill is called once per complete request. */
void status_server_dispatch(StatusServer *server, StatusFillFunc fill, gpointer data);

void status_server_free(StatusServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StatusServer, status_server_free)

/* ---- the request, for tests ---- */

typedef enum {
  STATUS_REQUEST_INCOMPLETE,   /* no end of the headers yet */
  STATUS_REQUEST_TEXT,
  STATUS_REQUEST_JSON,
  STATUS_REQUEST_PROMETHEUS,
  STATUS_REQUEST_BAD,          /* 400 */
  STATUS_REQUEST_NOT_FOUND,    /* 404 */
  STATUS_REQUEST_BAD_METHOD,   /* 405 */
} StatusRequest;

/* What the first len bytes a client sent ask for; *head for HEAD. */
StatusRequest status_request_parse(const char *buf, size_t len, bool *head);
