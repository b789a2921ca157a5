/* settings: defaults, config file and command line into one struct.
 * See settings.h.
 *
 * One table describes every option: its long name (which is also its key in
 * the config file), its short letter (the spawn-fcgi 1.6 letters), its type
 * and its help line.  The command line and the config file both collect raw
 * strings into the same slots; one conversion step then validates them, so
 * a value means the same wherever it was written and every error names where
 * it came from. */
#include "config.h"

#include "settings.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trusted-file.h"

G_DEFINE_QUARK(spawn-fcgi-settings-error, settings_error)

#define CONFIG_GROUP "spawn-fcgi"

typedef enum {
  OPT_SOCKET,
  OPT_ADDRESS,
  OPT_PORT,
  OPT_MODE,
  OPT_SOCKET_USER,
  OPT_SOCKET_GROUP,
  OPT_BACKLOG,
  OPT_SOCKET_BEFORE_CHROOT,
  OPT_FD_NAME,
  OPT_USER,
  OPT_GROUP,
  OPT_CHROOT,
  OPT_CHDIR,
  OPT_NO_NEW_PRIVS,
  OPT_UMASK,
  OPT_LIMITS,
  OPT_LIMITS_FILE,
  OPT_LIMITS_DIR,
  OPT_LIMITS_IGNORE_ERRORS,
  OPT_EXPLAIN_LIMITS,
  OPT_PHP_CHILDREN,
  OPT_FORK,
  OPT_NO_FORK,
  OPT_PID_FILE,
  OPT_SUPERVISE,
  OPT_RESTART_RETRIES,
  OPT_RESTART_WINDOW,
  OPT_STOP_SIGNAL,
  OPT_STOP_TIMEOUT,
  OPT_RELOAD_BATCH,
  OPT_STATUS_SOCKET,
  OPT_STATUS_GROUP,
  OPT_STATUS_LISTEN,
  OPT_STATUS_LISTEN_NONLOCAL,
  OPT_STATUS,
  OPT_CLEAR_ENV,
  OPT_ENV,
  OPT_PM,
  OPT_MIN_CHILDREN,
  OPT_IDLE_TIMEOUT,
  OPT_MAX_AGE,
  OPT_MAX_RSS,
  OPT_FILE,
  OPT_EXEC,
  OPT_ENVIRONMENT,
  OPT_CONFIG,
  OPT_CHECK,
  OPT_VERSION,
  OPT_HELP,
  OPT_COUNT
} OptionId;

typedef enum {
  TYPE_STRING,
  TYPE_FLAG,
  TYPE_OPTIONAL,              /* a flag that may take a value: --check[=json] */
  TYPE_PORT,
  TYPE_MODE,
  TYPE_SIGNAL,
  TYPE_INT,
  TYPE_COMMAND,
  TYPE_ENVIRONMENT,
  TYPE_LIST,                  /* repeatable; a ';' list in the config file */
  TYPE_SIZE,
} ValueType;

typedef enum {
  SECTION_SOCKET,
  SECTION_PRIVILEGES,
  SECTION_LIMITS,
  SECTION_CHILDREN,
  SECTION_STATUS,
  SECTION_ENVIRONMENT,
  SECTION_OTHER,
} Section;

/* Where an option may be given. */
#define IN_CLI    (1u << 0)
#define IN_CONFIG (1u << 1)
#define IN_BOTH   (IN_CLI | IN_CONFIG)

typedef struct {
  const char *long_name;
  char short_name;
  ValueType type;
  Section section;
  unsigned where;
  gint64 min, max;            /* TYPE_INT */
  const char *arg;
  const char *help;
} OptionSpec;

