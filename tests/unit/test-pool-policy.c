/* Unit tests for the supervisor's decisions (src/pool-policy.c), with a
 * fake clock and fake children: no process is started. */
#include "config.h"

#include <glib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "exit-status.h"
#include "pool-policy.h"

#define EXITED(code) ((code) << 8)

/* A fake world: a clock, pids handed out in order, and what the policy
 * asked for since the last look. */
typedef struct {
  PoolPolicy *p;
  gint64 now;
  pid_t next_pid;
  GPtrArray *log;           /* every action, as text */
  GArray *started;          /* pid per START, in order */
  GHashTable *alive;        /* pid -> slot + 1 */
  GHashTable *stopped;      /* pids stopped with SIGSTOP */
  GHashTable *busy;         /* pids that hold a connection */
  pid_t busy_when_checked;  /* accepts one just before its idle check */
  guint64 held;             /* the sockets a busy child is said to hold */
  bool fork_fails;
  bool exec_fails;
  bool auto_exec;           /* started children reach exec at once */
} World;

static void world_run(World *w);

static void feed(World *w, PoolEvent ev)
{
  pool_policy_handle(w->p, &ev, w->now);
  world_run(w);
}

/* Carries out the actions like supervisor.c would, but in memory. */
static void world_run(World *w)
{
  g_autoptr(GArray) pending = g_array_new(FALSE, FALSE, sizeof(PoolEvent));
  GArray *acts = pool_policy_take_actions(w->p);

  for (guint i = 0; i < acts->len; i++) {
    PoolAction *a = &g_array_index(acts, PoolAction, i);
    switch (a->type) {
    case POOL_ACT_START: {
      pid_t pid = w->fork_fails ? -1 : w->next_pid++;
      g_ptr_array_add(w->log, g_strdup_printf("start %d -> %d", a->slot, pid));
      if (pid > 0) {
        g_array_append_val(w->started, pid);
        g_hash_table_insert(w->alive, GINT_TO_POINTER(pid), GINT_TO_POINTER(a->slot + 1));
      }
      PoolEvent ev = { .type = POOL_EV_STARTED, .slot = a->slot, .pid = pid };
      g_array_append_val(pending, ev);
      if (pid > 0 && w->exec_fails) {
        g_hash_table_remove(w->alive, GINT_TO_POINTER(pid));
        ev = (PoolEvent) { .type = POOL_EV_EXEC_FAILED, .pid = pid };
        g_array_append_val(pending, ev);
      } else if (pid > 0 && w->auto_exec) {
        ev = (PoolEvent) { .type = POOL_EV_EXEC, .pid = pid };
        g_array_append_val(pending, ev);
      }
      break;
    }
    case POOL_ACT_SIGNAL:
      g_ptr_array_add(w->log, g_strdup_printf("kill %d %s", a->pid, sigabbrev_np(a->sig)));
      if (a->sig == SIGSTOP && g_hash_table_contains(w->alive, GINT_TO_POINTER(a->pid))) {
        g_hash_table_add(w->stopped, GINT_TO_POINTER(a->pid));
        PoolEvent ev = { .type = POOL_EV_STOPPED, .pid = a->pid };
        g_array_append_val(pending, ev);
      }
      if (a->sig == SIGCONT)
        g_hash_table_remove(w->stopped, GINT_TO_POINTER(a->pid));
      break;
    case POOL_ACT_CHECK_IDLE: {
      g_assert_true(g_hash_table_contains(w->stopped, GINT_TO_POINTER(a->pid)));
      bool b = g_hash_table_contains(w->busy, GINT_TO_POINTER(a->pid)) ||
               a->pid == w->busy_when_checked;
      g_ptr_array_add(w->log, g_strdup_printf("check %d", a->pid));
      PoolEvent ev = { .type = POOL_EV_IDLE_CHECKED, .pid = a->pid, .busy = b,
                       .held = b ? w->held : 0 };
      g_array_append_val(pending, ev);
      break;
    }
    case POOL_ACT_SAMPLE:
      g_ptr_array_add(w->log, g_strdup("sample"));
      break;
    case POOL_ACT_NOTIFY:
      g_ptr_array_add(w->log, g_strdup_printf("notify %s", a->text));
      break;
    case POOL_ACT_STATUS:
      g_ptr_array_add(w->log, g_strdup_printf("status %s", a->text ? a->text : "-"));
      break;
    case POOL_ACT_LOG:
      g_ptr_array_add(w->log, g_strdup_printf("log %s", a->text));
      break;
    }
  }
  pool_policy_actions_free(acts);
  for (guint i = 0; i < pending->len; i++)
    feed(w, g_array_index(pending, PoolEvent, i));
}

