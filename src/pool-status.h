/* pool-status: a snapshot of a supervised pool, plain data.
 *
 * The supervisor fills it only when someone asks (a status client, or a
 * change that updates systemd's STATUS= line); status.c formats it as text,
 * JSON and Prometheus metrics.  Strings are borrowed from the supervisor and
 * valid until the next event; nothing here is computed in the background. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

typedef enum {
  POOL_CHILD_STARTING,   /* forked, has not reached exec or its probation */
  POOL_CHILD_IDLE,       /* running, holds no accepted connection */
  POOL_CHILD_BUSY,       /* running, holds an accepted connection */
  POOL_CHILD_RETIRING,   /* asked to go (reload, scale-down, recycling, stop) */
} PoolChildState;

typedef struct {
  guint slot;
  pid_t pid;
  PoolChildState state;
  gint64 started_us;         /* wall clock (g_get_real_time()) */
  double age_seconds;
  guint64 slot_restarts;     /* restarts of this slot */
  int last_exit_status;      /* wait status of the slot's previous child; -1: none */
  /* Filled from /proc by pool_status_read_proc() (status.c); 0: unknown. */
  guint64 rss_bytes;
  guint64 pss_bytes;
  double cpu_seconds;
} PoolChildStatus;

typedef struct {
  const char *instance;      /* config file name without directory and .conf, or "" */
  const char *pm;            /* "static", "dynamic", "ondemand" */
  guint min_children;
  guint max_children;
  const char *listen;        /* "/run/x.sock", "127.0.0.1:9000" */
  const char *listen_source; /* "own", "systemd", "fd0" */
  guint backlog;
  bool queue_known;          /* false: sock_diag could not describe the socket */
  guint accept_queue;        /* now */
  guint max_accept_queue;    /* highest seen since start */

  guint starting, idle, busy, retiring, total;
  guint64 max_children_reached;  /* times the pool hit max_children while connections waited */
  double seconds_at_max;

  guint64 restarts;          /* children started again after an exit */
  guint64 quick_failures;
  guint64 give_ups;
  guint64 spawn_failures;    /* fork or launch failed before exec */
  guint64 reloads;
  gint64 last_reload_us;     /* wall clock, 0: never */
  const char *last_reload_result; /* "none", "running", "done", "failed" */

  gint64 start_time_us;      /* wall clock of the supervisor's start */
  double uptime_seconds;
  const char *version;

  PoolChildStatus *children; /* n_children entries, ordered by slot */
  guint n_children;
} PoolStatus;
