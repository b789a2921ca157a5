/* Unit tests for the deciding phase (src/plan.c) without root and without
 * the machine's files: the plan is built from settings and a PlanInputs
 * whose lookups answer from the tables below. */
#include "config.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "exit-status.h"
#include "plan.h"

/* ---- a fake system ------------------------------------------------------- */

typedef struct {
  const char *path;
  mode_t mode;
} FakeFile;

static const FakeFile fake_files[] = {
  { "/", S_IFDIR | 0755 },
  { "/usr/bin", S_IFDIR | 0755 },
  { "/usr/bin/php-cgi", S_IFREG | 0755 },
  { "/usr/bin/notes.txt", S_IFREG | 0644 },
  { "/srv/www", S_IFDIR | 0755 },
  { "/srv/www/app.fcgi", S_IFREG | 0755 },
  { "/home/me/work", S_IFDIR | 0755 },
  { "/home/me/work/php-cgi", S_IFREG | 0755 },
  { "/run", S_IFDIR | 0755 },
  { "/jail", S_IFDIR | 0755 },
  { "/jail/www", S_IFDIR | 0755 },
  { NULL, 0 },
};

typedef struct {
  const char *passed_name;    /* a socket passed by systemd, or NULL */
  bool stdin_listening;
} Fake;

static int fake_stat(const char *path, struct stat *st, gpointer data)
{
  (void) data;
  for (const FakeFile *f = fake_files; f->path != NULL; f++) {
    if (strcmp(f->path, path) == 0) {
      memset(st, 0, sizeof *st);
      st->st_mode = f->mode;
      return 0;
    }
  }
  return -ENOENT;
}

static gboolean fake_user(const char *spec, Identity *out, GError **error, gpointer data)
{
  (void) data;
  static const gid_t web_groups[] = { 1500, 1600 };
  memset(out, 0, sizeof *out);
  if (strcmp(spec, "webuser") == 0) {
    *out = (Identity) { g_strdup("webuser"), 1500, 1500, g_strdup("/srv"),
                        g_memdup2(web_groups, sizeof web_groups), 2 };
    return TRUE;
  }
  if (strcmp(spec, "root") == 0 || strcmp(spec, "0") == 0) {
    *out = (Identity) { g_strdup("root"), 0, 0, g_strdup("/root"), g_new0(gid_t, 1), 1 };
    return TRUE;
  }
  g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_UNKNOWN_USER, "unknown user '%s'", spec);
  return FALSE;
}

static gboolean fake_group(const char *spec, gid_t *out, GError **error, gpointer data)
{
  (void) data;
  if (strcmp(spec, "webuser") == 0)
    *out = 1500;
  else if (strcmp(spec, "staff2") == 0)
    *out = 1600;
  else if (strcmp(spec, "root") == 0)
    *out = 0;
  else {
    g_set_error(error, IDENTITY_ERROR, IDENTITY_ERROR_UNKNOWN_GROUP,
                "unknown group '%s'", spec);
    return FALSE;
  }
  return TRUE;
}

static gboolean fake_self(Identity *out, GError **error, gpointer data)
{
  return fake_user("webuser", out, error, data);
}

static gboolean fake_set_primary_group(Identity *id, gid_t gid, GError **error,
                                       gpointer data)
{
  (void) error;
  (void) data;
  identity_set_only_group(id, gid);
  return TRUE;
}

static gboolean fake_tcp(SocketPlan *plan, const char *address, guint16 port,
                         GError **error, gpointer data)
{
  (void) data;
  if (address != NULL && strcmp(address, "db.example") == 0) {
    g_set_error(error, SOCKET_ERROR, SOCKET_ERROR_INVALID, "cannot resolve '%s'", address);
    return FALSE;
  }
  plan->source = SOCKET_SOURCE_TCP;
  plan->addr_text = g_strdup_printf("%s:%u", address ? address : "0.0.0.0", port);
  return TRUE;
}

static gboolean fake_passed(SocketPlan *plan, const char *fd_name, bool *found,
                            GError **error, gpointer data)
{
  const Fake *fake = data;
  (void) error;
  *found = fake->passed_name != NULL &&
           (fd_name == NULL || strcmp(fd_name, fake->passed_name) == 0);
  if (*found) {
    plan->source = SOCKET_SOURCE_PASSED;
    plan->passed_fd = 3;
    plan->passed_name = g_strdup(fake->passed_name);
  }
  return TRUE;
}

