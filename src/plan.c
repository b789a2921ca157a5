/* plan: the deciding phase.  See plan.h. */
#include "config.h"

#include "plan.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

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

/* Shorthands for the lookups of the plan's inputs. */
#define LOOKUP(p) ((p)->inputs->lookup)
#define CALL(p, fn, ...) (LOOKUP(p)->fn(__VA_ARGS__, LOOKUP(p)->data))

/* ---- identities ---------------------------------------------------------- */

static gboolean lookup_group_not_root(Plan *p, const char *spec, const char *what,
                                      gid_t *gid, GError **error)
{
  if (!CALL(p, group, spec, gid, error))
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
      gboolean ok = CALL(p, user, s->user, &id, error);
      uid_t uid = id.uid;
      identity_clear(&id);
      if (!ok)
        return FALSE;
      if (uid != p->inputs->uid)
        return refuse(error, EXIT_STATUS_USAGE,
                      "--user '%s' needs root (spawn-fcgi runs as uid %u)",
                      s->user, (unsigned) p->inputs->uid);
    }
    if (s->group != NULL) {
      gid_t gid;
      if (!CALL(p, group, s->group, &gid, error))
        return FALSE;
      if (gid != p->inputs->gid)
        return refuse(error, EXIT_STATUS_USAGE,
                      "--group '%s' needs root (spawn-fcgi runs as gid %u)",
                      s->group, (unsigned) p->inputs->gid);
    }
    return TRUE;
  }

  if (s->user != NULL) {
    if (!CALL(p, user, s->user, &p->app, error))
      return FALSE;
    if (p->app.uid == 0)
      return refuse(error, EXIT_STATUS_USAGE,
                    "refusing --user '%s': it is uid 0 (root); leave --user out "
                    "to keep root", s->user);
    if (s->group != NULL) {
      gid_t gid;
      if (!lookup_group_not_root(p, s->group, "--group", &gid, error) ||
          !CALL(p, set_primary_group, &p->app, gid, error))
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
    if (!lookup_group_not_root(p, s->group, "--group", &gid, error))
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
    if (!CALL(p, user, s->socket_user, &u, error))
      return FALSE;
    sp->owner = u.uid;
    sp->group = u.gid;
    identity_clear(&u);
  } else if (!explicit_only && p->drop && s->user != NULL) {
    sp->owner = p->app.uid;
  }
  if (s->socket_group != NULL) {
    if (!CALL(p, group, s->socket_group, &sp->group, error))
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
  if (!CALL(p, passed, sp, s->fd_name, &passed, error))
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
    sp->mode = s->mode_set ? s->mode : 0660 & ~p->inputs->umask;
    return plan_socket_owner(s, p, false, error);
  }
  if (s->port != 0)
    return CALL(p, tcp, sp, s->address, s->port, error);
  int on_stdin = LOOKUP(p)->stdin_listening(error, LOOKUP(p)->data);
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
    if (s->status_group && !CALL(p, group, s->status_group, &sp->group, error))
      return FALSE;
  }
  if (s->status_listen_address != NULL) {
    SocketPlan *sp = &p->status_tcp;
    if (!CALL(p, tcp, sp, s->status_listen_address, s->status_listen_port, error))
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
    if (!CALL(p, user, s->user, &u, error))
      return FALSE;
    p->limits_for = u;
  } else if (!LOOKUP(p)->self(&p->limits_for, error, LOOKUP(p)->data)) {
    return FALSE;
  }
  if (p->limits_for.name == NULL)
    return refuse(error, EXIT_STATUS_LOOKUP,
                  "cannot apply limits.conf: uid %u has no passwd entry",
                  (unsigned) p->limits_for.uid);

  p->limits = CALL(p, limits, s->limits_file, s->limits_dir, &p->limits_for, error);
  if (p->limits == NULL)
    return FALSE;
  const GPtrArray *w = limits_plan_warnings(p->limits);
  for (guint i = 0; w != NULL && i < w->len; i++)
    warn(p, "%s", (const char *) g_ptr_array_index(w, i));
  return TRUE;
}

/* ---- directories -------------------------------------------------------- */

/* The application's umask: --umask, else the caller's, as spawn-fcgi 1.6
 * passed it on; one that lets group or others write is worth a word. */
static void plan_umask(const Settings *s, Plan *p)
{
  if (s->umask_set) {
    p->umask = s->umask;
    return;
  }
  p->umask = p->inputs->umask;
  if ((p->umask & 022) != 022)
    warn(p, "the application inherits umask %04o, which lets %s write its new files: "
            "give --umask (e.g. --umask=0022)", (unsigned) p->umask,
         (p->umask & 002) == 0 ? "everyone" : "its group");
}


/* What the effect phases will need to find: the chroot, the working
 * directory (inside the chroot) and the PID file's directory.  Checked
 * here so that --check finds what the run would refuse, with the same
 * status and message. */
