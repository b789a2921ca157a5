/* plan: the deciding phase.  From validated settings to everything the
 * effect phases need, as plain values: the socket plan, the identities,
 * the limits plan, the resolved application path and its environment.
 *
 * Nothing is changed on the system here.  --check prints the plan. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>

#include "identity.h"
#include "limits-conf.h"
#include "settings.h"
#include "sockets.h"

typedef struct {
  const Settings *settings;
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

  char *exec_path;           /* as exec'd (inside the chroot) */
  char **envp;
  GPtrArray *warnings;       /* for the caller to print */
} Plan;

/* Connections a status socket lets wait. */
#define PLAN_STATUS_BACKLOG 128

/* Errors: SPAWN_ERROR (code = exit status), or the modules' own domains
 * (see plan_error_exit_status). */
gboolean plan_build(const Settings *settings, Plan *plan, GError **error);

/* Re-checks the application path from inside the chroot (after chroot). */
gboolean plan_check_exec_in_root(const Plan *plan, GError **error);

int plan_error_exit_status(const GError *error);

/* --check: the plan as text, or as JSON for tools. */
void plan_print(const Plan *plan, bool json, FILE *to);

void plan_clear(Plan *plan);
