/* supervisor: the effects of the pool policy.  See supervisor.h.
 *
 * One epoll set: the signalfd (SIGCHLD and the control signals), one
 * timerfd armed for the policy's next deadline, the status pipe of each
 * starting child (end of file: it reached exec), and the listening socket
 * while the policy wants to hear about a waiting connection.  Every action
 * of the policy is carried out here, and what happened is fed back. */
#include "config.h"

#include "supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "children.h"
#include "exit-status.h"
#include "loadwatch.h"
#include "log.h"
#include "status.h"
#include "systemd.h"

/* epoll tags: the kind in the upper half, a pid in the lower. */
#define TAG_SIGNAL (1ull << 32)
#define TAG_TIMER (2ull << 32)
#define TAG_LISTEN (3ull << 32)
#define TAG_EXEC (4ull << 32)
#define TAG_STATUS (5ull << 32)

typedef struct {
  pid_t pid;
  int status_fd;            /* until exec: the child's status pipe, else -1 */
  bool failed;              /* failed before exec (reported and fed already) */
} Proc;

typedef struct {
  const LaunchPlan *plan;
  PoolPolicy *policy;
  GArray *procs;            /* Proc: our children */
  LoadWatch *load;          /* NULL: no load signals */
  StatusServer *status;     /* NULL: no status clients */
  GArray *status_pids;      /* scratch for a status snapshot */
  char *last_summary;       /* the STATUS= line sent last */
  int epoll_fd, sig_fd, timer_fd, listen_fd;
  bool listen_watched;
  guint64 watchdog_usec;
  gint64 watchdog_next_ms;
} Supervisor;

static gint64 now_ms(void)
{
  return g_get_monotonic_time() / 1000;
}

static void feed(Supervisor *sv, PoolEvent ev)
{
  pool_policy_handle(sv->policy, &ev, now_ms());
}

static Proc *proc_of(Supervisor *sv, pid_t pid, guint *index)
{
  for (guint i = 0; i < sv->procs->len; i++) {
    Proc *p = &g_array_index(sv->procs, Proc, i);
    if (p->pid == pid) {
      if (index)
        *index = i;
      return p;
    }
  }
  return NULL;
}

/* ---- /proc --------------------------------------------------------------- */

/* The n-th space-separated field of text (0 first), as a number; 0 when
 * there is none. */
static guint64 field_number(const char *text, int n)
{
  g_auto(GStrv) fields = g_strsplit(text, " ", -1);
  if ((guint) n >= g_strv_length(fields))
    return 0;
  return g_ascii_strtoull(fields[n], NULL, 10);
}

/* utime + stime in clock ticks, and the resident set in bytes; 0 when the
 * process is gone. */
static void read_proc_usage(pid_t pid, guint64 *cpu_ticks, guint64 *rss_bytes)
{
  char path[64];
  g_autofree char *stat = NULL;
  g_autofree char *statm = NULL;
  *cpu_ticks = *rss_bytes = 0;

  g_snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
  if (g_file_get_contents(path, &stat, NULL, NULL)) {
    /* After "(comm) ": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime */
    const char *after = strrchr(stat, ')');
    if (after != NULL && after[1] == ' ')
      *cpu_ticks = field_number(after + 2, 11) + field_number(after + 2, 12);
  }
  g_snprintf(path, sizeof path, "/proc/%d/statm", (int) pid);
  if (g_file_get_contents(path, &statm, NULL, NULL))
    *rss_bytes = field_number(statm, 1) * (guint64) sysconf(_SC_PAGESIZE);
}

/* A fingerprint of the sockets pid has open (0: none, or gone): another
 * value at the next check means it closed one connection and took the next. */
static guint64 read_sockets_held(pid_t pid)
{
  char path[64];
  guint64 held = 0;

  g_snprintf(path, sizeof path, "/proc/%d/fd", (int) pid);
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
    char link[64];
    g_autofree char *fd_path = g_build_filename(path, name, NULL);
    ssize_t n = readlink(fd_path, link, sizeof link - 1);
    if (n <= 0)
      continue;
    link[n] = '\0';
    if (g_str_has_prefix(link, "socket:[")) {
      guint64 inode = g_ascii_strtoull(link + strlen("socket:["), NULL, 10);
      held += (inode + 1) * 0x9e3779b97f4a7c15ull;  /* order does not matter */
    }
  }
  return held;
}

