/* Unit tests for the application's environment
 * (launch_build_environment in src/launch.c). */
#include "config.h"

#include <glib.h>

#include "launch.h"

static char *const caller[] = {
  "PATH=/usr/bin:/bin", "HOME=/root", "SSH_AUTH_SOCK=/tmp/agent",
  "LISTEN_PID=1", "LISTEN_FDS=1", "NOTIFY_SOCKET=/run/notify", "WATCHDOG_USEC=5",
  "PHP_FCGI_CHILDREN=9", "KEEP=kept", NULL,
};

static char *joined(const LaunchEnvironment *how)
{
  g_auto(GStrv) env = launch_build_environment(caller, how);
  return g_strjoinv(" ", env);
}

static void test_default_passes_the_caller_without_protocol_variables(void)
{
  LaunchEnvironment how = { .php_children = -1 };
  g_autofree char *env = joined(&how);
  g_assert_cmpstr(env, ==, "PATH=/usr/bin:/bin HOME=/root SSH_AUTH_SOCK=/tmp/agent "
                           "PHP_FCGI_CHILDREN=9 KEEP=kept");
}

static void test_removed_list_is_complete(void)
{
  g_autofree char *names = g_strjoinv(" ", (char **) launch_removed_variables);
  g_assert_cmpstr(names, ==, "LISTEN_PID LISTEN_FDS LISTEN_FDNAMES LISTEN_PIDFDID "
                             "NOTIFY_SOCKET WATCHDOG_PID WATCHDOG_USEC");
}

static void test_php_children_and_set_replace(void)
{
  char *set[] = { "HOME=/srv", "TZ=UTC", NULL };
  LaunchEnvironment how = { .php_children = 4, .set = set };
  g_autofree char *env = joined(&how);
  g_assert_cmpstr(env, ==, "PATH=/usr/bin:/bin HOME=/srv SSH_AUTH_SOCK=/tmp/agent "
                           "PHP_FCGI_CHILDREN=4 KEEP=kept TZ=UTC");
}

static void test_clear_keeps_path_and_what_is_named(void)
{
  char *set[] = { "OLD=1", NULL };
  char *pass[] = { "KEEP", "MISSING", "NEW=a=b c", "NOTIFY_SOCKET", "HOME=/srv", NULL };
  LaunchEnvironment how = { .clear = true, .php_children = 2, .set = set, .pass = pass };
  g_autofree char *env = joined(&how);
  g_assert_cmpstr(env, ==, "PATH=/usr/bin:/bin PHP_FCGI_CHILDREN=2 OLD=1 KEEP=kept "
                           "NEW=a=b c HOME=/srv");
}

static void test_clear_without_path_in_the_caller(void)
{
  char *const none[] = { "HOME=/root", NULL };
  LaunchEnvironment how = { .clear = true, .php_children = -1 };
  g_auto(GStrv) env = launch_build_environment(none, &how);
  g_assert_cmpuint(g_strv_length(env), ==, 0);
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/environment/default", test_default_passes_the_caller_without_protocol_variables);
  g_test_add_func("/environment/removed-list", test_removed_list_is_complete);
  g_test_add_func("/environment/php-children-and-set", test_php_children_and_set_replace);
  g_test_add_func("/environment/clear", test_clear_keeps_path_and_what_is_named);
  g_test_add_func("/environment/clear-without-path", test_clear_without_path_in_the_caller);
  return g_test_run();
}