static PoolConfig config(PoolMode mode, int min, int max)
{
  return (PoolConfig) {
    .mode = mode, .min_children = min, .max_children = max,
    .restart_retries = 3, .restart_window_ms = 10000,
    .stop_signal = SIGTERM, .stop_timeout_ms = 10000, .reload_batch = 1,
    .idle_timeout_ms = 10000, .main_pid = 1,
  };
}

static World *world_new(const PoolConfig *cfg)
{
  World *w = g_new0(World, 1);
  w->now = 1000000;
  w->next_pid = 100;
  w->auto_exec = true;
  w->log = g_ptr_array_new_with_free_func(g_free);
  w->started = g_array_new(FALSE, FALSE, sizeof(pid_t));
  w->alive = g_hash_table_new(NULL, NULL);
  w->stopped = g_hash_table_new(NULL, NULL);
  w->busy = g_hash_table_new(NULL, NULL);
  w->p = pool_policy_new(cfg, w->now);
  pool_policy_begin(w->p, w->now);
  world_run(w);
  return w;
}

static void world_free(World *w)
{
  pool_policy_free(w->p);
  g_ptr_array_unref(w->log);
  g_array_unref(w->started);
  g_hash_table_unref(w->alive);
  g_hash_table_unref(w->stopped);
  g_hash_table_unref(w->busy);
  g_free(w);
}

static bool logged(World *w, const char *fragment)
{
  for (guint i = 0; i < w->log->len; i++)
    if (strstr(g_ptr_array_index(w->log, i), fragment))
      return true;
  return false;
}

static guint count_logged(World *w, const char *fragment)
{
  guint n = 0;
  for (guint i = 0; i < w->log->len; i++)
    n += strstr(g_ptr_array_index(w->log, i), fragment) != NULL;
  return n;
}

static void dump(World *w)
{
  for (guint i = 0; i < w->log->len; i++)
    g_printerr("  %s\n", (char *) g_ptr_array_index(w->log, i));
}

#define ASSERT_LOGGED(w, frag) \
  do { if (!logged((w), (frag))) { dump(w); g_error("not seen: %s", (frag)); } } while (0)
#define ASSERT_NOT_LOGGED(w, frag) \
  do { if (logged((w), (frag))) { dump(w); g_error("seen: %s", (frag)); } } while (0)

static void exit_child(World *w, pid_t pid, int status)
{
  g_hash_table_remove(w->alive, GINT_TO_POINTER(pid));
  g_hash_table_remove(w->stopped, GINT_TO_POINTER(pid));
  feed(w, (PoolEvent) { .type = POOL_EV_EXITED, .pid = pid, .status = status });
}

/* Advances the clock to the next deadline (at most until limit) and fires
 * the timer; FALSE when there is none. */
static gboolean tick(World *w, gint64 limit)
{
  gint64 next = pool_policy_next_deadline(w->p);
  if (next < 0 || next > limit)
    return FALSE;
  w->now = MAX(w->now, next);
  feed(w, (PoolEvent) { .type = POOL_EV_TIMER });
  return TRUE;
}

static void run_until(World *w, gint64 limit)
{
  for (int guard = 0; guard < 10000 && tick(w, limit); guard++)
    ;
  w->now = MAX(w->now, limit);
}

static void sample(World *w, guint queued)
{
  guint n = 0;
  pid_t pids[64];
  bool busy[64];
  guint64 cpu[64] = { 0 }, rss[64] = { 0 };
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init(&it, w->alive);
  while (g_hash_table_iter_next(&it, &key, NULL) && n < 64) {
    pids[n] = GPOINTER_TO_INT(key);
    busy[n] = g_hash_table_contains(w->busy, key);
    n++;
  }
  PoolSample s = { .queue_known = true, .queued = queued, .n = n, .pids = pids,
                   .busy = busy, .cpu_ticks = cpu, .rss_bytes = rss };
  feed(w, (PoolEvent) { .type = POOL_EV_SAMPLE, .sample = &s });
}

/* ---- static mode --------------------------------------------------------- */