/* ---- carrying out actions ------------------------------------------------ */

static void watch_fd(Supervisor *sv, int fd, guint64 tag)
{
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };
  if (epoll_ctl(sv->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
    log_warning("epoll_ctl: %s", g_strerror(errno));
}

static void start_child(Supervisor *sv, int slot)
{
  Child c;

  children_fork(sv->plan, false, NULL, &c);
  if (c.pid < 0) {
    children_report_failure(sv->plan, &c);
    feed(sv, (PoolEvent) { .type = POOL_EV_STARTED, .slot = slot, .pid = -1,
                           .err = c.failure.err });
    return;
  }
  Proc p = { .pid = c.pid, .status_fd = c.status_fd };
  g_array_append_val(sv->procs, p);
  watch_fd(sv, c.status_fd, TAG_EXEC | (guint32) c.pid);
  feed(sv, (PoolEvent) { .type = POOL_EV_STARTED, .slot = slot, .pid = c.pid });
}

/* The status pipe of a starting child: end of file when it reached exec,
 * a LaunchFailure when a step before failed. */
static void take_exec_status(Supervisor *sv, Proc *p)
{
  Child c = { .pid = p->pid, .state = CHILD_FAILED };
  ssize_t n;

  do
    n = read(p->status_fd, &c.failure, sizeof c.failure);
  while (n < 0 && errno == EINTR);
  epoll_ctl(sv->epoll_fd, EPOLL_CTL_DEL, p->status_fd, NULL);
  close(p->status_fd);
  p->status_fd = -1;
  if (n == 0) {
    feed(sv, (PoolEvent) { .type = POOL_EV_EXEC, .pid = p->pid });
    return;
  }
  if (n != (ssize_t) sizeof c.failure)
    memset(&c.failure, 0, sizeof c.failure);
  children_report_failure(sv->plan, &c);
  p->failed = true;
  feed(sv, (PoolEvent) { .type = POOL_EV_EXEC_FAILED, .pid = p->pid });
}

static void check_idle(Supervisor *sv, pid_t pid)
{
  g_autoptr(GError) error = NULL;
  bool busy = false;

  /* Without load signals a child counts as idle: it is retired as soon as
   * asked, as before there were any. */
  if (sv->load && !loadwatch_busy(sv->load, &pid, 1, &busy, &error)) {
    log_warning("cannot tell whether child %d is busy: %s", (int) pid, error->message);
    busy = false;
  }
  feed(sv, (PoolEvent) { .type = POOL_EV_IDLE_CHECKED, .pid = pid, .busy = busy,
                         .held = busy ? read_sockets_held(pid) : 0 });
}

static void take_sample(Supervisor *sv)
{
  guint n = 0, total = sv->procs->len;
  g_autofree pid_t *pids = g_new0(pid_t, total + 1);
  g_autofree bool *busy = g_new0(bool, total + 1);
  g_autofree guint64 *cpu = g_new0(guint64, total + 1);
  g_autofree guint64 *rss = g_new0(guint64, total + 1);
  PoolSample smp = { 0 };
  LoadQueue q;

  for (guint i = 0; i < total; i++) {
    const Proc *p = &g_array_index(sv->procs, Proc, i);
    if (p->status_fd < 0 && !p->failed)
      pids[n++] = p->pid;
  }
  if (sv->load) {
    g_autoptr(GError) error = NULL;
    if (loadwatch_queue(sv->load, &q, &error)) {
      smp.queue_known = true;
      smp.queued = q.queued;
    }
    g_clear_error(&error);
    if (n > 0 && !loadwatch_busy(sv->load, pids, n, busy, &error))
      memset(busy, 0, n * sizeof *busy);
  }
  for (guint i = 0; i < n; i++)
    read_proc_usage(pids[i], &cpu[i], &rss[i]);
  smp.n = n;
  smp.pids = pids;
  smp.busy = busy;
  smp.cpu_ticks = cpu;
  smp.rss_bytes = rss;
  feed(sv, (PoolEvent) { .type = POOL_EV_SAMPLE, .sample = &smp });
}

/* A snapshot for a status client or the STATUS= line: the policy's view,
 * with the accept queue and which children hold a connection read from
 * the kernel now (loadwatch); without load signals the queue is unknown
 * and the policy's last samples say who is busy. */
static void fill_status(PoolStatus *st, gpointer data)
{
  Supervisor *sv = data;
  LoadQueue q;

  supervisor_fill_status(sv->policy, st);
  if (sv->load == NULL || !loadwatch_queue(sv->load, &q, NULL))
    return;
  st->queue_known = true;
  st->accept_queue = q.queued;
  st->max_accept_queue = MAX(st->max_accept_queue, q.queued);
  st->backlog = q.backlog;
  g_array_set_size(sv->status_pids, 0);
  for (guint i = 0; i < st->n_children; i++) {
    PoolChildState cs = st->children[i].state;
    if (cs == POOL_CHILD_IDLE || cs == POOL_CHILD_BUSY)
      g_array_append_val(sv->status_pids, st->children[i].pid);
  }
  g_autofree bool *busy = g_new0(bool, sv->status_pids->len + 1);
  if (!loadwatch_busy(sv->load, (pid_t *) (void *) sv->status_pids->data,
                      sv->status_pids->len, busy, NULL))
    return;
  st->idle = st->busy = 0;
  for (guint i = 0, k = 0; i < st->n_children; i++) {
    PoolChildStatus *c = &st->children[i];
    if (c->state != POOL_CHILD_IDLE && c->state != POOL_CHILD_BUSY)
      continue;
    c->state = busy[k++] ? POOL_CHILD_BUSY : POOL_CHILD_IDLE;
    st->busy += c->state == POOL_CHILD_BUSY;
    st->idle += c->state == POOL_CHILD_IDLE;
  }
}

/* The STATUS= line, sent when it says something new. */
static void notify_status(Supervisor *sv, const char *phase)
{
  PoolStatus st = { 0 };

  fill_status(&st, sv);
  g_autofree char *summary = status_summary(&st, phase);
  if (g_strcmp0(summary, sv->last_summary) == 0)
    return;
  systemd_notifyf("STATUS=%s", summary);
  g_free(sv->last_summary);
  sv->last_summary = g_steal_pointer(&summary);
}

static void notify(const char *text)
{
  /* systemd wants the time of a reload's start, on its clock. */
  if (strcmp(text, "RELOADING=1") == 0)
    systemd_notifyf("RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT, g_get_monotonic_time());
  else
    systemd_notify(text);
}

static void say(const PoolAction *a)
{
  switch (a->level) {
  case G_LOG_LEVEL_ERROR:
  case G_LOG_LEVEL_CRITICAL: log_error("%s", a->text); break;
  case G_LOG_LEVEL_WARNING: log_warning("%s", a->text); break;
  case G_LOG_LEVEL_MESSAGE: log_notice("%s", a->text); break;
  default: log_info("%s", a->text); break;
  }
}

/* Carries out what the policy decided, and what it decides in turn about
 * the results, until nothing is left. */
static void run_actions(Supervisor *sv)
{
  GArray *actions;

  while ((actions = pool_policy_take_actions(sv->policy))->len > 0) {
    for (guint i = 0; i < actions->len; i++) {
      const PoolAction *a = &g_array_index(actions, PoolAction, i);
      switch (a->type) {
      case POOL_ACT_START: start_child(sv, a->slot); break;
      case POOL_ACT_SIGNAL: kill(a->pid, a->sig); break;
      case POOL_ACT_CHECK_IDLE: check_idle(sv, a->pid); break;
      case POOL_ACT_SAMPLE: take_sample(sv); break;
      case POOL_ACT_NOTIFY: notify(a->text); break;
      case POOL_ACT_STATUS: notify_status(sv, a->text); break;
      case POOL_ACT_LOG: say(a); break;
      }
    }
    pool_policy_actions_free(actions);
  }
  pool_policy_actions_free(actions);
}

/* ---- events -------------------------------------------------------------- */

/* Every child that exited or stopped, also the application's own children
 * re-parented to us (we are a subreaper).  What is left of an exited
 * child's process group (its session) goes with it: nothing keeps the
 * listening socket once the child that was started on it is gone. */
static void reap(Supervisor *sv)
{
  siginfo_t si;
  int status;

  for (;;) {
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT) != 0 || si.si_pid <= 0)
      break;
    pid_t pid = si.si_pid;
    if (si.si_code == CLD_STOPPED || si.si_code == CLD_TRAPPED) {
      if (waitpid(pid, &status, WUNTRACED | WNOHANG) == pid && WIFSTOPPED(status))
        feed(sv, (PoolEvent) { .type = POOL_EV_STOPPED, .pid = pid });
      continue;
    }
    /* The zombie still holds the pid: the group cannot be another one. */
    kill(-pid, SIGKILL);
    if (waitpid(pid, &status, 0) != pid)
      continue;
    guint index;
    Proc *p = proc_of(sv, pid, &index);
    bool failed = false;
    if (p != NULL) {
      /* Dead: its status pipe says at once whether it reached exec. */
      if (p->status_fd >= 0)
        take_exec_status(sv, p);
      failed = p->failed;
      g_array_remove_index_fast(sv->procs, index);
    }
    if (!failed)
      feed(sv, (PoolEvent) { .type = POOL_EV_EXITED, .pid = pid, .status = status });
  }
}