static int stat_dir(Plan *p, const char *path)
{
  struct stat st;
  int rc = CALL(p, stat_path, path, &st);
  return rc < 0 ? rc : S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* The directory the application will start in, as a path seen now (or,
 * in_root, from inside the chroot): --chdir, relative to the current
 * directory or the chroot; without it the current directory, or the
 * chroot's root.  NULL when unknown. */
static char *start_dir(const Plan *p, bool in_root)
{
  const Settings *s = p->settings;
  const char *root = in_root ? "/" : s->chroot_dir;
  const char *cwd = p->inputs->cwd;

  if (root != NULL)
    return g_build_filename(root, s->chdir_dir ? s->chdir_dir : "/", NULL);
  if (s->chdir_dir == NULL)
    return g_strdup(cwd);
  if (g_path_is_absolute(s->chdir_dir) || cwd == NULL)
    return g_strdup(s->chdir_dir);
  return g_build_filename(cwd, s->chdir_dir, NULL);
}

static gboolean plan_directories(const Settings *s, Plan *p, GError **error)
{
  int rc;

  if (s->chroot_dir != NULL && (rc = stat_dir(p, s->chroot_dir)) < 0)
    return refuse(error, EXIT_STATUS_PRIVILEGE, "cannot chroot to '%s': %s",
                  s->chroot_dir, g_strerror(-rc));
  if (s->chdir_dir != NULL) {
    g_autofree char *dir = start_dir(p, false);
    if ((rc = stat_dir(p, dir)) < 0)
      return refuse(error, EXIT_STATUS_PRIVILEGE, "cannot chdir to '%s': %s",
                    s->chdir_dir, g_strerror(-rc));
  }
  if (s->pid_file != NULL) {
    g_autofree char *dir = g_path_get_dirname(s->pid_file);
    if ((rc = stat_dir(p, dir)) < 0)
      return refuse(error, EXIT_STATUS_USAGE, "cannot open PID file '%s': %s",
                    s->pid_file, g_strerror(-rc));
  }
  return TRUE;
}

/* ---- application --------------------------------------------------------- */

static int check_executable(Plan *p, const char *path)
{
  struct stat st;
  int rc = CALL(p, stat_path, path, &st);
  if (rc < 0)
    return rc == -ENOENT || rc == -ENOTDIR ? ENOENT : -rc;
  if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
    return EACCES;
  return 0;
}

/* "'.', ''": the relative entries of PATH, quoted; NULL when none. */
static char *relative_path_entries(const Plan *p)
{
  const char *env_path = g_environ_getenv(p->inputs->environ, "PATH");
  if (env_path == NULL)
    return NULL;
  g_auto(GStrv) dirs = g_strsplit(env_path, ":", -1);
  g_autoptr(GString) out = g_string_new(NULL);
  for (char **d = dirs; *d != NULL; d++)
    if (!g_path_is_absolute(*d))
      g_string_append_printf(out, "%s'%s'", out->len ? ", " : "", *d);
  return out->len ? g_string_free(g_steal_pointer(&out), FALSE) : NULL;
}

/* err from check_executable() for the file at path, found for name. */
static gboolean exec_refused(GError **error, int err, const char *name, const char *path)
{
  if (err == ENOENT)
    return refuse(error, EXIT_STATUS_NOT_FOUND, "application '%s' not found", name);
  if (strcmp(name, path) == 0)
    return refuse(error, EXIT_STATUS_NOT_EXECUTABLE, "application '%s' is not executable",
                  name);
  return refuse(error, EXIT_STATUS_NOT_EXECUTABLE,
                "application '%s' is not executable (found %s)", name, path);
}

/* Finds the file execve() will run, once, as an absolute path: a name
 * with a slash as is (a relative one from --chdir), otherwise the first
 * executable match in PATH.  Relative PATH entries ('.', empty) are
 * skipped with a warning: the directory they mean changes with --chdir,
 * and no file may run because it happens to lie there. */
static gboolean resolve_exec(Plan *p, bool in_root, char **out, GError **error)
{
  const char *name = p->settings->argv[0];

  if (strchr(name, '/') != NULL) {
    g_autofree char *base = start_dir(p, in_root);
    const char *rel = name;
    while (g_str_has_prefix(rel, "./"))
      rel += 2;
    g_autofree char *path = g_path_is_absolute(name) || base == NULL
                            ? g_strdup(name) : g_build_filename(base, rel, NULL);
    int err = check_executable(p, path);
    if (err != 0)
      return exec_refused(error, err, name, path);
    *out = g_steal_pointer(&path);
    return TRUE;
  }

  const char *env_path = g_environ_getenv(p->inputs->environ, "PATH");
  g_auto(GStrv) dirs = g_strsplit(env_path ? env_path : "/usr/local/bin:/usr/bin:/bin",
                                  ":", -1);
  g_autofree char *not_exec = NULL;
  for (char **d = dirs; *d != NULL; d++) {
    if (!g_path_is_absolute(*d))
      continue;
    g_autofree char *path = g_build_filename(*d, name, NULL);
    int err = check_executable(p, path);
    if (err == 0) {
      *out = g_steal_pointer(&path);
      return TRUE;
    }
    if (err != ENOENT && not_exec == NULL)
      not_exec = g_steal_pointer(&path);
  }
  if (not_exec != NULL)
    return exec_refused(error, EACCES, name, not_exec);
  g_autofree char *skipped = relative_path_entries(p);
  return refuse(error, EXIT_STATUS_NOT_FOUND, "application '%s' not found in PATH%s%s%s",
                name, skipped ? " (relative entries are ignored: " : "",
                skipped ? skipped : "", skipped ? ")" : "");
}

gboolean plan_resolve_exec_in_root(Plan *p, GError **error)
{
  g_autofree char *resolved = NULL;
  if (!resolve_exec(p, true, &resolved, error))
    return FALSE;
  g_free(p->exec_path);
  p->exec_path = g_steal_pointer(&resolved);
  return TRUE;
}

/* Said once, before any lookup (inside a chroot too). */
static void warn_relative_path_entries(Plan *p)
{
  g_autofree char *skipped = relative_path_entries(p);
  if (skipped != NULL && strchr(p->settings->argv[0], '/') == NULL)
    warn(p, "ignoring relative PATH entries when looking for '%s': %s",
         p->settings->argv[0], skipped);
}

static char **plan_environment(const Settings *s, const PlanInputs *in)
{
  LaunchEnvironment how = {
    .clear = s->clear_env,
    .php_children = s->php_children,
    .set = s->environment,
    .pass = s->env,
  };
  return launch_build_environment(in->environ, &how);
}

/* ---- the whole plan ------------------------------------------------------ */

gboolean plan_build(const Settings *s, const PlanInputs *in, Plan *p, GError **error)
{
  memset(p, 0, sizeof *p);
  p->settings = s;
  p->inputs = in;
  p->is_root = in->euid == 0;
  p->warnings = g_ptr_array_new_with_free_func(g_free);
  p->app.uid = in->uid;
  p->app.gid = in->gid;

  if (!plan_identity(s, p, error) || !plan_limits(s, p, error))
    return FALSE;
  if (s->explain_limits)
    return TRUE;
  if (!plan_socket(s, p, error) || !plan_status(s, p, error))
    return FALSE;

  /* libsystemd sends each notification to the NOTIFY_SOCKET path, which a
   * supervisor inside a chroot cannot reach (an abstract socket it can):
   * systemd would wait for READY=1 in vain. */
  const char *notify = g_environ_getenv(in->environ, "NOTIFY_SOCKET");
  if (s->supervise && s->chroot_dir != NULL && notify != NULL && notify[0] == '/')
    return refuse(error, EXIT_STATUS_USAGE,
                  "--supervise with --chroot cannot notify systemd: NOTIFY_SOCKET %s "
                  "is not reachable inside the chroot", notify);

  plan_umask(s, p);
  if (!plan_directories(s, p, error))
    return FALSE;
  warn_relative_path_entries(p);
  /* Inside a chroot the path is looked up after entering it. */
  if (s->chroot_dir != NULL)
    p->exec_path = g_strdup(s->argv[0]);
  else if (!resolve_exec(p, false, &p->exec_path, error))
    return FALSE;

  p->envp = plan_environment(s, in);
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
  g_autoptr(GString) out = g_string_new(NULL);
  plan_format(p, json, out);
  fputs(out->str, to);
}

void plan_format(const Plan *p, bool json, GString *out)
{
  const Settings *s = p->settings;
  const SocketPlan *sp = &p->socket;
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
    report_int(&r, "uid", p->inputs->uid);
    report_int(&r, "gid", p->inputs->gid);
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
  report_bool(&r, "clear_env", s->clear_env);
  report_strv(&r, "environment_removed", launch_removed_variables);
  report_strv(&r, "environment", (const char *const *) p->envp);

  report_section(&r, "children");
  report_str(&r, "mode", s->no_fork ? "no-fork" : s->supervise ? "supervise" : "fork");
  report_int(&r, "count", s->no_fork ? 1 : s->fork_count);
  report_str(&r, "pid_file", s->pid_file);
  if (s->supervise) {
    static const char *const pm_names[] = { "static", "dynamic", "ondemand" };
    report_str(&r, "pm", pm_names[s->pm]);
    report_int(&r, "min_children", s->pm == SETTINGS_PM_STATIC ? s->fork_count :
                                   s->pm == SETTINGS_PM_ONDEMAND ? 0 : s->min_children);
    report_int(&r, "max_children", s->fork_count);
    if (s->pm != SETTINGS_PM_STATIC)
      report_int(&r, "idle_timeout_s", s->idle_timeout_s);
    report_int(&r, "max_age_s", s->max_age_s);
    report_int(&r, "max_rss_bytes", (gint64) s->max_rss_bytes);
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
      g_string_append(out, explain->str);
      return;
    }
  }
  report_finish(&r);
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
