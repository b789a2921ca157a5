/* pool-policy: the supervisor's decisions, pure.  See pool-policy.h. */
#include "config.h"

#include "pool-policy.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "exit-status.h"

typedef enum {
  WHY_RELOAD,
  WHY_SCALE_DOWN,
  WHY_MAX_AGE,
  WHY_MAX_RSS,
} RetireReason;

static const char *const reason_text[] = {
  [WHY_RELOAD] = "reload",
  [WHY_SCALE_DOWN] = "idle",
  [WHY_MAX_AGE] = "max-age",
  [WHY_MAX_RSS] = "max-rss",
};

typedef enum {
  RETIRE_WAIT,        /* next idle check at due_ms */
  RETIRE_PAUSING,     /* SIGSTOP sent; waiting for the stop, then the check */
  RETIRE_SIGNALLED,   /* stop signal sent; SIGKILL at due_ms */
} RetirePhase;

typedef struct {
  pid_t pid;
  int slot;
  RetireReason why;
  RetirePhase phase;
  gint64 since_ms;            /* retired, or last seen taking a new request */
  gint64 first_ms;            /* retired */
  gint64 due_ms;
  gint64 started_ms;
  guint64 held;               /* the sockets it held at the last busy check */
  bool busy_seen;
  bool killed;
} Retiree;

/* pid: -1 empty, 0 start asked for (fork not reported yet), > 0 a child. */
typedef struct {
  pid_t pid;
  bool running;               /* reached exec */
  gint64 started_ms;
  int quick_failures;         /* failures in a row soon after the start */
  int quick_clean_exits;      /* clean exits in a row sooner than the minimum lifetime */
  gint64 restart_at_ms;       /* a restart is due (0: none) */
  bool replace;               /* to be replaced by the ongoing reload */
  /* Replacement (reload or recycling): the old child serves until the new
   * one survived its probation. */
  bool probation;
  RetireReason replacing_why;
  gint64 probation_until_ms;  /* 0 until the new child reached exec */
  pid_t previous;
  gint64 previous_started_ms;
  bool reserved;              /* its child is being retired for scale-down */
  /* load */
  bool sampled;
  guint64 cpu_ticks;
  gint64 idle_since_ms;       /* 0: busy or not known */
  guint64 rss_bytes;
  /* for status */
  guint64 restarts;
  int last_status;
  /* log rate limit */
  gint64 log_window_ms;
  int log_lines;
  guint log_suppressed;
} Slot;

struct PoolPolicy {
  PoolConfig cfg;
  Slot *slots;                /* max_children */
  GArray *retirees;           /* Retiree */
  GArray *actions;            /* PoolAction */
  bool started_up;            /* READY=1 sent */
  bool reloading;
  bool stopping;
  bool killed;
  gint64 stop_deadline_ms;
  int exit_status;
  gint64 sample_due_ms;       /* 0: none */
  bool sample_asked;
  bool readable_pending;      /* the sample asked for was a wake-up for a connection */
  gint64 readable_rearm_ms;   /* 0: watch now */
  gint64 recycle_hold_ms;     /* no recycling before */
  char *last_status_line;
  /* counters */
  guint64 restarts, quick_failures, give_ups, spawn_failures, reloads;
  gint64 last_reload_ms;
  const char *last_reload_result;
  guint max_queue;
  guint last_queue;
  bool queue_known;
  guint64 times_at_max;
  gint64 at_max_since_ms, at_max_total_ms;
  gint64 start_ms;
  PoolChildStatus *status_children;
};

const char *pool_mode_name(PoolMode mode)
{
  switch (mode) {
  case POOL_MODE_STATIC: return "static";
  case POOL_MODE_DYNAMIC: return "dynamic";
  case POOL_MODE_ONDEMAND: return "ondemand";
  }
  return "?";
}

/* ---- actions ------------------------------------------------------------- */

static void act(PoolPolicy *p, PoolAction a)
{
  g_array_append_val(p->actions, a);
}

static void act_signal(PoolPolicy *p, pid_t pid, int sig)
{
  if (pid > 0)
    act(p, (PoolAction) { .type = POOL_ACT_SIGNAL, .pid = pid, .sig = sig });
}

static void act_start(PoolPolicy *p, int slot)
{
  p->slots[slot].pid = 0;
  p->slots[slot].running = false;
  p->slots[slot].restart_at_ms = 0;
  act(p, (PoolAction) { .type = POOL_ACT_START, .slot = slot });
}

static void notify(PoolPolicy *p, const char *text)
{
  act(p, (PoolAction) { .type = POOL_ACT_NOTIFY, .text = g_strdup(text) });
}

