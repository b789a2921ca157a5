/* supervisor: keep N children alive on one socket.  See supervisor.h. */
#include "config.h"

#include "supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "children.h"
#include "exit-status.h"
#include "loadwatch.h"
#include "log.h"
#include "status.h"
#include "systemd.h"

typedef struct {
  pid_t pid;                /* running child of this slot, or -1 */
  gint64 started_ms;
  int quick_failures;       /* in a row */
  gint64 restart_at_ms;     /* a restart is due then (0: none) */
  bool replace;             /* to be replaced by the ongoing reload */
  bool probation;           /* reload: the new child must survive its start */
  pid_t previous;           /* reload: the old child, kept until then (or -1) */
  guint64 restarts;         /* for the status: restarts of this slot */
  int last_status;          /* wait status of its previous child, -1: none */
} Slot;

typedef struct {
  pid_t pid;
  int slot;
} Retiring;

/* What the status reports beyond the slots. */
typedef struct {
  guint64 quick_failures;
  guint64 give_ups;
  guint64 spawn_failures;
  guint64 reloads;
  gint64 last_reload_us;    /* wall clock */
  const char *last_reload_result;
  gint64 start_us;          /* wall clock */
  PoolChildStatus *children;
  pid_t *pids;              /* scratch for the load signals */
  bool *busy;
  guint max_queue;          /* highest accept queue seen when sampled */
  char *last_summary;       /* the STATUS= line sent last */
} Counters;

typedef struct {
  const LaunchPlan *plan;
  const SupervisorConfig *cfg;
  Slot *slots;
  GArray *retiring;         /* Retiring: old children asked to stop */
  gint64 retire_deadline_ms;
  gint64 probation_deadline_ms;
  bool reloading;
  bool stopping;
  gint64 stop_deadline_ms;
  bool killed;              /* SIGKILL sent after the stop timeout */
  int exit_status;
  guint64 restarts;
  guint64 watchdog_usec;
  gint64 watchdog_next_ms;
  int timer_fd;
  Counters counters;
  LoadWatch *load;          /* NULL: no load signals for this socket */
} Supervisor;

static gint64 now_ms(void)
{
  return g_get_monotonic_time() / 1000;
}

static int running_count(const Supervisor *sv)
{
  int n = 0;
  for (int i = 0; i < sv->cfg->count; i++)
    n += sv->slots[i].pid > 0;
  return n;
}

/* ---- status -------------------------------------------------------------- */

static PoolChildStatus child_status(const Supervisor *sv, int slot, pid_t pid,
                                    PoolChildState state, gint64 started_ms)
{
  gint64 age_ms = now_ms() - started_ms;
  return (PoolChildStatus) {
    .slot = (guint) slot,
    .pid = pid,
    .state = state,
    .started_us = g_get_real_time() - age_ms * 1000,
    .age_seconds = age_ms / 1000.0,
    .slot_restarts = sv->slots[slot].restarts,
    .last_exit_status = sv->slots[slot].last_status,
  };
}

/* The accept queue, and which running children hold a connection, from
 * the kernel (loadwatch); nothing is changed when that fails. */
static void sample_load(Supervisor *sv, PoolStatus *st, PoolChildStatus *children, guint n)
{
  Counters *c = &sv->counters;
  LoadQueue q;
  guint k = 0;

  if (sv->load == NULL || !loadwatch_queue(sv->load, &q, NULL))
    return;
  c->pids = g_renew(pid_t, c->pids, n + 1);
  c->busy = g_renew(bool, c->busy, n + 1);
  for (guint i = 0; i < n; i++)
    if (children[i].state == POOL_CHILD_IDLE)
      c->pids[k++] = children[i].pid;
  if (!loadwatch_busy(sv->load, c->pids, k, c->busy, NULL))
    return;
  k = 0;
  for (guint i = 0; i < n; i++)
    if (children[i].state == POOL_CHILD_IDLE && c->busy[k++])
      children[i].state = POOL_CHILD_BUSY;
  c->max_queue = MAX(c->max_queue, q.queued);
  st->queue_known = true;
  st->accept_queue = q.queued;
  st->max_accept_queue = c->max_queue;
  st->backlog = q.backlog;
}

