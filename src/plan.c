/* plan: the deciding phase.  See plan.h. */
#include "config.h"

#include "plan.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exit-status.h"
#include "launch.h"
#include "report.h"

static gboolean refuse(GError **error, int status, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static gboolean refuse(GError **error, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error_literal(error, SPAWN_ERROR, status, msg);
  return FALSE;
}

static void warn(Plan *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void warn(Plan *p, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_ptr_array_add(p->warnings, g_strdup_vprintf(fmt, ap));
  va_end(ap);
}

/* ---- identities ---------------------------------------------------------- */

static gboolean lookup_group_not_root(const char *spec, const char *what, gid_t *gid,
                                      GError **error)
{
  if (!identity_lookup_group(spec, gid, error))
    return FALSE;
  if (*gid == 0)
    return refuse(error, EXIT_STATUS_USAGE,
                  "refusing %s '%s': it is gid 0 (root)", what, spec);
  return TRUE;
}

static bool in_group_list(const Identity *id, gid_t gid)
{
  for (gsize i = 0; i < id->n_groups; i++)
    if (id->groups[i] == gid)
      return true;
  return false;
}

/* Who the application runs as.  As root, --user/--group decide and the
 * group list is always replaced; without root they may only name the
 * caller itself. */
static gboolean plan_identity(const Settings *s, Plan *p, GError **error)
{
  /* --explain-limits only looks: it needs no root to name another user. */
  if (!p->is_root && s->explain_limits)
    return TRUE;
  if (!p->is_root) {
    if (s->chroot_dir != NULL)
      return refuse(error, EXIT_STATUS_USAGE, "--chroot needs root");
    if (s->user != NULL) {
      Identity id = { 0 };
      gboolean ok = identity_lookup_user(s->user, &id, error);
      uid_t uid = id.uid;
      identity_clear(&id);
      if (!ok)
        return FALSE;
      if (uid != getuid())
        return refuse(error, EXIT_STATUS_USAGE,
                      "--user '%s' needs root (spawn-fcgi runs as uid %u)",
                      s->user, (unsigned) getuid());
    }
    if (s->group != NULL) {
      gid_t gid;
      if (!identity_lookup_group(s->group, &gid, error))
        return FALSE;
      if (gid != getgid())
        return refuse(error, EXIT_STATUS_USAGE,
                      "--group '%s' needs root (spawn-fcgi runs as gid %u)",
                      s->group, (unsigned) getgid());
    }
    return TRUE;
  }

  if (s->user != NULL) {
    if (!identity_lookup_user(s->user, &p->app, error))
      return FALSE;
    if (p->app.uid == 0)
      return refuse(error, EXIT_STATUS_USAGE,
                    "refusing --user '%s': it is uid 0 (root); leave --user out "
                    "to keep root", s->user);
    if (s->group != NULL) {
      gid_t gid;
      if (!lookup_group_not_root(s->group, "--group", &gid, error) ||
          !identity_set_primary_group(&p->app, gid, error))
        return FALSE;
    } else if (p->app.name == NULL) {
      return refuse(error, EXIT_STATUS_USAGE,
                    "uid %s has no passwd entry: give its group with --group",
                    s->user);
    } else if (p->app.gid == 0) {
      return refuse(error, EXIT_STATUS_USAGE,
                    "refusing user '%s': its primary group is gid 0 (root); "
                    "give another with --group", s->user);
    }
    /* Group 0 as a supplementary group is what -g 0 would give. */
    if (in_group_list(&p->app, 0))
      return refuse(error, EXIT_STATUS_USAGE,
                    "refusing user '%s': it is a member of group gid 0 (root), which "
                    "the application would keep as a supplementary group; take it out "
                    "of that group", s->user);
    p->drop = true;
  } else if (s->group != NULL) {
    gid_t gid;
    if (!lookup_group_not_root(s->group, "--group", &gid, error))
      return FALSE;
    p->app.uid = 0;
    identity_set_only_group(&p->app, gid);
    p->drop = true;
    warn(p, "the application will run as ROOT (uid 0): "
            "give --user to drop privileges");
  } else {
    warn(p, "the application will run as ROOT (uid 0): "
            "give --user to drop privileges");
  }
  return TRUE;
}

/* ---- socket -------------------------------------------------------------- */

static mode_t caller_umask(void)
{
  mode_t mask = umask(0);
  umask(mask);
  return mask;
}

/* Owner and group of a unix socket, as spawn-fcgi 1.6 chooses them:
 * --socket-user, else --user; --socket-group, else --socket-user's primary
 * group, else the application's group.  For a passed socket only what is
 * asked for explicitly. */
static gboolean plan_socket_owner(const Settings *s, Plan *p, bool explicit_only,
                                  GError **error)
{
  SocketPlan *sp = &p->socket;
  sp->owner = (uid_t) -1;
  sp->group = (gid_t) -1;

  if (s->socket_user != NULL) {
    Identity u = { 0 };
    if (!identity_lookup_user(s->socket_user, &u, error))
      return FALSE;
    sp->owner = u.uid;
    sp->group = u.gid;
    identity_clear(&u);
  } else if (!explicit_only && p->drop && s->user != NULL) {
    sp->owner = p->app.uid;
  }
  if (s->socket_group != NULL) {
    if (!identity_lookup_group(s->socket_group, &sp->group, error))
      return FALSE;
  } else if (!explicit_only && sp->group == (gid_t) -1 && p->drop) {
    sp->group = p->app.gid;
  }
  return TRUE;
}

static gboolean plan_socket(const Settings *s, Plan *p, GError **error)
{
  SocketPlan *sp = &p->socket;
  bool passed = false;

  sp->backlog = s->backlog;
  if (!socket_plan_passed(sp, s->fd_name, &passed, error))
    return FALSE;

  if (passed) {
    /* A config file names its socket for runs without socket activation
     * (the same file serves both): that is no mistake worth a warning. */
    if (s->socket_path != NULL && !s->listen_from_config)
      warn(p, "--socket '%s' is ignored: systemd passed socket '%s'",
           s->socket_path, sp->passed_name);
    if (s->port != 0 && !s->listen_from_config)
      warn(p, "--port %u is ignored: systemd passed socket '%s'",
           (unsigned) s->port, sp->passed_name);
    if (s->socket_user || s->socket_group || s->mode_set) {
      if (sp->path == NULL)
        warn(p, "--socket-user, --socket-group and --mode are ignored: "
                "the passed socket has no file");
      else {
        sp->set_mode = s->mode_set;
        sp->mode = s->mode;
        if (!plan_socket_owner(s, p, true, error))
          return FALSE;
      }
    } else {
      sp->owner = (uid_t) -1;
      sp->group = (gid_t) -1;
    }
    return TRUE;
  }

  if (s->socket_path != NULL) {
    if (!socket_plan_unix(sp, s->socket_path, error))
      return FALSE;
    sp->mode = s->mode_set ? s->mode : 0660 & ~caller_umask();
    return plan_socket_owner(s, p, false, error);
  }
  if (s->port != 0)
    return socket_plan_tcp(sp, s->address, s->port, error);
  int on_stdin = socket_stdin_is_listening(error);
  if (on_stdin < 0)
    return FALSE;
  if (on_stdin) {
    sp->source = SOCKET_SOURCE_STDIN;
    return TRUE;
  }
  return refuse(error, EXIT_STATUS_USAGE,
                "no socket: give --socket or --port, or start spawn-fcgi with a "
                "listening socket (systemd socket activation, or on fd 0)");
}

/* ---- status -------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr_storage *addr)
{
  if (addr->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *) addr)->sin_addr.s_addr) >> 24) == 127;
  if (addr->ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *) addr)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) ||
           (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

/* The status socket: 0600 and root's, or 0660 with --status-group; the
 * TCP endpoint on loopback unless --status-listen-nonlocal. */
static gboolean plan_status(const Settings *s, Plan *p, GError **error)
{
  if (s->status_socket != NULL) {
    SocketPlan *sp = &p->status_unix;
    if (!socket_plan_unix(sp, s->status_socket, error))
      return FALSE;
    sp->backlog = PLAN_STATUS_BACKLOG;
    sp->mode = s->status_group ? 0660 : 0600;
    sp->owner = (uid_t) -1;
    sp->group = (gid_t) -1;
    if (s->status_group && !identity_lookup_group(s->status_group, &sp->group, error))
      return FALSE;
  }
  if (s->status_listen_address != NULL) {
    SocketPlan *sp = &p->status_tcp;
    if (!socket_plan_tcp(sp, s->status_listen_address, s->status_listen_port, error))
      return FALSE;
    sp->backlog = PLAN_STATUS_BACKLOG;
    if (!is_loopback(&sp->addr) && !s->status_listen_nonlocal)
      return refuse(error, EXIT_STATUS_USAGE,
                    "--status-listen %s is not a loopback address: anyone who reaches "
                    "it could read the status (add --status-listen-nonlocal if that "
                    "is meant)", sp->addr_text);
  }
  return TRUE;
}

/* ---- limits -------------------------------------------------------------- */

static gboolean plan_limits(const Settings *s, Plan *p, GError **error)
{
  if (!s->limits && !s->explain_limits)
    return TRUE;

  if (s->user != NULL && p->app.name != NULL) {
    /* p->app as the application will run: with --group's list. */
    p->limits_for.name = g_strdup(p->app.name);
    p->limits_for.uid = p->app.uid;
    p->limits_for.gid = p->app.gid;
    p->limits_for.home = g_strdup(p->app.home);
    p->limits_for.groups = g_memdup2(p->app.groups, sizeof(gid_t) * p->app.n_groups);
    p->limits_for.n_groups = p->app.n_groups;
  } else if (s->user != NULL) {
    Identity u = { 0 };
    if (p->is_root)
      return refuse(error, EXIT_STATUS_LOOKUP,
                    "cannot apply limits.conf: uid %s has no passwd entry", s->user);
    if (!identity_lookup_user(s->user, &u, error))
      return FALSE;
    p->limits_for = u;
  } else if (!identity_lookup_self(&p->limits_for, error)) {
    return FALSE;
  }
  if (p->limits_for.name == NULL)
    return refuse(error, EXIT_STATUS_LOOKUP,
                  "cannot apply limits.conf: uid %u has no passwd entry",
                  (unsigned) p->limits_for.uid);

  p->limits = limits_load(s->limits_file, s->limits_dir, &p->limits_for, error);
  if (p->limits == NULL)
    return FALSE;
  const GPtrArray *w = limits_plan_warnings(p->limits);
  for (guint i = 0; w != NULL && i < w->len; i++)
    warn(p, "%s", (const char *) g_ptr_array_index(w, i));
  return TRUE;
}

/* ---- application --------------------------------------------------------- */

/* The application's umask: --umask, else the caller's, as spawn-fcgi 1.6
 * passed it on; one that lets group or others write is worth a word. */
static void plan_umask(const Settings *s, Plan *p)
{
  if (s->umask_set) {
    p->umask = s->umask;
    return;
  }
  p->umask = caller_umask();
  if ((p->umask & 022) != 022)
    warn(p, "the application inherits umask %04o, which lets %s write its new files: "
            "give --umask (e.g. --umask=0022)", (unsigned) p->umask,
         (p->umask & 002) == 0 ? "everyone" : "its group");
}

static int check_executable(const char *path)
{
  struct stat st;
  if (stat(path, &st) < 0)
    return errno == ENOENT || errno == ENOTDIR ? ENOENT : errno;
  if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
    return EACCES;
  return 0;
}

/* Finds the file execve() will run, the way a shell would: a name with a
 * slash as is (relative to --chdir), otherwise the first executable match
 * in PATH. */
static gboolean resolve_exec(const char *name, const char *chdir_dir,
                             char **out, GError **error)
{
  if (strchr(name, '/') != NULL) {
    g_autofree char *path = (name[0] != '/' && chdir_dir != NULL)
                            ? g_build_filename(chdir_dir, name, NULL)
                            : g_strdup(name);
    int err = check_executable(path);
    if (err == ENOENT)
      return refuse(error, EXIT_STATUS_NOT_FOUND, "application '%s' not found", name);
    if (err != 0)
      return refuse(error, EXIT_STATUS_NOT_EXECUTABLE,
                    "application '%s' is not executable%s%s", name,
                    err == EACCES ? "" : ": ", err == EACCES ? "" : g_strerror(err));
    *out = g_strdup(name);
    return TRUE;
  }

  const char *env_path = g_getenv("PATH");
  g_auto(GStrv) dirs = g_strsplit(env_path ? env_path : "/usr/local/bin:/usr/bin:/bin",
                                  ":", -1);
  g_autofree char *not_exec = NULL;
  for (char **d = dirs; *d != NULL; d++) {
    g_autofree char *path = g_build_filename(**d ? *d : ".", name, NULL);
    int err = check_executable(path);
    if (err == 0) {
      *out = g_steal_pointer(&path);
      return TRUE;
    }
    if (err != ENOENT && not_exec == NULL)
      not_exec = g_steal_pointer(&path);
  }
  if (not_exec != NULL)
    return refuse(error, EXIT_STATUS_NOT_EXECUTABLE,
                  "application '%s' is not executable (found %s)", name, not_exec);
  return refuse(error, EXIT_STATUS_NOT_FOUND,
                "application '%s' not found in PATH", name);
}

gboolean plan_check_exec_in_root(const Plan *p, GError **error)
{
  g_autofree char *resolved = NULL;
  return resolve_exec(p->exec_path, p->settings->chdir_dir, &resolved, error);
}

/* ---- the whole plan ------------------------------------------------------ */

gboolean plan_build(const Settings *s, Plan *p, GError **error)
{
  memset(p, 0, sizeof *p);
  p->settings = s;
  p->is_root = geteuid() == 0;
  p->warnings = g_ptr_array_new_with_free_func(g_free);
  p->app.uid = getuid();
  p->app.gid = getgid();

  if (!plan_identity(s, p, error) || !plan_limits(s, p, error))
    return FALSE;
  if (s->explain_limits)
    return TRUE;
  if (!plan_socket(s, p, error) || !plan_status(s, p, error))
    return FALSE;

  /* libsystemd sends each notification to the NOTIFY_SOCKET path, which a
   * supervisor inside a chroot cannot reach (an abstract socket it can):
   * systemd would wait for READY=1 in vain. */
  const char *notify = g_getenv("NOTIFY_SOCKET");
  if (s->supervise && s->chroot_dir != NULL && notify != NULL && notify[0] == '/')
    return refuse(error, EXIT_STATUS_USAGE,
                  "--supervise with --chroot cannot notify systemd: NOTIFY_SOCKET %s "
                  "is not reachable inside the chroot", notify);

  plan_umask(s, p);

  /* Inside a chroot the path is checked after entering it. */
  if (s->chroot_dir != NULL)
    p->exec_path = g_strdup(s->argv[0]);
  else if (!resolve_exec(s->argv[0], s->chdir_dir, &p->exec_path, error))
    return FALSE;

  g_auto(GStrv) environ_now = g_get_environ();
  p->envp = launch_build_environment(environ_now, s->php_children, s->environment);
  return TRUE;
}

int plan_error_exit_status(const GError *error)
{
  if (error->domain == SPAWN_ERROR)
    return error->code;
  if (error->domain == SETTINGS_ERROR)
    return EXIT_STATUS_USAGE;
  if (error->domain == IDENTITY_ERROR)
    return EXIT_STATUS_LOOKUP;
  if (error->domain == LIMITS_ERROR)
    return error->code == LIMITS_ERROR_READ ? EXIT_STATUS_LOOKUP : EXIT_STATUS_PRIVILEGE;
  if (error->domain == SOCKET_ERROR)
    return error->code == SOCKET_ERROR_INVALID ? EXIT_STATUS_USAGE : EXIT_STATUS_SOCKET;
  return EXIT_STATUS_PRIVILEGE;
}

/* ---- --check ------------------------------------------------------------- */

static void report_owner(Report *r, const SocketPlan *sp)
{
  if (sp->owner != (uid_t) -1)
    report_int(r, "owner", sp->owner);
  if (sp->group != (gid_t) -1)
    report_int(r, "group", sp->group);
}

void plan_print(const Plan *p, bool json, FILE *to)
{
  const Settings *s = p->settings;
  const SocketPlan *sp = &p->socket;
  g_autoptr(GString) out = g_string_new(NULL);
  Report r;

  report_init(&r, out, json);
  report_section(&r, "socket");
  report_str(&r, "source", socket_source_name(sp->source));
  switch (sp->source) {
  case SOCKET_SOURCE_UNIX: {
    g_autofree char *mode = g_strdup_printf("%04o", (unsigned) sp->mode);
    report_str(&r, "path", sp->path);
    report_str(&r, "mode", mode);
    report_owner(&r, sp);
    report_int(&r, "backlog", sp->backlog);
    if (s->chroot_dir)
      report_str(&r, "created", s->socket_before_chroot ? "before the chroot"
                                                        : "inside the chroot");
    break;
  }
  case SOCKET_SOURCE_TCP:
    report_str(&r, "address", sp->addr_text);
    report_int(&r, "backlog", sp->backlog);
    break;
  case SOCKET_SOURCE_PASSED:
    report_str(&r, "name", sp->passed_name);
    report_int(&r, "fd", sp->passed_fd);
    report_str(&r, "path", sp->path);
    report_owner(&r, sp);
    break;
  case SOCKET_SOURCE_STDIN:
    report_int(&r, "fd", 0);
    break;
  }

  report_section(&r, "application");
  if (p->drop) {
    report_str(&r, "user", p->app.name);
    report_int(&r, "uid", p->app.uid);
    report_int(&r, "gid", p->app.gid);
    report_int_list(&r, "groups", p->app.groups, p->app.n_groups);
  } else {
    report_str(&r, "user", "unchanged");
    report_int(&r, "uid", getuid());
    report_int(&r, "gid", getgid());
  }
  report_str(&r, "chroot", s->chroot_dir);
  report_str(&r, "cwd", s->chdir_dir ? s->chdir_dir : s->chroot_dir ? "/" : "unchanged");
  g_autofree char *umask_text = g_strdup_printf("%04o", (unsigned) p->umask);
  report_str(&r, "umask", umask_text);
  report_bool(&r, "no_new_privs",
              s->no_new_privs || (p->limits && limits_plan_no_new_privs(p->limits)));
  report_str(&r, "exec", p->exec_path);
  if (s->chroot_dir)
    report_str(&r, "exec_checked", "inside the chroot, at start");
  report_strv(&r, "argv", (const char *const *) s->argv);
  static const char *const removed[] = {
    "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
    "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", NULL,
  };
  report_strv(&r, "environment_removed", removed);
  g_autoptr(GStrvBuilder) set = g_strv_builder_new();
  if (s->php_children >= 0) {
    g_autofree char *php = g_strdup_printf("PHP_FCGI_CHILDREN=%d", s->php_children);
    g_strv_builder_add(set, php);
  }
  if (s->environment)
    g_strv_builder_addv(set, (const char **) s->environment);
  g_auto(GStrv) set_v = g_strv_builder_end(set);
  report_strv(&r, "environment_set", (const char *const *) set_v);

  report_section(&r, "children");
  report_str(&r, "mode", s->no_fork ? "no-fork" : s->supervise ? "supervise" : "fork");
  report_int(&r, "count", s->no_fork ? 1 : s->fork_count);
  report_str(&r, "pid_file", s->pid_file);
  if (s->supervise) {
    report_int(&r, "restart_retries", s->restart_retries);
    report_int(&r, "restart_window_s", s->restart_window_s);
    report_str(&r, "stop_signal", sigabbrev_np(s->stop_signal));
    report_int(&r, "stop_timeout_s", s->stop_timeout_s);
    report_int(&r, "reload_batch", s->reload_batch);
  }

  if (p->status_unix.path || p->status_tcp.addr_text) {
    report_section(&r, "status");
    if (p->status_unix.path) {
      g_autofree char *mode = g_strdup_printf("%04o", (unsigned) p->status_unix.mode);
      report_str(&r, "path", p->status_unix.path);
      report_str(&r, "mode", mode);
      if (p->status_unix.group != (gid_t) -1)
        report_int(&r, "group", p->status_unix.group);
    }
    if (p->status_tcp.addr_text)
      report_str(&r, "listen", p->status_tcp.addr_text);
  }

  report_section(&r, "limits");
  report_bool(&r, "apply", p->limits != NULL && s->limits);
  if (p->limits) {
    g_autoptr(GString) explain = g_string_new(NULL);
    limits_plan_explain(p->limits, explain);
    if (json) {
      report_str(&r, "explain", explain->str);
    } else {
      report_finish(&r);
      fputs(out->str, to);
      fputs(explain->str, to);
      return;
    }
  }
  report_finish(&r);
  fputs(out->str, to);
}

void plan_clear(Plan *p)
{
  identity_clear(&p->app);
  identity_clear(&p->limits_for);
  socket_plan_clear(&p->socket);
  socket_plan_clear(&p->status_unix);
  socket_plan_clear(&p->status_tcp);
  g_clear_pointer(&p->limits, limits_plan_free);
  g_free(p->exec_path);
  g_strfreev(p->envp);
  if (p->warnings)
    g_ptr_array_unref(p->warnings);
  memset(p, 0, sizeof *p);
}