static void test_static_starts_all_and_is_ready(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 3);
  World *w = world_new(&c);
  g_assert_cmpuint(w->started->len, ==, 3);
  g_assert_cmpuint(pool_policy_running(w->p), ==, 3);
  ASSERT_LOGGED(w, "notify READY=1\nMAINPID=1");
  ASSERT_LOGGED(w, "status -");
  /* Nothing to wait for: no timer at all. */
  g_assert_cmpint(pool_policy_next_deadline(w->p), ==, -1);
  g_assert_false(pool_policy_wants_readable(w->p, w->now));
  world_free(w);
}

static void test_ready_waits_for_exec(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 2);
  /* Children that have not reached exec yet hold READY back. */
  PoolPolicy *p = pool_policy_new(&c, 0);
  pool_policy_begin(p, 0);
  g_autoptr(GArray) a = pool_policy_take_actions(p);
  g_assert_cmpuint(a->len, ==, 2);
  pool_policy_handle(p, &(PoolEvent) { .type = POOL_EV_STARTED, .slot = 0, .pid = 10 }, 1);
  pool_policy_handle(p, &(PoolEvent) { .type = POOL_EV_STARTED, .slot = 1, .pid = 11 }, 1);
  pool_policy_handle(p, &(PoolEvent) { .type = POOL_EV_EXEC, .pid = 10 }, 2);
  GArray *b = pool_policy_take_actions(p);
  for (guint i = 0; i < b->len; i++)
    g_assert_cmpint(g_array_index(b, PoolAction, i).type, !=, POOL_ACT_NOTIFY);
  pool_policy_actions_free(b);
  pool_policy_handle(p, &(PoolEvent) { .type = POOL_EV_EXEC, .pid = 11 }, 3);
  b = pool_policy_take_actions(p);
  g_assert_cmpuint(b->len, >=, 1);
  g_assert_cmpint(g_array_index(b, PoolAction, 0).type, ==, POOL_ACT_NOTIFY);
  g_assert_true(g_str_has_prefix(g_array_index(b, PoolAction, 0).text, "READY=1"));
  pool_policy_actions_free(b);
  pool_policy_free(p);
}

static void test_crash_backs_off_then_gives_up(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 1);
  World *w = world_new(&c);
  gint64 last = w->now;
  GArray *gaps = g_array_new(FALSE, FALSE, sizeof(gint64));

  for (int round = 0; round < 4; round++) {
    pid_t pid = g_array_index(w->started, pid_t, w->started->len - 1);
    w->now += 10;
    exit_child(w, pid, EXITED(3));
    guint before = w->started->len;
    while (w->started->len == before && tick(w, w->now + 60000))
      ;
    if (w->started->len == before)
      break;
    gint64 gap = w->now - last;
    g_array_append_val(gaps, gap);
    last = w->now;
  }
  /* 1st restart at once, then 100 ms, 200 ms; the 4th failure gives up. */
  g_assert_cmpuint(gaps->len, ==, 3);
  g_assert_cmpint(g_array_index(gaps, gint64, 1), <, g_array_index(gaps, gint64, 2));
  ASSERT_LOGGED(w, "giving up");
  ASSERT_LOGGED(w, "notify STOPPING=1");
  int status;
  g_assert_true(pool_policy_finished(w->p, &status));
  g_assert_cmpint(status, ==, EXIT_STATUS_CHILD_FAILED);
  g_array_unref(gaps);
  world_free(w);
}

static void test_long_lived_failure_is_no_quick_failure(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 1);
  c.restart_retries = 0;
  World *w = world_new(&c);
  for (int i = 0; i < 5; i++) {
    w->now += c.restart_window_ms + 1;
    exit_child(w, g_array_index(w->started, pid_t, w->started->len - 1), EXITED(1));
    run_until(w, w->now);
  }
  ASSERT_NOT_LOGGED(w, "giving up");
  g_assert_cmpuint(w->started->len, ==, 6);
  world_free(w);
}

static void test_launch_failure_counts_as_quick_failure(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 1);
  c.restart_retries = 0;
  PoolPolicy *p = pool_policy_new(&c, 0);
  pool_policy_begin(p, 0);
  pool_policy_actions_free(pool_policy_take_actions(p));
  pool_policy_handle(p, &(PoolEvent) { .type = POOL_EV_STARTED, .slot = 0, .pid = 10 }, 1);
  pool_policy_handle(p, &(PoolEvent) { .type = POOL_EV_EXEC_FAILED, .pid = 10 }, 2);
  int status;
  g_assert_true(pool_policy_finished(p, &status));
  g_assert_cmpint(status, ==, EXIT_STATUS_CHILD_FAILED);
  pool_policy_free(p);
}

