/* children: fork mode.  See children.h. */
#include "config.h"

#include "children.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exit-status.h"
#include "log.h"
#include "settings.h"

/* In the child: waits until the parent opens the gate (one byte per
 * child).  End of file means the parent gave up or died: do not start. */
static bool pass_gate(const int gate[2])
{
  char go;
  ssize_t n;

  close(gate[1]);
  do
    n = read(gate[0], &go, 1);
  while (n < 0 && errno == EINTR);
  close(gate[0]);
  return n == 1;
}

void children_fork(const LaunchPlan *base, bool detach, const int gate[2], Child *c)
{
  int pipefd[2];

  c->pid = -1;
  c->status_fd = -1;
  if (pipe2(pipefd, O_CLOEXEC) < 0) {
    c->state = CHILD_FAILED;
    c->failure.err = errno;
    return;
  }
  c->pid = fork();
  int fork_errno = errno;
  if (c->pid == 0) {
    LaunchPlan lp = *base;
    LaunchFailure f;
    close(pipefd[0]);
    if (gate && !pass_gate(gate))
      _exit(EXIT_STATUS_CHILD_FAILED);
    lp.stdio_to_null = detach;
    launch_exec(&lp, &f);
    (void) !write(pipefd[1], &f, sizeof f);
    _exit(launch_failure_exit_status(&f));
  }
  close(pipefd[1]);
  if (c->pid < 0) {
    c->state = CHILD_FAILED;
    c->failure.err = fork_errno;
    close(pipefd[0]);
    return;
  }
  c->status_fd = pipefd[0];
  c->state = CHILD_STARTING;
}

/* n: what the read of the status pipe returned; 0 (end of file) means
 * the child reached exec. */
static void take_exec_status(Child *c, ssize_t n)
{
  close(c->status_fd);
  c->status_fd = -1;
  if (n == 0) {
    c->state = CHILD_RUNNING;
    return;
  }
  if (n != (ssize_t) sizeof c->failure) {
    memset(&c->failure, 0, sizeof c->failure);
    c->failure.step = LAUNCH_STEP_NONE;
  }
  c->state = CHILD_FAILED;
  while (waitpid(c->pid, &c->wait_status, 0) < 0 && errno == EINTR)
    ;
}

void children_await_exec(Child *c)
{
  ssize_t n;
  do
    n = read(c->status_fd, &c->failure, sizeof c->failure);
  while (n < 0 && errno == EINTR);
  take_exec_status(c, n);
}

/* Waits for all starting children at once: whichever reaches exec first is
 * taken first, so the parent wakes up once for many children instead of
 * once for each in turn. */
static void await_all_exec(Child *children, int count)
{
  g_autofree struct pollfd *fds = g_new(struct pollfd, count);
  g_autofree int *which = g_new(int, count);
  int waiting = 0;

  for (int i = 0; i < count; i++)
    if (children[i].state == CHILD_STARTING) {
      fds[waiting] = (struct pollfd) { .fd = children[i].status_fd, .events = POLLIN };
      which[waiting++] = i;
    }
  while (waiting > 0) {
    if (poll(fds, (nfds_t) waiting, -1) < 0) {
      if (errno == EINTR)
        continue;
      /* Cannot happen with valid fds; fall back to one at a time. */
      for (int j = 0; j < waiting; j++)
        children_await_exec(&children[which[j]]);
      return;
    }
    for (int j = 0; j < waiting;) {
      if (fds[j].revents == 0) {
        j++;
        continue;
      }
      children_await_exec(&children[which[j]]);
      waiting--;
      fds[j] = fds[waiting];
      which[j] = which[waiting];
    }
  }
}

static gint64 now_ms(void)
{
  return g_get_monotonic_time() / 1000;
}

/* Marks children that have exited; returns how many still run. */
static int reap_early_deaths(Child *children, int n)
{
  int running = 0;
  for (int i = 0; i < n; i++) {
    Child *c = &children[i];
    if (c->state == CHILD_RUNNING && waitpid(c->pid, &c->wait_status, WNOHANG) == c->pid)
      c->state = CHILD_DIED;
    running += c->state == CHILD_RUNNING;
  }
  return running;
}

/* One grace period for all children together: a child that exits right
 * after exec (bad configuration, missing library) is caught here. */
static void watch_grace_period(Child *children, int n, const sigset_t *chld,
                               gint64 gate_opened_ms)
{
  /* The period runs while the children exec: it ends CHILDREN_GRACE_MS after
   * they were let go, and never less than CHILDREN_GRACE_MIN_MS after the
   * last child reached exec. */
  gint64 deadline = MAX(gate_opened_ms + CHILDREN_GRACE_MS, now_ms() + CHILDREN_GRACE_MIN_MS);
  int running = 0;

  for (int i = 0; i < n; i++)
    running += children[i].state == CHILD_RUNNING;
  while (running > 0) {
    gint64 left = deadline - now_ms();
    if (left <= 0)
      break;
    struct timespec ts = { left / 1000, (left % 1000) * 1000000 };
    if (sigtimedwait(chld, NULL, &ts) < 0 && errno == EAGAIN)
      break;
    running = reap_early_deaths(children, n);
  }
  reap_early_deaths(children, n);
}