static void say(PoolPolicy *p, GLogLevelFlags level, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void say(PoolPolicy *p, GLogLevelFlags level, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  act(p, (PoolAction) { .type = POOL_ACT_LOG, .level = level,
                        .text = g_strdup_vprintf(fmt, ap) });
  va_end(ap);
}

/* A line about one slot: at most POOL_LOG_BURST per window; the rest are
 * counted and summed up with the next line that passes. */
static void say_slot(PoolPolicy *p, int i, gint64 now, GLogLevelFlags level,
                     const char *fmt, ...) G_GNUC_PRINTF(5, 6);
static void say_slot(PoolPolicy *p, int i, gint64 now, GLogLevelFlags level,
                     const char *fmt, ...)
{
  Slot *s = &p->slots[i];
  va_list ap;

  if (s->log_lines == 0 || now - s->log_window_ms >= POOL_LOG_WINDOW_MS) {
    if (s->log_suppressed > 0)
      say(p, level, "slot %d: ... %u more times", i, s->log_suppressed);
    s->log_window_ms = now;
    s->log_lines = 0;
    s->log_suppressed = 0;
  }
  if (s->log_lines >= POOL_LOG_BURST) {
    s->log_suppressed++;
    return;
  }
  s->log_lines++;
  va_start(ap, fmt);
  act(p, (PoolAction) { .type = POOL_ACT_LOG, .level = level,
                        .text = g_strdup_vprintf(fmt, ap) });
  va_end(ap);
}

GArray *pool_policy_take_actions(PoolPolicy *p)
{
  GArray *taken = p->actions;
  p->actions = g_array_new(FALSE, TRUE, sizeof(PoolAction));
  return taken;
}

void pool_policy_actions_free(GArray *actions)
{
  for (guint i = 0; i < actions->len; i++)
    g_free(g_array_index(actions, PoolAction, i).text);
  g_array_unref(actions);
}

/* ---- counting ------------------------------------------------------------ */

#define N(p) ((p)->cfg.max_children)

/* A child of the slot, starting or running. */
static bool slot_serving(const Slot *s)
{
  return s->pid >= 0;
}

/* Counts toward the maximum: a child, a restart due, a scale-down under way. */
static bool slot_taken(const Slot *s)
{
  return s->pid >= 0 || s->restart_at_ms != 0 || s->reserved;
}

static int count_serving(const PoolPolicy *p)
{
  int n = 0;
  for (int i = 0; i < N(p); i++)
    n += slot_serving(&p->slots[i]);
  return n;
}

static int count_live(const PoolPolicy *p)
{
  int n = 0;
  /* A slot being replaced still has its old child serving. */
  for (int i = 0; i < N(p); i++)
    n += p->slots[i].pid > 0 || p->slots[i].previous > 0;
  return n;
}

static int count_taken(const PoolPolicy *p)
{
  int n = 0;
  for (int i = 0; i < N(p); i++)
    n += slot_taken(&p->slots[i]);
  return n;
}

guint pool_policy_running(const PoolPolicy *p)
{
  guint n = 0;
  for (int i = 0; i < N(p); i++)
    n += p->slots[i].pid > 0 && p->slots[i].running;
  return n;
}

guint pool_policy_children(const PoolPolicy *p)
{
  guint n = p->retirees->len;
  for (int i = 0; i < N(p); i++)
    n += (p->slots[i].pid > 0) + (p->slots[i].previous > 0);
  return n;
}

static int slot_of(const PoolPolicy *p, pid_t pid)
{
  for (int i = 0; i < N(p); i++)
    if (pid > 0 && p->slots[i].pid == pid)
      return i;
  return -1;
}

static Retiree *retiree_of(const PoolPolicy *p, pid_t pid, guint *index)
{
  for (guint i = 0; i < p->retirees->len; i++) {
    Retiree *r = &g_array_index(p->retirees, Retiree, i);
    if (r->pid == pid) {
      if (index)
        *index = i;
      return r;
    }
  }
  return NULL;
}

static bool any_probation(const PoolPolicy *p)
{
  for (int i = 0; i < N(p); i++)
    if (p->slots[i].probation)
      return true;
  return false;
}

static bool any_retiring_for(const PoolPolicy *p, bool reload)
{
  for (guint i = 0; i < p->retirees->len; i++) {
    RetireReason why = g_array_index(p->retirees, Retiree, i).why;
    if (reload ? why == WHY_RELOAD : (why == WHY_MAX_AGE || why == WHY_MAX_RSS))
      return true;
  }
  return false;
}

/* ---- status -------------------------------------------------------------- */

/* Asks for systemd's STATUS= line when the pool changed: the effects
 * layer writes it from a fresh snapshot (status_summary()). */
static void notify_status(PoolPolicy *p)
{
  const char *phase = p->stopping ? "stopping" : p->reloading ? "reloading" : NULL;
  g_autofree char *key = g_strdup_printf("%u %u %d %" G_GUINT64_FORMAT " %s",
                                         pool_policy_children(p), pool_policy_running(p),
                                         count_live(p), p->restarts, phase ? phase : "");

  if (g_strcmp0(key, p->last_status_line) == 0)
    return;
  g_free(p->last_status_line);
  p->last_status_line = g_steal_pointer(&key);
  act(p, (PoolAction) { .type = POOL_ACT_STATUS, .text = g_strdup(phase) });
}

/* ---- starting and restarting --------------------------------------------- */

static void begin_stop(PoolPolicy *p, gint64 now);
static void reload_step(PoolPolicy *p, gint64 now);

static gint64 backoff_ms(int in_a_row)
{
  gint64 delay = 0;
  if (in_a_row >= 2) {
    delay = POOL_BACKOFF_FIRST_MS;
    for (int i = 2; i < in_a_row && delay < POOL_BACKOFF_MAX_MS; i++)
      delay *= 2;
  }
  return MIN(delay, POOL_BACKOFF_MAX_MS);
}

static void give_up(PoolPolicy *p, gint64 now)
{
  p->exit_status = EXIT_STATUS_CHILD_FAILED;
  p->give_ups++;
  if (!p->stopping)
    begin_stop(p, now);
}

static void schedule_restart(PoolPolicy *p, int i, gint64 now)
{
  Slot *s = &p->slots[i];
  int qf = s->quick_failures;

  if (qf > p->cfg.restart_retries) {
    say(p, G_LOG_LEVEL_CRITICAL,
        "a child failed %d time%s in a row within %d s of its start: giving up",
        qf, qf == 1 ? "" : "s", p->cfg.restart_window_ms / 1000);
    give_up(p, now);
    return;
  }
  /* The first failure restarts at once; after that, back off. */
  s->restart_at_ms = MAX(now + backoff_ms(qf), 1);
}

/* The new child of a replacement failed: the old child stays, since a
 * replacement must not take capacity away.  A reload stops there;
 * recycling tries again later. */
static void keep_old_child(PoolPolicy *p, int i, const char *what, gint64 now)
{
  Slot *s = &p->slots[i];

  s->probation = false;
  s->pid = s->previous;
  s->started_ms = s->previous_started_ms;
  s->running = s->previous > 0;
  s->previous = -1;
  if (s->replacing_why == WHY_RELOAD) {
    say(p, G_LOG_LEVEL_CRITICAL, "reload stopped: a new child %s; "
        "the old children keep running", what);
    for (int j = 0; j < N(p); j++)
      p->slots[j].replace = false;
    p->last_reload_result = "failed";
    reload_step(p, now);
  } else {
    say(p, G_LOG_LEVEL_WARNING, "recycling: a new child %s; the old child keeps running",
        what);
    p->recycle_hold_ms = now + POOL_BACKOFF_MAX_MS;
  }
}

/* The start of a slot's child failed before exec (fork or a launch step). */
static void start_failed(PoolPolicy *p, int i, gint64 now)
{
  Slot *s = &p->slots[i];

  s->pid = -1;
  s->running = false;
  p->spawn_failures++;
  if (s->probation) {
    keep_old_child(p, i, "could not be started", now);
    return;
  }
  s->quick_failures++;
  p->quick_failures++;
  schedule_restart(p, i, now);
}

/* ---- retirement ---------------------------------------------------------- */

static void retire(PoolPolicy *p, pid_t pid, int slot, gint64 started_ms, RetireReason why,
                   gint64 now)
{
  Retiree r = { .pid = pid, .slot = slot, .why = why, .phase = RETIRE_WAIT,
                .since_ms = now, .first_ms = now, .due_ms = now, .started_ms = started_ms };
  g_array_append_val(p->retirees, r);
}

static void send_stop(PoolPolicy *p, Retiree *r, gint64 now)
{
  act_signal(p, r->pid, p->cfg.stop_signal);
  act_signal(p, r->pid, SIGCONT);
  r->phase = RETIRE_SIGNALLED;
  r->due_ms = now + p->cfg.stop_timeout_ms;
}

/* Retirees whose next step is due: stop them for a check, or, once the
 * stop timeout has passed, send the stop signal anyway, then SIGKILL. */
static void step_retirees(PoolPolicy *p, gint64 now)
{
  for (guint i = 0; i < p->retirees->len; i++) {
    Retiree *r = &g_array_index(p->retirees, Retiree, i);
    if (r->due_ms > now || r->killed)
      continue;
    switch (r->phase) {
    case RETIRE_WAIT:
      if (now - r->since_ms >= p->cfg.stop_timeout_ms) {
        say(p, G_LOG_LEVEL_WARNING, "child %d (%s) still busy after %d ms: asking it to stop",
            (int) r->pid, reason_text[r->why], p->cfg.stop_timeout_ms);
        send_stop(p, r, now);
      } else {
        act_signal(p, r->pid, SIGSTOP);
        r->phase = RETIRE_PAUSING;
        r->due_ms = now + p->cfg.stop_timeout_ms;
      }
      break;
    case RETIRE_PAUSING:
      /* It never stopped (traced?): do not wait for it any longer. */
      send_stop(p, r, now);
      break;
    case RETIRE_SIGNALLED:
      act_signal(p, r->pid, SIGKILL);
      r->killed = true;
      break;
    }
  }
}

/* Busy with another request than at the last check: it is not stuck, and
 * its stop timeout starts again, within the overall bound. */
static void note_new_request(PoolPolicy *p, Retiree *r, guint64 held, gint64 now)
{
  gint64 bound = r->first_ms + (gint64) POOL_RETIRE_MAX_TIMEOUTS * p->cfg.stop_timeout_ms;

  if (r->busy_seen && held != 0 && held != r->held &&
      now + p->cfg.stop_timeout_ms <= bound)
    r->since_ms = now;
  r->held = held;
}

static void on_idle_checked(PoolPolicy *p, pid_t pid, bool busy, guint64 held, gint64 now)
{
  guint index;
  Retiree *r = retiree_of(p, pid, &index);

  if (r == NULL || r->phase != RETIRE_PAUSING || p->stopping)
    return;
  if (!busy) {
    send_stop(p, r, now);
    return;
  }
  act_signal(p, pid, SIGCONT);
  note_new_request(p, r, held, now);
  if (!r->busy_seen)
    say(p, G_LOG_LEVEL_INFO, "child %d is busy: retiring it (%s) once it is idle",
        (int) pid, reason_text[r->why]);
  r->busy_seen = true;
  if (r->why == WHY_SCALE_DOWN && !p->slots[r->slot].probation) {
    /* It is serving again: it stays. */
    Slot *s = &p->slots[r->slot];
    s->reserved = false;
    s->pid = pid;
    s->running = true;
    s->started_ms = r->started_ms;
    s->idle_since_ms = 0;
    g_array_remove_index(p->retirees, index);
    return;
  }
  r->phase = RETIRE_WAIT;
  r->due_ms = now + POOL_RETIRE_RECHECK_MS;
}

/* ---- reload and recycling ------------------------------------------------ */

/* Starts a new child in place of the slot's current one, which serves on
 * until the new one survived its probation. */
static void replace_slot(PoolPolicy *p, int i, RetireReason why)
{
  Slot *s = &p->slots[i];
  s->previous = s->pid;
  s->previous_started_ms = s->started_ms;
  s->probation = true;
  s->replacing_why = why;
  s->probation_until_ms = 0;
  s->quick_failures = 0;
  act_start(p, i);
}

static void reload_step(PoolPolicy *p, gint64 now)
{
  int started = 0;

  if (p->stopping || !p->reloading || any_probation(p) || any_retiring_for(p, true))
    return;
  for (int i = 0; i < N(p) && started < p->cfg.reload_batch; i++) {
    Slot *s = &p->slots[i];
    if (!s->replace)
      continue;
    s->replace = false;
    /* Nothing to replace: the slot waits for its scheduled restart. */
    if (s->pid <= 0 || s->reserved)
      continue;
    replace_slot(p, i, WHY_RELOAD);
    started++;
  }
  if (started > 0)
    return;
  p->reloading = false;
  if (g_strcmp0(p->last_reload_result, "failed") != 0)
    p->last_reload_result = "done";
  (void) now;
  notify(p, "READY=1");
  notify_status(p);
}

static void begin_reload(PoolPolicy *p, gint64 now)
{
  /* The effects layer adds MONOTONIC_USEC= with its own clock. */
  notify(p, "RELOADING=1");
  p->reloading = true;
  p->reloads++;
  p->last_reload_ms = now;
  p->last_reload_result = "running";
  for (int i = 0; i < N(p); i++)
    p->slots[i].replace = true;
  notify_status(p);
  /* A batch under way goes on; the new round starts when it is done. */
  reload_step(p, now);
}

static bool recycling_possible(const PoolPolicy *p, gint64 now)
{
  return !p->stopping && !p->reloading && now >= p->recycle_hold_ms &&
         !any_probation(p) && !any_retiring_for(p, false);
}

/* Staggered: slot i reaches its age a little sooner than slot i-1, so that
 * children started together are not all replaced at once. */
static gint64 max_age_due(const PoolPolicy *p, int i)
{
  const Slot *s = &p->slots[i];
  return s->started_ms + p->cfg.max_age_ms - p->cfg.max_age_ms * i / (2 * N(p));
}

static bool recyclable(const Slot *s)
{
  return s->pid > 0 && s->running && !s->probation && !s->reserved;
}

static void recycle(PoolPolicy *p, int i, RetireReason why, gint64 now)
{
  Slot *s = &p->slots[i];
  if (why == WHY_MAX_AGE)
    say(p, G_LOG_LEVEL_INFO, "child %d reached its maximum age (%" G_GINT64_FORMAT
        " s): replacing it", (int) s->pid, (now - s->started_ms) / 1000);
  else
    say(p, G_LOG_LEVEL_INFO, "child %d uses %" G_GUINT64_FORMAT " kB, more than the "
        "maximum RSS: replacing it", (int) s->pid, s->rss_bytes / 1024);
  replace_slot(p, i, why);
}

static void check_max_age(PoolPolicy *p, gint64 now)
{
  if (p->cfg.max_age_ms <= 0 || !recycling_possible(p, now))
    return;
  int oldest = -1;
  for (int i = 0; i < N(p); i++)
    if (recyclable(&p->slots[i]) && max_age_due(p, i) <= now &&
        (oldest < 0 || max_age_due(p, i) < max_age_due(p, oldest)))
      oldest = i;
  if (oldest >= 0)
    recycle(p, oldest, WHY_MAX_AGE, now);
}

/* A new child that survived its probation: the old one is retired. */
static void end_probations(PoolPolicy *p, gint64 now)
{
  for (int i = 0; i < N(p); i++) {
    Slot *s = &p->slots[i];
    if (!s->probation || s->probation_until_ms == 0 || now < s->probation_until_ms)
      continue;
    s->probation = false;
    if (s->previous > 0)
      retire(p, s->previous, i, s->previous_started_ms, s->replacing_why, now);
    s->previous = -1;
  }
}

/* ---- load ---------------------------------------------------------------- */

static int first_free_slot(const PoolPolicy *p)
{
  for (int i = 0; i < N(p); i++)
    if (!slot_taken(&p->slots[i]))
      return i;
  return -1;
}

/* Children that will accept soon: starting, or started a moment ago. */
static int count_fresh(const PoolPolicy *p, gint64 now)
{
  int n = 0;
  for (int i = 0; i < N(p); i++) {
    const Slot *s = &p->slots[i];
    n += s->pid == 0 || (s->pid > 0 && (!s->running || now - s->started_ms < POOL_FRESH_MS));
  }
  return n;
}

static void grow(PoolPolicy *p, int wanted, gint64 now)
{
  int started = 0;
  for (int i; started < wanted && (i = first_free_slot(p)) >= 0; started++) {
    p->slots[i].quick_failures = 0;
    act_start(p, i);
  }
  if (started > 0) {
    say(p, G_LOG_LEVEL_INFO, "connections wait: starting %d more child%s (%d of at most %d)",
        started, started == 1 ? "" : "ren", count_taken(p), N(p));
    notify_status(p);
  }
  if (count_taken(p) >= N(p) && p->at_max_since_ms == 0) {
    p->times_at_max++;
    p->at_max_since_ms = now;
  }
}

static void update_at_max(PoolPolicy *p, gint64 now)
{
  if (p->at_max_since_ms != 0 && count_taken(p) < N(p)) {
    p->at_max_total_ms += now - p->at_max_since_ms;
    p->at_max_since_ms = 0;
  }
}

static void scale_down(PoolPolicy *p, gint64 now)
{
  int serving = count_serving(p);

  if (p->reloading)
    return;
  for (int i = N(p) - 1; i >= 0 && serving > p->cfg.min_children; i--) {
    Slot *s = &p->slots[i];
    if (!recyclable(s) || s->idle_since_ms == 0 ||
        now - s->idle_since_ms < p->cfg.idle_timeout_ms)
      continue;
    say(p, G_LOG_LEVEL_INFO, "child %d idle for %" G_GINT64_FORMAT " s: retiring it",
        (int) s->pid, (now - s->idle_since_ms) / 1000);
    retire(p, s->pid, i, s->started_ms, WHY_SCALE_DOWN, now);
    s->pid = -1;
    s->running = false;
    s->reserved = true;
    serving--;
  }
}

static void on_sample(PoolPolicy *p, const PoolSample *smp, bool readable, gint64 now)
{
  p->sample_asked = false;
  p->queue_known = smp->queue_known;
  if (smp->queue_known) {
    p->last_queue = smp->queued;
    p->max_queue = MAX(p->max_queue, smp->queued);
  }
  for (guint k = 0; k < smp->n; k++) {
    int i = slot_of(p, smp->pids[k]);
    if (i < 0)
      continue;
    Slot *s = &p->slots[i];
    bool worked = smp->busy[k] || (s->sampled && smp->cpu_ticks[k] != s->cpu_ticks);
    s->cpu_ticks = smp->cpu_ticks[k];
    s->rss_bytes = smp->rss_bytes[k];
    if (worked || !s->sampled)
      s->idle_since_ms = worked ? 0 : now;
    else if (s->idle_since_ms == 0)
      s->idle_since_ms = now;
    s->sampled = true;
  }
  if (p->stopping)
    return;
  if (p->cfg.mode != POOL_MODE_STATIC) {
    int waiting = smp->queue_known ? (int) smp->queued : (readable ? 1 : 0);
    int wanted = waiting - count_fresh(p, now);
    if (count_serving(p) == 0 && readable)
      wanted = MAX(wanted, 1);
    if (wanted > 0) {
      grow(p, wanted, now);
      if (readable)
        p->readable_rearm_ms = now + POOL_GROW_BURST_REARM_MS;
    }
    scale_down(p, now);
  }
  if (p->cfg.max_rss_bytes > 0 && recycling_possible(p, now)) {
    /* The oldest of those above the limit. */
    int oldest = -1;
    for (int i = 0; i < N(p); i++)
      if (recyclable(&p->slots[i]) && p->slots[i].rss_bytes > p->cfg.max_rss_bytes &&
          (oldest < 0 || p->slots[i].started_ms < p->slots[oldest].started_ms))
        oldest = i;
    if (oldest >= 0)
      recycle(p, oldest, WHY_MAX_RSS, now);
  }
}

static void ask_sample(PoolPolicy *p)
{
  if (!p->sample_asked) {
    p->sample_asked = true;
    act(p, (PoolAction) { .type = POOL_ACT_SAMPLE });
  }
}

/* Sampling only while there is a reason: above the minimum (to find idle
 * children), or for max_rss at a low rate. */
static void plan_sampling(PoolPolicy *p, gint64 now)
{
  gint64 every = 0;
  if (p->stopping)
    every = 0;
  else if (p->cfg.mode != POOL_MODE_STATIC && count_serving(p) > p->cfg.min_children)
    every = POOL_SAMPLE_MS;
  else if (p->cfg.max_rss_bytes > 0)
    every = POOL_RSS_CHECK_MS;
  if (every == 0)
    p->sample_due_ms = 0;
  else if (p->sample_due_ms == 0 || p->sample_due_ms > now + every)
    p->sample_due_ms = now + every;
}

/* ---- child events -------------------------------------------------------- */

static void describe_exit(int status, char *buf, size_t len)
{
  if (WIFSIGNALED(status))
    snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

static void maybe_ready(PoolPolicy *p)
{
  if (p->started_up || p->stopping)
    return;
  for (int i = 0; i < N(p); i++)
    if (p->slots[i].pid == 0 || (p->slots[i].pid > 0 && !p->slots[i].running))
      return;
  p->started_up = true;
  g_autofree char *ready = g_strdup_printf("READY=1\nMAINPID=%d", (int) p->cfg.main_pid);
  notify(p, ready);
  notify_status(p);
  if (p->cfg.mode == POOL_MODE_STATIC)
    say(p, G_LOG_LEVEL_MESSAGE, "supervising %d children (%u running)", N(p),
        pool_policy_running(p));
  else
    say(p, G_LOG_LEVEL_MESSAGE, "supervising %d-%d children (%s, %u running)",
        p->cfg.min_children, N(p), pool_mode_name(p->cfg.mode), pool_policy_running(p));
}

static void on_retiree_exit(PoolPolicy *p, guint index, gint64 now)
{
  Retiree r = g_array_index(p->retirees, Retiree, index);
  g_array_remove_index(p->retirees, index);
  if (r.why == WHY_SCALE_DOWN)
    p->slots[r.slot].reserved = false;
  if (r.why == WHY_RELOAD)
    reload_step(p, now);
  notify_status(p);
}

static void on_slot_exit(PoolPolicy *p, int i, pid_t pid, int status, gint64 now)
{
  Slot *s = &p->slots[i];
  char how[96];
  gint64 lived = now - s->started_ms;

  s->pid = -1;
  s->running = false;
  s->sampled = false;
  s->idle_since_ms = 0;
  s->last_status = status;
  if (p->stopping)
    return;
  describe_exit(status, how, sizeof how);
  if (s->probation) {
    /* A new child of a replacement died: the old one stays. */
    say(p, G_LOG_LEVEL_WARNING, "new child %d %s after %" G_GINT64_FORMAT " ms",
        (int) pid, how, lived);
    keep_old_child(p, i, "died right after its start", now);
    return;
  }
  p->restarts++;
  s->restarts++;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    /* A clean exit is the application's own choice (php-cgi leaves after
     * PHP_FCGI_MAX_REQUESTS requests): no failure.  But one that comes
     * sooner than the minimum lifetime again and again backs off. */
    s->quick_failures = 0;
    s->quick_clean_exits = lived < POOL_MIN_LIFETIME_MS ? s->quick_clean_exits + 1 : 0;
    gint64 delay = backoff_ms(s->quick_clean_exits - 1);
    say_slot(p, i, now, G_LOG_LEVEL_INFO, "child %d exited after %" G_GINT64_FORMAT
             " ms; starting a new one%s", (int) pid, lived,
             delay > 0 ? " later (it keeps exiting at once)" : "");
    s->restart_at_ms = MAX(MAX(now + delay, s->started_ms + POOL_BACKOFF_FIRST_MS), 1);
  } else {
    say_slot(p, i, now, G_LOG_LEVEL_WARNING, "child %d %s after %" G_GINT64_FORMAT " ms",
             (int) pid, how, lived);
    s->quick_clean_exits = 0;
    bool quick = lived < p->cfg.restart_window_ms;
    s->quick_failures = quick ? s->quick_failures + 1 : 0;
    p->quick_failures += quick;
    schedule_restart(p, i, now);
  }
  notify_status(p);
}

static void on_child_exit(PoolPolicy *p, pid_t pid, int status, gint64 now)
{
  guint index;
  int i;

  if (retiree_of(p, pid, &index) != NULL) {
    on_retiree_exit(p, index, now);
    return;
  }
  for (i = 0; i < N(p); i++) {
    if (p->slots[i].probation && p->slots[i].previous == pid) {
      /* The old child went on its own: its replacement is already there. */
      p->slots[i].previous = -1;
      return;
    }
  }
  if ((i = slot_of(p, pid)) >= 0)
    on_slot_exit(p, i, pid, status, now);
}

/* ---- signals and timer --------------------------------------------------- */

static void signal_all(PoolPolicy *p, int sig)
{
  for (int i = 0; i < N(p); i++) {
    act_signal(p, p->slots[i].pid, sig);
    act_signal(p, p->slots[i].previous, sig);
  }
  for (guint i = 0; i < p->retirees->len; i++)
    act_signal(p, g_array_index(p->retirees, Retiree, i).pid, sig);
}

static void begin_stop(PoolPolicy *p, gint64 now)
{
  p->stopping = true;
  p->reloading = false;
  for (int i = 0; i < N(p); i++) {
    p->slots[i].restart_at_ms = 0;
    p->slots[i].replace = false;
  }
  notify(p, "STOPPING=1");
  notify_status(p);
  signal_all(p, p->cfg.stop_signal);
  /* Children stopped for an idle check must run to take the signal. */
  for (guint i = 0; i < p->retirees->len; i++) {
    Retiree *r = &g_array_index(p->retirees, Retiree, i);
    if (r->phase == RETIRE_PAUSING)
      act_signal(p, r->pid, SIGCONT);
    r->phase = RETIRE_SIGNALLED;
  }
  p->stop_deadline_ms = now + p->cfg.stop_timeout_ms;
}

static void on_signal(PoolPolicy *p, int sig, gint64 now)
{
  switch (sig) {
  case SIGTERM:
  case SIGINT:
    if (p->stopping) {
      /* Asked again: do not make the caller wait. */
      signal_all(p, SIGTERM);
    } else {
      say(p, G_LOG_LEVEL_MESSAGE, "stopping %d children", count_serving(p));
      begin_stop(p, now);
    }
    break;
  case SIGHUP:
    if (!p->stopping) {
      say(p, G_LOG_LEVEL_MESSAGE, "reloading: replacing %d children, %d at a time",
          count_serving(p), p->cfg.reload_batch);
      begin_reload(p, now);
    }
    break;
  case SIGUSR1:
  case SIGUSR2:
    signal_all(p, sig);
    break;
  }
}

static void on_timer(PoolPolicy *p, gint64 now)
{
  if (p->stopping && !p->killed && now >= p->stop_deadline_ms) {
    say(p, G_LOG_LEVEL_WARNING, "children did not stop within %d ms: killing them",
        p->cfg.stop_timeout_ms);
    signal_all(p, SIGKILL);
    p->killed = true;
  }
  if (p->stopping)
    return;
  end_probations(p, now);
  for (int i = 0; i < N(p) && !p->stopping; i++) {
    Slot *s = &p->slots[i];
    if (s->pid < 0 && s->restart_at_ms != 0 && now >= s->restart_at_ms)
      act_start(p, i);
  }
  if (p->readable_rearm_ms != 0 && now >= p->readable_rearm_ms)
    p->readable_rearm_ms = 0;
  if (p->sample_due_ms != 0 && now >= p->sample_due_ms) {
    p->sample_due_ms = 0;
    ask_sample(p);
  }
}

/* ---- entry points -------------------------------------------------------- */

PoolPolicy *pool_policy_new(const PoolConfig *config, gint64 now_ms)
{
  PoolPolicy *p = g_new0(PoolPolicy, 1);

  g_return_val_if_fail(config->max_children > 0, NULL);
  p->cfg = *config;
  if (p->cfg.mode == POOL_MODE_STATIC)
    p->cfg.min_children = p->cfg.max_children;
  if (p->cfg.mode == POOL_MODE_ONDEMAND)
    p->cfg.min_children = 0;
  p->slots = g_new0(Slot, N(p));
  for (int i = 0; i < N(p); i++) {
    p->slots[i].pid = p->slots[i].previous = -1;
    p->slots[i].last_status = -1;
  }
  p->retirees = g_array_new(FALSE, TRUE, sizeof(Retiree));
  p->actions = g_array_new(FALSE, TRUE, sizeof(PoolAction));
  p->exit_status = EXIT_STATUS_OK;
  p->last_reload_result = "none";
  p->start_ms = now_ms;
  return p;
}

void pool_policy_free(PoolPolicy *p)
{
  if (p == NULL)
    return;
  pool_policy_actions_free(p->actions);
  g_array_unref(p->retirees);
  g_free(p->slots);
  g_free(p->last_status_line);
  g_free(p->status_children);
  g_free(p);
}

static void after_event(PoolPolicy *p, gint64 now)
{
  step_retirees(p, now);
  check_max_age(p, now);
  update_at_max(p, now);
  plan_sampling(p, now);
  maybe_ready(p);
  if (p->started_up)
    notify_status(p);
}

void pool_policy_begin(PoolPolicy *p, gint64 now)
{
  for (int i = 0; i < p->cfg.min_children; i++)
    act_start(p, i);
  after_event(p, now);
}

void pool_policy_handle(PoolPolicy *p, const PoolEvent *ev, gint64 now)
{
  int i;

  switch (ev->type) {
  case POOL_EV_STARTED:
    if (ev->slot < 0 || ev->slot >= N(p) || p->slots[ev->slot].pid != 0)
      break;
    p->slots[ev->slot].pid = ev->pid;
    p->slots[ev->slot].started_ms = now;
    if (ev->pid < 0)
      start_failed(p, ev->slot, now);
    else if (p->stopping)
      act_signal(p, ev->pid, p->cfg.stop_signal);
    break;
  case POOL_EV_EXEC:
    if ((i = slot_of(p, ev->pid)) >= 0) {
      p->slots[i].running = true;
      if (p->slots[i].probation)
        p->slots[i].probation_until_ms = now + POOL_PROBATION_MS;
    }
    break;
  case POOL_EV_EXEC_FAILED:
    if ((i = slot_of(p, ev->pid)) >= 0 && !p->stopping)
      start_failed(p, i, now);
    else if (i >= 0)
      p->slots[i].pid = -1;
    break;
  case POOL_EV_EXITED:
    on_child_exit(p, ev->pid, ev->status, now);
    break;
  case POOL_EV_STOPPED: {
    Retiree *r = retiree_of(p, ev->pid, NULL);
    if (r != NULL && r->phase == RETIRE_PAUSING && !p->stopping)
      act(p, (PoolAction) { .type = POOL_ACT_CHECK_IDLE, .pid = ev->pid });
    break;
  }
  case POOL_EV_IDLE_CHECKED:
    on_idle_checked(p, ev->pid, ev->busy, ev->held, now);
    break;
  case POOL_EV_SIGNAL:
    on_signal(p, ev->sig, now);
    break;
  case POOL_EV_TIMER:
    on_timer(p, now);
    break;
  case POOL_EV_READABLE:
    p->readable_rearm_ms = now + POOL_GROW_REARM_MS;
    if (p->sample_asked)
      break;
    ask_sample(p);
    p->readable_pending = true;
    break;
  case POOL_EV_SAMPLE:
    on_sample(p, ev->sample, p->readable_pending, now);
    p->readable_pending = false;
    break;
  }
  after_event(p, now);
}

gint64 pool_policy_next_deadline(const PoolPolicy *p)
{
  gint64 next = G_MAXINT64;

  if (p->stopping) {
    if (!p->killed)
      next = p->stop_deadline_ms;
    return next == G_MAXINT64 ? -1 : next;
  }
  /* While a replacement is under way, recycling waits for an event (its
   * end): the age deadlines must not spin the timer meanwhile. */
  bool ages = p->cfg.max_age_ms > 0 && recycling_possible(p, G_MAXINT64 - 1);
  for (int i = 0; i < N(p); i++) {
    const Slot *s = &p->slots[i];
    if (s->pid < 0 && s->restart_at_ms != 0)
      next = MIN(next, s->restart_at_ms);
    if (s->probation && s->probation_until_ms != 0)
      next = MIN(next, s->probation_until_ms);
    if (ages && recyclable(s))
      next = MIN(next, MAX(max_age_due(p, i), p->recycle_hold_ms));
  }
  for (guint i = 0; i < p->retirees->len; i++) {
    const Retiree *r = &g_array_index(p->retirees, Retiree, i);
    if (!r->killed)
      next = MIN(next, r->due_ms);
  }
  if (p->sample_due_ms != 0)
    next = MIN(next, p->sample_due_ms);
  if (p->readable_rearm_ms != 0)
    next = MIN(next, p->readable_rearm_ms);
  return next == G_MAXINT64 ? -1 : next;
}

bool pool_policy_wants_readable(const PoolPolicy *p, gint64 now)
{
  return p->cfg.mode != POOL_MODE_STATIC && !p->stopping && !p->sample_asked &&
         (p->readable_rearm_ms == 0 || now >= p->readable_rearm_ms) &&
         first_free_slot(p) >= 0;
}

bool pool_policy_finished(const PoolPolicy *p, int *status)
{
  if (!p->stopping || pool_policy_children(p) > 0)
    return false;
  for (int i = 0; i < N(p); i++)
    if (p->slots[i].pid == 0)
      return false;
  *status = p->exit_status;
  return true;
}

/* ---- status snapshot ----------------------------------------------------- */

static void fill_child(const PoolPolicy *p, PoolChildStatus *c, int slot, pid_t pid,
                       PoolChildState state, gint64 started_ms, gint64 now)
{
  const Slot *s = &p->slots[slot];
  *c = (PoolChildStatus) {
    .slot = (guint) slot, .pid = pid, .state = state,
    .started_us = started_ms * 1000,
    .age_seconds = (double) (now - started_ms) / 1000.0,
    .slot_restarts = s->restarts, .last_exit_status = s->last_status,
    .rss_bytes = s->rss_bytes,
  };
}

void pool_policy_fill_status(const PoolPolicy *p, gint64 now, PoolStatus *out)
{
  PoolChildStatus *c;
  guint n = 0;

  g_free(((PoolPolicy *) p)->status_children);
  c = g_new0(PoolChildStatus, pool_policy_children(p) + 1);
  ((PoolPolicy *) p)->status_children = c;
  out->pm = pool_mode_name(p->cfg.mode);
  out->min_children = (guint) p->cfg.min_children;
  out->max_children = (guint) N(p);
  out->queue_known = p->queue_known;
  out->accept_queue = p->last_queue;
  out->max_accept_queue = p->max_queue;
  out->starting = out->idle = out->busy = out->retiring = 0;
  for (int i = 0; i < N(p); i++) {
    const Slot *s = &p->slots[i];
    if (s->previous > 0) {
      fill_child(p, &c[n++], i, s->previous, POOL_CHILD_IDLE, s->previous_started_ms, now);
      out->idle++;
    }
    if (s->pid <= 0)
      continue;
    PoolChildState st = !s->running || s->probation ? POOL_CHILD_STARTING :
                        s->idle_since_ms != 0 ? POOL_CHILD_IDLE : POOL_CHILD_BUSY;
    if (st == POOL_CHILD_BUSY && !s->sampled)
      st = POOL_CHILD_IDLE;
    fill_child(p, &c[n++], i, s->pid, st, s->started_ms, now);
    out->starting += st == POOL_CHILD_STARTING;
    out->idle += st == POOL_CHILD_IDLE;
    out->busy += st == POOL_CHILD_BUSY;
  }
  for (guint k = 0; k < p->retirees->len; k++) {
    const Retiree *r = &g_array_index(p->retirees, Retiree, k);
    fill_child(p, &c[n++], r->slot, r->pid, POOL_CHILD_RETIRING, r->started_ms, now);
    out->retiring++;
  }
  out->total = n;
  out->children = c;
  out->n_children = n;
  out->max_children_reached = p->times_at_max;
  out->seconds_at_max = (double) (p->at_max_total_ms +
                                  (p->at_max_since_ms ? now - p->at_max_since_ms : 0)) / 1000.0;
  out->restarts = p->restarts;
  out->quick_failures = p->quick_failures;
  out->give_ups = p->give_ups;
  out->spawn_failures = p->spawn_failures;
  out->reloads = p->reloads;
  out->last_reload_result = p->last_reload_result;
  out->last_reload_us = p->reloads ? p->last_reload_ms * 1000 : 0;
  out->start_time_us = p->start_ms * 1000;
  out->uptime_seconds = (double) (now - p->start_ms) / 1000.0;
}
