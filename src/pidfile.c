/* pidfile: the -P file.  See pidfile.h. */
#include "config.h"

#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exit-status.h"
#include "log.h"

gboolean pid_file_open(PidFile *pf, const char *path, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  struct stat st;
  int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;

  *pf = (PidFile) PID_FILE_NONE;
  pf->path = g_strdup(path);
  pf->name = g_path_get_basename(path);
  pf->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (pf->dir_fd >= 0) {
    pf->fd = openat(pf->dir_fd, pf->name, flags | O_CREAT | O_EXCL, 0644);
    pf->created = pf->fd >= 0;
    if (pf->fd < 0 && errno == EEXIST)
      pf->fd = openat(pf->dir_fd, pf->name, flags);
  }
  if (pf->fd < 0) {
    int err = errno;
    g_set_error(error, SPAWN_ERROR, EXIT_STATUS_USAGE, "cannot open PID file '%s': %s",
                path, err == ELOOP ? "it is a symbolic link" : g_strerror(err));
    pid_file_close(pf);
    return FALSE;
  }
  if (fstat(pf->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    g_set_error(error, SPAWN_ERROR, EXIT_STATUS_USAGE,
                "PID file '%s' exists and is not a regular file", path);
    pid_file_close(pf);
    return FALSE;
  }
  if (!pf->created) {
    /* A PID file is small; keep what it holds in case we must put it back. */
    char buf[4096];
    int rfd = openat(pf->dir_fd, pf->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = rfd >= 0 ? pread(rfd, buf, sizeof buf, 0) : -1;
    if (rfd >= 0)
      close(rfd);
    pf->previous = g_bytes_new(buf, n > 0 ? (gsize) n : 0);
  }
  return TRUE;
}

void pid_file_write(PidFile *pf, const pid_t *pids, size_t n)
{
  g_autoptr(GString) text = g_string_new(NULL);

  if (pf->fd < 0)
    return;
  for (size_t i = 0; i < n; i++)
    g_string_append_printf(text, "%s%d", i ? "\n" : "", (int) pids[i]);
  pf->written = true;
  if (ftruncate(pf->fd, 0) < 0 ||
      pwrite(pf->fd, text->str, text->len, 0) != (ssize_t) text->len)
    log_warning("cannot write PID file '%s': %s", pf->path, g_strerror(errno));
}

/* Through the descriptor, which works even after the privilege drop. */
static void put_back(PidFile *pf)
{
  gsize len = 0;
  const void *data = pf->previous ? g_bytes_get_data(pf->previous, &len) : NULL;
  if (ftruncate(pf->fd, 0) < 0 || (len > 0 && pwrite(pf->fd, data, len, 0) < 0))
    log_warning("cannot restore PID file '%s': %s", pf->path, g_strerror(errno));
}

void pid_file_abandon(PidFile *pf)
{
  if (pf->fd < 0)
    return;
  if (pf->created) {
    if (unlinkat(pf->dir_fd, pf->name, 0) < 0)
      put_back(pf);
  } else if (pf->written) {
    put_back(pf);
  }
  pid_file_close(pf);
}

void pid_file_remove(PidFile *pf)
{
  if (pf->fd >= 0 && pf->written)
    unlinkat(pf->dir_fd, pf->name, 0);
  pid_file_close(pf);
}

void pid_file_close(PidFile *pf)
{
  if (pf->fd >= 0)
    close(pf->fd);
  if (pf->dir_fd >= 0)
    close(pf->dir_fd);
  g_clear_pointer(&pf->name, g_free);
  g_clear_pointer(&pf->path, g_free);
  g_clear_pointer(&pf->previous, g_bytes_unref);
  pf->fd = pf->dir_fd = -1;
}
