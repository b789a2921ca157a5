/* launch-failure: what went wrong on the way from a prepared process to
 * the application, as plain data.  The process that failed fills it in
 * without allocating (it may be a forked child, after the privilege drop)
 * and, in a child, sends it through the status pipe to its parent, which
 * reports it (launch_failure_describe() in launch.h). */
#pragma once

#include <stdbool.h>

typedef enum {
  LAUNCH_STEP_NONE = 0,
  LAUNCH_STEP_SETSID,
  LAUNCH_STEP_TERMINAL,
  LAUNCH_STEP_LIMITS,
  LAUNCH_STEP_CHDIR,
  LAUNCH_STEP_PERSONALITY,
  LAUNCH_STEP_SETGROUPS,
  LAUNCH_STEP_SETRESGID,
  LAUNCH_STEP_SETRESUID,
  LAUNCH_STEP_VERIFY,
  LAUNCH_STEP_PARENT,
  LAUNCH_STEP_NO_NEW_PRIVS,
  LAUNCH_STEP_SOCKET_FD,
  LAUNCH_STEP_STDIO,
  LAUNCH_STEP_CLOSE_FDS,
  LAUNCH_STEP_SIGNALS,
  LAUNCH_STEP_EXEC,
} LaunchStep;

typedef struct {
  LaunchStep step;
  int err;                 /* errno, or 0 */
  char detail[512];        /* what exactly, for the message */
} LaunchFailure;

/* Records a failed step; returns false for "return launch_fail(...)".
 * detail NULL keeps the detail a step already wrote.  Does not allocate. */
bool launch_fail(LaunchFailure *failure, LaunchStep step, int err, const char *detail);