static void on_signals(Supervisor *sv)
{
  struct signalfd_siginfo si;
  while (read(sv->sig_fd, &si, sizeof si) == (ssize_t) sizeof si) {
    if (si.ssi_signo == SIGCHLD)
      reap(sv);
    else
      feed(sv, (PoolEvent) { .type = POOL_EV_SIGNAL, .sig = (int) si.ssi_signo });
    run_actions(sv);
  }
}

static void on_timer(Supervisor *sv)
{
  guint64 expirations;
  gint64 now = now_ms();

  (void) !read(sv->timer_fd, &expirations, sizeof expirations);
  if (sv->watchdog_usec && now >= sv->watchdog_next_ms) {
    systemd_notify("WATCHDOG=1");
    sv->watchdog_next_ms = now + MAX(1, (gint64) (sv->watchdog_usec / 2000));
  }
  feed(sv, (PoolEvent) { .type = POOL_EV_TIMER });
}

/* Arms the timer for the earliest deadline, or disarms it; watches the
 * listening socket only while the policy wants to hear about it. */
static void prepare_wait(Supervisor *sv)
{
  gint64 next = pool_policy_next_deadline(sv->policy);
  struct itimerspec its = { 0 };

  if (sv->watchdog_usec)
    next = next < 0 ? sv->watchdog_next_ms : MIN(next, sv->watchdog_next_ms);
  if (next >= 0) {
    /* Absolute on CLOCK_MONOTONIC, which g_get_monotonic_time() uses. */
    next = MAX(next, 1);
    its.it_value.tv_sec = next / 1000;
    its.it_value.tv_nsec = (next % 1000) * 1000000;
  }
  timerfd_settime(sv->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);

  bool want = pool_policy_wants_readable(sv->policy, now_ms());
  if (want != sv->listen_watched) {
    if (want)
      watch_fd(sv, sv->listen_fd, TAG_LISTEN);
    else
      epoll_ctl(sv->epoll_fd, EPOLL_CTL_DEL, sv->listen_fd, NULL);
    sv->listen_watched = want;
  }
}

