/* supervisor: supervised mode (--supervise).  spawn-fcgi stays as the
 * parent, holds the listening socket and keeps a pool of children, each
 * started through the same launch_exec() path as in fork mode.  It never
 * runs application code and never enters the request path: the children
 * accept on fd 0 themselves.
 *
 * The decisions are pool-policy.c's (pure); this is its effects layer:
 * fork and exec through children.c without waiting for the exec (the
 * child's status pipe is watched in the loop), signals, one timerfd, the
 * load samples of loadwatch.c and /proc, and sd_notify.  An idle pool at
 * its minimum sleeps in epoll_wait() with no timer armed, unless systemd
 * asked for a watchdog.
 *
 *   child exits         -> restarted; quick failures back off
 *                          exponentially, and too many in a row make it give
 *                          up; quick clean exits back off too
 *   SIGTERM, SIGINT     -> graceful stop: stop signal to every child, SIGKILL
 *                          after the stop timeout; a second one is forwarded
 *   SIGHUP              -> rolling reload: per batch, start the new children,
 *                          and once they survived their start retire the old
 *                          ones when they hold no connection
 *   SIGUSR1, SIGUSR2    -> forwarded to the children
 *
 * With NOTIFY_SOCKET set it reports READY, STATUS, RELOADING, STOPPING and
 * WATCHDOG to systemd; the children never see NOTIFY_SOCKET.  With a status
 * server it answers status clients from the same loop (status-server.h). */
#pragma once

#include "launch.h"
#include "pool-policy.h"
#include "sockets.h"
#include "status-server.h"

typedef struct {
  PoolConfig pool;
  StatusServer *status;      /* answers status clients; NULL: none */
} SupervisorConfig;

/* Runs until stopped.  Returns the exit status: 0 after a graceful stop,
 * EXIT_STATUS_CHILD_FAILED after giving up. */
int supervisor_run(const LaunchPlan *plan, const SupervisorConfig *config,
                   const SocketPlan *socket);

/* The pool as plain data for a status client (see pool-status.h): the
 * policy's part, with times on the wall clock; the caller adds instance
 * and listening address and reads RSS/PSS/CPU from /proc. */
void supervisor_fill_status(const PoolPolicy *policy, PoolStatus *out);
