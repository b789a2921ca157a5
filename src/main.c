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
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "children.h"
#include "pidfile.h"
#include "exit-status.h"
#include "launch.h"
#include "log.h"
#include "plan.h"
#include "privileges.h"
#include "settings.h"
#include "sockets.h"
#include "status-client.h"
#include "status-server.h"
#include "supervisor.h"
#include "systemd.h"

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

/* Chroot and socket in the order spawn-fcgi 1.6 uses: the socket is created
 * inside the chroot unless --socket-before-chroot.  A passed socket's file
 * (its path is outside any chroot) is adopted before. */
static int acquire_socket_and_root(Plan *plan, GError **error)
{
  const Settings *s = plan->settings;
  bool before = s->socket_before_chroot || plan->socket.source == SOCKET_SOURCE_PASSED;
  int fd = -1;

  if (s->chroot_dir && before && (fd = socket_acquire(&plan->socket, error)) < 0)
    return -1;
  if (s->chroot_dir) {
    if (!privileges_chroot(s->chroot_dir, error) ||
        !plan_resolve_exec_in_root(plan, error)) {
      if (fd >= 0)
        socket_remove_own(&plan->socket);
      return -1;
    }
  }
  if (fd < 0 && (fd = socket_acquire(&plan->socket, error)) < 0)
    return -1;
  return fd;
}

/* The status endpoints of a supervisor (--status-socket, --status-listen),
 * created before any chroot: their paths are on the host, where
 * `spawn-fcgi --status` looks for them. */
typedef struct {
  int fds[2];
  guint n;
} StatusSockets;

static void release_status_sockets(Plan *plan, StatusSockets *ss)
{
  for (guint i = 0; i < ss->n; i++)
    close(ss->fds[i]);
  ss->n = 0;
  socket_remove_own(&plan->status_unix);
}

static gboolean acquire_status_sockets(Plan *plan, StatusSockets *ss, GError **error)
{
  SocketPlan *wanted[] = { &plan->status_unix, &plan->status_tcp };

  ss->n = 0;
  for (gsize i = 0; i < G_N_ELEMENTS(wanted); i++) {
    if (wanted[i]->path == NULL && wanted[i]->addr_text == NULL)
      continue;
    int fd = socket_acquire(wanted[i], error);
    if (fd < 0) {
      release_status_sockets(plan, ss);
      return FALSE;
    }
    ss->fds[ss->n++] = fd;
  }
  return TRUE;
}

/* Hands the status sockets over to a status server (NULL without any). */
static gboolean start_status_server(Plan *plan, StatusSockets *ss, StatusServer **out,
                                    GError **error)
{
  const SocketPlan *sp = &plan->socket;
  g_autofree char *instance = settings_instance_name(plan->settings->config_file);
  const char *listen = sp->path ? sp->path : sp->addr_text ? sp->addr_text :
                       sp->passed_name ? sp->passed_name : "fd 0";
  static const char *const sources[] = {
    [SOCKET_SOURCE_PASSED] = "systemd", [SOCKET_SOURCE_UNIX] = "own",
    [SOCKET_SOURCE_TCP] = "own", [SOCKET_SOURCE_STDIN] = "fd0",
  };
  PoolStatus base = {
    .instance = instance,
    .listen = listen,
    .listen_source = sources[sp->source],
    .backlog = sp->source == SOCKET_SOURCE_UNIX || sp->source == SOCKET_SOURCE_TCP
               ? (guint) sp->backlog : 0,
    .version = PACKAGE_VERSION,
  };

  *out = NULL;
  if (ss->n == 0)
    return TRUE;
  *out = status_server_new(ss->fds, ss->n, &base, error);
  ss->n = 0;                /* the server has them now, or closed them */
  return *out != NULL;
}

