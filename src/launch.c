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
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exit-status.h"
#include "privileges.h"

/* ---- the steps: each returns false with errno set ------------------------ */

/* After setsid() failed: a process group leader cannot start a session
 * (--no-fork as a job of an interactive shell, or made one by its
 * supervisor); it keeps its pid, which daemontools and runit watch, and
 * gives up the terminal instead.  Any other failure is one. */
static bool may_keep_session(void)
{
  return errno == EPERM && getpgrp() == getpid();
}

/* The application must not have the caller's controlling terminal: with
 * it, ioctl(TIOCSTI) pushes input into the caller's shell (root's), as in
 * su (CVE-2016-2779) and bubblewrap (CVE-2017-5226). */
static bool no_controlling_terminal(void)
{
  int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty < 0 && errno == ENXIO)
    return true;                  /* none */
  if (tty < 0) {
    /* No /dev/tty here (a chroot): the terminal can only be one of ours. */
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
      (void) ioctl(fd, TIOCNOTTY);
    return true;
  }
  /* A session leader's TIOCNOTTY hangs up its foreground group: us. */
  struct sigaction ignore = { .sa_handler = SIG_IGN }, old;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGHUP, &ignore, &old);
  int rc = ioctl(tty, TIOCNOTTY);
  int err = errno;
  sigaction(SIGHUP, &old, NULL);
  close(tty);
  if (rc < 0) {
    errno = err;
    return false;
  }
  tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty < 0)
    return errno == ENXIO;
  close(tty);
  errno = EBUSY;
  return false;
}

/* The default personality: no "ASLR off" (setarch -R) or other flags of
 * the caller; the execution domain (linux32's uname) stays.  A service
 * with systemd's LockPersonality=yes may not even ask (its seccomp filter
 * answers EPERM to any other value than the locked one): its personality
 * is the one the unit chose, and nobody can change it, so that is no
 * failure. */
static bool reset_personality(void)
{
  int cur = personality(0xffffffff);
  if (cur < 0)
    return errno == EPERM;
  return (cur & ~PER_MASK) == 0 || personality((unsigned long) (cur & PER_MASK)) >= 0;
}

/* fd 0: the socket, blocking, without close-on-exec. */
static bool socket_on_fd0(int listen_fd)
{
  if (listen_fd != STDIN_FILENO) {
    if (dup2(listen_fd, STDIN_FILENO) < 0)
      return false;
  } else {
    /* dup2(0, 0) would not clear FD_CLOEXEC. */
    int flags = fcntl(STDIN_FILENO, F_GETFD);
    if (flags < 0 || fcntl(STDIN_FILENO, F_SETFD, flags & ~FD_CLOEXEC) < 0)
      return false;
  }
  /* The socket is blocking, as libfcgi expects. */
  int fl = fcntl(STDIN_FILENO, F_GETFL);
  return fl >= 0 && (!(fl & O_NONBLOCK) || fcntl(STDIN_FILENO, F_SETFL, fl & ~O_NONBLOCK) >= 0);
}

/* True if fd refers to the same open socket as other (systemd's
 * StandardOutput=socket): the application must never write its output
 * into the listening socket. */
static bool same_file(int fd, int other)
{
  struct stat a, b;
  return fstat(fd, &a) == 0 && fstat(other, &b) == 0 &&
         a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* fds 1 and 2 on /dev/null in fork mode, and whenever they are the
 * socket. */
static bool stdio_as_planned(const LaunchPlan *p)
{
  for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++)
    if ((p->stdio_to_null || same_file(fd, STDIN_FILENO)) && dup2(p->null_fd, fd) < 0)
      return false;
  return true;
}

/* Kernels before 5.11: walk /proc/self/fd with getdents64 and a buffer on
 * the stack (opendir() would allocate). */
static bool cloexec_walk_proc(void)
{
  int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0)
    return false;
  char buf[4096] __attribute__((aligned(8)));
  ssize_t n;
  bool ok = true;
  while ((n = getdents64(dir, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < n;) {
      const struct dirent64 *de = (const struct dirent64 *) (buf + off);
      char *end;
      long fd = strtol(de->d_name, &end, 10);
      off += de->d_reclen;
      if (*end != '\0' || de->d_name[0] == '.' || fd < 3 || fd == dir)
        continue;
      int flags = fcntl((int) fd, F_GETFD);
      if (flags >= 0 && fcntl((int) fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        ok = false;
    }
  }
  int err = errno;
  close(dir);
  errno = err;
  return ok && n == 0;
}

/* Marks every fd from 3 up close-on-exec: none reaches the application,
 * while the ones spawn-fcgi still needs if the exec fails (the socket's
 * directory, the PID file, the status pipe) stay usable until then. */
static bool cloexec_from_3(void)
{
#ifdef HAVE_CLOSE_RANGE
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
    return true;
  if (errno != ENOSYS && errno != EINVAL)
    return false;
#endif
  return cloexec_walk_proc();
}

/* Empty mask, default dispositions: an ignored SIGPIPE or SIGCHLD would
 * survive exec and break the application.  *what: the call that failed. */
static bool reset_signals(const char **what)
{
  struct sigaction sa = { .sa_handler = SIG_DFL };
  sigset_t none;

  sigemptyset(&sa.sa_mask);
  *what = "sigaction";
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP)
      continue;
    /* Signals reserved by the C library (32, 33) refuse: that is fine. */
    if (sigaction(sig, &sa, NULL) < 0 && errno != EINVAL)
      return false;
  }
  *what = "sigprocmask";
  sigemptyset(&none);
  return sigprocmask(SIG_SETMASK, &none, NULL) == 0;
}

/* After the drop, which clears the parent-death signal: the application
 * gets sig when the supervisor dies.  If it died before, we were
 * re-parented already, and the application must not start. */