static const OptionSpec options[OPT_COUNT] = {
  [OPT_SOCKET] = { "socket", 's', TYPE_STRING, SECTION_SOCKET, IN_BOTH, 0, 0,
    "PATH", "listen on a unix socket at PATH" },
  [OPT_ADDRESS] = { "address", 'a', TYPE_STRING, SECTION_SOCKET, IN_BOTH, 0, 0,
    "ADDR", "TCP address: IPv4, IPv6 or host (default 0.0.0.0)" },
  [OPT_PORT] = { "port", 'p', TYPE_PORT, SECTION_SOCKET, IN_BOTH, 0, 0,
    "PORT", "listen on TCP port PORT" },
  [OPT_MODE] = { "mode", 'M', TYPE_MODE, SECTION_SOCKET, IN_BOTH, 0, 0,
    "MODE", "unix socket mode, octal (default 0660 minus umask)" },
  [OPT_SOCKET_USER] = { "socket-user", 'U', TYPE_STRING, SECTION_SOCKET, IN_BOTH, 0, 0,
    "USER", "owner of the unix socket (default: --user)" },
  [OPT_SOCKET_GROUP] = { "socket-group", 'G', TYPE_STRING, SECTION_SOCKET, IN_BOTH, 0, 0,
    "GROUP", "group of the unix socket (default: -U's, else -g)" },
  [OPT_BACKLOG] = { "backlog", 'b', TYPE_INT, SECTION_SOCKET, IN_BOTH, 1, G_MAXINT,
    "N", "listen backlog (default 1024)" },
  [OPT_SOCKET_BEFORE_CHROOT] = { "socket-before-chroot", 'S', TYPE_FLAG, SECTION_SOCKET, IN_BOTH, 0, 0,
    NULL, "create the socket before the chroot" },
  [OPT_FD_NAME] = { "fd-name", 0, TYPE_STRING, SECTION_SOCKET, IN_BOTH, 0, 0,
    "NAME", "use the passed socket named NAME (LISTEN_FDNAMES)" },
  [OPT_USER] = { "user", 'u', TYPE_STRING, SECTION_PRIVILEGES, IN_BOTH, 0, 0,
    "USER", "run the application as USER, name or number (root)" },
  [OPT_GROUP] = { "group", 'g', TYPE_STRING, SECTION_PRIVILEGES, IN_BOTH, 0, 0,
    "GROUP", "primary group GROUP (root; default: USER's)" },
  [OPT_CHROOT] = { "chroot", 'c', TYPE_STRING, SECTION_PRIVILEGES, IN_BOTH, 0, 0,
    "DIR", "chroot to DIR (root)" },
  [OPT_CHDIR] = { "chdir", 'd', TYPE_STRING, SECTION_PRIVILEGES, IN_BOTH, 0, 0,
    "DIR", "change to DIR (inside the chroot) before exec" },
  [OPT_NO_NEW_PRIVS] = { "no-new-privs", 0, TYPE_FLAG, SECTION_PRIVILEGES, IN_BOTH, 0, 0,
    NULL, "set no_new_privs for the application" },
  [OPT_UMASK] = { "umask", 0, TYPE_MODE, SECTION_PRIVILEGES, IN_BOTH, 0, 0,
    "MODE", "the application's umask, octal (default: ours)" },
  [OPT_LIMITS] = { "limits", 'l', TYPE_FLAG, SECTION_LIMITS, IN_BOTH, 0, 0,
    NULL, "apply USER's limits.conf as pam_limits would" },
  [OPT_LIMITS_FILE] = { "limits-file", 0, TYPE_STRING, SECTION_LIMITS, IN_BOTH, 0, 0,
    "FILE", "read FILE instead of /etc/security/limits.conf" },
  [OPT_LIMITS_DIR] = { "limits-dir", 0, TYPE_STRING, SECTION_LIMITS, IN_BOTH, 0, 0,
    "DIR", "read DIR/*.conf instead of /etc/security/limits.d" },
  [OPT_LIMITS_IGNORE_ERRORS] = { "limits-ignore-errors", 0, TYPE_FLAG, SECTION_LIMITS, IN_BOTH, 0, 0,
    NULL, "warn instead of failing when a limit is refused" },
  [OPT_EXPLAIN_LIMITS] = { "explain-limits", 0, TYPE_FLAG, SECTION_LIMITS, IN_CLI, 0, 0,
    NULL, "show USER's limits and why; start nothing" },
  [OPT_PHP_CHILDREN] = { "php-children", 'C', TYPE_INT, SECTION_CHILDREN, IN_BOTH, 0, 65535,
    "N", "set PHP_FCGI_CHILDREN=N for the application" },
  [OPT_FORK] = { "fork", 'F', TYPE_INT, SECTION_CHILDREN, IN_BOTH, 1, SETTINGS_MAX_CHILDREN,
    "N", "start N copies of the application (default 1)" },
  [OPT_NO_FORK] = { "no-fork", 'n', TYPE_FLAG, SECTION_CHILDREN, IN_BOTH, 0, 0,
    NULL, "exec the application in place (for supervisors)" },
  [OPT_PID_FILE] = { "pid-file", 'P', TYPE_STRING, SECTION_CHILDREN, IN_BOTH, 0, 0,
    "FILE", "write the application's PIDs to FILE" },
  [OPT_SUPERVISE] = { "supervise", 'w', TYPE_FLAG, SECTION_CHILDREN, IN_BOTH, 0, 0,
    NULL, "stay, restart children, reload them on SIGHUP" },
  [OPT_RESTART_RETRIES] = { "restart-retries", 0, TYPE_INT, SECTION_CHILDREN, IN_BOTH, 0, 1000,
    "N", "give up after N quick failures in a row (default 3)" },
  [OPT_RESTART_WINDOW] = { "restart-window", 0, TYPE_INT, SECTION_CHILDREN, IN_BOTH, 1, 86400,
    "SEC", "a child dying sooner failed quickly (default 10)" },
  [OPT_STOP_SIGNAL] = { "stop-signal", 0, TYPE_SIGNAL, SECTION_CHILDREN, IN_BOTH, 0, 0,
    "SIG", "signal that asks a child to finish (default TERM)" },
  [OPT_STOP_TIMEOUT] = { "stop-timeout", 0, TYPE_INT, SECTION_CHILDREN, IN_BOTH, 1, 3600,
    "SEC", "then SIGKILL (default 10)" },
  [OPT_RELOAD_BATCH] = { "reload-batch", 0, TYPE_INT, SECTION_CHILDREN, IN_BOTH, 1,
    SETTINGS_MAX_CHILDREN, "N", "children replaced at a time on SIGHUP (default 1)" },
  [OPT_STATUS_SOCKET] = { "status-socket", 0, TYPE_STRING, SECTION_STATUS, IN_BOTH, 0, 0,
    "PATH", "serve the pool's status on a unix socket (-w)" },
  [OPT_STATUS_GROUP] = { "status-group", 0, TYPE_STRING, SECTION_STATUS, IN_BOTH, 0, 0,
    "GROUP", "let GROUP read it (mode 0660; default 0600 root)" },
  [OPT_STATUS_LISTEN] = { "status-listen", 0, TYPE_STRING, SECTION_STATUS, IN_BOTH, 0, 0,
    "ADDR:PORT", "also serve it on TCP (loopback only)" },
  [OPT_STATUS_LISTEN_NONLOCAL] = { "status-listen-nonlocal", 0, TYPE_FLAG, SECTION_STATUS,
    IN_BOTH, 0, 0, NULL, "allow a --status-listen address off loopback" },
  [OPT_STATUS] = { "status", 0, TYPE_OPTIONAL, SECTION_STATUS, IN_CLI, 0, 0,
    "[=FORMAT]", "show a running pool: text, json, prometheus" },
  [OPT_CLEAR_ENV] = { "clear-env", 0, TYPE_FLAG, SECTION_ENVIRONMENT, IN_BOTH, 0, 0,
    NULL, "keep only PATH and what --env names" },
  [OPT_ENV] = { "env", 0, TYPE_LIST, SECTION_ENVIRONMENT, IN_BOTH, 0, 0,
    "NAME[=VALUE]", "pass NAME on, or set it to VALUE (repeatable)" },
  [OPT_PM] = { "pm", 0, TYPE_STRING, SECTION_CHILDREN, IN_BOTH, 0, 0,
    "MODE", "static (default), dynamic or ondemand (-F: maximum)" },
  [OPT_MIN_CHILDREN] = { "min-children", 0, TYPE_INT, SECTION_CHILDREN, IN_BOTH, 1,
    SETTINGS_MAX_CHILDREN, "N", "dynamic: keep at least N children (default 1)" },
  [OPT_IDLE_TIMEOUT] = { "idle-timeout", 0, TYPE_INT, SECTION_CHILDREN, IN_BOTH, 1, 86400,
    "SEC", "retire children idle this long (default 10)" },
  [OPT_MAX_AGE] = { "max-age", 0, TYPE_INT, SECTION_CHILDREN, IN_BOTH, 1, 31536000,
    "SEC", "replace a child once it has run this long" },
  [OPT_MAX_RSS] = { "max-rss", 0, TYPE_SIZE, SECTION_CHILDREN, IN_BOTH, 0, 0,
    "SIZE", "replace a child above SIZE resident (K, M, G)" },
  [OPT_FILE] = { "file", 'f', TYPE_STRING, SECTION_OTHER, IN_CLI, 0, 0,
    "PATH", "deprecated: run /bin/sh -c \"exec PATH\"" },
  [OPT_EXEC] = { "exec", 0, TYPE_COMMAND, SECTION_OTHER, IN_CONFIG, 0, 0,
    NULL, NULL },
  [OPT_ENVIRONMENT] = { "environment", 0, TYPE_ENVIRONMENT, SECTION_OTHER, IN_CONFIG, 0, 0,
    NULL, NULL },
  [OPT_CONFIG] = { "config", 0, TYPE_STRING, SECTION_OTHER, IN_CLI, 0, 0,
    "FILE", "read settings from FILE (see spawn-fcgi.conf(5))" },
  [OPT_CHECK] = { "check", 0, TYPE_OPTIONAL, SECTION_OTHER, IN_CLI, 0, 0,
    "[=json]", "print the plan and exit without starting anything" },
  [OPT_VERSION] = { "version", 'v', TYPE_FLAG, SECTION_OTHER, IN_CLI, 0, 0,
    NULL, "show the version and built-in features" },
  [OPT_HELP] = { "help", 'h', TYPE_FLAG, SECTION_OTHER, IN_CLI, 0, 0,
    NULL, "show this help (also -?)" },
};

