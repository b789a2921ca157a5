/* children: fork mode.  See children.h. */
#include "config.h"

#include "children.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exit-status.h"
#include "log.h"

void children_fork(const LaunchPlan *base, bool detach, Child *c)
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
  if (c->pid == 0) {
    LaunchPlan lp = *base;
    LaunchFailure f;
    close(pipefd[0]);
    lp.new_session = detach;
    lp.stdio_to_null = detach;
    launch_exec(&lp, &f);
    (void) !write(pipefd[1], &f, sizeof f);
    _exit(launch_failure_exit_status(&f));
  }
  close(pipefd[1]);
  if (c->pid < 0) {
    c->state = CHILD_FAILED;
    c->failure.err = errno;
    close(pipefd[0]);
    return;
  }
  c->status_fd = pipefd[0];
  c->state = CHILD_STARTING;
}

void children_await_exec(Child *c)
{
  ssize_t n;
  do
    n = read(c->status_fd, &c->failure, sizeof c->failure);
  while (n < 0 && errno == EINTR);
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
                               gint64 first_fork_ms)
{
  /* The period runs while the children exec: it ends CHILDREN_GRACE_MS after
   * the first fork, and never less than CHILDREN_GRACE_MIN_MS after the last
   * child reached exec. */
  gint64 deadline = MAX(first_fork_ms + CHILDREN_GRACE_MS, now_ms() + CHILDREN_GRACE_MIN_MS);
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

int children_start(const LaunchPlan *plan, int count, PidFile *pid_file)
{
  g_autofree Child *children = g_new0(Child, count);
  sigset_t chld, old;
  int started = 0, failed = 0;

  /* SIGCHLD is taken with sigtimedwait(); each child resets its mask.  An
   * inherited SIG_IGN would make the kernel reap children behind our back. */
  signal(SIGCHLD, SIG_DFL);
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);

  fflush(NULL);
  gint64 first_fork_ms = now_ms();
  for (started = 0; started < count; started++) {
    children_fork(plan, true, &children[started]);
    if (children[started].pid < 0) {
      started++;
      break;
    }
  }
  for (int i = 0; i < started; i++)
    if (children[i].state == CHILD_STARTING)
      children_await_exec(&children[i]);
  watch_grace_period(children, started, &chld, first_fork_ms);

  for (int i = 0; i < started; i++)
    failed += children[i].state != CHILD_RUNNING;
  failed += count - started;

  if (failed > 0) {
    for (int i = 0; i < started; i++)
      if (children[i].state != CHILD_RUNNING)
        children_report_failure(plan, &children[i]);
    stop_running(children, started);
    log_error("%d of %d children failed to start; stopped the others", failed, count);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return EXIT_STATUS_CHILD_FAILED;
  }

  g_autofree pid_t *pids = g_new(pid_t, started);
  for (int i = 0; i < started; i++) {
    printf("spawn-fcgi: child spawned successfully: PID: %d\n", (int) children[i].pid);
    pids[i] = children[i].pid;
  }
  fflush(stdout);
  pid_file_write(pid_file, pids, (size_t) started);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return EXIT_STATUS_OK;
}
