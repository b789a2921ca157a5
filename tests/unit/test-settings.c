/* Unit tests for the command line and config file (src/settings.c). */
#include "config.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

/* Parses a command line given as one string (split on spaces). */
static gboolean parse(const char *line, Settings *s, GError **error)
{
  g_autofree char *full = g_strconcat("spawn-fcgi ", line, NULL);
  g_auto(GStrv) argv = g_strsplit(full, " ", -1);
  SettingsParseResult r;
  return settings_parse((int) g_strv_length(argv), argv, s, &r, error);
}

static void expect_usage_error(const char *line, const char *fragment)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_false(parse(line, &s, &error));
  g_assert_error(error, SETTINGS_ERROR, SETTINGS_ERROR_USAGE);
  if (strstr(error->message, fragment) == NULL)
    g_error("'%s': message '%s' lacks '%s'", line, error->message, fragment);
}

static void test_defaults(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse("-s /tmp/x.sock -- /usr/bin/php-cgi", &s, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(s.socket_path, ==, "/tmp/x.sock");
  g_assert_cmpint(s.backlog, ==, 1024);
  g_assert_cmpint(s.fork_count, ==, 1);
  g_assert_cmpint(s.php_children, ==, -1);
  g_assert_false(s.mode_set);
  g_assert_false(s.no_fork);
  g_assert_cmpuint(g_strv_length(s.argv), ==, 1);
  g_assert_cmpstr(s.argv[0], ==, "/usr/bin/php-cgi");
  g_assert_cmpuint(s.warnings->len, ==, 0);
  settings_clear(&s);
}

static void test_all_short_options(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse("-s /run/a.sock -M 0600 -U www -G web -b 64 -u app -g appgrp "
                      "-c /srv/root -S -d /www -C 4 -F 3 -P /run/a.pid -l "
                      "-- php-cgi -c /etc/php.ini", &s, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(s.mode, ==, 0600);
  g_assert_true(s.mode_set);
  g_assert_cmpstr(s.socket_user, ==, "www");
  g_assert_cmpstr(s.socket_group, ==, "web");
  g_assert_cmpint(s.backlog, ==, 64);
  g_assert_cmpstr(s.user, ==, "app");
  g_assert_cmpstr(s.group, ==, "appgrp");
  g_assert_cmpstr(s.chroot_dir, ==, "/srv/root");
  g_assert_true(s.socket_before_chroot);
  g_assert_cmpstr(s.chdir_dir, ==, "/www");
  g_assert_cmpint(s.php_children, ==, 4);
  g_assert_cmpint(s.fork_count, ==, 3);
  g_assert_cmpstr(s.pid_file, ==, "/run/a.pid");
  g_assert_true(s.limits);
  /* "-c" after the application belongs to the application. */
  g_assert_cmpuint(g_strv_length(s.argv), ==, 3);
  g_assert_cmpstr(s.argv[1], ==, "-c");
  settings_clear(&s);
}

static void test_long_options(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse("--port=9000 --address=::1 --no-fork --php-children=0 "
                      "--backlog 10 /usr/bin/app arg", &s, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(s.port, ==, 9000);
  g_assert_cmpstr(s.address, ==, "::1");
  g_assert_true(s.no_fork);
  g_assert_cmpint(s.php_children, ==, 0);
  g_assert_cmpint(s.backlog, ==, 10);
  g_assert_cmpstr(s.argv[0], ==, "/usr/bin/app");
  g_assert_cmpstr(s.argv[1], ==, "arg");
  settings_clear(&s);
}

static void test_application_stops_parsing(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse("-s /x app -p 9000 -- -n", &s, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(s.port, ==, 0);
  g_assert_cmpuint(g_strv_length(s.argv), ==, 5);
  g_assert_cmpstr(s.argv[3], ==, "--");
  settings_clear(&s);
}

static void test_legacy_file(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse("-s /x -f /usr/bin/php-cgi", &s, &error));
  g_assert_true(s.argv_from_shell);
  g_assert_cmpstr(s.argv[0], ==, "/bin/sh");
  g_assert_cmpstr(s.argv[1], ==, "-c");
  g_assert_cmpstr(s.argv[2], ==, "exec /usr/bin/php-cgi");
  settings_clear(&s);

  g_assert_true(parse("-s /x -f /usr/bin/php-cgi -- /bin/app", &s, &error));
  g_assert_cmpstr(s.argv[0], ==, "/bin/app");
  g_assert_cmpuint(s.warnings->len, ==, 1);
  g_assert_nonnull(strstr(g_ptr_array_index(s.warnings, 0), "-f is ignored"));
  settings_clear(&s);
}

static void test_bad_numbers(void)
{
  expect_usage_error("-p 0 -- a", "'0' is not a port number (1-65535)");
  expect_usage_error("-p 70000 -- a", "'70000' is not a port number");
  expect_usage_error("-p 9000x -- a", "'9000x' is not a port");
  expect_usage_error("-p -1 -- a", "is not a port");
  expect_usage_error("-p 0x50 -- a", "is not a port");
  expect_usage_error("-s /x -M 999 -- a", "'999' is not an octal file mode");
  expect_usage_error("-s /x -M 10000 -- a", "'10000' is not an octal file mode");
  expect_usage_error("-s /x -M abc -- a", "not an octal file mode");
  expect_usage_error("-s /x -F 0 -- a", "'0' is not a number of children (1-4096)");
  expect_usage_error("-s /x -F 5000 -- a", "is not a number of children");
  expect_usage_error("-s /x -F -3 -- a", "is not a number of children");
  expect_usage_error("-s /x -b 0 -- a", "is not a backlog");
  expect_usage_error("-s /x -b 99999999999 -- a", "is not a backlog");
  expect_usage_error("-s /x -C -1 -- a", "is not a number of PHP children");
}

static void test_conflicts(void)
{
  expect_usage_error("-s /x -p 9000 -- a", "exclude each other");
  expect_usage_error("-a 127.0.0.1 -- a", "needs a TCP port");
  expect_usage_error("-s /x", "no FastCGI application given");
  expect_usage_error("-s /x --limits-file /tmp/l -- a", "needs --limits");
  expect_usage_error("-s /x -s /y -- a", "-s given more than once");
  expect_usage_error("-s /x --socket /y -- a", "given more than once");
}

static void test_unknown_and_missing(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_false(parse("-x -- a", &s, &error));
  g_assert_error(error, SETTINGS_ERROR, SETTINGS_ERROR_USAGE);
  g_assert_nonnull(strstr(error->message, "-x"));
  g_clear_error(&error);
  g_assert_false(parse("-s", &s, &error));
  g_assert_error(error, SETTINGS_ERROR, SETTINGS_ERROR_USAGE);
  g_assert_nonnull(strstr(error->message, "-s"));
}

static void test_ignored_warned(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse("-p 9000 -M 0600 -n -F 4 -S -- a", &s, &error));
  g_assert_cmpuint(s.warnings->len, ==, 3);
  g_assert_nonnull(strstr(g_ptr_array_index(s.warnings, 0), "-M is ignored with a TCP socket"));
  g_assert_nonnull(strstr(g_ptr_array_index(s.warnings, 1), "-S is ignored without --chroot"));
  g_assert_nonnull(strstr(g_ptr_array_index(s.warnings, 2), "-F is ignored with --no-fork"));
  settings_clear(&s);
}

static char *write_config(const char *text)
{
  g_autoptr(GError) error = NULL;
  char *path = NULL;
  int fd = g_file_open_tmp("spawn-fcgi-test-XXXXXX.conf", &path, &error);
  g_assert_no_error(error);
  close(fd);
  g_assert_true(g_file_set_contents(path, text, -1, &error));
  return path;
}

static gboolean parse_with_config(const char *text, const char *extra, Settings *s,
                                  char **path_out, GError **error)
{
  g_autofree char *path = write_config(text);
  g_autofree char *line = g_strdup_printf("--config %s%s%s", path,
                                          extra ? " " : "", extra ? extra : "");
  gboolean ok = parse(line, s, error);
  g_unlink(path);
  if (path_out)
    *path_out = g_steal_pointer(&path);
  return ok;
}

static void test_config_every_key(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse_with_config(
      "[spawn-fcgi]\n"
      "socket=/run/spawn-fcgi/php.sock\nmode=0600\nsocket-user=www-data\n"
      "socket-group=www-data\nbacklog=50\nsocket-before-chroot=true\n"
      "fd-name=php\nuser=php\ngroup=php\nchroot=/srv\nchdir=/www\n"
      "no-new-privs=true\nlimits=true\nlimits-file=/etc/l.conf\nlimits-dir=/etc/l.d\n"
      "limits-ignore-errors=true\nphp-children=2\nfork=4\nno-fork=false\n"
      "pid-file=/run/php.pid\n"
      "exec=/usr/bin/php-cgi -d 'memory_limit=64M'\n"
      "environment=TZ=UTC; PHP_FCGI_MAX_REQUESTS=500\n",
      NULL, &s, NULL, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(s.socket_path, ==, "/run/spawn-fcgi/php.sock");
  g_assert_cmpuint(s.mode, ==, 0600);
  g_assert_cmpstr(s.socket_user, ==, "www-data");
  g_assert_cmpstr(s.socket_group, ==, "www-data");
  g_assert_cmpint(s.backlog, ==, 50);
  g_assert_true(s.socket_before_chroot);
  g_assert_cmpstr(s.fd_name, ==, "php");
  g_assert_cmpstr(s.user, ==, "php");
  g_assert_cmpstr(s.group, ==, "php");
  g_assert_cmpstr(s.chroot_dir, ==, "/srv");
  g_assert_cmpstr(s.chdir_dir, ==, "/www");
  g_assert_true(s.no_new_privs);
  g_assert_true(s.limits);
  g_assert_cmpstr(s.limits_file, ==, "/etc/l.conf");
  g_assert_cmpstr(s.limits_dir, ==, "/etc/l.d");
  g_assert_true(s.limits_ignore_errors);
  g_assert_cmpint(s.php_children, ==, 2);
  g_assert_cmpint(s.fork_count, ==, 4);
  g_assert_false(s.no_fork);
  g_assert_cmpstr(s.pid_file, ==, "/run/php.pid");
  g_assert_cmpuint(g_strv_length(s.argv), ==, 3);
  g_assert_cmpstr(s.argv[2], ==, "memory_limit=64M");
  g_assert_cmpuint(g_strv_length(s.environment), ==, 2);
  g_assert_cmpstr(s.environment[0], ==, "TZ=UTC");
  g_assert_cmpstr(s.environment[1], ==, "PHP_FCGI_MAX_REQUESTS=500");
  settings_clear(&s);

  g_assert_true(parse_with_config("[spawn-fcgi]\nport=9000\naddress=127.0.0.1\n"
                                  "exec=app\n", NULL, &s, NULL, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(s.port, ==, 9000);
  g_assert_cmpstr(s.address, ==, "127.0.0.1");
  settings_clear(&s);
}

static void test_config_overridden_by_command_line(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse_with_config("[spawn-fcgi]\nsocket=/a.sock\nuser=php\nfork=2\n"
                                  "exec=/usr/bin/php-cgi\n",
                                  "-u other -F 3 -p 9000 -- /bin/app", &s, NULL, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(s.user, ==, "other");
  g_assert_cmpint(s.fork_count, ==, 3);
  /* The command line's port replaces the file's socket as a whole. */
  g_assert_null(s.socket_path);
  g_assert_cmpuint(s.port, ==, 9000);
  g_assert_cmpstr(s.argv[0], ==, "/bin/app");
  settings_clear(&s);
}

static void expect_config_error(const char *text, const char *fragment)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_assert_false(parse_with_config(text, NULL, &s, &path, &error));
  g_assert_nonnull(error);
  g_assert_true(error->domain == SETTINGS_ERROR);
  if (strstr(error->message, fragment) == NULL)
    g_error("config '%s': message '%s' lacks '%s'", text, error->message, fragment);
  /* Every config error names the file. */
  g_assert_nonnull(strstr(error->message, path));
}

static void test_config_errors(void)
{
  expect_config_error("[spawn-fcgi]\nsokcet=/x\nexec=a\n", "unknown key 'sokcet'");
  expect_config_error("[spawn-fcgi]\nport=70000\nexec=a\n", "key 'port': '70000' is not a port");
  expect_config_error("[spawn-fcgi]\nsocket=/x\nlimits=maybe\nexec=a\n",
                      "key 'limits': 'maybe' is not a boolean");
  expect_config_error("[spawn-fcgi]\nsocket=/x\nexec=app 'unterminated\n",
                      "key 'exec': cannot parse command line");
  expect_config_error("[spawn-fcgi]\nsocket=/x\nexec=a\nenvironment=NOEQUALS\n",
                      "'NOEQUALS' is not a KEY=VALUE entry");
  expect_config_error("[other]\nsocket=/x\n", "unknown group [other]");
  expect_config_error("[spawn-fcgi]\nsocket=/x\nexec=a\ncheck=true\n", "unknown key 'check'");
  expect_config_error("not a key file\n", "cannot read config file");
  expect_config_error("[spawn-fcgi]\nsocket=/x\nport=9000\nexec=a\n", "exclude each other");
  /* GKeyFile would let the last one win, and cut a value at a NUL. */
  expect_config_error("[spawn-fcgi]\nsocket=/x\nexec=a\n socket = /y\n",
                      ":4: key 'socket' given again (first on line 2)");
  /* Only long names are keys. */
  expect_config_error("[spawn-fcgi]\n--socket=/x\nexec=a\n", "unknown key '--socket'");
  expect_config_error("[spawn-fcgi]\ns=/x\nexec=a\n", "unknown key 's'");
  expect_config_error("[spawn-fcgi]\nsocket=/x\nexec=a\nenv=A;1B=2\n",
                      "'1B=2' is not NAME or NAME=VALUE");

  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_false(parse("--config /nonexistent/spawn-fcgi.conf", &s, &error));
  g_assert_error(error, SETTINGS_ERROR, SETTINGS_ERROR_CONFIG);
  g_assert_nonnull(strstr(error->message, "/nonexistent/spawn-fcgi.conf"));
}

/* Found by fuzzing: a config value that is not UTF-8 made GKeyFile return
 * NULL, which was used as a string. */
static void test_config_value_not_utf8(void)
{
  expect_config_error("[spawn-fcgi]\nsocket=/tmp/\xff\nexec=/bin/true\n",
                      "key 'socket': the value is not valid UTF-8");
}

/* Found by fuzzing: paths and arguments are bytes, not UTF-8 text. */
static void test_command_line_bytes(void)
{
  char *argv[] = { "spawn-fcgi", "-s", "/run/caf\xc3\xa9.sock", "--", "/bin/app",
                   "\xff\xfe", NULL };
  Settings s;
  SettingsParseResult r;
  g_autoptr(GError) error = NULL;
  g_assert_true(settings_parse(G_N_ELEMENTS(argv) - 1, argv, &s, &r, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(s.socket_path, ==, "/run/caf\xc3\xa9.sock");
  g_assert_cmpstr(s.argv[1], ==, "\xff\xfe");
  settings_clear(&s);

  char *bad[] = { "spawn-fcgi", "--check", "[8\xc6\xcc]p", "90pp", NULL };
  g_assert_false(settings_parse(G_N_ELEMENTS(bad) - 1, bad, &s, &r, &error));
  g_assert_error(error, SETTINGS_ERROR, SETTINGS_ERROR_USAGE);
}

/* Found by fuzzing: GOption's long name for -? reached the option lookup. */
static void test_help_question_mark(void)
{
  if (g_test_subprocess()) {
    Settings s;
    g_autoptr(GError) error = NULL;
    g_assert_true(parse("--help-question-mark", &s, &error));
    g_assert_no_error(error);
    settings_clear(&s);
    return;
  }
  g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed();
  g_test_trap_assert_stdout("Usage: spawn-fcgi*");
  g_test_trap_assert_stderr("");
}

/* A NUL byte cannot go through write_config's text: write it by hand. */
static void test_config_nul_byte(void)
{
  static const char text[] = "[spawn-fcgi]\nsocket=/x\nexec=a\nuser=nobody\0root\n";
  g_autofree char *path = write_config("");
  g_autofree char *line = g_strdup_printf("--config %s", path);
  g_autoptr(GError) error = NULL;
  Settings s;
  g_assert_true(g_file_set_contents(path, text, sizeof text - 1, NULL));
  g_assert_false(parse(line, &s, &error));
  g_unlink(path);
  g_assert_error(error, SETTINGS_ERROR, SETTINGS_ERROR_CONFIG);
  g_autofree char *where = g_strdup_printf("%s:4: NUL byte", path);
  g_assert_nonnull(strstr(error->message, where));
}

/* --env may be repeated; on the command line it replaces the file's list. */
static void test_env_lists(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse("-s /x --clear-env --env A --env B=x=y -- app", &s, &error));
  g_assert_no_error(error);
  g_assert_true(s.clear_env);
  g_assert_cmpuint(g_strv_length(s.env), ==, 2);
  g_assert_cmpstr(s.env[0], ==, "A");
  g_assert_cmpstr(s.env[1], ==, "B=x=y");
  settings_clear(&s);

  g_assert_true(parse_with_config("[spawn-fcgi]\nsocket=/x\nexec=a\nclear-env=yes\n"
                                  "env=TZ;LANG=C\\;x\n", NULL, &s, NULL, &error));
  g_assert_no_error(error);
  g_assert_true(s.clear_env);
  g_assert_cmpuint(g_strv_length(s.env), ==, 2);
  g_assert_cmpstr(s.env[1], ==, "LANG=C;x");
  settings_clear(&s);

  g_assert_true(parse_with_config("[spawn-fcgi]\nsocket=/x\nexec=a\nenv=TZ;LANG=C\n",
                                  "--env HOME", &s, NULL, &error));
  g_assert_cmpuint(g_strv_length(s.env), ==, 1);
  g_assert_cmpstr(s.env[0], ==, "HOME");
  settings_clear(&s);
  expect_usage_error("-s /x --env 9=1 -- app", "--env: '9=1' is not NAME");
}

static void test_help_fits_80_columns(void)
{
  g_autofree char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  settings_print_help(f);
  fclose(f);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_assert_cmpuint(g_strv_length(lines), >, 30);
  for (char **l = lines; *l; l++)
    if (strlen(*l) > 79)
      g_error("--help line longer than 79 columns: '%s'", *l);
}

static void test_status_options(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;

  g_assert_true(parse("-w -s /a.sock --status-socket=/run/a.status --status-group=adm "
                      "--status-listen=[::1]:9100 -- app", &s, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(s.status_socket, ==, "/run/a.status");
  g_assert_cmpstr(s.status_group, ==, "adm");
  g_assert_cmpstr(s.status_listen_address, ==, "[::1]");
  g_assert_cmpuint(s.status_listen_port, ==, 9100);
  g_assert_false(s.status_query);
  settings_clear(&s);

  expect_usage_error("--status-socket=/x -- app", "--status-socket needs --supervise");
  expect_usage_error("-w --status-group=adm -- app", "--status-group needs --status-socket");
  expect_usage_error("-w --status-listen-nonlocal -- app",
                     "--status-listen-nonlocal needs --status-listen");
  expect_usage_error("-w --status-listen=127.0.0.1 -- app", "is not ADDRESS:PORT");
  expect_usage_error("-w --status-listen=::1:80 -- app", "is not ADDRESS:PORT");
  expect_usage_error("-w --status-listen=127.0.0.1:0 -- app", "is not a port number");
  expect_usage_error("--status", "--status needs --status-socket");
  expect_usage_error("--status=xml --status-socket=/x", "unknown format 'xml'");
}

/* The client needs no application, and takes the format. */
static void test_status_query(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;

  g_assert_true(parse("--status=json --status-socket=/run/a.status", &s, &error));
  g_assert_no_error(error);
  g_assert_true(s.status_query);
  g_assert_cmpint(s.status_format, ==, STATUS_FORMAT_JSON);
  settings_clear(&s);
  g_assert_true(parse("--status --status-socket=/run/a.status", &s, &error));
  g_assert_cmpint(s.status_format, ==, STATUS_FORMAT_TEXT);
  settings_clear(&s);

  /* A config file without status-socket=: where the template unit puts it. */
  g_autofree char *dir = g_dir_make_tmp("settings-XXXXXX", NULL);
  g_autofree char *conf = g_build_filename(dir, "php.conf", NULL);
  g_assert_true(g_file_set_contents(conf, "[spawn-fcgi]\nexec=/bin/true\n", -1, NULL));
  g_autofree char *line = g_strdup_printf("--status=prometheus --config=%s", conf);
  g_assert_true(parse(line, &s, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(s.status_socket, ==, "/run/spawn-fcgi/php.status");
  settings_clear(&s);
  g_unlink(conf);
  g_rmdir(dir);
}

static void test_process_manager(void)
{
  Settings s;
  g_autoptr(GError) error = NULL;

  g_assert_true(parse("-w -s /x --pm=dynamic --min-children=2 -F 8 --idle-timeout=3 "
                      "--max-age=60 --max-rss=3M -- app", &s, &error));
  g_assert_no_error(error);
  g_assert_cmpint(s.pm, ==, SETTINGS_PM_DYNAMIC);
  g_assert_cmpint(s.min_children, ==, 2);
  g_assert_cmpint(s.fork_count, ==, 8);
  g_assert_cmpint(s.idle_timeout_s, ==, 3);
  g_assert_cmpint(s.max_age_s, ==, 60);
  g_assert_cmpuint(s.max_rss_bytes, ==, 3 * 1024 * 1024);
  settings_clear(&s);

  g_assert_true(parse("-w -s /x -- app", &s, &error));
  g_assert_cmpint(s.pm, ==, SETTINGS_PM_STATIC);
  g_assert_cmpint(s.idle_timeout_s, ==, 10);
  g_assert_cmpint(s.max_age_s, ==, 0);
  g_assert_cmpuint(s.max_rss_bytes, ==, 0);
  settings_clear(&s);

  g_assert_true(parse("-w -s /x --pm=ondemand -F 4 --max-rss=1000 -- app", &s, &error));
  g_assert_cmpint(s.pm, ==, SETTINGS_PM_ONDEMAND);
  g_assert_cmpuint(s.max_rss_bytes, ==, 1000);
  settings_clear(&s);

  expect_usage_error("-w -s /x --pm=fast -- app", "'fast' is not a process manager mode");
  expect_usage_error("-s /x --pm=dynamic -- app", "--pm needs --supervise");
  expect_usage_error("-s /x --max-age=5 -- app", "--max-age needs --supervise");
  expect_usage_error("-w -s /x --pm=dynamic --min-children=3 -F 2 -- app",
                     "--min-children=3 is more than the maximum -F=2");
  expect_usage_error("-w -s /x --pm=dynamic --min-children=3 -- app",
                     "more than the maximum --fork=1");
  expect_usage_error("-w -s /x --min-children=1 -- app", "--min-children needs --pm=dynamic");
  expect_usage_error("-w -s /x --idle-timeout=1 -- app", "--pm=dynamic or --pm=ondemand");
  expect_usage_error("-w -s /x --max-rss=5T -- app", "'5T' is not a size");
  expect_usage_error("-w -s /x --max-rss=K -- app", "'K' is not a size");
  expect_usage_error("-w -s /x --max-rss=18446744073709551615G -- app", "is not a size");
  expect_usage_error("-w -s /x --max-age=0 -- app", "'0' is not a number of seconds");
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/settings/defaults", test_defaults);
  g_test_add_func("/settings/all-short-options", test_all_short_options);
  g_test_add_func("/settings/long-options", test_long_options);
  g_test_add_func("/settings/application-stops-parsing", test_application_stops_parsing);
  g_test_add_func("/settings/legacy-file", test_legacy_file);
  g_test_add_func("/settings/bad-numbers", test_bad_numbers);
  g_test_add_func("/settings/conflicts", test_conflicts);
  g_test_add_func("/settings/unknown-and-missing", test_unknown_and_missing);
  g_test_add_func("/settings/ignored-options-warned", test_ignored_warned);
  g_test_add_func("/settings/config-every-key", test_config_every_key);
  g_test_add_func("/settings/config-overridden", test_config_overridden_by_command_line);
  g_test_add_func("/settings/config-nul-byte", test_config_nul_byte);
  g_test_add_func("/settings/env-lists", test_env_lists);
  g_test_add_func("/settings/config-errors", test_config_errors);
  g_test_add_func("/settings/config-value-not-utf8", test_config_value_not_utf8);
  g_test_add_func("/settings/command-line-bytes", test_command_line_bytes);
  g_test_add_func("/settings/help-question-mark", test_help_question_mark);
  g_test_add_func("/settings/help-fits-80-columns", test_help_fits_80_columns);
  g_test_add_func("/settings/status-options", test_status_options);
  g_test_add_func("/settings/status-query", test_status_query);
  g_test_add_func("/settings/process-manager", test_process_manager);
  return g_test_run();
}
