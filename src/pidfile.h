/* pidfile: the -P file.  Opened before any chroot, never through a symbolic
 * link and only if it is a regular file; its directory is held open so that
 * the file can be found again after a chroot.  Written only once there is
 * something to write (a failed start leaves an existing file as it was);
 * removed only if this run created it, or if it holds our own PID. */
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
} PidFile;

#define PID_FILE_NONE { .fd = -1, .dir_fd = -1 }

/* Errors: SPAWN_ERROR, EXIT_STATUS_USAGE. */
gboolean pid_file_open(PidFile *pf, const char *path, GError **error);

/* Replaces the content with the PIDs, one per line, no newline after the
 * last (spawn-fcgi 1.6's format).  Failures are warnings. */
void pid_file_write(PidFile *pf, const pid_t *pids, size_t n);

/* After a failed start, or when the process it names exits: removes the
 * file if this run created it or wrote into it; closes it. */
void pid_file_discard(PidFile *pf, bool written);

/* Closes the file, leaving it in place. */
void pid_file_close(PidFile *pf);
