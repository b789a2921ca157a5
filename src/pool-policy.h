/* pool-policy: every decision of the supervisor, as pure code.
 *
 * Events go in (a child was forked, reached exec, failed before exec,
 * exited or stopped; a signal; the timer; a load sample; the listening
 * socket became readable), actions come out (start a child in a slot, send
 * a signal, check whether a stopped child is idle, take a load sample, tell
 * systemd, log a line).  The clock is passed in with every event; nothing
 * here makes a system call, so the unit tests drive it with a fake clock.
 * supervisor.c carries the actions out and feeds back what happened.
 *
 * Modes:
 *   static    exactly max children (today's -w -F N)
 *   dynamic   between min and max: grows while connections wait, retires
 *             children idle longer than the idle timeout down to min
 *   ondemand  as dynamic with min 0: no child until a connection waits
 *
 * Load is watched without a fixed tick: at its minimum the pool asks only
 * to hear about readability of the listening socket (at most once per
 * POOL_GROW_REARM_MS); above it, it samples every POOL_SAMPLE_MS; with
 * max_rss it samples every POOL_RSS_CHECK_MS.
 *
 * Every way a child leaves (reload, scale-down, recycling) goes through one
 * retirement: stop it (SIGSTOP), ask whether it holds an accepted
 * connection, then send the stop signal and SIGCONT if it is idle, or
 * SIGCONT and try again POOL_RETIRE_RECHECK_MS later if it is busy.  The
 * stop timeout bounds one request: a child seen with other sockets than at
 * the last check finished one and took the next (under load the moment in
 * between is too short to catch), and its time starts again, up to
 * POOL_RETIRE_MAX_TIMEOUTS stop timeouts in all.  After that the stop
 * signal goes anyway, and SIGKILL one stop timeout later. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pool-status.h"

typedef enum {
  POOL_MODE_STATIC,
  POOL_MODE_DYNAMIC,
  POOL_MODE_ONDEMAND,
} PoolMode;

const char *pool_mode_name(PoolMode mode);

typedef struct {
  PoolMode mode;
  int min_children;          /* static: = max_children; ondemand: 0 */
  int max_children;
  int restart_retries;       /* quick failures in a row allowed per slot */
  int restart_window_ms;     /* a child that lived this long was no quick failure */
  int stop_signal;
  int stop_timeout_ms;
  int reload_batch;          /* children replaced at a time on SIGHUP */
  int idle_timeout_ms;       /* dynamic, ondemand */
  gint64 max_age_ms;         /* 0: no recycling by age */
  guint64 max_rss_bytes;     /* 0: no recycling by memory */
  pid_t main_pid;            /* for READY=1's MAINPID= */
} PoolConfig;

/* On reload and recycling, a new child must stay alive this long after it
 * reached exec before the old one it replaces is retired. */
#define POOL_PROBATION_MS 100
/* A child that exits, even with status 0, sooner than this after its start
 * lived too short: repeated, it backs off like a failure. */
#define POOL_MIN_LIFETIME_MS 1000
#define POOL_BACKOFF_FIRST_MS 100
#define POOL_BACKOFF_MAX_MS 5000
/* Above the minimum: busy/idle and queue sampled this often. */
#define POOL_SAMPLE_MS 500
/* After a wake-up for a waiting connection, readability is watched again
 * this much later (bounds wake-ups under load), or, when the pool just
 * grew (a burst is arriving), after POOL_GROW_BURST_REARM_MS. */
#define POOL_GROW_REARM_MS 50
#define POOL_GROW_BURST_REARM_MS 5
/* A child started this recently counts as capacity about to accept. */
#define POOL_FRESH_MS 200
#define POOL_RETIRE_RECHECK_MS 100
#define POOL_RETIRE_MAX_TIMEOUTS 6
#define POOL_RSS_CHECK_MS 5000
/* Per slot, at most POOL_LOG_BURST lines per POOL_LOG_WINDOW_MS; the rest
 * are counted ("... N more times"). */
#define POOL_LOG_BURST 5
#define POOL_LOG_WINDOW_MS 10000

