/* exit-status: the documented exit statuses of spawn-fcgi (see the man page).
 * Scripts rely on these values: never renumber them. */
#pragma once

enum {
  EXIT_STATUS_OK = 0,
  EXIT_STATUS_CHILD_FAILED = 1,  /* a child could not be forked or died at start */
  EXIT_STATUS_USAGE = 2,         /* bad command line, config file or combination */
  EXIT_STATUS_LOOKUP = 3,        /* unknown user or group, unreadable limits file */
  EXIT_STATUS_SOCKET = 4,        /* the listening socket could not be had */
  EXIT_STATUS_PRIVILEGE = 5,     /* chroot, chdir, limits, privilege drop, fd set-up */
  EXIT_STATUS_NOT_EXECUTABLE = 126,
  /* spawn-fcgi --status only, as systemctl status and LSB status use them: */
  EXIT_STATUS_NOT_RUNNING = 3,   /* no status socket, or nobody listens on it */
  EXIT_STATUS_UNKNOWN = 4,       /* no access, no answer or a bad one */
  EXIT_STATUS_NOT_FOUND = 127,
};

#include <glib.h>

/* Errors whose code is the exit status to use. */
#define SPAWN_ERROR (spawn_error_quark())
GQuark spawn_error_quark(void);