/* Issue 11 item 7: clean exits at once back off, and the lines about one
 * slot are counted instead of repeated. */
static void test_quick_clean_exits_back_off(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 1);
  World *w = world_new(&c);
  gint64 start = w->now;

  for (int i = 0; i < 40; i++) {
    guint before = w->started->len;
    exit_child(w, g_array_index(w->started, pid_t, w->started->len - 1), EXITED(0));
    while (w->started->len == before && tick(w, w->now + 60000))
      ;
  }
  /* 40 restarts at a floor of 100 ms would take 4 s; backing off up to
   * 5 s per start takes well over a minute. */
  g_assert_cmpint(w->now - start, >, 60000);
  ASSERT_NOT_LOGGED(w, "giving up");
  g_assert_cmpuint(count_logged(w, "; starting a new one"), <, 40);
  ASSERT_LOGGED(w, "more times");
  world_free(w);
}

static void test_clean_exit_after_a_while_restarts_at_once(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 1);
  World *w = world_new(&c);
  for (int i = 0; i < 5; i++) {
    w->now += POOL_MIN_LIFETIME_MS + 1;
    exit_child(w, g_array_index(w->started, pid_t, w->started->len - 1), EXITED(0));
    g_assert_cmpint(pool_policy_next_deadline(w->p), <=, w->now);
    run_until(w, w->now);
  }
  g_assert_cmpuint(w->started->len, ==, 6);
  world_free(w);
}

static void test_stop_then_kill(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 2);
  World *w = world_new(&c);
  feed(w, (PoolEvent) { .type = POOL_EV_SIGNAL, .sig = SIGTERM });
  g_assert_cmpuint(count_logged(w, " TERM"), ==, 2);
  run_until(w, w->now + c.stop_timeout_ms);
  g_assert_cmpuint(count_logged(w, " KILL"), ==, 2);
  int status;
  g_assert_false(pool_policy_finished(w->p, &status));
  exit_child(w, 100, SIGKILL);
  exit_child(w, 101, SIGKILL);
  g_assert_true(pool_policy_finished(w->p, &status));
  g_assert_cmpint(status, ==, 0);
  world_free(w);
}

/* ---- reload -------------------------------------------------------------- */

static void test_reload_replaces_in_batches_idle_safe(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 3);
  c.reload_batch = 2;
  World *w = world_new(&c);
  g_hash_table_add(w->busy, GINT_TO_POINTER(100));
  feed(w, (PoolEvent) { .type = POOL_EV_SIGNAL, .sig = SIGHUP });
  ASSERT_LOGGED(w, "notify RELOADING=1");
  g_assert_cmpuint(w->started->len, ==, 5);   /* a batch of 2 */
  /* Probation: the old ones serve on. */
  ASSERT_NOT_LOGGED(w, "kill 100 STOP");
  run_until(w, w->now + POOL_PROBATION_MS);
  ASSERT_LOGGED(w, "check 100");
  ASSERT_LOGGED(w, "check 101");
  ASSERT_LOGGED(w, "kill 101 TERM");
  /* 100 is busy: resumed, not asked to stop. */
  ASSERT_NOT_LOGGED(w, "kill 100 TERM");
  ASSERT_LOGGED(w, "kill 100 CONT");
  exit_child(w, 101, EXITED(0));
  /* It finishes its request. */
  g_hash_table_remove(w->busy, GINT_TO_POINTER(100));
  run_until(w, w->now + POOL_RETIRE_RECHECK_MS);
  ASSERT_LOGGED(w, "kill 100 TERM");
  exit_child(w, 100, EXITED(0));
  /* The next batch: slot 2. */
  g_assert_cmpuint(w->started->len, ==, 6);
  run_until(w, w->now + POOL_PROBATION_MS);
  exit_child(w, 102, EXITED(0));
  ASSERT_LOGGED(w, "notify READY=1");
  g_assert_cmpuint(count_logged(w, "notify READY=1"), ==, 2);
  ASSERT_NOT_LOGGED(w, "restarting");
  g_assert_cmpuint(pool_policy_children(w->p), ==, 3);
  world_free(w);
}