static const char *const section_titles[] = {
  [SECTION_SOCKET] = "Socket",
  [SECTION_PRIVILEGES] = "Privileges",
  [SECTION_LIMITS] = "Limits",
  [SECTION_CHILDREN] = "Children",
  [SECTION_STATUS] = "Status",
  [SECTION_ENVIRONMENT] = "Environment",
  [SECTION_OTHER] = "Other",
};

/* A value as written, and where: "-p" / "--port" / "FILE: key 'port'".
 * A TYPE_LIST option has its items in list (value is unused). */
typedef struct {
  char *value;
  char *origin;
  char **list;
} RawValue;

typedef struct {
  RawValue v[OPT_COUNT];
  char **app_argv;            /* after the options */
} Raw;

static void raw_clear(Raw *raw)
{
  for (int i = 0; i < OPT_COUNT; i++) {
    g_free(raw->v[i].value);
    g_free(raw->v[i].origin);
    g_strfreev(raw->v[i].list);
  }
  g_strfreev(raw->app_argv);
  memset(raw, 0, sizeof *raw);
}

static OptionId option_by_name(const char *name)
{
  if (strcmp(name, "--help-question-mark") == 0)
    return OPT_HELP;
  for (int i = 0; i < OPT_COUNT; i++) {
    if (name[0] == '-' && name[1] == '-') {
      if (strcmp(name + 2, options[i].long_name) == 0)
        return i;
    } else if (name[0] == '-' && name[1] != '\0' && name[2] == '\0') {
      if (options[i].short_name == name[1] ||
          (i == OPT_HELP && name[1] == '?'))
        return i;
    } else if (strcmp(name, options[i].long_name) == 0) {
      return i;
    }
  }
  return OPT_COUNT;
}

/* ---- command line -------------------------------------------------------- */

static gboolean on_cli_option(const char *name, const char *value,
                              gpointer data, GError **error)
{
  Raw *raw = data;
  OptionId id = option_by_name(name);

  g_return_val_if_fail(id < OPT_COUNT, FALSE);
  if (options[id].type == TYPE_LIST) {
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    if (raw->v[id].list != NULL)
      g_strv_builder_addv(b, (const char **) raw->v[id].list);
    g_strv_builder_add(b, value);
    g_strfreev(raw->v[id].list);
    raw->v[id].list = g_strv_builder_end(b);
    if (raw->v[id].origin == NULL)
      raw->v[id].origin = g_strdup(name);
    return TRUE;
  }
  if (raw->v[id].origin != NULL) {
    g_set_error(error, SETTINGS_ERROR, SETTINGS_ERROR_USAGE,
                "%s given more than once", name);
    return FALSE;
  }
  raw->v[id].origin = g_strdup(name);
  if (options[id].type == TYPE_FLAG)
    value = "true";
  else if (options[id].type == TYPE_OPTIONAL && value == NULL)
    value = "";
  raw->v[id].value = g_strdup(value);
  return TRUE;
}

static gboolean parse_command_line(int argc, char **argv, Raw *raw, GError **error)
{
  GOptionEntry entries[OPT_COUNT + 3];
  g_auto(GStrv) rest = NULL;
  int n = 0;

  for (int i = 0; i < OPT_COUNT; i++) {
    if (!(options[i].where & IN_CLI))
      continue;
    entries[n++] = (GOptionEntry) {
      .long_name = options[i].long_name,
      .short_name = options[i].short_name,
      /* Values are bytes, as paths and arguments are: no charset
       * conversion (a socket path or an argument need not be UTF-8). */
      .flags = G_OPTION_FLAG_FILENAME |
               (options[i].type == TYPE_FLAG ? G_OPTION_FLAG_NO_ARG :
                options[i].type == TYPE_OPTIONAL ? G_OPTION_FLAG_OPTIONAL_ARG : 0),
      .arg = G_OPTION_ARG_CALLBACK,
      /* GOption takes the callback as a gpointer (fine in POSIX, not
       * in ISO C: __extension__ says it is meant). */
      .arg_data = __extension__ (gpointer) on_cli_option,
    };
  }
  entries[n++] = (GOptionEntry) {
    .long_name = "help-question-mark", .short_name = '?',
    .flags = G_OPTION_FLAG_NO_ARG | G_OPTION_FLAG_HIDDEN,
    .arg = G_OPTION_ARG_CALLBACK, .arg_data = __extension__ (gpointer) on_cli_option,
  };
  entries[n++] = (GOptionEntry) {
    .long_name = G_OPTION_REMAINING,
    .arg = G_OPTION_ARG_FILENAME_ARRAY, .arg_data = &rest,
  };
  entries[n] = (GOptionEntry) { NULL };

  g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
  GOptionGroup *group = g_option_group_new("spawn-fcgi", "", "", raw, NULL);
  g_option_group_add_entries(group, entries);
  g_option_context_set_main_group(ctx, group);
  g_option_context_set_help_enabled(ctx, FALSE);
  g_option_context_set_strict_posix(ctx, TRUE);

  /* GOption works on a copy that it may shorten. */
  g_auto(GStrv) args = g_new0(char *, argc + 1);
  for (int i = 0; i < argc; i++)
    args[i] = g_strdup(argv[i]);

  gboolean parsed = g_option_context_parse_strv(ctx, &args, error);
  if (!parsed || (error != NULL && *error != NULL)) {
    if (error != NULL && *error != NULL && (*error)->domain != SETTINGS_ERROR) {
      (*error)->domain = SETTINGS_ERROR;
      (*error)->code = SETTINGS_ERROR_USAGE;
    }
    return FALSE;
  }

  /* Strict POSIX parsing stops at the first non-option: that and all that
   * follows is the application.  A leading "--" is the separator. */
  if (rest != NULL && rest[0] != NULL) {
    char **app = rest;
    if (strcmp(app[0], "--") == 0)
      app++;
    if (app[0] != NULL)
      raw->app_argv = g_strdupv(app);
  }
  /* "--" is consumed by GOption itself when it ends the options; whatever it
   * left in args after the program name also belongs to the application. */
  if (raw->app_argv == NULL && args[0] != NULL && args[1] != NULL) {
    char **app = args + 1;
    if (strcmp(app[0], "--") == 0)
      app++;
    if (app[0] != NULL)
      raw->app_argv = g_strdupv(app);
  }
  return TRUE;
}