typedef enum {
  POOL_EV_STARTED,        /* slot, pid (-1: fork failed, err) */
  POOL_EV_EXEC,           /* pid reached exec */
  POOL_EV_EXEC_FAILED,    /* pid failed before exec (the effects layer logged why) */
  POOL_EV_EXITED,         /* pid, status (wait status) */
  POOL_EV_STOPPED,        /* pid is stopped (after a SIGSTOP) */
  POOL_EV_IDLE_CHECKED,   /* pid, busy: answer to POOL_ACT_CHECK_IDLE */
  POOL_EV_SIGNAL,         /* sig */
  POOL_EV_TIMER,
  POOL_EV_READABLE,       /* the listening socket has a waiting connection */
  POOL_EV_SAMPLE,         /* sample: answer to POOL_ACT_SAMPLE */
} PoolEventType;

typedef struct {
  bool queue_known;
  guint queued;              /* connections waiting to be accepted */
  guint n;                   /* children sampled */
  const pid_t *pids;
  const bool *busy;          /* holds an accepted connection */
  const guint64 *cpu_ticks;  /* utime + stime, to tell short requests */
  const guint64 *rss_bytes;  /* 0: unknown */
} PoolSample;

typedef struct {
  PoolEventType type;
  int slot;
  pid_t pid;
  int status;
  int err;
  int sig;
  bool busy;
  guint64 held;              /* IDLE_CHECKED: which sockets it holds (0: unknown) */
  const PoolSample *sample;
} PoolEvent;

typedef enum {
  POOL_ACT_START,         /* slot */
  POOL_ACT_SIGNAL,        /* pid, sig */
  POOL_ACT_CHECK_IDLE,    /* pid (stopped): answer with POOL_EV_IDLE_CHECKED */
  POOL_ACT_SAMPLE,        /* pids of the running children: answer with POOL_EV_SAMPLE */
  POOL_ACT_NOTIFY,        /* text for sd_notify */
  POOL_ACT_STATUS,        /* the pool changed: a new STATUS= line; text: the
                           * phase ("stopping", "reloading") or NULL */
  POOL_ACT_LOG,           /* level (G_LOG_LEVEL_*), text */
} PoolActionType;

typedef struct {
  PoolActionType type;
  int slot;
  pid_t pid;
  int sig;
  GLogLevelFlags level;
  char *text;
} PoolAction;

typedef struct PoolPolicy PoolPolicy;

PoolPolicy *pool_policy_new(const PoolConfig *config, gint64 now_ms);
void pool_policy_free(PoolPolicy *p);

/* The first starts, READY=1 when there is nothing to wait for. */
void pool_policy_begin(PoolPolicy *p, gint64 now_ms);
void pool_policy_handle(PoolPolicy *p, const PoolEvent *ev, gint64 now_ms);

/* Takes the actions decided so far, in order (free with
 * pool_policy_actions_free()). */
GArray *pool_policy_take_actions(PoolPolicy *p);
void pool_policy_actions_free(GArray *actions);

/* When the timer must fire next (ms, same clock), or -1: none. */
gint64 pool_policy_next_deadline(const PoolPolicy *p);
/* Whether readability of the listening socket is of interest now. */
bool pool_policy_wants_readable(const PoolPolicy *p, gint64 now_ms);
/* Stopped and every child gone: the supervisor may exit with *status. */
bool pool_policy_finished(const PoolPolicy *p, int *status);

/* Counts for logs and tests. */
guint pool_policy_running(const PoolPolicy *p);   /* reached exec, in a slot */
guint pool_policy_children(const PoolPolicy *p);  /* every live process, retiring too */

/* The pool as plain data; strings and the children array are owned by the
 * policy and valid until the next event.  Times (started_us,
 * start_time_us, last_reload_us) are on the policy's clock, in
 * microseconds: supervisor_fill_status() turns them into wall clock.
 * Fields the policy does not know (instance, listen, version, RSS beyond
 * the last sample, PSS, CPU) are left alone. */
void pool_policy_fill_status(const PoolPolicy *p, gint64 now_ms, PoolStatus *out);