static void dispatch(Supervisor *sv, guint64 tag)
{
  guint64 kind = tag & ~0xffffffffull;

  if (kind == TAG_SIGNAL) {
    on_signals(sv);
  } else if (kind == TAG_TIMER) {
    on_timer(sv);
  } else if (kind == TAG_LISTEN) {
    if (sv->listen_watched)
      feed(sv, (PoolEvent) { .type = POOL_EV_READABLE });
  } else if (kind == TAG_STATUS) {
    status_server_dispatch(sv->status, fill_status, sv);
  } else if (kind == TAG_EXEC) {
    Proc *p = proc_of(sv, (pid_t) (tag & 0xffffffffull), NULL);
    if (p != NULL && p->status_fd >= 0)
      take_exec_status(sv, p);
  }
  run_actions(sv);
}

/* ---- set-up -------------------------------------------------------------- */

static gboolean open_event_sources(Supervisor *sv, const sigset_t *mask)
{
  sv->sig_fd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
  sv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  sv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (sv->sig_fd < 0 || sv->timer_fd < 0 || sv->epoll_fd < 0)
    return FALSE;
  watch_fd(sv, sv->sig_fd, TAG_SIGNAL);
  watch_fd(sv, sv->timer_fd, TAG_TIMER);
  return TRUE;
}