/* A snapshot of the pool for the status server and the STATUS= line.
 * Without load signals every running child counts as idle and the queue
 * as unknown. */
static void fill_status(PoolStatus *st, gpointer data)
{
  Supervisor *sv = data;
  Counters *c = &sv->counters;
  guint n = 0;

  c->children = g_renew(PoolChildStatus, c->children,
                        2 * sv->cfg->count + sv->retiring->len);
  for (int i = 0; i < sv->cfg->count; i++) {
    const Slot *slot = &sv->slots[i];
    if (slot->probation && slot->previous > 0)
      c->children[n++] = child_status(sv, i, slot->previous, POOL_CHILD_IDLE, slot->started_ms);
    if (slot->pid > 0)
      c->children[n++] = child_status(sv, i, slot->pid, sv->stopping ? POOL_CHILD_RETIRING :
                                      slot->probation ? POOL_CHILD_STARTING : POOL_CHILD_IDLE,
                                      slot->started_ms);
  }
  for (guint i = 0; i < sv->retiring->len; i++) {
    const Retiring *r = &g_array_index(sv->retiring, Retiring, i);
    c->children[n++] = child_status(sv, r->slot, r->pid, POOL_CHILD_RETIRING,
                                    sv->slots[r->slot].started_ms);
  }
  st->pm = "static";
  st->min_children = st->max_children = (guint) sv->cfg->count;
  st->queue_known = false;
  sample_load(sv, st, c->children, n);
  st->starting = st->idle = st->busy = st->retiring = 0;
  for (guint i = 0; i < n; i++) {
    switch (c->children[i].state) {
    case POOL_CHILD_STARTING: st->starting++; break;
    case POOL_CHILD_IDLE: st->idle++; break;
    case POOL_CHILD_BUSY: st->busy++; break;
    case POOL_CHILD_RETIRING: st->retiring++; break;
    }
  }
  st->total = n;
  st->restarts = sv->restarts;
  st->quick_failures = c->quick_failures;
  st->give_ups = c->give_ups;
  st->spawn_failures = c->spawn_failures;
  st->reloads = c->reloads;
  st->last_reload_us = c->last_reload_us;
  st->last_reload_result = c->last_reload_result;
  st->start_time_us = c->start_us;
  st->uptime_seconds = (g_get_real_time() - c->start_us) / (double) G_USEC_PER_SEC;
  st->children = c->children;
  st->n_children = n;
}

/* The STATUS= line, sent when it says something new. */
static void notify_status(Supervisor *sv)
{
  PoolStatus st = { 0 };

  fill_status(&st, sv);
  g_autofree char *summary = status_summary(&st, sv->stopping ? "stopping" :
                                                 sv->reloading ? "reloading" : NULL);
  if (g_strcmp0(summary, sv->counters.last_summary) == 0)
    return;
  systemd_notifyf("STATUS=%s", summary);
  g_free(sv->counters.last_summary);
  sv->counters.last_summary = g_steal_pointer(&summary);
}