static int fake_stdin_listening(GError **error, gpointer data)
{
  const Fake *fake = data;
  (void) error;
  return fake->stdin_listening;
}

static LimitsPlan *fake_limits(const char *file, const char *dir, const Identity *id,
                               GError **error, gpointer data)
{
  (void) file;
  (void) dir;
  (void) id;
  (void) data;
  g_set_error_literal(error, LIMITS_ERROR, LIMITS_ERROR_READ, "no limits here");
  return NULL;
}

static char *fake_environ[] = {
  "PATH=/usr/bin", "HOME=/root", "LISTEN_PID=7", "SSH_AUTH_SOCK=/tmp/agent", NULL,
};

typedef struct {
  Fake fake;
  PlanLookup lookup;
  PlanInputs inputs;
  Settings settings;
  Plan plan;
  GError *error;
} World;

static void world_init(World *w, uid_t euid)
{
  memset(w, 0, sizeof *w);
  w->lookup = (PlanLookup) {
    .stat_path = fake_stat, .user = fake_user, .group = fake_group, .self = fake_self,
    .set_primary_group = fake_set_primary_group, .tcp = fake_tcp,
    .passed = fake_passed, .stdin_listening = fake_stdin_listening,
    .limits = fake_limits, .data = &w->fake,
  };
  w->inputs = (PlanInputs) {
    .uid = euid, .gid = euid, .euid = euid, .umask = 027,
    .environ = fake_environ, .cwd = "/home/me", .lookup = &w->lookup,
  };
}

/* Parses line (split on spaces) and builds the plan; TRUE on success. */
static gboolean world_plan(World *w, const char *line)
{
  g_autofree char *full = g_strconcat("spawn-fcgi ", line, NULL);
  g_auto(GStrv) argv = g_strsplit(full, " ", -1);
  SettingsParseResult r;
  g_assert_true(settings_parse((int) g_strv_length(argv), argv, &w->settings, &r,
                               &w->error));
  return plan_build(&w->settings, &w->inputs, &w->plan, &w->error);
}

static void world_clear(World *w)
{
  plan_clear(&w->plan);
  settings_clear(&w->settings);
  g_clear_error(&w->error);
}

/* The plan failed with this exit status and a message holding needle. */
static void assert_refused(World *w, const char *line, int status, const char *needle)
{
  g_assert_false(world_plan(w, line));
  g_assert_nonnull(w->error);
  g_assert_cmpint(plan_error_exit_status(w->error), ==, status);
  if (strstr(w->error->message, needle) == NULL)
    g_error("'%s': message '%s' lacks '%s'", line, w->error->message, needle);
  world_clear(w);
}

static bool has_warning(const Plan *p, const char *needle)
{
  for (guint i = 0; i < p->warnings->len; i++)
    if (strstr(g_ptr_array_index(p->warnings, i), needle) != NULL)
      return true;
  return false;
}

/* ---- identities and the unix socket -------------------------------------- */

static void test_unix_socket_as_root(void)
{
  World w;
  world_init(&w, 0);
  g_assert_true(world_plan(&w, "-s /run/app.sock -u webuser -- php-cgi"));
  g_assert_true(w.plan.is_root);
  g_assert_true(w.plan.drop);
  g_assert_cmpuint(w.plan.app.uid, ==, 1500);
  g_assert_cmpuint(w.plan.app.n_groups, ==, 2);
  g_assert_cmpint(w.plan.socket.source, ==, SOCKET_SOURCE_UNIX);
  g_assert_cmpstr(w.plan.socket.path, ==, "/run/app.sock");
  g_assert_cmpuint(w.plan.socket.mode, ==, 0640);     /* 0660 minus umask 027 */
  g_assert_cmpuint(w.plan.socket.owner, ==, 1500);
  g_assert_cmpuint(w.plan.socket.group, ==, 1500);
  g_assert_cmpstr(w.plan.exec_path, ==, "/usr/bin/php-cgi");
  g_assert_cmpuint(w.plan.warnings->len, ==, 0);
  world_clear(&w);
}

static void test_root_needs_user_warning(void)
{
  World w;
  world_init(&w, 0);
  g_assert_true(world_plan(&w, "-s /run/app.sock -M 0600 -- php-cgi"));
  g_assert_false(w.plan.drop);
  g_assert_cmpuint(w.plan.socket.mode, ==, 0600);
  g_assert_true(has_warning(&w.plan, "ROOT"));
  world_clear(&w);
}

