/* privileges: chroot and the complete, verified privilege drop.
 *
 * The drop replaces the supplementary groups, then sets real, effective and
 * saved gid, then uid, then reads everything back and checks that uid 0
 * cannot be regained.  Nothing here looks up names, and the drop does not
 * allocate (it runs between fork and exec). */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

#include "launch-failure.h"

/* chroot(dir) and chdir("/").  Errors are SPAWN_ERROR, EXIT_STATUS_PRIVILEGE. */
gboolean privileges_chroot(const char *dir, GError **error);

/* The drop step of launch_exec(): returns false with failure filled in. */
bool privileges_drop(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
                     LaunchFailure *failure);
