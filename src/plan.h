/* plan: the deciding phase.  From validated settings to everything the
 * effect phases need, as plain values: the socket plan, the identities,
 * the limits plan, the resolved application path and its environment.
 *
 * Pure: everything it looks at comes in a PlanInputs (the caller's ids,
 * environment, umask and working directory, and a PlanLookup for the
 * system: files, users and groups, addresses, passed sockets, limits
 * files).  plan_inputs_from_process() fills one from the running process;
 * unit tests give fakes.  Nothing is changed on the system here.  --check
 * prints the plan. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "identity.h"
#include "limits-conf.h"
#include "settings.h"
#include "sockets.h"

/* Everything on the system the deciding phase may look at.  Each function
 * gets data as its last argument. */
typedef struct {
  /* stat(2); 0 or -errno */
  int (*stat_path)(const char *path, struct stat *st, gpointer data);
  /* users and groups: as identity_lookup_user(), identity_lookup_group(),
   * identity_lookup_self(), identity_set_primary_group() */
  gboolean (*user)(const char *spec, Identity *out, GError **error, gpointer data);
  gboolean (*group)(const char *spec, gid_t *out, GError **error, gpointer data);
  gboolean (*self)(Identity *out, GError **error, gpointer data);
  gboolean (*set_primary_group)(Identity *id, gid_t gid, GError **error, gpointer data);
  /* addresses and passed sockets: as socket_plan_tcp(),
   * socket_plan_passed(), socket_stdin_is_listening() */
  gboolean (*tcp)(SocketPlan *plan, const char *address, guint16 port, GError **error,
                  gpointer data);
  gboolean (*passed)(SocketPlan *plan, const char *fd_name, bool *found, GError **error,
                     gpointer data);
  int (*stdin_listening)(GError **error, gpointer data);
  /* limits files: as limits_load() */
  LimitsPlan *(*limits)(const char *file, const char *dir, const Identity *id,
                        GError **error, gpointer data);
  gpointer data;
} PlanLookup;

/* The real system. */
extern const PlanLookup plan_lookup_system;

typedef struct {
  uid_t uid;                 /* real ids of the caller */
  gid_t gid;
  uid_t euid;
  mode_t umask;
  char **environ;            /* the caller's environment */
  char *cwd;                 /* NULL when unknown */
  const PlanLookup *lookup;
} PlanInputs;

/* From the running process, with plan_lookup_system. */
void plan_inputs_from_process(PlanInputs *in);
void plan_inputs_clear(PlanInputs *in);

typedef struct {
  const Settings *settings;
  const PlanInputs *inputs;
  bool is_root;

  /* the application's identity */
  bool drop;                 /* set groups, gid and uid */
  Identity app;

  SocketPlan socket;

  /* the status endpoints (--status-socket, --status-listen): path or
   * addr_text NULL when not asked for */
  SocketPlan status_unix;
  SocketPlan status_tcp;

  LimitsPlan *limits;        /* NULL without --limits */
  Identity limits_for;       /* whose limits (app, or the caller) */

  mode_t umask;              /* the application's: --umask, else the caller's */

  char *exec_path;           /* absolute, as exec'd (inside the chroot) */
  char **envp;
  GPtrArray *warnings;       /* for the caller to print */
} Plan;

/* Connections a status socket lets wait. */
#define PLAN_STATUS_BACKLOG 128

/* Errors: SPAWN_ERROR (code = exit status), or the modules' own domains
 * (see plan_error_exit_status).  inputs must outlive the plan. */
gboolean plan_build(const Settings *settings, const PlanInputs *inputs, Plan *plan,
                    GError **error);

/* After the chroot: finds the application inside it (the same rules) and
 * makes plan->exec_path the absolute path found. */
gboolean plan_resolve_exec_in_root(Plan *plan, GError **error);

int plan_error_exit_status(const GError *error);

/* --check: the plan as text, or as JSON for tools. */
void plan_print(const Plan *plan, bool json, FILE *to);
void plan_format(const Plan *plan, bool json, GString *out);

void plan_clear(Plan *plan);