static void test_reload_busy_child_gets_stop_signal_after_timeout(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 1);
  World *w = world_new(&c);
  g_hash_table_add(w->busy, GINT_TO_POINTER(100));
  feed(w, (PoolEvent) { .type = POOL_EV_SIGNAL, .sig = SIGHUP });
  run_until(w, w->now + POOL_PROBATION_MS + c.stop_timeout_ms - 1);
  ASSERT_NOT_LOGGED(w, "kill 100 TERM");
  g_assert_cmpuint(count_logged(w, "check 100"), >, 10);
  run_until(w, w->now + POOL_RETIRE_RECHECK_MS + 1);
  ASSERT_LOGGED(w, "kill 100 TERM");
  run_until(w, w->now + c.stop_timeout_ms);
  ASSERT_LOGGED(w, "kill 100 KILL");
  world_free(w);
}

/* Under load a retiring child may take the next request the moment it
 * finished one, every time it is checked: each request gets the stop
 * timeout, the whole retirement POOL_RETIRE_MAX_TIMEOUTS of them. */
static void test_reload_child_taking_request_after_request(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 1);
  World *w = world_new(&c);
  g_hash_table_add(w->busy, GINT_TO_POINTER(100));
  w->held = 1;
  feed(w, (PoolEvent) { .type = POOL_EV_SIGNAL, .sig = SIGHUP });
  run_until(w, w->now + POOL_PROBATION_MS);
  gint64 retired = w->now;
  /* A new connection every second: never stuck on one request. */
  while (w->now < retired + (POOL_RETIRE_MAX_TIMEOUTS - 1) * (gint64) c.stop_timeout_ms) {
    run_until(w, w->now + 1000);
    w->held++;
    ASSERT_NOT_LOGGED(w, "kill 100 TERM");
  }
  /* Past the bound: the stop signal, though busy. */
  run_until(w, retired + (POOL_RETIRE_MAX_TIMEOUTS + 1) * (gint64) c.stop_timeout_ms);
  ASSERT_LOGGED(w, "kill 100 TERM");
  world_free(w);
}

static void test_reload_with_failing_start_keeps_old(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 2);
  World *w = world_new(&c);
  w->exec_fails = true;
  feed(w, (PoolEvent) { .type = POOL_EV_SIGNAL, .sig = SIGHUP });
  ASSERT_LOGGED(w, "reload stopped: a new child could not be started");
  g_assert_cmpuint(count_logged(w, "start "), ==, 3);
  g_assert_cmpuint(count_logged(w, "notify READY=1"), ==, 2);
  ASSERT_NOT_LOGGED(w, "kill 100");
  ASSERT_NOT_LOGGED(w, "kill 101");
  g_assert_cmpint(pool_policy_next_deadline(w->p), ==, -1);
  world_free(w);
}

static void test_reload_new_child_dies_keeps_old(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 2);
  World *w = world_new(&c);
  feed(w, (PoolEvent) { .type = POOL_EV_SIGNAL, .sig = SIGHUP });
  exit_child(w, 102, EXITED(1));
  ASSERT_LOGGED(w, "reload stopped: a new child died");
  g_assert_cmpuint(count_logged(w, "notify READY=1"), ==, 2);
  ASSERT_NOT_LOGGED(w, "kill 100");
  world_free(w);
}

/* ---- dynamic and ondemand ------------------------------------------------ */

static void test_ondemand_starts_nothing_until_a_connection_waits(void)
{
  PoolConfig c = config(POOL_MODE_ONDEMAND, 0, 4);
  World *w = world_new(&c);
  g_assert_cmpuint(w->started->len, ==, 0);
  ASSERT_LOGGED(w, "notify READY=1");
  g_assert_cmpint(pool_policy_next_deadline(w->p), ==, -1);
  g_assert_true(pool_policy_wants_readable(w->p, w->now));
  feed(w, (PoolEvent) { .type = POOL_EV_READABLE });
  ASSERT_LOGGED(w, "sample");
  sample(w, 1);
  g_assert_cmpuint(w->started->len, ==, 1);
  /* Readability is watched again only a moment later. */
  g_assert_false(pool_policy_wants_readable(w->p, w->now));
  g_assert_true(pool_policy_wants_readable(w->p, w->now + POOL_GROW_REARM_MS));
  world_free(w);
}