/* ---- config file --------------------------------------------------------- */

/* Larger than any configuration a person writes. */
#define CONFIG_MAX_SIZE (1024 * 1024)

/* Sets a SETTINGS_ERROR; returns FALSE for "return usage_error(...)". */
static gboolean settings_fail(GError **error, SettingsError code, const char *fmt, ...)
  G_GNUC_PRINTF(3, 4);
static gboolean settings_fail(GError **error, SettingsError code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error_literal(error, SETTINGS_ERROR, code, msg);
  return FALSE;
}

#define config_error(error, ...) settings_fail((error), SETTINGS_ERROR_CONFIG, __VA_ARGS__)
#define usage_error(error, ...) settings_fail((error), SETTINGS_ERROR_USAGE, __VA_ARGS__)

/* The file's text, read through one descriptor that was checked first:
 * a regular file that only root (or the caller) can change. */
static gboolean read_config_text(const char *path, GString *text, GError **error)
{
  struct stat st = { 0 };
  char buf[8192];
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

  if (fd < 0)
    return config_error(error, "cannot read config file '%s': %s", path,
                        g_strerror(errno));
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    close(fd);
    return config_error(error, "cannot read config file '%s': %s", path,
                        S_ISDIR(st.st_mode) ? g_strerror(EISDIR)
                        : err ? g_strerror(err) : "not a regular file");
  }
  g_autofree char *untrusted = trusted_file_problem(fd, path);
  if (untrusted != NULL) {
    close(fd);
    return config_error(error, "refusing config file '%s': %s", path, untrusted);
  }
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || text->len + (gsize) n > CONFIG_MAX_SIZE) {
      int err = errno;
      close(fd);
      if (n == 0)
        return TRUE;
      return config_error(error, "cannot read config file '%s': %s", path,
                          n < 0 ? g_strerror(err) : "larger than 1 MiB");
    }
    g_string_append_len(text, buf, n);
  }
}

static guint line_at(const GString *text, gsize offset)
{
  guint line = 1;
  for (gsize i = 0; i < offset; i++)
    line += text->str[i] == '\n';
  return line;
}

/* What GKeyFile would silently accept: a NUL byte (which cuts a value
 * short) and a key given twice (the last one would win). */
static gboolean check_config_text(const char *path, const GString *text, GError **error)
{
  const char *nul = memchr(text->str, '\0', text->len);
  if (nul != NULL)
    return config_error(error, "%s:%u: NUL byte in the file", path,
                        line_at(text, (gsize) (nul - text->str)));

  /* key -> the line it was first given on, stored in first_line[] */
  g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_auto(GStrv) lines = g_strsplit(text->str, "\n", -1);
  g_autofree guint *first_line = g_new(guint, g_strv_length(lines) + 1);
  for (guint i = 0; lines[i] != NULL; i++) {
    const char *line = lines[i] + strspn(lines[i], " \t");
    const char *eq = strchr(line, '=');
    if (line[0] == '#' || line[0] == '[' || eq == NULL)
      continue;
    g_autofree char *key = g_strchomp(g_strndup(line, (gsize) (eq - line)));
    const guint *first = g_hash_table_lookup(seen, key);
    if (first != NULL)
      return config_error(error, "%s:%u: key '%s' given again (first on line %u)", path,
                          i + 1, key, *first);
    first_line[i] = i + 1;
    g_hash_table_insert(seen, g_steal_pointer(&key), &first_line[i]);
  }
  return TRUE;
}

static OptionId option_by_key(const char *key)
{
  for (int i = 0; i < OPT_COUNT; i++)
    if (strcmp(key, options[i].long_name) == 0 && (options[i].where & IN_CONFIG))
      return i;
  return OPT_COUNT;
}

static gboolean parse_config_file(const char *path, Raw *raw, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) local = NULL;
  g_autoptr(GString) text = g_string_new(NULL);
  g_auto(GStrv) groups = NULL;
  g_auto(GStrv) keys = NULL;

  if (!read_config_text(path, text, error) || !check_config_text(path, text, error))
    return FALSE;
  if (!g_key_file_load_from_data(kf, text->str, text->len, G_KEY_FILE_NONE, &local))
    return config_error(error, "cannot read config file '%s': %s", path, local->message);
  groups = g_key_file_get_groups(kf, NULL);
  for (char **g = groups; *g != NULL; g++) {
    if (strcmp(*g, CONFIG_GROUP) != 0)
      return config_error(error, "%s: unknown group [%s] (expected [" CONFIG_GROUP "])",
                          path, *g);
  }
  if (!g_key_file_has_group(kf, CONFIG_GROUP))
    return config_error(error, "%s: no [" CONFIG_GROUP "] group", path);
  keys = g_key_file_get_keys(kf, CONFIG_GROUP, NULL, NULL);
  for (char **k = keys; *k != NULL; k++) {
    OptionId id = option_by_key(*k);
    if (id == OPT_COUNT)
      return config_error(error, "%s: unknown key '%s'", path, *k);
    if (raw->v[id].origin != NULL)
      return config_error(error, "%s: key '%s' given twice", path, *k);
    if (options[id].type == TYPE_LIST) {
      raw->v[id].list = g_key_file_get_string_list(kf, CONFIG_GROUP, *k, NULL, NULL);
      if (raw->v[id].list == NULL)
        return config_error(error, "%s: key '%s': the value is not valid UTF-8", path, *k);
      raw->v[id].origin = g_strdup_printf("%s: key '%s'", path, *k);
      continue;
    }
    char *value;
    if (options[id].type == TYPE_STRING || options[id].type == TYPE_COMMAND)
      /* Unescaped (\s, \n, ...) as GKeyFile strings are. */
      value = g_key_file_get_string(kf, CONFIG_GROUP, *k, NULL);
    else
      value = g_key_file_get_value(kf, CONFIG_GROUP, *k, NULL);
    if (value == NULL)
      return config_error(error, "%s: key '%s': the value is not valid UTF-8", path, *k);
    raw->v[id].value = value;
    raw->v[id].origin = g_strdup_printf("%s: key '%s'", path, *k);
  }
  return TRUE;
}

