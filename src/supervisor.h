/* supervisor: supervised mode (--supervise).  spawn-fcgi stays as the
 * parent, holds the listening socket and keeps N children alive, each
 * started through the same launch_exec() path as in fork mode.  It never
 * runs application code and never enters the request path: the children
 * accept on fd 0 themselves.
 *
 * Event-driven (signalfd + one timerfd): an idle supervisor sleeps in
 * poll() with no timer armed, unless systemd asked for a watchdog.
 *
 *   child exits         -> restarted; quick failures (a non-zero status or a
 *                          signal soon after the start) back off
 *                          exponentially, and too many in a row make it give
 *                          up; a clean exit (status 0) is no failure
 *   SIGTERM, SIGINT     -> graceful stop: stop signal to every child, SIGKILL
 *                          after the stop timeout; a second one is forwarded
 *   SIGHUP              -> rolling reload: per batch, start the new children,
 *                          and once they survived their start stop the old
 *                          ones and wait for them; a new child that dies at
 *                          once stops the reload and keeps the old ones
 *   SIGUSR1, SIGUSR2    -> forwarded to the children
 *
 * With NOTIFY_SOCKET set it reports READY, STATUS, RELOADING, STOPPING and
 * WATCHDOG to systemd; the children never see NOTIFY_SOCKET. */
#pragma once

#include "launch.h"
#include "sockets.h"
#include "status-server.h"

typedef struct {
  int count;                 /* children wanted */
  int restart_retries;       /* quick failures in a row allowed per child */
  int restart_window_ms;     /* a child that lived this long was no quick failure */
  int stop_signal;
  int stop_timeout_ms;
  int reload_batch;          /* children replaced at a time on SIGHUP */
  StatusServer *status;      /* answers status clients; NULL: none */
} SupervisorConfig;

/* On reload, a new child must stay alive this long before the old one it
 * replaces is asked to stop. */
#define SUPERVISOR_PROBATION_MS 100
/* A child that exits with status 0 is restarted without counting as a
 * failure, but a slot is never started more often than this. */
#define SUPERVISOR_MIN_LIFETIME_MS 100
#define SUPERVISOR_BACKOFF_FIRST_MS 100
#define SUPERVISOR_BACKOFF_MAX_MS 5000

/* Runs until stopped.  Returns the exit status: 0 after a graceful stop,
 * EXIT_STATUS_CHILD_FAILED after giving up. */
int supervisor_run(const LaunchPlan *plan, const SupervisorConfig *config,
                   const SocketPlan *socket);
