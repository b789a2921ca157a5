/* privileges: chroot and the verified drop.  See privileges.h. */
#include "config.h"

#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "exit-status.h"

gboolean privileges_chroot(const char *dir, GError **error)
{
  if (chroot(dir) < 0) {
    int err = errno;
    g_set_error(error, SPAWN_ERROR, EXIT_STATUS_PRIVILEGE,
                "cannot chroot to '%s': %s", dir, g_strerror(err));
    return FALSE;
  }
  if (chdir("/") < 0) {
    int err = errno;
    g_set_error(error, SPAWN_ERROR, EXIT_STATUS_PRIVILEGE,
                "cannot chdir to / in chroot '%s': %s", dir, g_strerror(err));
    return FALSE;
  }
  return TRUE;
}

static bool same_group_set(const gid_t *want, size_t n_want, const gid_t *have, size_t n_have)
{
  for (size_t i = 0; i < n_want; i++) {
    bool found = false;
    for (size_t j = 0; j < n_have && !found; j++)
      found = have[j] == want[i];
    if (!found)
      return false;
  }
  for (size_t j = 0; j < n_have; j++) {
    bool found = false;
    for (size_t i = 0; i < n_want && !found; i++)
      found = have[j] == want[i];
    if (!found)
      return false;
  }
  return true;
}

static bool verify(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
                   LaunchFailure *f)
{
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  char detail[128];

  if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid) {
    snprintf(detail, sizeof detail, "uids are %d/%d/%d, wanted %u",
             (int) ru, (int) eu, (int) su, (unsigned) uid);
    return launch_fail(f, LAUNCH_STEP_VERIFY, 0, detail);
  }
  if (getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid) {
    snprintf(detail, sizeof detail, "gids are %d/%d/%d, wanted %u",
             (int) rg, (int) eg, (int) sg, (unsigned) gid);
    return launch_fail(f, LAUNCH_STEP_VERIFY, 0, detail);
  }

  int n = getgroups(0, NULL);
  gid_t *have = n > 0 ? malloc(sizeof *have * (size_t) n) : NULL;
  if (n < 0 || (n > 0 && (have == NULL || getgroups(n, have) != n)) ||
      !same_group_set(groups, n_groups, have, n > 0 ? (size_t) n : 0)) {
    free(have);
    return launch_fail(f, LAUNCH_STEP_VERIFY, 0, "supplementary groups differ from the ones set");
  }
  free(have);

  if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
    return launch_fail(f, LAUNCH_STEP_VERIFY, 0, "uid 0 could be regained");
  if (uid != 0 && gid != 0 && (setgid(0) == 0 || setegid(0) == 0))
    return launch_fail(f, LAUNCH_STEP_VERIFY, 0, "gid 0 could be regained");
  return true;
}

bool privileges_drop(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
                     LaunchFailure *f)
{
  char detail[64];

  /* Groups first: after setresuid() they can no longer be changed. */
  if (setgroups(n_groups, groups) < 0)
    return launch_fail(f, LAUNCH_STEP_SETGROUPS, errno, "");
  snprintf(detail, sizeof detail, "%u", (unsigned) gid);
  if (setresgid(gid, gid, gid) < 0)
    return launch_fail(f, LAUNCH_STEP_SETRESGID, errno, detail);
  snprintf(detail, sizeof detail, "%u", (unsigned) uid);
  if (setresuid(uid, uid, uid) < 0)
    return launch_fail(f, LAUNCH_STEP_SETRESUID, errno, detail);
  return verify(uid, gid, groups, n_groups, f);
}
