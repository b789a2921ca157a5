/* launch: the steps every process that becomes the application goes
 * through, in one order, in no-fork mode and in every child alike:
 *
 *   leave the caller's terminal -> limits -> chdir -> personality, umask
 *   -> no_new_privs -> fds (socket on 0, stdio, every other fd
 *   close-on-exec) -> signals -> setgroups/setresgid/setresuid (verified)
 *   -> die with the supervisor -> exec
 *
 * The privilege drop comes late so that a failure of any step before it
 * can still be cleaned up (socket, PID file) with root's rights; only what
 * a credential change would undo (the parent-death signal) comes after.
 * The plan is computed before; nothing here looks anything up, and
 * nothing on the way from fork to exec allocates: it may run in a forked
 * copy of a process that held the allocator's lock, and after the drop.
 * On any failure launch_exec() returns with the step and errno filled in,
 * and the application has not been started. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "launch-failure.h"
#include "limits-conf.h"

typedef struct {
  const LimitsPlan *limits;       /* NULL: no limits */
  bool limits_ignore_errors;
  const char *chdir_dir;          /* NULL: stay */
  bool drop;                      /* change uid/gid/groups */
  uid_t uid;
  gid_t gid;
  const gid_t *groups;
  size_t n_groups;
  bool no_new_privs;
  int umask;                      /* the application's umask; -1: keep ours */
  pid_t parent;                   /* > 0: die with this parent (the supervisor) */
  int parent_death_signal;        /* ... by this signal */
  int listen_fd;
  int null_fd;                    /* /dev/null, opened before any chroot */
  bool stdio_to_null;             /* fork mode: fds 1 and 2 to /dev/null */
  const char *exec_path;
  char *const *argv;
  char *const *envp;
} LaunchPlan;

/* Returns only on failure. */
void launch_exec(const LaunchPlan *plan, LaunchFailure *failure);

/* The documented exit status for a failure. */
int launch_failure_exit_status(const LaunchFailure *failure);

/* "setresuid(1000) failed: Operation not permitted" and the like. */
char *launch_failure_describe(const LaunchFailure *failure, const LaunchPlan *plan);

/* The variables of the systemd protocols, meant for spawn-fcgi itself:
 * never passed to the application.  NULL-terminated. */
extern const char *const launch_removed_variables[];

/* How the application's environment is made from the caller's. */
typedef struct {
  bool clear;             /* keep only PATH (and what pass names) */
  int php_children;       /* PHP_FCGI_CHILDREN; -1: not set */
  char **set;             /* KEY=VALUE entries (environment=) */
  char **pass;            /* NAME (taken from the caller, if set there) or
                           * NAME=VALUE (--env, env=) */
} LaunchEnvironment;

/* The environment the application gets: the caller's (base) without
 * launch_removed_variables (with clear: only its PATH), then
 * PHP_FCGI_CHILDREN, set and pass, each replacing what came before.
 * Pure: a new NULL-terminated array. */
char **launch_build_environment(char *const *base, const LaunchEnvironment *how);
