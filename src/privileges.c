/* privileges: chroot and the verified drop.  See privileges.h. */
#include "config.h"

#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
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

/* The group list read back: static, so that the check allocates nothing
 * and needs no stack (limits.conf may have made the stack small). */
static gid_t groups_now[NGROUPS_MAX];

static bool verify_ids(uid_t uid, gid_t gid, LaunchFailure *f)
{
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  char detail[128];

  if (getresuid(&ru, &eu, &su) < 0)
    return launch_fail(f, LAUNCH_STEP_VERIFY, errno, "cannot read the uids back");
  if (ru != uid || eu != uid || su != uid) {
    snprintf(detail, sizeof detail, "uids are %u/%u/%u, wanted %u",
             (unsigned) ru, (unsigned) eu, (unsigned) su, (unsigned) uid);
    return launch_fail(f, LAUNCH_STEP_VERIFY, 0, detail);
  }
  if (getresgid(&rg, &eg, &sg) < 0)
    return launch_fail(f, LAUNCH_STEP_VERIFY, errno, "cannot read the gids back");
  if (rg != gid || eg != gid || sg != gid) {
    snprintf(detail, sizeof detail, "gids are %u/%u/%u, wanted %u",
             (unsigned) rg, (unsigned) eg, (unsigned) sg, (unsigned) gid);
    return launch_fail(f, LAUNCH_STEP_VERIFY, 0, detail);
  }
  return true;
}

static bool verify_groups(const gid_t *groups, size_t n_groups, LaunchFailure *f)
{
  int n = getgroups(G_N_ELEMENTS(groups_now), groups_now);
  if (n < 0)
    return launch_fail(f, LAUNCH_STEP_VERIFY, errno, "cannot read the groups back");
  if (!same_group_set(groups, n_groups, groups_now, (size_t) n))
    return launch_fail(f, LAUNCH_STEP_VERIFY, 0, "supplementary groups differ from the ones set");
  return true;
}

static bool verify_no_way_back(uid_t uid, gid_t gid, LaunchFailure *f)
{
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
  return verify_ids(uid, gid, f) && verify_groups(groups, n_groups, f) &&
         verify_no_way_back(uid, gid, f);
}