static void describe_exit(int status, char *buf, size_t len)
{
  if (WIFSIGNALED(status))
    snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

/* ---- starting ------------------------------------------------------------ */

static void give_up(Supervisor *sv);

static void schedule_restart(Supervisor *sv, Slot *slot)
{
  int qf = slot->quick_failures;
  gint64 delay = 0;

  if (qf > sv->cfg->restart_retries) {
    log_error("a child failed %d time%s in a row within %d s of its start: giving up",
              qf, qf == 1 ? "" : "s", sv->cfg->restart_window_ms / 1000);
    give_up(sv);
    return;
  }
  /* The first failure restarts at once; after that, back off. */
  if (qf >= 2) {
    delay = SUPERVISOR_BACKOFF_FIRST_MS;
    for (int i = 2; i < qf && delay < SUPERVISOR_BACKOFF_MAX_MS; i++)
      delay *= 2;
    delay = MIN(delay, SUPERVISOR_BACKOFF_MAX_MS);
  }
  slot->restart_at_ms = now_ms() + delay;
}

/* Forks a child and waits until it reached exec; returns its pid, or -1
 * after reporting why it did not get there. */
static pid_t spawn_child(const Supervisor *sv)
{
  Child c;

  children_fork(sv->plan, false, NULL, &c);
  if (c.state == CHILD_STARTING)
    children_await_exec(&c);
  if (c.state != CHILD_RUNNING) {
    children_report_failure(sv->plan, &c);
    return -1;
  }
  return c.pid;
}

/* Starts the child of a slot; a launch failure counts as a quick failure. */
static void start_slot(Supervisor *sv, Slot *slot)
{
  slot->restart_at_ms = 0;
  slot->pid = spawn_child(sv);
  slot->started_ms = now_ms();
  if (slot->pid < 0) {
    sv->counters.spawn_failures++;
    sv->counters.quick_failures++;
    slot->quick_failures++;
    schedule_restart(sv, slot);
  }
}

/* ---- stopping ------------------------------------------------------------ */

static void signal_all(Supervisor *sv, int sig)
{
  for (int i = 0; i < sv->cfg->count; i++) {
    if (sv->slots[i].pid > 0)
      kill(sv->slots[i].pid, sig);
    if (sv->slots[i].probation && sv->slots[i].previous > 0)
      kill(sv->slots[i].previous, sig);
  }
  for (guint i = 0; i < sv->retiring->len; i++)
    kill(g_array_index(sv->retiring, Retiring, i).pid, sig);
}

static void begin_stop(Supervisor *sv)
{
  sv->stopping = true;
  sv->reloading = false;
  for (int i = 0; i < sv->cfg->count; i++)
    sv->slots[i].restart_at_ms = 0;
  systemd_notify("STOPPING=1");
  notify_status(sv);
  signal_all(sv, sv->cfg->stop_signal);
  sv->stop_deadline_ms = now_ms() + sv->cfg->stop_timeout_ms;
}

static void give_up(Supervisor *sv)
{
  sv->exit_status = EXIT_STATUS_CHILD_FAILED;
  sv->counters.give_ups++;
  if (!sv->stopping)
    begin_stop(sv);
}

/* ---- reloading ----------------------------------------------------------- */

static void reload_step(Supervisor *sv);
static void reload_batch(Supervisor *sv);

static bool on_probation(const Supervisor *sv)
{
  for (int i = 0; i < sv->cfg->count; i++)
    if (sv->slots[i].probation)
      return true;
  return false;
}

static void begin_reload(Supervisor *sv)
{
  systemd_notifyf("RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT, g_get_monotonic_time());
  sv->reloading = true;
  sv->counters.reloads++;
  sv->counters.last_reload_us = g_get_real_time();
  sv->counters.last_reload_result = "running";
  for (int i = 0; i < sv->cfg->count; i++)
    sv->slots[i].replace = true;
  notify_status(sv);
  /* A batch under way goes on; the new round starts when it is done. */
  if (sv->retiring->len == 0 && !on_probation(sv))
    reload_step(sv);
}

/* Replaces batches until one has old children to wait for, or all are
 * replaced (then READY=1). */
static void reload_step(Supervisor *sv)
{
  bool more;

  do {
    reload_batch(sv);
    if (sv->stopping || sv->retiring->len > 0 || on_probation(sv))
      return;
    more = false;
    for (int i = 0; i < sv->cfg->count; i++)
      more |= sv->slots[i].replace;
  } while (more);
  sv->reloading = false;
  if (g_strcmp0(sv->counters.last_reload_result, "running") == 0)
    sv->counters.last_reload_result = "done";
  systemd_notify("READY=1");
  notify_status(sv);
}

/* Starts the next batch of new children.  Each old child keeps serving
 * until its replacement has survived SUPERVISOR_PROBATION_MS (see
 * end_probation()). */
static void reload_batch(Supervisor *sv)
{
  int started = 0;

  for (int i = 0; i < sv->cfg->count && started < sv->cfg->reload_batch; i++) {
    Slot *slot = &sv->slots[i];
    if (!slot->replace)
      continue;
    slot->replace = false;
    if (slot->pid < 0) {
      /* Nothing to replace: the slot waits for its scheduled restart. */
      continue;
    }
    pid_t pid = spawn_child(sv);
    if (pid < 0) {
      /* The old child stays: a reload must not take capacity away. */
      log_error("reload stopped: a new child could not be started; "
                "the old children keep running");
      sv->counters.spawn_failures++;
      sv->counters.last_reload_result = "failed";
      for (int j = 0; j < sv->cfg->count; j++)
        sv->slots[j].replace = false;
      break;
    }
    slot->previous = slot->pid;
    slot->pid = pid;
    slot->started_ms = now_ms();
    slot->quick_failures = 0;
    slot->probation = true;
    started++;
  }
  if (started > 0)
    sv->probation_deadline_ms = now_ms() + SUPERVISOR_PROBATION_MS;
}

/* The new children of a batch have had their moment: retire the old ones
 * they replace.  A new child that already died means the new start is
 * broken (a bad php.ini, say): its old child stays and the reload stops,
 * so that a reload never takes capacity away. */
static void end_probation(Supervisor *sv)
{
  bool failed = false;

  for (int i = 0; i < sv->cfg->count; i++) {
    Slot *slot = &sv->slots[i];
    if (!slot->probation)
      continue;
    slot->probation = false;
    if (slot->pid > 0) {
      if (slot->previous > 0) {
        Retiring r = { slot->previous, i };
        kill(slot->previous, sv->cfg->stop_signal);
        g_array_append_val(sv->retiring, r);
      }
    } else {
      failed = true;
      if (slot->previous > 0) {
        slot->pid = slot->previous;
        slot->restart_at_ms = 0;
      } else {
        sv->counters.quick_failures++;
        slot->quick_failures++;
        schedule_restart(sv, slot);
      }
    }
    slot->previous = -1;
  }
  if (sv->retiring->len > 0)
    sv->retire_deadline_ms = now_ms() + sv->cfg->stop_timeout_ms;
  if (failed) {
    log_error("reload stopped: a new child died right after its start; "
              "the old children keep running");
    sv->counters.last_reload_result = "failed";
    for (int i = 0; i < sv->cfg->count; i++)
      sv->slots[i].replace = false;
  }
  if (sv->retiring->len == 0)
    reload_step(sv);
}

/* ---- events -------------------------------------------------------------- */

static bool remove_retiring(Supervisor *sv, pid_t pid)
{
  for (guint i = 0; i < sv->retiring->len; i++) {
    if (g_array_index(sv->retiring, Retiring, i).pid == pid) {
      g_array_remove_index_fast(sv->retiring, i);
      return true;
    }
  }
  return false;
}

static void on_child_exit(Supervisor *sv, pid_t pid, int status)
{
  char how[96];

  if (remove_retiring(sv, pid)) {
    if (sv->retiring->len == 0 && sv->reloading && !on_probation(sv))
      reload_step(sv);
    return;
  }
  for (int i = 0; i < sv->cfg->count; i++) {
    Slot *slot = &sv->slots[i];
    if (slot->probation && slot->previous == pid) {
      /* The old child went on its own: its replacement is already there. */
      slot->previous = -1;
      return;
    }
    if (slot->pid != pid)
      continue;
    slot->pid = -1;
    slot->last_status = status;
    if (sv->stopping)
      return;
    describe_exit(status, how, sizeof how);
    gint64 lived = now_ms() - slot->started_ms;
    if (slot->probation) {
      /* A new child of a reload: end_probation() keeps the old one. */
      log_warning("new child %d %s after %" G_GINT64_FORMAT " ms", (int) pid, how, lived);
      return;
    }
    sv->restarts++;
    slot->restarts++;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      /* A clean exit is the application's own choice (php-cgi leaves after
       * PHP_FCGI_MAX_REQUESTS requests): no failure, but never more than
       * one start per SUPERVISOR_MIN_LIFETIME_MS in a slot. */
      log_info("child %d exited after %" G_GINT64_FORMAT " ms; starting a new one",
               (int) pid, lived);
      slot->quick_failures = 0;
      slot->restart_at_ms = MAX(now_ms(), slot->started_ms + SUPERVISOR_MIN_LIFETIME_MS);
    } else {
      log_warning("child %d %s after %" G_GINT64_FORMAT " ms", (int) pid, how, lived);
      slot->quick_failures = lived < sv->cfg->restart_window_ms ? slot->quick_failures + 1 : 0;
      sv->counters.quick_failures += slot->quick_failures > 0;
      schedule_restart(sv, slot);
    }
    notify_status(sv);
    return;
  }
}

/* Every exited child is reaped, also the application's own children that
 * were re-parented to us (we are a subreaper).  What is left of a child's
 * process group (its session) when it exits goes with it: nothing keeps
 * the listening socket once the child that was started on it is gone. */
static void reap(Supervisor *sv)
{
  siginfo_t si = { 0 };
  int status;

  while (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid > 0) {
    pid_t pid = si.si_pid;
    /* The zombie still holds the pid: the group cannot be another one. */
    kill(-pid, SIGKILL);
    if (waitpid(pid, &status, 0) == pid)
      on_child_exit(sv, pid, status);
    si.si_pid = 0;
  }
}

static void on_signal(Supervisor *sv, int sig)
{
  switch (sig) {
  case SIGCHLD:
    reap(sv);
    break;
  case SIGTERM:
  case SIGINT:
    if (sv->stopping) {
      /* Asked again: do not make the caller wait. */
      signal_all(sv, SIGTERM);
    } else {
      log_notice("stopping %d children", running_count(sv));
      begin_stop(sv);
    }
    break;
  case SIGHUP:
    if (!sv->stopping) {
      log_notice("reloading: replacing %d children, %d at a time", sv->cfg->count,
                 sv->cfg->reload_batch);
      begin_reload(sv);
    }
    break;
  case SIGUSR1:
  case SIGUSR2:
    signal_all(sv, sig);
    break;
  }
}

/* Everything that is due: restarts, the end of the stop or reload grace
 * periods, the watchdog. */
static void on_timer(Supervisor *sv)
{
  gint64 now = now_ms();

  if (sv->stopping && !sv->killed && now >= sv->stop_deadline_ms) {
    log_warning("children did not stop within %d ms: killing them", sv->cfg->stop_timeout_ms);
    signal_all(sv, SIGKILL);
    sv->killed = true;
  }
  if (!sv->stopping && on_probation(sv) && now >= sv->probation_deadline_ms)
    end_probation(sv);
  if (!sv->stopping && sv->retiring->len > 0 && now >= sv->retire_deadline_ms) {
    for (guint i = 0; i < sv->retiring->len; i++)
      kill(g_array_index(sv->retiring, Retiring, i).pid, SIGKILL);
    sv->retire_deadline_ms = G_MAXINT64;
  }
  for (int i = 0; i < sv->cfg->count && !sv->stopping; i++) {
    Slot *slot = &sv->slots[i];
    if (slot->pid < 0 && slot->restart_at_ms != 0 && now >= slot->restart_at_ms) {
      start_slot(sv, slot);
      notify_status(sv);
    }
  }
  if (sv->watchdog_usec && now >= sv->watchdog_next_ms) {
    systemd_notify("WATCHDOG=1");
    sv->watchdog_next_ms = now + MAX(1, (gint64) (sv->watchdog_usec / 2000));
  }
}

/* Arms the timer for the earliest deadline, or disarms it. */
static void arm_timer(Supervisor *sv)
{
  gint64 next = G_MAXINT64;

  if (sv->stopping && !sv->killed)
    next = sv->stop_deadline_ms;
  if (!sv->stopping && sv->retiring->len > 0)
    next = MIN(next, sv->retire_deadline_ms);
  if (!sv->stopping && on_probation(sv))
    next = MIN(next, sv->probation_deadline_ms);
  for (int i = 0; i < sv->cfg->count && !sv->stopping; i++)
    if (sv->slots[i].pid < 0 && sv->slots[i].restart_at_ms != 0)
      next = MIN(next, sv->slots[i].restart_at_ms);
  if (sv->watchdog_usec)
    next = MIN(next, sv->watchdog_next_ms);

  struct itimerspec its = { 0 };
  if (next != G_MAXINT64) {
    /* Absolute on CLOCK_MONOTONIC, which g_get_monotonic_time() uses. */
    next = MAX(next, 1);
    its.it_value.tv_sec = next / 1000;
    its.it_value.tv_nsec = (next % 1000) * 1000000;
  }
  timerfd_settime(sv->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static bool all_gone(const Supervisor *sv)
{
  for (int i = 0; i < sv->cfg->count; i++)
    if (sv->slots[i].probation && sv->slots[i].previous > 0)
      return false;
  return running_count(sv) == 0 && sv->retiring->len == 0;
}

int supervisor_run(const LaunchPlan *plan, const SupervisorConfig *cfg,
                   const SocketPlan *socket)
{
  Supervisor sv = {
    .plan = plan,
    .cfg = cfg,
    .slots = g_new0(Slot, cfg->count),
    .retiring = g_array_new(FALSE, FALSE, sizeof(Retiring)),
    .exit_status = EXIT_STATUS_OK,
    .counters = { .last_reload_result = "none", .start_us = g_get_real_time() },
  };
  sigset_t mask, old;
  int sig_fd;

  sigemptyset(&mask);
  for (const int *s = (const int[]) { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, 0 };
       *s; s++)
    sigaddset(&mask, *s);
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_BLOCK, &mask, &old);
  /* Orphans of the application are re-parented to us, not to init. */
  (void) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  sv.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  if (sig_fd < 0 || sv.timer_fd < 0) {
    log_error("cannot set up the supervisor's event sources: %s", g_strerror(errno));
    socket_remove_own(socket);
    if (sig_fd >= 0)
      close(sig_fd);
    if (sv.timer_fd >= 0)
      close(sv.timer_fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    g_array_unref(sv.retiring);
    g_free(sv.slots);
    return EXIT_STATUS_PRIVILEGE;
  }
  g_autoptr(GError) no_load = NULL;
  sv.load = loadwatch_new(plan->listen_fd, &no_load);
  if (sv.load == NULL)
    log_notice("no load signals (busy children, accept queue) for this socket: %s",
               no_load->message);
  if (systemd_watchdog_enabled(&sv.watchdog_usec) <= 0)
    sv.watchdog_usec = 0;
  sv.watchdog_next_ms = now_ms();

  for (int i = 0; i < cfg->count; i++) {
    sv.slots[i].pid = sv.slots[i].previous = -1;
    sv.slots[i].last_status = -1;
  }
  for (int i = 0; i < cfg->count && !sv.stopping; i++) {
    start_slot(&sv, &sv.slots[i]);
  }
  if (!sv.stopping) {
    systemd_notifyf("READY=1\nMAINPID=%d", (int) getpid());
    notify_status(&sv);
    log_notice("supervising %d children (%d running)", cfg->count, running_count(&sv));
  }

  while (!(sv.stopping && all_gone(&sv))) {
    struct pollfd fds[3] = {
      { .fd = sig_fd, .events = POLLIN },
      { .fd = sv.timer_fd, .events = POLLIN },
      { .fd = cfg->status ? status_server_fd(cfg->status) : -1, .events = POLLIN },
    };
    arm_timer(&sv);
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR)
        continue;
      log_error("poll failed: %s", g_strerror(errno));
      give_up(&sv);
      signal_all(&sv, SIGKILL);
      break;
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sig_fd, &si, sizeof si) == (ssize_t) sizeof si)
        on_signal(&sv, (int) si.ssi_signo);
    }
    if (fds[1].revents & POLLIN) {
      guint64 expirations;
      (void) !read(sv.timer_fd, &expirations, sizeof expirations);
      on_timer(&sv);
    }
    if (fds[2].revents & POLLIN)
      status_server_dispatch(cfg->status, fill_status, &sv);
    /* signalfd coalesces SIGCHLD: reap whatever is there. */
    reap(&sv);
  }

  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
  socket_remove_own(socket);
  close(sig_fd);
  close(sv.timer_fd);
  sigprocmask(SIG_SETMASK, &old, NULL);
  g_array_unref(sv.retiring);
  g_free(sv.slots);
  g_free(sv.counters.children);
  g_free(sv.counters.pids);
  g_free(sv.counters.busy);
  loadwatch_free(sv.load);
  g_free(sv.counters.last_summary);
  return sv.exit_status;
}