static void close_event_sources(Supervisor *sv)
{
  for (guint i = 0; i < sv->procs->len; i++)
    if (g_array_index(sv->procs, Proc, i).status_fd >= 0)
      close(g_array_index(sv->procs, Proc, i).status_fd);
  if (sv->sig_fd >= 0)
    close(sv->sig_fd);
  if (sv->timer_fd >= 0)
    close(sv->timer_fd);
  if (sv->epoll_fd >= 0)
    close(sv->epoll_fd);
}

static LoadWatch *open_load_watch(const PoolConfig *cfg, int listen_fd)
{
  g_autoptr(GError) error = NULL;
  LoadWatch *lw = loadwatch_new(listen_fd, &error);

  if (lw == NULL && cfg->mode != POOL_MODE_STATIC)
    log_warning("no load signals for this socket (%s): the pool grows by one child "
                "per waiting connection and treats every child as idle", error->message);
  else if (lw == NULL)
    log_notice("no load signals (busy children, accept queue) for this socket: %s",
               error->message);
  return lw;
}

int supervisor_run(const LaunchPlan *plan, const SupervisorConfig *config,
                   const SocketPlan *socket)
{
  PoolConfig cfg = config->pool;
  Supervisor sv = {
    .plan = plan,
    .procs = g_array_new(FALSE, FALSE, sizeof(Proc)),
    .sig_fd = -1, .timer_fd = -1, .epoll_fd = -1,
    .listen_fd = plan->listen_fd,
    .status = config->status,
    .status_pids = g_array_new(FALSE, FALSE, sizeof(pid_t)),
  };
  sigset_t mask, old;
  int status = EXIT_STATUS_OK;

  sigemptyset(&mask);
  for (const int *s = (const int[]) { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, 0 };
       *s; s++)
    sigaddset(&mask, *s);
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_BLOCK, &mask, &old);
  /* Orphans of the application are re-parented to us, not to init. */
  (void) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  if (!open_event_sources(&sv, &mask)) {
    log_error("cannot set up the supervisor's event sources: %s", g_strerror(errno));
    socket_remove_own(socket);
    close_event_sources(&sv);
    sigprocmask(SIG_SETMASK, &old, NULL);
    g_array_unref(sv.procs);
    g_array_unref(sv.status_pids);
    return EXIT_STATUS_PRIVILEGE;
  }
  if (systemd_watchdog_enabled(&sv.watchdog_usec) <= 0)
    sv.watchdog_usec = 0;
  sv.watchdog_next_ms = now_ms();
  sv.load = open_load_watch(&cfg, sv.listen_fd);
  if (sv.status)
    watch_fd(&sv, status_server_fd(sv.status), TAG_STATUS);

  cfg.main_pid = getpid();
  sv.policy = pool_policy_new(&cfg, now_ms());
  pool_policy_begin(sv.policy, now_ms());
  run_actions(&sv);

  while (!pool_policy_finished(sv.policy, &status)) {
    struct epoll_event events[16];
    prepare_wait(&sv);
    int n = epoll_wait(sv.epoll_fd, events, G_N_ELEMENTS(events), -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      log_error("epoll_wait failed: %s", g_strerror(errno));
      status = EXIT_STATUS_CHILD_FAILED;
      for (guint i = 0; i < sv.procs->len; i++)
        kill(g_array_index(sv.procs, Proc, i).pid, SIGKILL);
      break;
    }
    for (int i = 0; i < n; i++)
      dispatch(&sv, events[i].data.u64);
    /* signalfd coalesces SIGCHLD: reap whatever is there. */
    reap(&sv);
    run_actions(&sv);
  }

  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
  socket_remove_own(socket);
  close_event_sources(&sv);
  sigprocmask(SIG_SETMASK, &old, NULL);
  g_clear_pointer(&sv.load, loadwatch_free);
  pool_policy_free(sv.policy);
  g_array_unref(sv.procs);
  g_array_unref(sv.status_pids);
  g_free(sv.last_summary);
  return status;
}

void supervisor_fill_status(const PoolPolicy *policy, PoolStatus *out)
{
  gint64 to_wall_us = g_get_real_time() - g_get_monotonic_time();

  pool_policy_fill_status(policy, now_ms(), out);
  out->start_time_us += to_wall_us;
  if (out->last_reload_us != 0)
    out->last_reload_us += to_wall_us;
  for (guint i = 0; i < out->n_children; i++)
    out->children[i].started_us += to_wall_us;
  out->version = PACKAGE_VERSION;
}