static void test_refused_identities(void)
{
  World w;
  world_init(&w, 0);
  assert_refused(&w, "-s /run/a.sock -u root -- php-cgi", EXIT_STATUS_USAGE, "uid 0");
  assert_refused(&w, "-s /run/a.sock -u webuser -g root -- php-cgi", EXIT_STATUS_USAGE,
                 "gid 0");
  assert_refused(&w, "-s /run/a.sock -u ghost -- php-cgi", EXIT_STATUS_LOOKUP, "ghost");
  world_init(&w, 1000);
  assert_refused(&w, "-s /run/a.sock -u webuser -- php-cgi", EXIT_STATUS_USAGE,
                 "needs root");
  assert_refused(&w, "-s /run/a.sock -c /jail -- php-cgi", EXIT_STATUS_USAGE, "needs root");
}

/* ---- socket choice ------------------------------------------------------- */

static void test_passed_socket_wins(void)
{
  World w;
  world_init(&w, 0);
  w.fake.passed_name = "web";
  g_assert_true(world_plan(&w, "-s /run/app.sock -u webuser -- php-cgi"));
  g_assert_cmpint(w.plan.socket.source, ==, SOCKET_SOURCE_PASSED);
  g_assert_cmpstr(w.plan.socket.passed_name, ==, "web");
  g_assert_true(has_warning(&w.plan, "--socket '/run/app.sock' is ignored"));
  world_clear(&w);
}

static void test_tcp_and_stdin(void)
{
  World w;
  world_init(&w, 0);
  g_assert_true(world_plan(&w, "-a 127.0.0.1 -p 9000 -u webuser -- php-cgi"));
  g_assert_cmpint(w.plan.socket.source, ==, SOCKET_SOURCE_TCP);
  g_assert_cmpstr(w.plan.socket.addr_text, ==, "127.0.0.1:9000");
  world_clear(&w);
  assert_refused(&w, "-a db.example -p 9000 -- php-cgi", EXIT_STATUS_USAGE, "db.example");

  assert_refused(&w, "-u webuser -- php-cgi", EXIT_STATUS_USAGE, "no socket");
  w.fake.stdin_listening = true;
  g_assert_true(world_plan(&w, "-u webuser -- php-cgi"));
  g_assert_cmpint(w.plan.socket.source, ==, SOCKET_SOURCE_STDIN);
  world_clear(&w);
}

/* ---- directories and the application ------------------------------------- */

static void test_missing_directories_are_refused(void)
{
  World w;
  world_init(&w, 0);
  assert_refused(&w, "-s /run/a.sock -d /nonexistent -- php-cgi", EXIT_STATUS_PRIVILEGE,
                 "cannot chdir to '/nonexistent'");
  assert_refused(&w, "-s /run/a.sock -d /usr/bin/php-cgi -- php-cgi", EXIT_STATUS_PRIVILEGE,
                 "Not a directory");
  assert_refused(&w, "-s /run/a.sock -c /nonexistent -- php-cgi", EXIT_STATUS_PRIVILEGE,
                 "cannot chroot to '/nonexistent'");
  assert_refused(&w, "-s /run/a.sock -c /jail -d /missing -- php-cgi",
                 EXIT_STATUS_PRIVILEGE, "cannot chdir to '/missing'");
  assert_refused(&w, "-s /run/a.sock -P /nodir/app.pid -- php-cgi", EXIT_STATUS_USAGE,
                 "cannot open PID file '/nodir/app.pid'");

  g_assert_true(world_plan(&w, "-s /run/a.sock -c /jail -d /www -P /run/a.pid -- php-cgi"));
  /* Looked up inside the chroot, at start. */
  g_assert_cmpstr(w.plan.exec_path, ==, "php-cgi");
  world_clear(&w);
}

