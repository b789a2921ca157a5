/* pidfile: the -P file.  Opened before any chroot, non-blocking, never
 * through a symbolic link, and only if it is a regular file with one name,
 * owned by root or the caller; its directory is held open so that the file
 * can be found again after a chroot.  A failed start (a PID file that
 * cannot be written completely is one) leaves an existing file as it was
 * (its old content is put back if our PID was already written) and removes
 * one it created. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct {
  int fd;                 /* -1: no PID file */
  int dir_fd;
  char *name;
  char *path;             /* for messages */
  bool created;           /* by this run */
  bool written;           /* our PIDs are in it */
  GBytes *previous;       /* content of an existing file, to put back */
} PidFile;

#define PID_FILE_NONE { .fd = -1, .dir_fd = -1 }

/* Errors: SPAWN_ERROR, EXIT_STATUS_USAGE. */
gboolean pid_file_open(PidFile *pf, const char *path, GError **error);

/* Replaces the content with the PIDs, one per line, no newline after the
 * last (spawn-fcgi 1.6's format).  Errors: SPAWN_ERROR,
 * EXIT_STATUS_CHILD_FAILED; the caller then stops what it started and
 * calls pid_file_abandon(). */
gboolean pid_file_write(PidFile *pf, const pid_t *pids, size_t n, GError **error);

/* After a failed start: removes the file if this run created it, else
 * puts back what it held; closes it. */
void pid_file_abandon(PidFile *pf);

/* When the process it names ends: removes the file if it holds our PID;
 * closes it. */
void pid_file_remove(PidFile *pf);

/* Closes the file, leaving it in place. */
void pid_file_close(PidFile *pf);
