/* systemd: libsystemd's sd-daemon functions, loaded on demand.  See
 * systemd.h. */
#include "config.h"

#include "systemd.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#define LIBSYSTEMD "libsystemd.so.0"

G_DEFINE_QUARK(spawn-fcgi-systemd-error-quark, systemd_error)

/* The prototypes come from sd-daemon.h, so a mismatch does not compile. */
static struct {
  bool tried;
  char *error;
  __typeof__(sd_listen_fds_with_names) *listen_fds_with_names;
  __typeof__(sd_is_socket) *is_socket;
  __typeof__(sd_notify) *notify;
  __typeof__(sd_watchdog_enabled) *watchdog_enabled;
} lib;

static void *symbol(void *handle, const char *name)
{
  void *p = dlsym(handle, name);
  if (p == NULL && lib.error == NULL)
    lib.error = g_strdup_printf("%s has no %s", LIBSYSTEMD, name);
  return p;
}

/* lib.FIELD = sd_FIELD.  dlsym gives a function as void *, which POSIX
 * lets us use as a function pointer and ISO C cannot convert: copy it. */
#define LOAD_SYMBOL(handle, field)                                      \
  do {                                                                  \
    void *sym_ = symbol((handle), "sd_" #field);                        \
    G_STATIC_ASSERT(sizeof lib.field == sizeof sym_);                   \
    memcpy(&lib.field, &sym_, sizeof sym_);                             \
  } while (0)

gboolean systemd_load(GError **error)
{
  if (!lib.tried) {
    lib.tried = true;
    /* Stays loaded until exit: the functions are used to the end. */
    void *handle = dlopen(LIBSYSTEMD, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
      const char *why = dlerror();
      lib.error = g_strdup(why ? why : "dlopen failed");
    } else {
      LOAD_SYMBOL(handle, listen_fds_with_names);
      LOAD_SYMBOL(handle, is_socket);
      LOAD_SYMBOL(handle, notify);
      LOAD_SYMBOL(handle, watchdog_enabled);
      if (lib.error != NULL)
        dlclose(handle);
    }
  }
  if (lib.error != NULL) {
    g_set_error(error, SYSTEMD_ERROR, 0, "cannot load %s: %s", LIBSYSTEMD, lib.error);
    return FALSE;
  }
  return TRUE;
}

static bool loaded(void)
{
  return lib.tried && lib.error == NULL;
}

int systemd_listen_fds_with_names(char ***names, GError **error)
{
  *names = NULL;
  /* With none of them set, libsystemd would return 0 and unset nothing. */
  const char *var = getenv("LISTEN_FDS") ? "LISTEN_FDS"
                    : getenv("LISTEN_PID") ? "LISTEN_PID"
                    : getenv("LISTEN_FDNAMES") ? "LISTEN_FDNAMES" : NULL;
  if (var == NULL)
    return 0;
  if (!systemd_load(error)) {
    g_prefix_error(error, "%s is set, but ", var);
    return -1;
  }
  int n = lib.listen_fds_with_names(1, names);
  if (n < 0) {
    g_set_error(error, SYSTEMD_ERROR, 0,
                "invalid socket activation variables (LISTEN_FDS, LISTEN_FDNAMES): %s",
                g_strerror(-n));
    return -1;
  }
  return n;
}

int systemd_is_socket(int fd, int family, int type, int listening, GError **error)
{
  if (!systemd_load(error))
    return -1;
  /* An fd that cannot even be checked is no usable socket either. */
  return MAX(lib.is_socket(fd, family, type, listening), 0);
}

gboolean systemd_load_for_notify(GError **error)
{
  const char *var = getenv("NOTIFY_SOCKET") ? "NOTIFY_SOCKET"
                    : getenv("WATCHDOG_USEC") ? "WATCHDOG_USEC" : NULL;
  if (var == NULL || systemd_load(error))
    return TRUE;
  g_prefix_error(error, "%s is set, but ", var);
  return FALSE;
}

int systemd_notify(const char *state)
{
  if (!loaded() || !getenv("NOTIFY_SOCKET"))
    return 0;
  return lib.notify(0, state);
}

int systemd_notifyf(const char *format, ...)
{
  if (!loaded() || !getenv("NOTIFY_SOCKET"))
    return 0;   /* nothing to format either */
  va_list ap;
  va_start(ap, format);
  g_autofree char *state = g_strdup_vprintf(format, ap);
  va_end(ap);
  return systemd_notify(state);
}

int systemd_watchdog_enabled(uint64_t *usec)
{
  if (!loaded() || !getenv("WATCHDOG_USEC"))
    return 0;
  return lib.watchdog_enabled(0, usec);
}
