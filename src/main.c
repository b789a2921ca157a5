/* spawn-fcgi: prepare the world a FastCGI application expects, then exec it.
 *
 * main() is the list of phases (see design notes in the man page):
 *   deciding:  settings -> identities, limits, socket plan, application
 *   preparing: PID file, chroot and socket (in the order -S asks for)
 *   launching: in place (--no-fork) or in N checked children
 * Any failure before exec ends the program with a documented status, and
 * the application is never started. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "children.h"
#include "exit-status.h"
#include "launch.h"
#include "log.h"
#include "plan.h"
#include "privileges.h"
#include "settings.h"
#include "sockets.h"
#include "supervisor.h"

/* Make sure fds 0-2 are open, so no socket or file of ours lands there by
 * accident. */
static void ensure_std_fds(void)
{
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
      continue;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0 && null != fd) {
      dup2(null, fd);
      close(null);
    }
  }
}

static int fail(GError *error)
{
  int status = plan_error_exit_status(error);
  log_error("%s", error->message);
  g_error_free(error);
  return status;
}

/* The PID file is opened before any chroot: its path is the caller's. It is
 * never followed through a symlink, and an existing file is only truncated
 * when the PIDs are written (so a failed start leaves it as it was). */
static int pid_file_open(const char *path, bool *created, GError **error)
{
  struct stat st;
  int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
  int fd = open(path, flags | O_CREAT | O_EXCL, 0644);

  *created = fd >= 0;
  if (fd < 0 && errno == EEXIST)
    fd = open(path, flags);
  if (fd < 0) {
    int err = errno;
    g_set_error(error, SPAWN_ERROR, EXIT_STATUS_USAGE, "cannot open PID file '%s': %s",
                path, err == ELOOP ? "it is a symbolic link" : g_strerror(err));
    return -1;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    g_set_error(error, SPAWN_ERROR, EXIT_STATUS_USAGE,
                "PID file '%s' exists and is not a regular file", path);
    return -1;
  }
  return fd;
}

static void pid_file_discard(const char *path, int fd, bool created)
{
  if (fd < 0)
    return;
  close(fd);
  if (created)
    unlink(path);
}

/* Chroot and socket in the order spawn-fcgi 1.6 uses: the socket is created
 * inside the chroot unless --socket-before-chroot. */
static int acquire_socket_and_root(Plan *plan, GError **error)
{
  const Settings *s = plan->settings;
  int fd = -1;

  if (s->chroot_dir && s->socket_before_chroot &&
      (fd = socket_acquire(&plan->socket, error)) < 0)
    return -1;
  if (s->chroot_dir) {
    if (!privileges_chroot(s->chroot_dir, error) ||
        !plan_check_exec_in_root(plan, error)) {
      if (fd >= 0)
        socket_remove_own(&plan->socket);
      return -1;
    }
  }
  if (fd < 0 && (fd = socket_acquire(&plan->socket, error)) < 0)
    return -1;
  return fd;
}