/* ---- values -------------------------------------------------------------- */

static gboolean to_flag(const RawValue *rv, gboolean *out, GError **error)
{
  if (g_ascii_strcasecmp(rv->value, "true") == 0 ||
      strcmp(rv->value, "1") == 0 || g_ascii_strcasecmp(rv->value, "yes") == 0)
    *out = TRUE;
  else if (g_ascii_strcasecmp(rv->value, "false") == 0 ||
           strcmp(rv->value, "0") == 0 || g_ascii_strcasecmp(rv->value, "no") == 0)
    *out = FALSE;
  else
    return usage_error(error, "%s: '%s' is not a boolean (true or false)",
                       rv->origin, rv->value);
  return TRUE;
}

static gboolean to_int(const RawValue *rv, gint64 min, gint64 max,
                       const char *what, gint64 *out, GError **error)
{
  gint64 v;

  /* Decimal digits only: no sign, no spaces, no 0x, no trailing junk. */
  if (rv->value[0] == '\0' || strspn(rv->value, "0123456789") != strlen(rv->value) ||
      !g_ascii_string_to_signed(rv->value, 10, min, max, &v, NULL)) {
    usage_error(error, "%s: '%s' is not %s (%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT ")",
                rv->origin, rv->value, what, min, max);
    return FALSE;  /* spelt out: callers read *out only after TRUE */
  }
  *out = v;
  return TRUE;
}

static gboolean to_mode(const RawValue *rv, mode_t *out, GError **error)
{
  guint64 v;
  if (rv->value[0] == '\0' || strspn(rv->value, "01234567") != strlen(rv->value) ||
      !g_ascii_string_to_unsigned(rv->value, 8, 0, 0777, &v, NULL))
    return usage_error(error, "%s: '%s' is not an octal file mode (0-0777)",
                       rv->origin, rv->value);
  *out = (mode_t) v;
  return TRUE;
}

static gboolean to_signal(const RawValue *rv, int *out, GError **error)
{
  static const struct { const char *name; int sig; } signals[] = {
    { "TERM", SIGTERM }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "HUP", SIGHUP },
    { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "KILL", SIGKILL },
  };
  const char *name = rv->value;
  if (g_ascii_strncasecmp(name, "SIG", 3) == 0)
    name += 3;
  for (gsize i = 0; i < G_N_ELEMENTS(signals); i++) {
    if (g_ascii_strcasecmp(name, signals[i].name) == 0) {
      *out = signals[i].sig;
      return TRUE;
    }
  }
  return usage_error(error, "%s: '%s' is not a signal name "
                     "(TERM, INT, QUIT, HUP, USR1, USR2 or KILL)", rv->origin, rv->value);
}

static gboolean to_string(const RawValue *rv, char **out, GError **error)
{
  if (rv->value[0] == '\0')
    return usage_error(error, "%s: empty value", rv->origin);
  *out = g_strdup(rv->value);
  return TRUE;
}

static gboolean to_command(const RawValue *rv, char ***out, GError **error)
{
  g_autoptr(GError) local = NULL;
  if (!g_shell_parse_argv(rv->value, NULL, out, &local))
    return usage_error(error, "%s: cannot parse command line '%s': %s",
                       rv->origin, rv->value, local->message);
  return TRUE;
}

static gboolean to_environment(const RawValue *rv, char ***out, GError **error)
{
  g_auto(GStrv) items = g_strsplit(rv->value, ";", -1);
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();

  for (char **it = items; *it != NULL; it++) {
    g_autofree char *item = g_strstrip(g_strdup(*it));
    const char *eq = strchr(item, '=');
    if (item[0] == '\0')
      continue;
    if (eq == NULL || eq == item ||
        strspn(item, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789_") != (size_t) (eq - item) ||
        g_ascii_isdigit(item[0]))
      return usage_error(error, "%s: '%s' is not a KEY=VALUE entry",
                         rv->origin, item);
    g_strv_builder_add(b, item);
  }
  *out = g_strv_builder_end(b);
  return TRUE;
}

/* HOST:PORT, [IPV6]:PORT */
static gboolean to_host_port(const RawValue *rv, char **host, guint16 *port, GError **error)
{
  const char *colon = strrchr(rv->value, ':');
  gint64 n;

  if (colon == NULL || colon == rv->value ||
      (rv->value[0] == '[' && colon[-1] != ']') ||
      (rv->value[0] != '[' && strchr(rv->value, ':') != colon))
    return usage_error(error, "%s: '%s' is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)",
                       rv->origin, rv->value);
  RawValue port_rv = { .value = (char *) colon + 1, .origin = rv->origin };
  if (!to_int(&port_rv, 1, 65535, "a port number", &n, error))
    return FALSE;
  *host = g_strndup(rv->value, colon - rv->value);
  *port = (guint16) n;
  return TRUE;
}

/* Letters, digits and '_', not starting with a digit. */
static bool is_variable_name(const char *name, gsize len)
{
  if (len == 0 || g_ascii_isdigit(name[0]))
    return false;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum(name[i]) && name[i] != '_')
      return false;
  return true;
}

/* --env / env=: NAME (passed on from the caller) or NAME=VALUE. */
static gboolean to_env_list(const RawValue *rv, char ***out, GError **error)
{
  for (char **it = rv->list; it != NULL && *it != NULL; it++) {
    if (!is_variable_name(*it, strcspn(*it, "=")))
      return usage_error(error, "%s: '%s' is not NAME or NAME=VALUE "
                         "(NAME: letters, digits and _)", rv->origin, *it);
  }
  *out = g_strdupv(rv->list);
  return TRUE;
}

static gboolean to_pm(const RawValue *rv, SettingsPm *out, GError **error)
{
  static const char *const names[] = { "static", "dynamic", "ondemand" };
  for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
    if (strcmp(rv->value, names[i]) == 0) {
      *out = (SettingsPm) i;
      return TRUE;
    }
  }
  return usage_error(error, "%s: '%s' is not a process manager mode "
                     "(static, dynamic or ondemand)", rv->origin, rv->value);
}