static void stop_running(Child *children, int n)
{
  for (int i = 0; i < n; i++)
    if (children[i].state == CHILD_RUNNING)
      kill(children[i].pid, SIGTERM);
  for (int i = 0; i < n; i++) {
    Child *c = &children[i];
    if (c->state != CHILD_RUNNING)
      continue;
    /* php-cgi and friends stop at once on SIGTERM; do not wait forever. */
    for (int tries = 0; tries < 50; tries++) {
      if (waitpid(c->pid, &c->wait_status, WNOHANG) == c->pid)
        break;
      g_usleep(20000);
      if (tries == 49) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &c->wait_status, 0);
      }
    }
  }
}

void children_report_failure(const LaunchPlan *plan, const Child *c)
{
  if (c->pid < 0) {
    log_error("cannot start child: %s", g_strerror(c->failure.err));
  } else if (c->state == CHILD_FAILED && c->failure.step != LAUNCH_STEP_NONE) {
    g_autofree char *what = launch_failure_describe(&c->failure, plan);
    log_error("child %d failed: %s", (int) c->pid, what);
  } else if (WIFSIGNALED(c->wait_status)) {
    log_error("child %d was killed by signal %d (%s) right after start", (int) c->pid,
              WTERMSIG(c->wait_status), strsignal(WTERMSIG(c->wait_status)));
  } else {
    log_error("child %d exited with status %d right after start", (int) c->pid,
              WEXITSTATUS(c->wait_status));
  }
}

/* Lets every child waiting at the gate go on; returns 0 or an errno.
 * count <= PIPE_BUF, so the write is atomic: either all children go on or
 * none does. */
G_STATIC_ASSERT(SETTINGS_MAX_CHILDREN <= PIPE_BUF);

static int open_gate(int gate_w, int count)
{
  char go[SETTINGS_MAX_CHILDREN];
  ssize_t n;

  memset(go, 'g', (size_t) count);
  do
    n = write(gate_w, go, (size_t) count);
  while (n < 0 && errno == EINTR);
  int err = n == count ? 0 : n < 0 ? errno : EIO;
  close(gate_w);
  return err;
}

/* A fork failed: the children forked so far wait at the gate and have not
 * started anything.  Closing the gate makes them exit; reap them. */
static void abandon_at_gate(int gate_w, Child *children, int started)
{
  if (gate_w >= 0)
    close(gate_w);
  for (int i = 0; i < started; i++) {
    Child *c = &children[i];
    if (c->pid > 0)
      while (waitpid(c->pid, &c->wait_status, 0) < 0 && errno == EINTR)
        ;
    if (c->status_fd >= 0)
      close(c->status_fd);
  }
}

int children_start(const LaunchPlan *plan, int count, PidFile *pid_file)
{
  g_autofree Child *children = g_new0(Child, count);
  sigset_t chld, old;
  int gate[2];
  int started, failed = 0;

  g_assert(count > 0 && count <= SETTINGS_MAX_CHILDREN);
  /* The children are all forked first and wait at a gate: forking is not
   * slowed down by the applications already starting up, and if a fork
   * fails, no application has been started. */
  if (pipe2(gate, O_CLOEXEC) < 0) {
    log_error("cannot start children: pipe: %s", g_strerror(errno));
    return EXIT_STATUS_CHILD_FAILED;
  }

  /* SIGCHLD is taken with sigtimedwait(); each child resets its mask.  An
   * inherited SIG_IGN would make the kernel reap children behind our back. */
  signal(SIGCHLD, SIG_DFL);
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);

  fflush(NULL);
  for (started = 0; started < count; started++) {
    Child *c = &children[started];
    children_fork(plan, true, gate, c);
    if (c->pid < 0) {
      close(gate[0]);
      abandon_at_gate(gate[1], children, started);
      log_error("cannot start child %d of %d: %s; no child was started", started + 1, count,
                g_strerror(c->failure.err));
      sigprocmask(SIG_SETMASK, &old, NULL);
      return EXIT_STATUS_CHILD_FAILED;
    }
  }
  /* Our read end stays open during the write: with every child gone, the
   * write must not raise SIGPIPE. */
  int err = open_gate(gate[1], count);
  gint64 gate_opened_ms = now_ms();
  close(gate[0]);
  if (err != 0) {
    abandon_at_gate(-1, children, count);
    log_error("cannot start children: write to their start pipe: %s; no child was started",
              g_strerror(err));
    sigprocmask(SIG_SETMASK, &old, NULL);
    return EXIT_STATUS_CHILD_FAILED;
  }

  await_all_exec(children, count);
  watch_grace_period(children, count, &chld, gate_opened_ms);

  for (int i = 0; i < count; i++)
    failed += children[i].state != CHILD_RUNNING;

  if (failed > 0) {
    for (int i = 0; i < count; i++)
      if (children[i].state != CHILD_RUNNING)
        children_report_failure(plan, &children[i]);
    stop_running(children, count);
    log_error("%d of %d children failed to start; stopped the others", failed, count);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return EXIT_STATUS_CHILD_FAILED;
  }

  /* A PID file that does not name every child is a failed start. */
  g_autofree pid_t *pids = g_new(pid_t, count);
  g_autoptr(GError) error = NULL;
  for (int i = 0; i < count; i++)
    pids[i] = children[i].pid;
  if (!pid_file_write(pid_file, pids, (size_t) count, &error)) {
    stop_running(children, count);
    log_error("%s; stopped the %d children", error->message, count);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return EXIT_STATUS_CHILD_FAILED;
  }
  for (int i = 0; i < count; i++)
    printf("spawn-fcgi: child spawned successfully: PID: %d\n", (int) pids[i]);
  fflush(stdout);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return EXIT_STATUS_OK;
}