static bool die_with_parent(pid_t parent, int sig)
{
  if (prctl(PR_SET_PDEATHSIG, (unsigned long) sig, 0, 0, 0) < 0)
    return false;
  if (getppid() != parent) {
    errno = ESRCH;
    return false;
  }
  return true;
}

/* ---- the sequence ---------------------------------------------------------- */

static bool launch_steps(const LaunchPlan *p, LaunchFailure *f)
{
  const char *what;

  if (setsid() < 0 && !may_keep_session())
    return launch_fail(f, LAUNCH_STEP_SETSID, errno, "");
  if (!no_controlling_terminal())
    return launch_fail(f, LAUNCH_STEP_TERMINAL, errno, "");
  if (p->limits && !limits_apply(p->limits, p->limits_ignore_errors, f->detail, sizeof f->detail))
    return launch_fail(f, LAUNCH_STEP_LIMITS, 0, NULL);
  if (p->chdir_dir && chdir(p->chdir_dir) < 0)
    return launch_fail(f, LAUNCH_STEP_CHDIR, errno, p->chdir_dir);
  if (!reset_personality())
    return launch_fail(f, LAUNCH_STEP_PERSONALITY, errno, "");
  if (p->umask >= 0)
    umask((mode_t) p->umask);
  if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return launch_fail(f, LAUNCH_STEP_NO_NEW_PRIVS, errno, "");
  if (!socket_on_fd0(p->listen_fd))
    return launch_fail(f, LAUNCH_STEP_SOCKET_FD, errno, "");
  if (!stdio_as_planned(p))
    return launch_fail(f, LAUNCH_STEP_STDIO, errno, "");
  if (!cloexec_from_3())
    return launch_fail(f, LAUNCH_STEP_CLOSE_FDS, errno, "");
  if (!reset_signals(&what))
    return launch_fail(f, LAUNCH_STEP_SIGNALS, errno, what);
  if (p->drop && !privileges_drop(p->uid, p->gid, p->groups, p->n_groups, f))
    return false;
  if (p->parent > 0 && !die_with_parent(p->parent, p->parent_death_signal))
    return launch_fail(f, LAUNCH_STEP_PARENT, errno, "");
  execve(p->exec_path, p->argv, p->envp);
  return launch_fail(f, LAUNCH_STEP_EXEC, errno, p->exec_path);
}

void launch_exec(const LaunchPlan *p, LaunchFailure *f)
{
  memset(f, 0, sizeof *f);
  (void) launch_steps(p, f);
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
  case LAUNCH_STEP_TERMINAL:
    return g_strdup_printf("cannot give up the controlling terminal (TIOCNOTTY): %s", err);
  case LAUNCH_STEP_LIMITS:
    return g_strdup_printf("cannot apply limits: %s", f->detail);
  case LAUNCH_STEP_CHDIR:
    return g_strdup_printf("cannot chdir to '%s': %s", f->detail, err);
  case LAUNCH_STEP_PERSONALITY:
    return g_strdup_printf("cannot reset the personality: %s", err);
  case LAUNCH_STEP_SETGROUPS:
    return g_strdup_printf("cannot set supplementary groups (setgroups): %s", err);
  case LAUNCH_STEP_SETRESGID:
    return g_strdup_printf("cannot set gid %s (setresgid): %s", f->detail, err);
  case LAUNCH_STEP_SETRESUID:
    return g_strdup_printf("cannot set uid %s (setresuid): %s", f->detail, err);
  case LAUNCH_STEP_VERIFY:
    return err ? g_strdup_printf("privilege drop did not take effect: %s: %s", f->detail, err)
               : g_strdup_printf("privilege drop did not take effect: %s", f->detail);
  case LAUNCH_STEP_PARENT:
    return g_strdup_printf("cannot tie the child to its supervisor (PR_SET_PDEATHSIG): %s",
                           err);
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

const char *const launch_removed_variables[] = {
  "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
  "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", NULL,
};

static bool removed_variable(const char *entry)
{
  for (const char *const *name = launch_removed_variables; *name != NULL; name++) {
    size_t len = strlen(*name);
    if (strncmp(entry, *name, len) == 0 && entry[len] == '=')
      return true;
  }
  return false;
}

/* KEY=VALUE into env, replacing an earlier KEY. */
static char **set_entry(char **env, const char *entry)
{
  g_autofree char *key = g_strndup(entry, strcspn(entry, "="));
  return g_environ_setenv(env, key, entry + strlen(key) + 1, TRUE);
}

char **launch_build_environment(char *const *base, const LaunchEnvironment *how)
{
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();

  /* Taken from the caller: everything, or with clear only PATH; never the
   * protocol variables, not even when named. */
  for (char *const *e = base; e && *e; e++)
    if (!removed_variable(*e) && (!how->clear || g_str_has_prefix(*e, "PATH=")))
      g_strv_builder_add(b, *e);
  char **env = g_strv_builder_end(b);

  if (how->php_children >= 0) {
    g_autofree char *n = g_strdup_printf("%d", how->php_children);
    env = g_environ_setenv(env, "PHP_FCGI_CHILDREN", n, TRUE);
  }
  for (char **e = how->set; e && *e; e++)
    env = set_entry(env, *e);
  for (char **e = how->pass; e && *e; e++) {
    if (strchr(*e, '=') != NULL) {
      env = set_entry(env, *e);
      continue;
    }
    const char *value = g_environ_getenv((char **) base, *e);
    g_autofree char *entry = value ? g_strconcat(*e, "=", value, NULL) : NULL;
    if (entry != NULL && !removed_variable(entry))
      env = set_entry(env, entry);
  }
  return env;
}
