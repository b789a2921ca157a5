/* status-client: `spawn-fcgi --status`, the client side of status-server.
 *
 * Connects to a running supervisor's status socket (or its TCP endpoint),
 * asks for one format and returns the body of the answer.  The whole
 * exchange is bounded in time (STATUS_CLIENT_TIMEOUT_S) and size. */
#pragma once

#include <glib.h>

#include "settings.h"
#include "status.h"

#define STATUS_CLIENT_ERROR (status_client_error_quark())
GQuark status_client_error_quark(void);

typedef enum {
  STATUS_CLIENT_ERROR_NOT_RUNNING,  /* no socket there, or nobody listens */
  STATUS_CLIENT_ERROR_UNKNOWN,      /* no access, no answer, a bad answer */
} StatusClientError;

#define STATUS_CLIENT_TIMEOUT_S 10
#define STATUS_CLIENT_MAX_ANSWER (64 * 1024 * 1024)

/* Asks the pool that --status-socket (else --status-listen) of s names;
 * returns the body of a 200 answer. */
GString *status_client_fetch(const Settings *s, GError **error);
