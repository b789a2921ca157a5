/* launch: from a prepared process to the application.  See launch.h. */
#include "config.h"

#include "launch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exit-status.h"
#include "privileges.h"

/* True if fd refers to the same open socket as listen_fd (systemd's
 * StandardOutput=socket): the application must never write its output
 * into the listening socket. */
static bool same_file(int fd, int other)
{
  struct stat a, b;
  return fstat(fd, &a) == 0 && fstat(other, &b) == 0 &&
         a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Marks every fd from 3 up close-on-exec: none reaches the application,
 * while the ones spawn-fcgi still needs if the exec fails (the socket's
 * directory, the PID file, the status pipe) stay usable until then. */
static int cloexec_from_3(void)
{
#ifdef HAVE_CLOSE_RANGE
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
    return 0;
  if (errno != ENOSYS && errno != EINVAL)
    return -1;
#endif
  /* Kernels before 5.11: walk /proc/self/fd. */
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    char *end;
    long fd = strtol(de->d_name, &end, 10);
    if (*end != '\0' || de->d_name[0] == '.' || fd < 3)
      continue;
    int flags = fcntl((int) fd, F_GETFD);
    if (flags >= 0 && fcntl((int) fd, F_SETFD, flags | FD_CLOEXEC) < 0)
      rc = -1;
  }
  closedir(d);
  return rc;
}

/* fd 0: the socket, without close-on-exec; 1 and 2 as the mode says;
 * everything else close-on-exec. */
static bool setup_fds(const LaunchPlan *p, LaunchFailure *f)
{
  if (p->listen_fd != STDIN_FILENO) {
    if (dup2(p->listen_fd, STDIN_FILENO) < 0)
      return launch_fail(f, LAUNCH_STEP_SOCKET_FD, errno, "");
  } else {
    /* dup2(0, 0) would not clear FD_CLOEXEC. */
    int flags = fcntl(STDIN_FILENO, F_GETFD);
    if (flags < 0 || fcntl(STDIN_FILENO, F_SETFD, flags & ~FD_CLOEXEC) < 0)
      return launch_fail(f, LAUNCH_STEP_SOCKET_FD, errno, "");
  }
  /* The socket is blocking, as libfcgi expects. */
  int fl = fcntl(STDIN_FILENO, F_GETFL);
  if (fl < 0 || ((fl & O_NONBLOCK) && fcntl(STDIN_FILENO, F_SETFL, fl & ~O_NONBLOCK) < 0))
    return launch_fail(f, LAUNCH_STEP_SOCKET_FD, errno, "O_NONBLOCK");

  for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++) {
    if ((p->stdio_to_null || same_file(fd, STDIN_FILENO)) &&
        dup2(p->null_fd, fd) < 0)
      return launch_fail(f, LAUNCH_STEP_STDIO, errno, "");
  }

  if (cloexec_from_3() < 0)
    return launch_fail(f, LAUNCH_STEP_CLOSE_FDS, errno, "");
  return true;
}

/* Empty mask, default dispositions: an ignored SIGPIPE or SIGCHLD would
 * survive exec and break the application. */
static bool reset_signals(LaunchFailure *f)
{
  struct sigaction sa = { .sa_handler = SIG_DFL };
  sigset_t none;

  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP)
      continue;
    /* Signals reserved by the C library (32, 33) refuse: that is fine. */
    if (sigaction(sig, &sa, NULL) < 0 && errno != EINVAL)
      return launch_fail(f, LAUNCH_STEP_SIGNALS, errno, "sigaction");
  }
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
    return launch_fail(f, LAUNCH_STEP_SIGNALS, errno, "sigprocmask");
  return true;
}