static void test_burst_grows_to_max_and_never_beyond(void)
{
  PoolConfig c = config(POOL_MODE_DYNAMIC, 1, 16);
  World *w = world_new(&c);
  g_assert_cmpuint(w->started->len, ==, 1);
  feed(w, (PoolEvent) { .type = POOL_EV_READABLE });
  sample(w, 63);
  g_assert_cmpuint(w->started->len, ==, 16);
  g_assert_false(pool_policy_wants_readable(w->p, w->now + 1000));
  w->now += 1000;
  sample(w, 50);
  g_assert_cmpuint(w->started->len, ==, 16);
  world_free(w);
}

static void test_fresh_children_count_as_capacity(void)
{
  PoolConfig c = config(POOL_MODE_DYNAMIC, 1, 16);
  World *w = world_new(&c);
  w->now += 1000;
  feed(w, (PoolEvent) { .type = POOL_EV_READABLE });
  sample(w, 3);
  g_assert_cmpuint(w->started->len, ==, 4);
  /* The same 3 still wait a moment later: the new ones are on their way. */
  w->now += POOL_GROW_REARM_MS;
  feed(w, (PoolEvent) { .type = POOL_EV_READABLE });
  sample(w, 3);
  g_assert_cmpuint(w->started->len, ==, 4);
  world_free(w);
}

static void test_idle_children_retired_down_to_min(void)
{
  PoolConfig c = config(POOL_MODE_DYNAMIC, 2, 6);
  World *w = world_new(&c);
  feed(w, (PoolEvent) { .type = POOL_EV_READABLE });
  sample(w, 10);
  g_assert_cmpuint(w->started->len, ==, 6);
  /* Sampling while above the minimum, at a bounded rate. */
  gint64 next = pool_policy_next_deadline(w->p);
  g_assert_cmpint(next, >, w->now);
  g_assert_cmpint(next, <=, w->now + POOL_SAMPLE_MS);
  /* One child stays busy. */
  g_hash_table_add(w->busy, GINT_TO_POINTER(103));
  for (int i = 0; i < 40; i++) {
    run_until(w, w->now + POOL_SAMPLE_MS);
    if (logged(w, "sample"))
      sample(w, 0);
    g_ptr_array_set_size(w->log, 0);
    /* Those asked to stop leave. */
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, w->alive);
    GArray *gone = g_array_new(FALSE, FALSE, sizeof(pid_t));
    while (g_hash_table_iter_next(&it, &key, NULL)) {
      pid_t pid = GPOINTER_TO_INT(key);
      PoolStatus st = { 0 };
      pool_policy_fill_status(w->p, w->now, &st);
      for (guint k = 0; k < st.n_children; k++)
        if (st.children[k].pid == pid && st.children[k].state == POOL_CHILD_RETIRING &&
            !g_hash_table_contains(w->stopped, key))
          g_array_append_val(gone, pid);
    }
    for (guint k = 0; k < gone->len; k++)
      exit_child(w, g_array_index(gone, pid_t, k), SIGTERM);
    g_array_unref(gone);
  }
  /* Down to the minimum: the busy one and one more. */
  g_assert_cmpuint(pool_policy_children(w->p), ==, 2);
  g_assert_true(g_hash_table_contains(w->alive, GINT_TO_POINTER(103)));
  /* At the minimum: no timer at all. */
  g_assert_cmpint(pool_policy_next_deadline(w->p), ==, -1);
  world_free(w);
}

static void test_scale_down_of_busy_child_is_cancelled(void)
{
  PoolConfig c = config(POOL_MODE_ONDEMAND, 0, 2);
  World *w = world_new(&c);
  feed(w, (PoolEvent) { .type = POOL_EV_READABLE });
  sample(w, 1);
  g_assert_cmpuint(w->started->len, ==, 1);
  w->now += 1000;
  sample(w, 0);
  w->now += c.idle_timeout_ms;
  /* It got a connection after the sample. */
  w->busy_when_checked = 100;
  sample(w, 0);
  ASSERT_LOGGED(w, "check 100");
  ASSERT_NOT_LOGGED(w, "kill 100 TERM");
  ASSERT_LOGGED(w, "kill 100 CONT");
  g_assert_cmpuint(pool_policy_running(w->p), ==, 1);
  world_free(w);
}

/* ---- recycling ----------------------------------------------------------- */