static int run(Plan *plan)
{
  const Settings *s = plan->settings;
  GError *error = NULL;
  int pid_fd = -1, listen_fd, status;
  bool pid_created = false;

  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) {
    log_error("cannot open /dev/null: %s", g_strerror(errno));
    return EXIT_STATUS_PRIVILEGE;
  }
  if (s->pid_file && (pid_fd = pid_file_open(s->pid_file, &pid_created, &error)) < 0)
    return fail(error);
  if ((listen_fd = acquire_socket_and_root(plan, &error)) < 0) {
    pid_file_discard(s->pid_file, pid_fd, pid_created);
    return fail(error);
  }

  LaunchPlan lp = {
    .limits = plan->limits,
    .limits_ignore_errors = s->limits_ignore_errors,
    .chdir_dir = s->chdir_dir,
    .drop = plan->drop,
    .uid = plan->app.uid,
    .gid = plan->app.gid,
    .groups = plan->app.groups,
    .n_groups = plan->app.n_groups,
    .no_new_privs = s->no_new_privs ||
                    (plan->limits && limits_plan_no_new_privs(plan->limits)),
    .listen_fd = listen_fd,
    .null_fd = null_fd,
    .keep_fd = -1,
    .exec_path = plan->exec_path,
    .argv = s->argv,
    .envp = plan->envp,
  };

  if (s->no_fork) {
    LaunchFailure failure;
    if (pid_fd >= 0) {
      /* This process becomes the application. */
      g_autofree char *pid = g_strdup_printf("%d", (int) getpid());
      if (ftruncate(pid_fd, 0) < 0 || write(pid_fd, pid, strlen(pid)) < 0)
        log_warning("cannot write PID file '%s': %s", s->pid_file, g_strerror(errno));
    }
    launch_exec(&lp, &failure);
    g_autofree char *what = launch_failure_describe(&failure, &lp);
    log_error("%s", what);
    socket_remove_own(&plan->socket);
    /* It names this process, which is not going to run anything. */
    if (pid_fd >= 0 && !pid_created && ftruncate(pid_fd, 0) < 0)
      log_warning("cannot empty PID file '%s': %s", s->pid_file, g_strerror(errno));
    pid_file_discard(s->pid_file, pid_fd, pid_created);
    return launch_failure_exit_status(&failure);
  }

  if (s->supervise) {
    SupervisorConfig sc = {
      .count = s->fork_count,
      .restart_retries = s->restart_retries,
      .restart_window_ms = s->restart_window_s * 1000,
      .stop_signal = s->stop_signal,
      .stop_timeout_ms = s->stop_timeout_s * 1000,
      .reload_batch = s->reload_batch,
    };
    if (pid_fd >= 0) {
      g_autofree char *pid = g_strdup_printf("%d", (int) getpid());
      if (ftruncate(pid_fd, 0) < 0 || write(pid_fd, pid, strlen(pid)) < 0)
        log_warning("cannot write PID file '%s': %s", s->pid_file, g_strerror(errno));
    }
    status = supervisor_run(&lp, &sc, &plan->socket);
    pid_file_discard(s->pid_file, pid_fd, true);
    close(listen_fd);
    return status;
  }

  status = children_start(&lp, s->fork_count, pid_fd);
  if (status != EXIT_STATUS_OK) {
    socket_remove_own(&plan->socket);
    pid_file_discard(s->pid_file, pid_fd, pid_created);
  } else if (pid_fd >= 0) {
    close(pid_fd);
  }
  close(listen_fd);
  return status;
}

int main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  Settings settings;
  SettingsParseResult parsed;
  Plan plan;
  int status;

  ensure_std_fds();
  log_init();

  /* Deciding: nothing on the system changes until the plan is complete. */
  if (!settings_parse(argc, argv, &settings, &parsed, &error)) {
    log_error("%s", error->message);
    fprintf(stderr, "Try 'spawn-fcgi --help' for more information.\n");
    return EXIT_STATUS_USAGE;
  }
  if (parsed == SETTINGS_PARSE_EXIT)
    return EXIT_STATUS_OK;
  for (guint i = 0; i < settings.warnings->len; i++)
    log_warning("%s", (const char *) g_ptr_array_index(settings.warnings, i));

  if (!plan_build(&settings, &plan, &error)) {
    status = fail(g_steal_pointer(&error));
    plan_clear(&plan);
    settings_clear(&settings);
    return status;
  }
  for (guint i = 0; i < plan.warnings->len; i++)
    log_warning("%s", (const char *) g_ptr_array_index(plan.warnings, i));

  if (settings.explain_limits) {
    g_autoptr(GString) out = g_string_new(NULL);
    limits_plan_explain(plan.limits, out);
    fputs(out->str, stdout);
    status = EXIT_STATUS_OK;
  } else if (settings.check) {
    plan_print(&plan, settings.check == SETTINGS_CHECK_JSON, stdout);
    status = EXIT_STATUS_OK;
  } else {
    /* Preparing and launching. */
    status = run(&plan);
  }
  plan_clear(&plan);
  settings_clear(&settings);
  return status;
}
