/* children: fork mode.  Starts N copies of the application on one socket,
 * each through launch_exec(), checks every one of them, reports, writes the
 * PID file and returns (spawn-fcgi then exits; the children stay).
 *
 * All children are forked before any of them goes on (they wait at a
 * gate), so a failed fork leaves nothing started.
 *
 * Every child is checked: it must reach exec (a close-on-exec pipe reports
 * the failure of any earlier step), and then still be alive at the end of
 * one common grace period that runs while the children start.  If any child fails, the others are
 * stopped, so that nothing is left half-started. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "launch.h"
#include "pidfile.h"

typedef enum {
  CHILD_STARTING,
  CHILD_RUNNING,      /* reached exec and still alive */
  CHILD_FAILED,       /* a launch step failed before exec, or fork failed */
  CHILD_DIED,         /* exec'd, then exited */
} ChildState;

typedef struct {
  pid_t pid;          /* -1 if fork failed */
  int status_fd;      /* read end of the close-on-exec status pipe */
  ChildState state;
  int wait_status;
  LaunchFailure failure;
} Child;

/* Forks one child that runs launch_exec(plan) (which gives every child a
 * session of its own).  detach: stdout/stderr on /dev/null (fork mode, as
 * spawn-fcgi 1.6).  gate: NULL,
 * or a close-on-exec pipe: the child first waits for one byte from it and
 * exits without starting anything at end of file. */
void children_fork(const LaunchPlan *plan, bool detach, const int gate[2], Child *child);

/* Waits until the child reached exec (RUNNING) or reported the step that
 * failed (FAILED, then reaped). */
void children_await_exec(Child *child);

/* Logs why a child is not running. */
void children_report_failure(const LaunchPlan *plan, const Child *child);

/* A child must still be alive CHILDREN_GRACE_MS after the children were
 * let go (the gate opened), and
 * at least CHILDREN_GRACE_MIN_MS after all children reached exec. */
#define CHILDREN_GRACE_MS 100
#define CHILDREN_GRACE_MIN_MS 25

/* Returns the exit status for spawn-fcgi. */
int children_start(const LaunchPlan *plan, int count, PidFile *pid_file);
