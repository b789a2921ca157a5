/* autofd: a descriptor owned by a scope.
 *
 *   auto_fd int fd = open(...);      closed when the scope is left
 *   return g_steal_fd(&fd);          ownership handed to the caller
 *
 * (glib 2.76 has g_autofd; Debian 12 ships 2.74.) */
#pragma once

#include <glib.h>
#include <glib/gstdio.h>
#include <unistd.h>

static inline void autofd_close(int *fd)
{
  if (*fd >= 0)
    close(*fd);
}

#define auto_fd __attribute__((cleanup(autofd_close)))
