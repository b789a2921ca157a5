/* plan-inputs: what the deciding phase sees of the running process and
 * the system.  See plan.h. */
#include "config.h"

#include "plan.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static int system_stat(const char *path, struct stat *st, gpointer data)
{
  (void) data;
  return stat(path, st) == 0 ? 0 : -errno;
}

static gboolean system_user(const char *spec, Identity *out, GError **error, gpointer data)
{
  (void) data;
  return identity_lookup_user(spec, out, error);
}

static gboolean system_group(const char *spec, gid_t *out, GError **error, gpointer data)
{
  (void) data;
  return identity_lookup_group(spec, out, error);
}

static gboolean system_self(Identity *out, GError **error, gpointer data)
{
  (void) data;
  return identity_lookup_self(out, error);
}

static gboolean system_set_primary_group(Identity *id, gid_t gid, GError **error,
                                         gpointer data)
{
  (void) data;
  return identity_set_primary_group(id, gid, error);
}

static gboolean system_tcp(SocketPlan *plan, const char *address, guint16 port,
                           GError **error, gpointer data)
{
  (void) data;
  return socket_plan_tcp(plan, address, port, error);
}

static gboolean system_passed(SocketPlan *plan, const char *fd_name, bool *found,
                              GError **error, gpointer data)
{
  (void) data;
  return socket_plan_passed(plan, fd_name, found, error);
}

static int system_stdin_listening(GError **error, gpointer data)
{
  (void) data;
  return socket_stdin_is_listening(error);
}

static LimitsPlan *system_limits(const char *file, const char *dir, const Identity *id,
                                 GError **error, gpointer data)
{
  (void) data;
  return limits_load(file, dir, id, error);
}

const PlanLookup plan_lookup_system = {
  .stat_path = system_stat,
  .user = system_user,
  .group = system_group,
  .self = system_self,
  .set_primary_group = system_set_primary_group,
  .tcp = system_tcp,
  .passed = system_passed,
  .stdin_listening = system_stdin_listening,
  .limits = system_limits,
};

void plan_inputs_from_process(PlanInputs *in)
{
  in->uid = getuid();
  in->gid = getgid();
  in->euid = geteuid();
  in->umask = umask(0);
  umask(in->umask);
  in->environ = g_get_environ();
  in->cwd = g_get_current_dir();
  in->lookup = &plan_lookup_system;
}

void plan_inputs_clear(PlanInputs *in)
{
  g_strfreev(in->environ);
  g_free(in->cwd);
  in->environ = NULL;
  in->cwd = NULL;
}