/* Bytes, with an optional K, M or G suffix (powers of 1024). */
static gboolean to_size(const RawValue *rv, guint64 *out, GError **error)
{
  const char *v = rv->value;
  size_t digits = strspn(v, "0123456789");
  guint64 n, unit = 1;

  if (digits > 0 && v[digits] != '\0' && v[digits + 1] == '\0') {
    switch (g_ascii_toupper(v[digits])) {
    case 'K': unit = 1024; break;
    case 'M': unit = 1024 * 1024; break;
    case 'G': unit = 1024 * 1024 * 1024; break;
    default: unit = 0; break;
    }
  } else if (v[digits] != '\0') {
    unit = 0;
  }
  g_autofree char *number = g_strndup(v, digits);
  if (digits == 0 || unit == 0 ||
      !g_ascii_string_to_unsigned(number, 10, 1, G_MAXUINT64 / unit, &n, NULL))
    return usage_error(error, "%s: '%s' is not a size (a positive number of bytes, "
                       "or with K, M or G)", rv->origin, rv->value);
  *out = n * unit;
  return TRUE;
}

static const char *const int_meaning[OPT_COUNT] = {
  [OPT_BACKLOG] = "a backlog",
  [OPT_PHP_CHILDREN] = "a number of PHP children",
  [OPT_FORK] = "a number of children",
  [OPT_RESTART_RETRIES] = "a number of retries",
  [OPT_RESTART_WINDOW] = "a number of seconds",
  [OPT_STOP_TIMEOUT] = "a number of seconds",
  [OPT_RELOAD_BATCH] = "a number of children",
  [OPT_MIN_CHILDREN] = "a number of children",
  [OPT_IDLE_TIMEOUT] = "a number of seconds",
  [OPT_MAX_AGE] = "a number of seconds",
};

/* A TYPE_INT option, within the range its table entry gives. */
static gboolean to_int_option(OptionId id, const RawValue *rv, int *out, GError **error)
{
  gint64 n = 0;
  if (!to_int(rv, options[id].min, options[id].max, int_meaning[id], &n, error))
    return FALSE;
  *out = (int) n;
  return TRUE;
}

/* Converts one raw value into its typed field. */
static gboolean apply_value(OptionId id, const RawValue *rv, Settings *s, GError **error)
{
  gint64 n = 0;

  switch (id) {
  case OPT_SOCKET: return to_string(rv, &s->socket_path, error);
  case OPT_ADDRESS: return to_string(rv, &s->address, error);
  case OPT_PORT:
    if (!to_int(rv, 1, 65535, "a port number", &n, error))
      return FALSE;
    s->port = (guint16) n;
    return TRUE;
  case OPT_MODE:
    s->mode_set = TRUE;
    return to_mode(rv, &s->mode, error);
  case OPT_SOCKET_USER: return to_string(rv, &s->socket_user, error);
  case OPT_SOCKET_GROUP: return to_string(rv, &s->socket_group, error);
  case OPT_BACKLOG: return to_int_option(id, rv, &s->backlog, error);
  case OPT_SOCKET_BEFORE_CHROOT: return to_flag(rv, &s->socket_before_chroot, error);
  case OPT_FD_NAME: return to_string(rv, &s->fd_name, error);
  case OPT_USER: return to_string(rv, &s->user, error);
  case OPT_GROUP: return to_string(rv, &s->group, error);
  case OPT_CHROOT: return to_string(rv, &s->chroot_dir, error);
  case OPT_CHDIR: return to_string(rv, &s->chdir_dir, error);
  case OPT_NO_NEW_PRIVS: return to_flag(rv, &s->no_new_privs, error);
  case OPT_UMASK:
    s->umask_set = TRUE;
    return to_mode(rv, &s->umask, error);
  case OPT_LIMITS: return to_flag(rv, &s->limits, error);
  case OPT_LIMITS_FILE: return to_string(rv, &s->limits_file, error);
  case OPT_LIMITS_DIR: return to_string(rv, &s->limits_dir, error);
  case OPT_LIMITS_IGNORE_ERRORS: return to_flag(rv, &s->limits_ignore_errors, error);
  case OPT_EXPLAIN_LIMITS: return to_flag(rv, &s->explain_limits, error);
  case OPT_PHP_CHILDREN: return to_int_option(id, rv, &s->php_children, error);
  case OPT_FORK: return to_int_option(id, rv, &s->fork_count, error);
  case OPT_NO_FORK: return to_flag(rv, &s->no_fork, error);
  case OPT_PID_FILE: return to_string(rv, &s->pid_file, error);
  case OPT_SUPERVISE: return to_flag(rv, &s->supervise, error);
  case OPT_RESTART_RETRIES: return to_int_option(id, rv, &s->restart_retries, error);
  case OPT_RESTART_WINDOW: return to_int_option(id, rv, &s->restart_window_s, error);
  case OPT_STOP_SIGNAL: return to_signal(rv, &s->stop_signal, error);
  case OPT_STOP_TIMEOUT: return to_int_option(id, rv, &s->stop_timeout_s, error);
  case OPT_RELOAD_BATCH: return to_int_option(id, rv, &s->reload_batch, error);
  case OPT_STATUS_SOCKET: return to_string(rv, &s->status_socket, error);
  case OPT_STATUS_GROUP: return to_string(rv, &s->status_group, error);
  case OPT_STATUS_LISTEN:
    return to_host_port(rv, &s->status_listen_address, &s->status_listen_port, error);
  case OPT_STATUS_LISTEN_NONLOCAL: return to_flag(rv, &s->status_listen_nonlocal, error);
  case OPT_STATUS:
    s->status_query = TRUE;
    if (!status_format_from_name(rv->value[0] ? rv->value : "text", &s->status_format))
      return usage_error(error, "%s: unknown format '%s' (text, json or prometheus)",
                         rv->origin, rv->value);
    return TRUE;
  case OPT_CLEAR_ENV: return to_flag(rv, &s->clear_env, error);
  case OPT_ENV: return to_env_list(rv, &s->env, error);
  case OPT_PM: return to_pm(rv, &s->pm, error);
  case OPT_MIN_CHILDREN: return to_int_option(id, rv, &s->min_children, error);
  case OPT_IDLE_TIMEOUT: return to_int_option(id, rv, &s->idle_timeout_s, error);
  case OPT_MAX_AGE: return to_int_option(id, rv, &s->max_age_s, error);
  case OPT_MAX_RSS: return to_size(rv, &s->max_rss_bytes, error);
  case OPT_FILE:
    if (rv->value[0] == '\0')
      return usage_error(error, "%s: empty value", rv->origin);
    return TRUE;              /* handled with the application */
  case OPT_EXEC: return TRUE; /* handled with the application */
  case OPT_ENVIRONMENT: return to_environment(rv, &s->environment, error);
  case OPT_CONFIG: return to_string(rv, &s->config_file, error);
  case OPT_CHECK:
    if (strcmp(rv->value, "") == 0 || strcmp(rv->value, "text") == 0)
      s->check = SETTINGS_CHECK_TEXT;
    else if (strcmp(rv->value, "json") == 0)
      s->check = SETTINGS_CHECK_JSON;
    else
      return usage_error(error, "%s: unknown format '%s' (text or json)", rv->origin,
                         rv->value);
    return TRUE;
  case OPT_VERSION:
  case OPT_HELP:
  case OPT_COUNT:
    break;
  }
  return TRUE;
}