void launch_exec(const LaunchPlan *p, LaunchFailure *f)
{
  memset(f, 0, sizeof *f);

  if (p->new_session && setsid() < 0)
    (void) launch_fail(f, LAUNCH_STEP_SETSID, errno, "");
  else if (p->limits != NULL &&
           !limits_apply(p->limits, p->limits_ignore_errors, f->detail, sizeof f->detail))
    f->step = LAUNCH_STEP_LIMITS;
  else if (p->chdir_dir != NULL && chdir(p->chdir_dir) < 0)
    (void) launch_fail(f, LAUNCH_STEP_CHDIR, errno, p->chdir_dir);
  else if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    (void) launch_fail(f, LAUNCH_STEP_NO_NEW_PRIVS, errno, "");
  else if (!setup_fds(p, f) || !reset_signals(f))
    ;
  /* Last, so that a failure of any step before can still be cleaned up
   * with root's rights. */
  else if (p->drop && !privileges_drop(p->uid, p->gid, p->groups, p->n_groups, f))
    ;
  else {
    execve(p->exec_path, p->argv, p->envp);
    (void) launch_fail(f, LAUNCH_STEP_EXEC, errno, p->exec_path);
  }
}

int launch_failure_exit_status(const LaunchFailure *f)
{
  if (f->step == LAUNCH_STEP_EXEC)
    return f->err == ENOENT ? EXIT_STATUS_NOT_FOUND : EXIT_STATUS_NOT_EXECUTABLE;
  return EXIT_STATUS_PRIVILEGE;
}

char *launch_failure_describe(const LaunchFailure *f, const LaunchPlan *p)
{
  const char *err = f->err ? g_strerror(f->err) : NULL;

  switch (f->step) {
  case LAUNCH_STEP_NONE:
    return g_strdup("no failure");
  case LAUNCH_STEP_SETSID:
    return g_strdup_printf("setsid failed: %s", err);
  case LAUNCH_STEP_LIMITS:
    return g_strdup_printf("cannot apply limits: %s", f->detail);
  case LAUNCH_STEP_CHDIR:
    return g_strdup_printf("cannot chdir to '%s': %s", f->detail, err);
  case LAUNCH_STEP_SETGROUPS:
    return g_strdup_printf("cannot set supplementary groups (setgroups): %s", err);
  case LAUNCH_STEP_SETRESGID:
    return g_strdup_printf("cannot set gid %s (setresgid): %s", f->detail, err);
  case LAUNCH_STEP_SETRESUID:
    return g_strdup_printf("cannot set uid %s (setresuid): %s", f->detail, err);
  case LAUNCH_STEP_VERIFY:
    return g_strdup_printf("privilege drop did not take effect: %s", f->detail);
  case LAUNCH_STEP_NO_NEW_PRIVS:
    return g_strdup_printf("cannot set no_new_privs: %s", err);
  case LAUNCH_STEP_SOCKET_FD:
    return g_strdup_printf("cannot put the socket on fd 0: %s", err);
  case LAUNCH_STEP_STDIO:
    return g_strdup_printf("cannot redirect stdout/stderr to /dev/null: %s", err);
  case LAUNCH_STEP_CLOSE_FDS:
    return g_strdup_printf("cannot close inherited file descriptors: %s", err);
  case LAUNCH_STEP_SIGNALS:
    return g_strdup_printf("cannot reset signals (%s): %s", f->detail, err);
  case LAUNCH_STEP_EXEC:
    return g_strdup_printf("cannot execute '%s': %s",
                           p && p->argv && p->argv[0] ? p->argv[0] : f->detail, err);
  }
  return g_strdup("unknown failure");
}

static bool removed_variable(const char *entry)
{
  static const char *const names[] = {
    "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
    "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC",
  };
  for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
    size_t len = strlen(names[i]);
    if (strncmp(entry, names[i], len) == 0 && entry[len] == '=')
      return true;
  }
  return false;
}

char **launch_build_environment(char **base, int php_children, char **extra)
{
  g_auto(GStrv) env = NULL;
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();

  for (char **e = base; e && *e; e++)
    if (!removed_variable(*e))
      g_strv_builder_add(b, *e);
  env = g_strv_builder_end(b);

  if (php_children >= 0) {
    g_autofree char *n = g_strdup_printf("%d", php_children);
    env = g_environ_setenv(env, "PHP_FCGI_CHILDREN", n, TRUE);
  }
  for (char **e = extra; e && *e; e++) {
    g_autofree char *key = g_strndup(*e, strcspn(*e, "="));
    env = g_environ_setenv(env, key, *e + strlen(key) + 1, TRUE);
  }
  return g_steal_pointer(&env);
}
