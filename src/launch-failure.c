/* launch-failure: the failure report.  See launch-failure.h. */
#include "config.h"

#include "launch-failure.h"

#include <stdio.h>

bool launch_fail(LaunchFailure *f, LaunchStep step, int err, const char *detail)
{
  f->step = step;
  f->err = err;
  if (detail != NULL)
    snprintf(f->detail, sizeof f->detail, "%s", detail);
  return false;
}
