// fuzz-sources: settings.c trusted-file.c
/* fuzz-settings: libFuzzer target for settings_parse(), the command line
 * and the config file.
 *
 * Input: the low bit of the first byte picks the form.
 *   0: the rest is the command line, arguments separated by NUL bytes
 *      (argv[0] is "spawn-fcgi").
 *   1: the rest is a config file text, up to an optional 0x1e byte; after
 *      it, NUL-separated arguments that follow "--config FILE" on the
 *      command line (so both sources are merged).
 * The config text is written to a file in a private temporary directory
 * (a file spawn-fcgi trusts: owned by the caller, mode 0600).
 * Command lines that name a config file of their own are skipped: the
 * target must never read the machine's files.
 *
 * A successful parse must give values inside their documented ranges; a
 * failed one an error with a message and a cleared struct.  GLib criticals
 * and warnings abort. */
#include "config.h"

#include "settings.h"
#include "fuzz-glib.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 64
#define SEPARATOR '\x1e'

static int config_fd = -1;
static char config_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  fuzz_abort_on_glib_warnings();
  /* --help and --version print to stdout. */
  if (freopen("/dev/null", "w", stdout) == NULL)
    abort();
  char dir[] = "/tmp/fuzz-settings-XXXXXX";
  if (mkdtemp(dir) == NULL)
    abort();
  snprintf(config_path, sizeof config_path, "%s/spawn-fcgi.conf", dir);
  config_fd = open(config_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (config_fd < 0)
    abort();
  return 0;
}

static void write_config(const char *text, size_t len)
{
  if (ftruncate(config_fd, 0) < 0 || pwrite(config_fd, text, len, 0) != (ssize_t) len)
    abort();
}

/* Splits [p, end) on NUL into args[*n...]; each piece is a new string. */
static bool split_args(const char *p, const char *end, char **args, int *n)
{
  while (p < end) {
    const char *nul = memchr(p, '\0', (size_t) (end - p));
    const char *stop = nul ? nul : end;
    if (*n >= MAX_ARGS)
      return false;
    args[(*n)++] = g_strndup(p, (gsize) (stop - p));
    p = stop + 1;
  }
  return true;
}

static bool names_a_file_to_read(char *const *args, int n)
{
  for (int i = 1; i < n; i++) {
    /* after "--", everything is the application */
    if (strcmp(args[i], "--") == 0)
      return false;
    if (g_str_has_prefix(args[i], "--config"))
      return true;
  }
  return false;
}

static void check_settings(const Settings *s)
{
  if (s->warnings == NULL)
    abort();
  if (s->argv == NULL && !s->explain_limits)
    abort();
  if (s->argv != NULL && s->argv[0] == NULL)
    abort();
  if (s->socket_path && s->port)
    abort();
  if (s->mode_set && s->mode > 0777)
    abort();
  if (s->backlog < 1)
    abort();
  if (s->fork_count < 1 || s->fork_count > SETTINGS_MAX_CHILDREN)
    abort();
  if (s->php_children < -1 || s->php_children > 65535)
    abort();
  if (s->no_fork && s->supervise)
    abort();
  if (s->reload_batch < 1 || s->reload_batch > SETTINGS_MAX_CHILDREN)
    abort();
  if (s->restart_retries < 0 || s->restart_window_s < 1 || s->stop_timeout_s < 1)
    abort();
  if (s->stop_signal <= 0 || s->stop_signal >= NSIG)
    abort();
  /* Strings that were given are never empty. */
  const char *const strings[] = {
    s->socket_path, s->address, s->socket_user, s->socket_group, s->fd_name,
    s->user, s->group, s->chroot_dir, s->chdir_dir, s->limits_file,
    s->limits_dir, s->pid_file,
  };
  for (size_t i = 0; i < G_N_ELEMENTS(strings); i++)
    if (strings[i] != NULL && strings[i][0] == '\0')
      abort();
  /* Extra environment entries are KEY=VALUE. */
  for (char **e = s->environment; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (eq == NULL || eq == *e)
      abort();
  }
  for (guint i = 0; i < s->warnings->len; i++)
    if (g_ptr_array_index(s->warnings, i) == NULL)
      abort();
}

static void check_cleared(const Settings *s)
{
  static const Settings zero;
  if (memcmp(s, &zero, sizeof zero) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *args[MAX_ARGS + 4] = { NULL };
  int n = 0;
  const char *p, *end;

  if (size < 1)
    return 0;
  p = (const char *) data + 1;
  end = (const char *) data + size;
  args[n++] = g_strdup("spawn-fcgi");

  const char *config = NULL;
  size_t config_len = 0;
  if (data[0] & 1) {
    const char *sep = memchr(p, SEPARATOR, (size_t) (end - p));
    const char *text_end = sep ? sep : end;
    config = p;
    config_len = (size_t) (text_end - p);
    write_config(config, config_len);
    args[n++] = g_strdup("--config");
    args[n++] = g_strdup(config_path);
    p = sep ? sep + 1 : end;
  }
  if (!split_args(p, end, args, &n) || names_a_file_to_read(args, n))
    goto out;

  Settings s;
  SettingsParseResult result;
  GError *error = NULL;
  if (settings_parse(n, args, &s, &result, &error)) {
    if (error != NULL)
      abort();
    if (result == SETTINGS_PARSE_RUN)
      check_settings(&s);
    settings_clear(&s);
  } else {
    if (error == NULL || error->message == NULL || error->message[0] == '\0')
      abort();
    if (error->domain != SETTINGS_ERROR)
      abort();
    check_cleared(&s);
    g_error_free(error);
  }

out:
  for (int i = 0; i < n; i++)
    g_free(args[i]);
  return 0;
}