static void warn(Settings *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void warn(Settings *s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_ptr_array_add(s->warnings, g_strdup_vprintf(fmt, ap));
  va_end(ap);
}

#define GIVEN(id) (merged->v[(id)].origin != NULL)
#define ORIGIN(id) (merged->v[(id)].origin)

/* --status asks a running pool: the rest of the configuration (the
 * application, its socket) does not matter. */
static gboolean check_status_query(const Raw *merged, Settings *s, GError **error)
{
  if (!GIVEN(OPT_STATUS_SOCKET) && !GIVEN(OPT_STATUS_LISTEN) && s->config_file) {
    /* Where the supervised template unit puts it. */
    g_autofree char *name = settings_instance_name(s->config_file);
    s->status_socket = g_strdup_printf(SETTINGS_UNIT_STATUS_DIR "/%s.status", name);
    return TRUE;
  }
  if (!GIVEN(OPT_STATUS_SOCKET) && !GIVEN(OPT_STATUS_LISTEN))
    return usage_error(error, "%s needs --status-socket=PATH, or --config=FILE with "
                       "status-socket=", ORIGIN(OPT_STATUS));
  return TRUE;
}

/* The process manager's mode and bounds. */
static gboolean check_pm(const Raw *merged, Settings *s, GError **error)
{
  if (GIVEN(OPT_MIN_CHILDREN) && s->pm != SETTINGS_PM_DYNAMIC)
    return usage_error(error, "%s needs --pm=dynamic", ORIGIN(OPT_MIN_CHILDREN));
  if (GIVEN(OPT_IDLE_TIMEOUT) && s->pm == SETTINGS_PM_STATIC)
    return usage_error(error, "%s needs --pm=dynamic or --pm=ondemand",
                       ORIGIN(OPT_IDLE_TIMEOUT));
  if (s->pm == SETTINGS_PM_DYNAMIC && s->min_children > s->fork_count)
    return usage_error(error, "%s=%d is more than the maximum %s=%d",
                       GIVEN(OPT_MIN_CHILDREN) ? ORIGIN(OPT_MIN_CHILDREN) : "--min-children",
                       s->min_children, GIVEN(OPT_FORK) ? ORIGIN(OPT_FORK) : "--fork",
                       s->fork_count);
  return TRUE;
}

/* Checks combinations once every value is known. */
static gboolean check_conflicts(const Raw *merged, Settings *s, GError **error)
{
  if (GIVEN(OPT_SOCKET) && GIVEN(OPT_PORT))
    return usage_error(error, "%s and %s exclude each other: give a unix socket "
                       "or a TCP port", ORIGIN(OPT_SOCKET), ORIGIN(OPT_PORT));
  if (GIVEN(OPT_ADDRESS) && !GIVEN(OPT_PORT)) {
    if (!GIVEN(OPT_SOCKET))
      return usage_error(error, "%s needs a TCP port (--port)", ORIGIN(OPT_ADDRESS));
    warn(s, "%s is ignored with a unix socket", ORIGIN(OPT_ADDRESS));
  }
  if (GIVEN(OPT_PORT)) {
    static const OptionId unix_only[] = { OPT_MODE, OPT_SOCKET_USER, OPT_SOCKET_GROUP };
    for (gsize i = 0; i < G_N_ELEMENTS(unix_only); i++)
      if (GIVEN(unix_only[i]))
        warn(s, "%s is ignored with a TCP socket", ORIGIN(unix_only[i]));
  }
  if (GIVEN(OPT_SOCKET_BEFORE_CHROOT) && s->socket_before_chroot && !GIVEN(OPT_CHROOT))
    warn(s, "%s is ignored without --chroot", ORIGIN(OPT_SOCKET_BEFORE_CHROOT));
  if (s->status_query)
    return check_status_query(merged, s, error);
  if (GIVEN(OPT_STATUS_GROUP) && !GIVEN(OPT_STATUS_SOCKET))
    return usage_error(error, "%s needs --status-socket", ORIGIN(OPT_STATUS_GROUP));
  if (GIVEN(OPT_STATUS_LISTEN_NONLOCAL) && !GIVEN(OPT_STATUS_LISTEN))
    return usage_error(error, "%s needs --status-listen", ORIGIN(OPT_STATUS_LISTEN_NONLOCAL));
  if (s->no_fork && s->supervise)
    return usage_error(error, "%s and %s exclude each other", ORIGIN(OPT_NO_FORK),
                       ORIGIN(OPT_SUPERVISE));
  if (!s->supervise) {
    static const OptionId need_supervise[] = { OPT_RESTART_RETRIES, OPT_RESTART_WINDOW,
                                               OPT_STOP_SIGNAL, OPT_STOP_TIMEOUT,
                                               OPT_RELOAD_BATCH, OPT_STATUS_SOCKET,
                                               OPT_STATUS_GROUP, OPT_STATUS_LISTEN,
                                               OPT_PM, OPT_MIN_CHILDREN, OPT_IDLE_TIMEOUT,
                                               OPT_MAX_AGE, OPT_MAX_RSS };
    for (gsize i = 0; i < G_N_ELEMENTS(need_supervise); i++)
      if (GIVEN(need_supervise[i]))
        return usage_error(error, "%s needs --supervise", ORIGIN(need_supervise[i]));
  }
  if (!check_pm(merged, s, error))
    return FALSE;
  if (s->no_fork && GIVEN(OPT_FORK) && s->fork_count != 1)
    warn(s, "%s is ignored with --no-fork", ORIGIN(OPT_FORK));
  if (!s->limits && !s->explain_limits) {
    static const OptionId need_limits[] = { OPT_LIMITS_FILE, OPT_LIMITS_DIR,
                                            OPT_LIMITS_IGNORE_ERRORS };
    for (gsize i = 0; i < G_N_ELEMENTS(need_limits); i++)
      if (GIVEN(need_limits[i]))
        return usage_error(error, "%s needs --limits", ORIGIN(need_limits[i]));
  }
  if (s->argv == NULL && !s->explain_limits)
    return usage_error(error, "no FastCGI application given (put it after --)");
  return TRUE;
}

/* The application: the words after the options win over exec= and -f. */
static gboolean choose_application(const Raw *cli, const Raw *merged, Settings *s,
                                   GError **error)
{
  const RawValue *file = &merged->v[OPT_FILE];
  const RawValue *exec = &merged->v[OPT_EXEC];

  if (cli->app_argv != NULL) {
    s->argv = g_strdupv(cli->app_argv);
    if (file->origin != NULL)
      warn(s, "%s is ignored: the application is given after the options",
           file->origin);
  } else if (file->origin != NULL) {
    s->argv = g_new0(char *, 4);
    s->argv[0] = g_strdup("/bin/sh");
    s->argv[1] = g_strdup("-c");
    s->argv[2] = g_strconcat("exec ", file->value, NULL);
    s->argv_from_shell = TRUE;
  } else if (exec->origin != NULL) {
    if (!to_command(exec, &s->argv, error))
      return FALSE;
  }
  return TRUE;
}

static void settings_defaults(Settings *s)
{
  memset(s, 0, sizeof *s);
  s->backlog = 1024;
  s->php_children = -1;
  s->fork_count = 1;
  s->restart_retries = 3;
  s->restart_window_s = 10;
  s->stop_signal = SIGTERM;
  s->stop_timeout_s = 10;
  s->reload_batch = 1;
  s->pm = SETTINGS_PM_STATIC;
  s->min_children = 1;
  s->idle_timeout_s = 10;
  s->warnings = g_ptr_array_new_with_free_func(g_free);
}

gboolean settings_parse(int argc, char **argv, Settings *out,
                        SettingsParseResult *result, GError **error)
{
  Raw cli = { 0 }, file = { 0 }, merged = { 0 };
  gboolean ok = FALSE;

  settings_defaults(out);
  *result = SETTINGS_PARSE_RUN;

  if (!parse_command_line(argc, argv, &cli, error))
    goto out;
  if (cli.v[OPT_HELP].origin != NULL) {
    settings_print_help(stdout);
    *result = SETTINGS_PARSE_EXIT;
    ok = TRUE;
    goto out;
  }
  if (cli.v[OPT_VERSION].origin != NULL) {
    settings_print_version(stdout);
    *result = SETTINGS_PARSE_EXIT;
    ok = TRUE;
    goto out;
  }
  if (cli.v[OPT_CONFIG].origin != NULL &&
      !parse_config_file(cli.v[OPT_CONFIG].value, &file, error))
    goto out;

  /* The command line wins.  The listening address is one setting: a socket
   * or port on the command line replaces the file's socket, port and
   * address as a whole. */
  gboolean cli_sets_listen = cli.v[OPT_SOCKET].origin != NULL ||
                             cli.v[OPT_PORT].origin != NULL;
  for (int i = 0; i < OPT_COUNT; i++) {
    const RawValue *from = &cli.v[i];
    if (from->origin == NULL &&
        !(cli_sets_listen && (i == OPT_SOCKET || i == OPT_PORT || i == OPT_ADDRESS)))
      from = &file.v[i];
    if (from->origin == NULL)
      continue;
    merged.v[i].value = g_strdup(from->value);
    merged.v[i].origin = g_strdup(from->origin);
    merged.v[i].list = g_strdupv(from->list);
    if (!apply_value(i, &merged.v[i], out, error))
      goto out;
  }
  out->listen_from_config = !cli_sets_listen &&
                            (file.v[OPT_SOCKET].origin || file.v[OPT_PORT].origin);
  if (!choose_application(&cli, &merged, out, error))
    goto out;
  if (!check_conflicts(&merged, out, error))
    goto out;
  ok = TRUE;

out:
  raw_clear(&cli);
  raw_clear(&file);
  raw_clear(&merged);
  if (!ok)
    settings_clear(out);
  return ok;
}

char *settings_instance_name(const char *config_file)
{
  if (config_file == NULL)
    return g_strdup("");
  char *name = g_path_get_basename(config_file);
  if (g_str_has_suffix(name, ".conf") && strlen(name) > 5)
    name[strlen(name) - 5] = '\0';
  return name;
}

/* ---- help and version ---------------------------------------------------- */

void settings_print_help(FILE *to)
{
  fprintf(to,
          "Usage: spawn-fcgi [OPTION...] [--] APPLICATION [ARGUMENT...]\n"
          "Prepare a listening socket on fd 0, drop privileges and start a\n"
          "FastCGI application (php-cgi, fcgiwrap, ...).\n");
  for (int sec = SECTION_SOCKET; sec <= SECTION_OTHER; sec++) {
    fprintf(to, "\n%s:\n", section_titles[sec]);
    for (int i = 0; i < OPT_COUNT; i++) {
      const OptionSpec *o = &options[i];
      char left[64];
      if ((int) o->section != sec || !(o->where & IN_CLI))
        continue;
      const char *eq = o->arg && o->type != TYPE_OPTIONAL ? "=" : "";
      if (o->short_name != 0)
        g_snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->long_name,
                   eq, o->arg ? o->arg : "");
      else
        g_snprintf(left, sizeof left, "    --%s%s%s", o->long_name,
                   eq, o->arg ? o->arg : "");
      if (strlen(left) > 24)
        fprintf(to, "  %s\n  %-24s  %s\n", left, "", o->help);
      else
        fprintf(to, "  %-24s  %s\n", left, o->help);
    }
  }
  fprintf(to,
          "\nA socket passed by systemd (LISTEN_FDS) wins over --socket/--port;\n"
          "without either, a listening socket on fd 0 is used.\n"
          "See spawn-fcgi(1) for exit statuses and examples.\n");
}

void settings_print_version(FILE *to)
{
  fprintf(to, "spawn-fcgi " PACKAGE_VERSION "\n"
              "features: ipv6 unix-sockets systemd-socket-activation limits.conf "
              "fork\n");
}

void settings_clear(Settings *s)
{
  g_free(s->socket_path);
  g_free(s->address);
  g_free(s->socket_user);
  g_free(s->socket_group);
  g_free(s->fd_name);
  g_free(s->user);
  g_free(s->group);
  g_free(s->chroot_dir);
  g_free(s->chdir_dir);
  g_free(s->limits_file);
  g_free(s->limits_dir);
  g_free(s->pid_file);
  g_strfreev(s->argv);
  g_strfreev(s->environment);
  g_strfreev(s->env);
  g_free(s->config_file);
  g_free(s->status_socket);
  g_free(s->status_group);
  g_free(s->status_listen_address);
  if (s->warnings != NULL)
    g_ptr_array_unref(s->warnings);
  memset(s, 0, sizeof *s);
}
