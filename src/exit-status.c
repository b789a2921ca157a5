/* exit-status: the error domain whose codes are exit statuses.  See
 * exit-status.h. */
#include "config.h"

#include "exit-status.h"

G_DEFINE_QUARK(spawn-fcgi-error, spawn_error)
