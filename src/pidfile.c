/* pidfile: the -P file.  See pidfile.h. */
#include "config.h"

#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exit-status.h"
#include "log.h"

/* More than any list of PIDs spawn-fcgi writes (4096 children). */
#define PID_FILE_MAX_SIZE 65536

static gboolean refuse(PidFile *pf, GError **error, const char *why)
{
  g_set_error(error, SPAWN_ERROR, EXIT_STATUS_USAGE, "refusing PID file '%s': %s",
              pf->path, why);
  pid_file_close(pf);
  return FALSE;
}

/* Only a file nobody else controls is ours to overwrite: a regular file
 * (a FIFO would block, a device would be written to), with one name (a
 * hard link would overwrite the other name's file), owned by root or by
 * the caller. */
static gboolean check_opened(PidFile *pf, GError **error)
{
  struct stat st;
  g_autofree char *why = NULL;

  if (fstat(pf->fd, &st) < 0)
    why = g_strdup(g_strerror(errno));
  else if (!S_ISREG(st.st_mode))
    why = g_strdup("it exists and is not a regular file");
  else if (st.st_nlink != 1)
    why = g_strdup_printf("it has %ju hard links (another file would be overwritten)",
                          (uintmax_t) st.st_nlink);
  else if (st.st_uid != 0 && st.st_uid != geteuid())
    why = g_strdup_printf("it is owned by uid %u, not by root or the caller",
                          (unsigned) st.st_uid);
  else if (st.st_size > PID_FILE_MAX_SIZE)
    why = g_strdup_printf("it holds %jd bytes, too many for a PID file",
                          (intmax_t) st.st_size);
  return why == NULL || refuse(pf, error, why);
}

/* A PID file is small; keep what it holds in case we must put it back. */
static gboolean keep_previous(PidFile *pf, GError **error)
{
  g_autofree char *buf = g_malloc(PID_FILE_MAX_SIZE);
  gsize len = 0;

  while (len < PID_FILE_MAX_SIZE) {
    ssize_t n = pread(pf->fd, buf + len, PID_FILE_MAX_SIZE - len, (off_t) len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return refuse(pf, error, g_strerror(errno));
    if (n == 0)
      break;
    len += (gsize) n;
  }
  pf->previous = g_bytes_new(buf, len);
  return TRUE;
}

gboolean pid_file_open(PidFile *pf, const char *path, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  /* Non-blocking: opening a FIFO must not wait for a reader.  Read and
   * write through one descriptor: the file checked is the file used. */
  int flags = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

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
                path, err == ELOOP ? "it is a symbolic link"
                      : err == ENXIO ? "it exists and is not a regular file"
                      : g_strerror(err));
    pid_file_close(pf);
    return FALSE;
  }
  if (!check_opened(pf, error))
    return FALSE;
  return pf->created || keep_previous(pf, error);
}

/* The whole buffer at offset 0 of a truncated file, or -errno. */
static int replace_content(int fd, const char *data, gsize len)
{
  gsize done = 0;

  if (ftruncate(fd, 0) < 0)
    return -errno;
  while (done < len) {
    ssize_t n = pwrite(fd, data + done, len - done, (off_t) done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -ENOSPC;
    done += (gsize) n;
  }
  return 0;
}

gboolean pid_file_write(PidFile *pf, const pid_t *pids, size_t n, GError **error)
{
  g_autoptr(GString) text = g_string_new(NULL);

  if (pf->fd < 0)
    return TRUE;
  for (size_t i = 0; i < n; i++)
    g_string_append_printf(text, "%s%d", i ? "\n" : "", (int) pids[i]);
  pf->written = true;
  int rc = replace_content(pf->fd, text->str, text->len);
  if (rc < 0) {
    g_set_error(error, SPAWN_ERROR, EXIT_STATUS_CHILD_FAILED,
                "cannot write PID file '%s': %s", pf->path, g_strerror(-rc));
    return FALSE;
  }
  return TRUE;
}

/* Through the descriptor, which works even after the privilege drop. */
static void put_back(PidFile *pf)
{
  gsize len = 0;
  const char *data = pf->previous ? g_bytes_get_data(pf->previous, &len) : NULL;
  int rc = replace_content(pf->fd, data, len);
  if (rc < 0)
    log_warning("cannot restore PID file '%s': %s", pf->path, g_strerror(-rc));
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