static void test_max_age_recycles_one_at_a_time(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 4);
  c.max_age_ms = 60000;
  World *w = world_new(&c);
  gint64 t0 = w->now;
  /* The first one is due before the full age (staggered). */
  run_until(w, t0 + 60000);
  g_assert_cmpuint(w->started->len, ==, 5);
  ASSERT_LOGGED(w, "maximum age");
  /* Its old child is retired (idle), the others wait their turn. */
  ASSERT_LOGGED(w, "kill 103 TERM");
  ASSERT_NOT_LOGGED(w, "kill 102 TERM");
  exit_child(w, 103, SIGTERM);
  /* One after the other, each once its predecessor is gone. */
  for (pid_t old = 102; old >= 100; old--) {
    run_until(w, w->now + POOL_PROBATION_MS);
    g_assert_cmpuint(pool_policy_children(w->p), ==, 5);
    g_autofree char *kill_line = g_strdup_printf("kill %d TERM", old);
    ASSERT_LOGGED(w, kill_line);
    exit_child(w, old, SIGTERM);
  }
  g_assert_cmpuint(w->started->len, ==, 8);
  g_assert_cmpuint(pool_policy_children(w->p), ==, 4);
  world_free(w);
}

static void test_max_rss_recycles(void)
{
  PoolConfig c = config(POOL_MODE_STATIC, 0, 2);
  c.max_rss_bytes = 1000;
  World *w = world_new(&c);
  g_assert_cmpint(pool_policy_next_deadline(w->p), ==, w->now + POOL_RSS_CHECK_MS);
  run_until(w, w->now + POOL_RSS_CHECK_MS);
  ASSERT_LOGGED(w, "sample");
  pid_t pids[] = { 100, 101 };
  bool busy[] = { false, false };
  guint64 cpu[] = { 0, 0 }, rss[] = { 500, 5000 };
  PoolSample s = { .n = 2, .pids = pids, .busy = busy, .cpu_ticks = cpu, .rss_bytes = rss };
  feed(w, (PoolEvent) { .type = POOL_EV_SAMPLE, .sample = &s });
  ASSERT_LOGGED(w, "child 101 uses");
  g_assert_cmpuint(w->started->len, ==, 3);
  run_until(w, w->now + POOL_PROBATION_MS);
  ASSERT_LOGGED(w, "kill 101 TERM");
  ASSERT_NOT_LOGGED(w, "kill 100 TERM");
  world_free(w);
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/pool/static/ready", test_static_starts_all_and_is_ready);
  g_test_add_func("/pool/static/ready-waits-for-exec", test_ready_waits_for_exec);
  g_test_add_func("/pool/static/backoff-give-up", test_crash_backs_off_then_gives_up);
  g_test_add_func("/pool/static/long-lived", test_long_lived_failure_is_no_quick_failure);
  g_test_add_func("/pool/static/launch-failure", test_launch_failure_counts_as_quick_failure);
  g_test_add_func("/pool/static/quick-clean-exits", test_quick_clean_exits_back_off);
  g_test_add_func("/pool/static/clean-exit", test_clean_exit_after_a_while_restarts_at_once);
  g_test_add_func("/pool/static/stop", test_stop_then_kill);
  g_test_add_func("/pool/reload/batches", test_reload_replaces_in_batches_idle_safe);
  g_test_add_func("/pool/reload/busy-timeout", test_reload_busy_child_gets_stop_signal_after_timeout);
  g_test_add_func("/pool/reload/request-after-request",
                  test_reload_child_taking_request_after_request);
  g_test_add_func("/pool/reload/failing-start", test_reload_with_failing_start_keeps_old);
  g_test_add_func("/pool/reload/new-child-dies", test_reload_new_child_dies_keeps_old);
  g_test_add_func("/pool/ondemand/first", test_ondemand_starts_nothing_until_a_connection_waits);
  g_test_add_func("/pool/dynamic/burst", test_burst_grows_to_max_and_never_beyond);
  g_test_add_func("/pool/dynamic/fresh", test_fresh_children_count_as_capacity);
  g_test_add_func("/pool/dynamic/scale-down", test_idle_children_retired_down_to_min);
  g_test_add_func("/pool/dynamic/busy-not-retired", test_scale_down_of_busy_child_is_cancelled);
  g_test_add_func("/pool/recycle/max-age", test_max_age_recycles_one_at_a_time);
  g_test_add_func("/pool/recycle/max-rss", test_max_rss_recycles);
  return g_test_run();
}
