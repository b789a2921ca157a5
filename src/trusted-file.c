/* trusted-file: may spawn-fcgi believe what a file says?  See trusted-file.h. */
#include "config.h"

#include "trusted-file.h"

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool trusted_owner(uid_t uid)
{
  return uid == 0 || uid == geteuid();
}

/* sticky_ok: the directory is sticky and what we go through in it is
 * trusted, so others writing in it do no harm. */
static char *stat_problem(const struct stat *st, const char *path, bool sticky_ok)
{
  if (!trusted_owner(st->st_uid))
    return g_strdup_printf("'%s' is owned by uid %u, not by root%s", path,
                           (unsigned) st->st_uid, geteuid() ? " or the caller" : "");
  if (sticky_ok && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX))
    return NULL;
  if (st->st_mode & S_IWOTH)
    return g_strdup_printf("'%s' is writable by others (mode %04o)", path,
                           (unsigned) (st->st_mode & 07777));
  if (st->st_mode & S_IWGRP)
    return g_strdup_printf("'%s' is writable by group %u (mode %04o)", path,
                           (unsigned) st->st_gid, (unsigned) (st->st_mode & 07777));
  return NULL;
}

/* Every directory above real (an absolute path without symbolic links),
 * from its parent up to /. */
static char *directories_problem(const char *real)
{
  g_autofree char *dir = g_path_get_dirname(real);
  /* Whether the entry below dir (at first the file) is trusted: only then
   * may a sticky dir be writable by others. */
  bool below_trusted = true;

  for (;;) {
    struct stat st;
    if (lstat(dir, &st) < 0)
      return g_strdup_printf("cannot check '%s': %s", dir, g_strerror(errno));
    char *problem = stat_problem(&st, dir, below_trusted);
    if (problem != NULL)
      return problem;
    below_trusted = trusted_owner(st.st_uid);
    if (strcmp(dir, "/") == 0)
      return NULL;
    char *up = g_path_get_dirname(dir);
    g_free(dir);
    dir = up;
  }
}

char *trusted_file_problem(int fd, const char *path)
{
  struct stat st, again;
  char real[PATH_MAX];

  if (fstat(fd, &st) < 0)
    return g_strdup_printf("cannot check '%s': %s", path, g_strerror(errno));
  char *problem = stat_problem(&st, path, false);
  if (problem != NULL)
    return problem;
  if (realpath(path, real) == NULL)
    return g_strdup_printf("cannot find the directories of '%s': %s", path,
                           g_strerror(errno));
  /* The real path must still lead to the file that was opened: then the
   * directories checked are the ones that hold it. */
  if (stat(real, &again) < 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino)
    return g_strdup_printf("'%s' was replaced while it was read", path);
  return directories_problem(real);
}