static void test_application_is_resolved_once(void)
{
  World w;
  world_init(&w, 0);
  g_assert_true(world_plan(&w, "-s /run/a.sock -d /srv/www -- ./app.fcgi"));
  g_assert_cmpstr(w.plan.exec_path, ==, "/srv/www/app.fcgi");
  world_clear(&w);
  g_assert_true(world_plan(&w, "-s /run/a.sock -d work -- ./php-cgi"));
  g_assert_cmpstr(w.plan.exec_path, ==, "/home/me/work/php-cgi");
  world_clear(&w);
  assert_refused(&w, "-s /run/a.sock -- nothing-here", EXIT_STATUS_NOT_FOUND,
                 "not found in PATH");
  assert_refused(&w, "-s /run/a.sock -- notes.txt", EXIT_STATUS_NOT_EXECUTABLE,
                 "/usr/bin/notes.txt");
  assert_refused(&w, "-s /run/a.sock -- /srv/www", EXIT_STATUS_NOT_EXECUTABLE,
                 "not executable");
}

static void test_relative_path_entries_are_ignored(void)
{
  static char *env[] = { "PATH=.::work:/usr/bin", NULL };
  World w;
  world_init(&w, 0);
  w.inputs.environ = env;
  g_assert_true(world_plan(&w, "-s /run/a.sock -d /home/me/work -- php-cgi"));
  g_assert_cmpstr(w.plan.exec_path, ==, "/usr/bin/php-cgi");
  g_assert_true(has_warning(&w.plan, "'.', '', 'work'"));
  world_clear(&w);
  assert_refused(&w, "-s /run/a.sock -- app.fcgi", EXIT_STATUS_NOT_FOUND,
                 "relative entries are ignored: '.', '', 'work'");
}

/* ---- environment --------------------------------------------------------- */

static void test_environment(void)
{
  World w;
  world_init(&w, 0);
  g_assert_true(world_plan(&w, "-s /run/a.sock -C 2 -- php-cgi"));
  g_autofree char *all = g_strjoinv(" ", w.plan.envp);
  g_assert_cmpstr(all, ==, "PATH=/usr/bin HOME=/root SSH_AUTH_SOCK=/tmp/agent "
                           "PHP_FCGI_CHILDREN=2");
  world_clear(&w);
  g_assert_true(world_plan(&w, "-s /run/a.sock --clear-env --env HOME --env X=1 -- php-cgi"));
  g_autofree char *clear = g_strjoinv(" ", w.plan.envp);
  g_assert_cmpstr(clear, ==, "PATH=/usr/bin HOME=/root X=1");
  world_clear(&w);
}

/* ---- --check ------------------------------------------------------------- */

static void test_check_output(void)
{
  World w;
  world_init(&w, 0);
  g_assert_true(world_plan(&w, "-s /run/caf\xe9.sock -u webuser --clear-env -F 2 -- php-cgi"));
  g_autoptr(GString) text = g_string_new(NULL);
  plan_format(&w.plan, false, text);
  g_assert_nonnull(strstr(text->str, "socket:\n  source: own unix socket\n"
                                     "  path: /run/caf\xe9.sock\n  mode: 0640\n"));
  g_assert_nonnull(strstr(text->str, "  exec: /usr/bin/php-cgi\n"));
  g_assert_nonnull(strstr(text->str, "  environment: 'PATH=/usr/bin'\n"));
  g_assert_nonnull(strstr(text->str, "children:\n  mode: fork\n  count: 2\n"));

  g_autoptr(GString) json = g_string_new(NULL);
  plan_format(&w.plan, true, json);
  g_assert_true(g_utf8_validate(json->str, -1, NULL));
  g_assert_nonnull(strstr(json->str, "\"path\": \"/run/caf\xef\xbf\xbd.sock\""));
  g_assert_nonnull(strstr(json->str, "\"environment\": [\"PATH=/usr/bin\"]"));
  g_assert_nonnull(strstr(json->str, "\"uid\": 1500"));
  world_clear(&w);
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/plan/unix-socket-as-root", test_unix_socket_as_root);
  g_test_add_func("/plan/root-warning", test_root_needs_user_warning);
  g_test_add_func("/plan/refused-identities", test_refused_identities);
  g_test_add_func("/plan/socket/passed-wins", test_passed_socket_wins);
  g_test_add_func("/plan/socket/tcp-and-stdin", test_tcp_and_stdin);
  g_test_add_func("/plan/directories", test_missing_directories_are_refused);
  g_test_add_func("/plan/exec/resolved-once", test_application_is_resolved_once);
  g_test_add_func("/plan/exec/relative-path-entries", test_relative_path_entries_are_ignored);
  g_test_add_func("/plan/environment", test_environment);
  g_test_add_func("/plan/check-output", test_check_output);
  return g_test_run();
}
