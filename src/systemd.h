/* systemd: the sd-daemon functions of libsystemd, loaded when systemd
 * talks to us.
 *
 * libsystemd.so.0 is opened (dlopen) the first time one of these needs it,
 * and only then: when LISTEN_* variables pass sockets, when NOTIFY_SOCKET
 * or WATCHDOG_USEC ask for notifications, or when fd 0 must be checked.
 * Without them spawn-fcgi does not map libsystemd and the libraries it
 * pulls in (libgcrypt, liblz4, libzstd, liblzma, libcap), which is a
 * quarter of a supervisor's resident memory and of its start-up work.
 *
 * Load it before a chroot: systemd_load_for_notify() does that for the
 * supervisor. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define SYSTEMD_ERROR (systemd_error_quark())
GQuark systemd_error_quark(void);

/* Opens libsystemd.so.0 (once); FALSE with a message naming it when it
 * cannot be loaded. */
gboolean systemd_load(GError **error);

/* sd_listen_fds_with_names(1, names): 0 without loading anything when no
 * LISTEN_* variable is set; -1 with error when libsystemd cannot be loaded
 * or the variables are invalid (the message names them). */
int systemd_listen_fds_with_names(char ***names, GError **error);

/* sd_is_socket(), with its errors (fstat, getsockopt) as 0: not a usable
 * socket; -1 with error only when libsystemd cannot be loaded. */
int systemd_is_socket(int fd, int family, int type, int listening, GError **error);

/* For the supervisor, before any chroot: loads libsystemd if
 * NOTIFY_SOCKET or WATCHDOG_USEC is set. */
gboolean systemd_load_for_notify(GError **error);

/* sd_notify(0, ...) and sd_watchdog_enabled(0, ...); nothing happens (0)
 * when their variables are not set or libsystemd was not loaded. */
int systemd_notify(const char *state);
int systemd_notifyf(const char *format, ...) G_GNUC_PRINTF(1, 2);
int systemd_watchdog_enabled(uint64_t *usec);
