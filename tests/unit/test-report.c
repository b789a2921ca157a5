/* Unit tests for the --check printer (src/report.c): text and JSON from
 * the same calls, and JSON that stays valid UTF-8 for any bytes. */
#include "config.h"

#include <glib.h>
#include <string.h>

#include "report.h"

static char *sample(bool json, const char *path)
{
  GString *out = g_string_new(NULL);
  Report r;
  const char *argv[] = { "php-cgi", "-c", "two words", NULL };
  const guint32 groups[] = { 1500, 1600 };

  report_init(&r, out, json);
  report_section(&r, "socket");
  report_str(&r, "path", path);
  report_int(&r, "backlog", 1024);
  report_section(&r, "application");
  report_bool(&r, "drop", true);
  report_str(&r, "chroot", NULL);
  report_strv(&r, "argv", argv);
  report_int_list(&r, "groups", groups, G_N_ELEMENTS(groups));
  report_finish(&r);
  return g_string_free(out, FALSE);
}

static void test_text(void)
{
  g_autofree char *text = sample(false, "/run/app.sock");
  g_assert_cmpstr(text, ==,
                  "socket:\n"
                  "  path: /run/app.sock\n"
                  "  backlog: 1024\n"
                  "application:\n"
                  "  drop: yes\n"
                  "  chroot: -\n"
                  "  argv: 'php-cgi' '-c' 'two words'\n"
                  "  groups: 1500,1600\n");
}

static void test_json(void)
{
  g_autofree char *json = sample(true, "/run/app.sock");
  g_assert_cmpstr(json, ==,
                  "{\"socket\": {\"path\": \"/run/app.sock\", \"backlog\": 1024}, "
                  "\"application\": {\"drop\": true, \"chroot\": null, "
                  "\"argv\": [\"php-cgi\", \"-c\", \"two words\"], "
                  "\"groups\": [1500, 1600]}}\n");
}

static void test_json_escapes(void)
{
  g_autofree char *json = sample(true, "/run/\"q\"\\\n\t\x01\x7f.sock");
  g_assert_nonnull(strstr(json, "\"/run/\\\"q\\\"\\\\\\n\\t\\u0001\\u007f.sock\""));
}

/* A path that is not UTF-8 (Latin-1, a cut sequence) still gives valid
 * UTF-8 JSON (U+FFFD for what is not UTF-8); valid multibyte characters
 * stay as they are. */
static void test_json_odd_bytes_stay_valid_utf8(void)
{
  g_autofree char *json = sample(true, "/srv/caf\xe9/\xc3\xa9t\xc3\xa9/\xe2\x82");
  g_assert_true(g_utf8_validate(json, -1, NULL));
  g_assert_nonnull(strstr(json, "\"/srv/caf\xef\xbf\xbd/\xc3\xa9t\xc3\xa9/\xef\xbf\xbd"));
  g_autofree char *text = sample(false, "/srv/caf\xe9");
  g_assert_nonnull(strstr(text, "path: /srv/caf\xe9\n"));
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/report/text", test_text);
  g_test_add_func("/report/json", test_json);
  g_test_add_func("/report/json-escapes", test_json_escapes);
  g_test_add_func("/report/json-odd-bytes", test_json_odd_bytes_stay_valid_utf8);
  return g_test_run();
}