static int run(Plan *plan)
{
  const Settings *s = plan->settings;
  GError *error = NULL;
  PidFile pid_file = PID_FILE_NONE;
  StatusSockets status_sockets = { .n = 0 };
  int listen_fd, status;

  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) {
    log_error("cannot open /dev/null: %s", g_strerror(errno));
    return EXIT_STATUS_PRIVILEGE;
  }
  /* The supervisor talks to systemd after a chroot: load libsystemd now. */
  if (s->supervise && !systemd_load_for_notify(&error))
    return fail(error);
  if (s->pid_file && !pid_file_open(&pid_file, s->pid_file, &error))
    return fail(error);
  if (!acquire_status_sockets(plan, &status_sockets, &error)) {
    pid_file_abandon(&pid_file);
    return fail(error);
  }
  if ((listen_fd = acquire_socket_and_root(plan, &error)) < 0) {
    release_status_sockets(plan, &status_sockets);
    pid_file_abandon(&pid_file);
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
    .umask = (int) plan->umask,
    /* Supervised children die with the supervisor. */
    .parent = s->supervise ? getpid() : 0,
    .parent_death_signal = s->stop_signal,
    .listen_fd = listen_fd,
    .null_fd = null_fd,
    .exec_path = plan->exec_path,
    .argv = s->argv,
    .envp = plan->envp,
  };
  pid_t self = getpid();

  if (s->no_fork) {
    LaunchFailure failure;
    /* This process becomes the application. */
    if (!pid_file_write(&pid_file, &self, 1, &error)) {
      socket_remove_own(&plan->socket);
      pid_file_abandon(&pid_file);
      return fail(error);
    }
    launch_exec(&lp, &failure);
    g_autofree char *what = launch_failure_describe(&failure, &lp);
    log_error("%s", what);
    socket_remove_own(&plan->socket);
    pid_file_abandon(&pid_file);
    return launch_failure_exit_status(&failure);
  }

  if (s->supervise) {
    SupervisorConfig sc = { .pool = {
      .mode = (PoolMode) s->pm,
      .min_children = s->min_children,
      .max_children = s->fork_count,
      .idle_timeout_ms = s->idle_timeout_s * 1000,
      .max_age_ms = (gint64) s->max_age_s * 1000,
      .max_rss_bytes = s->max_rss_bytes,
      .restart_retries = s->restart_retries,
      .restart_window_ms = s->restart_window_s * 1000,
      .stop_signal = s->stop_signal,
      .stop_timeout_ms = s->stop_timeout_s * 1000,
      .reload_batch = s->reload_batch,
    } };
    if (!start_status_server(plan, &status_sockets, &sc.status, &error)) {
      release_status_sockets(plan, &status_sockets);
      socket_remove_own(&plan->socket);
      pid_file_abandon(&pid_file);
      close(listen_fd);
      log_error("%s", error->message);
      g_error_free(error);
      return EXIT_STATUS_PRIVILEGE;
    }
    if (!pid_file_write(&pid_file, &self, 1, &error)) {
      status_server_free(sc.status);
      release_status_sockets(plan, &status_sockets);
      socket_remove_own(&plan->socket);
      pid_file_abandon(&pid_file);
      close(listen_fd);
      return fail(error);
    }
    status = supervisor_run(&lp, &sc, &plan->socket);
    status_server_free(sc.status);
    socket_remove_own(&plan->status_unix);
    if (status == EXIT_STATUS_OK)
      pid_file_remove(&pid_file);
    else
      pid_file_abandon(&pid_file);
    close(listen_fd);
    return status;
  }

  status = children_start(&lp, s->fork_count, &pid_file);
  if (status != EXIT_STATUS_OK) {
    socket_remove_own(&plan->socket);
    pid_file_abandon(&pid_file);
  } else {
    pid_file_close(&pid_file);
  }
  close(listen_fd);
  return status;
}

/* --status: ask a running pool, print its answer. */
static int print_status(const Settings *s)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) body = status_client_fetch(s, &error);

  if (body == NULL) {
    log_error("%s", error->message);
    return error->code == STATUS_CLIENT_ERROR_NOT_RUNNING ? EXIT_STATUS_NOT_RUNNING
                                                         : EXIT_STATUS_UNKNOWN;
  }
  fwrite(body->str, 1, body->len, stdout);
  return fflush(stdout) == 0 ? EXIT_STATUS_OK : EXIT_STATUS_UNKNOWN;
}

int main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  Settings settings;
  SettingsParseResult parsed;
  PlanInputs inputs;
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
  if (parsed == SETTINGS_PARSE_EXIT) {
    settings_clear(&settings);
    return EXIT_STATUS_OK;
  }
  if (settings.status_query) {
    status = print_status(&settings);
    settings_clear(&settings);
    return status;
  }
  for (guint i = 0; i < settings.warnings->len; i++)
    log_warning("%s", (const char *) g_ptr_array_index(settings.warnings, i));

  plan_inputs_from_process(&inputs);
  if (!plan_build(&settings, &inputs, &plan, &error)) {
    status = fail(g_steal_pointer(&error));
    plan_clear(&plan);
    plan_inputs_clear(&inputs);
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
  plan_inputs_clear(&inputs);
  settings_clear(&settings);
  return status;
}
