/* settings: defaults, then the config file, then the command line, into one
 * validated struct.
 *
 * Pure: nothing here touches the system beyond reading the config file.
 * Every bad value and every conflict is rejected here, before anything
 * happens.  Options that are accepted but have no effect (as in spawn-fcgi
 * 1.6) are collected as warnings so that the caller can say so. */
#pragma once

#include <glib.h>
#include <stdio.h>
#include <sys/types.h>

#include "status.h"

#define SETTINGS_ERROR (settings_error_quark())
GQuark settings_error_quark(void);

typedef enum {
  SETTINGS_ERROR_USAGE,      /* bad option, bad value, conflict */
  SETTINGS_ERROR_CONFIG,     /* the config file cannot be read or is malformed */
} SettingsError;

#define SETTINGS_MAX_CHILDREN 4096

typedef enum {
  SETTINGS_CHECK_NONE,
  SETTINGS_CHECK_TEXT,
  SETTINGS_CHECK_JSON,
} SettingsCheck;

typedef enum {
  SETTINGS_PM_STATIC,         /* the values of PoolMode (pool-policy.h) */
  SETTINGS_PM_DYNAMIC,
  SETTINGS_PM_ONDEMAND,
} SettingsPm;

typedef struct {
  /* socket */
  char *socket_path;          /* -s */
  char *address;              /* -a */
  guint16 port;               /* -p; 0 when not given */
  gboolean mode_set;
  mode_t mode;                /* -M */
  char *socket_user;          /* -U */
  char *socket_group;         /* -G */
  int backlog;                /* -b */
  gboolean socket_before_chroot; /* -S */
  char *fd_name;              /* --fd-name */
  gboolean listen_from_config; /* socket/port came from the config file */

  /* privileges */
  char *user;                 /* -u */
  char *group;                /* -g */
  char *chroot_dir;           /* -c */
  char *chdir_dir;            /* -d */
  gboolean no_new_privs;
  gboolean umask_set;
  mode_t umask;               /* --umask */

  /* limits */
  gboolean limits;            /* -l */
  char *limits_file;
  char *limits_dir;
  gboolean limits_ignore_errors;
  gboolean explain_limits;

  /* children */
  int php_children;           /* -C; -1 when not given */
  int fork_count;             /* -F */
  gboolean no_fork;           /* -n */
  char *pid_file;             /* -P */
  gboolean supervise;         /* -w: stay and keep the children running */
  int restart_retries;
  int restart_window_s;
  int stop_signal;
  int stop_timeout_s;
  int reload_batch;
  SettingsPm pm;              /* --pm */
  int min_children;           /* --min-children (dynamic) */
  int idle_timeout_s;
  int max_age_s;              /* 0: none */
  guint64 max_rss_bytes;      /* 0: none */

  /* status */
  char *status_socket;        /* --status-socket */
  char *status_group;         /* --status-group */
  char *status_listen_address; /* --status-listen, without the port */
  guint16 status_listen_port;
  gboolean status_listen_nonlocal;
  gboolean status_query;      /* --status: ask a running pool, start nothing */
  StatusFormat status_format;

  /* application */
  char **argv;                /* what to exec, NULL-terminated */
  gboolean argv_from_shell;   /* argv is /bin/sh -c "exec PATH" (-f) */
  char **environment;         /* extra KEY=VALUE entries (environment=) */
  gboolean clear_env;         /* --clear-env: only PATH and env */
  char **env;                 /* --env / env=: NAME or NAME=VALUE */

  /* other */
  char *config_file;
  SettingsCheck check;        /* --check[=json] */

  GPtrArray *warnings;        /* options accepted but without effect */
} Settings;

typedef enum {
  SETTINGS_PARSE_RUN,         /* go on with *out */
  SETTINGS_PARSE_EXIT,        /* help or version was printed: exit 0 */
} SettingsParseResult;

/* Parses argv (and the file named by --config) into *out.  Returns FALSE
 * with an error on any bad input; *out is then cleared. */
gboolean settings_parse(int argc, char **argv, Settings *out,
                        SettingsParseResult *result, GError **error);

/* The instance a config file describes: "php" for /etc/spawn-fcgi/php.conf;
 * "" without a file. */
char *settings_instance_name(const char *config_file);

/* Where the supervised template unit puts the status socket of an
 * instance, and where --status --config=FILE looks without
 * status-socket=. */
#define SETTINGS_UNIT_STATUS_DIR "/run/spawn-fcgi"

void settings_print_help(FILE *to);
void settings_print_version(FILE *to);

void settings_clear(Settings *s);
