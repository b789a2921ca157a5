/* Unit tests for the status views (src/status.c). */
#include "config.h"

#include <glib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "status.h"

#define NOW_US G_GINT64_CONSTANT(1796400000000000) /* 2026-12-04 */

/* A pool of n children with values at the wide end of what happens. */
static PoolStatus sample_pool(PoolChildStatus *children, guint n, const char *instance)
{
  PoolStatus st = {
    .instance = instance,
    .pm = "dynamic",
    .min_children = 2,
    .max_children = n,
    .listen = "/run/spawn-fcgi/php.sock",
    .listen_source = "systemd",
    .backlog = 1024,
    .queue_known = true,
    .accept_queue = 3,
    .max_accept_queue = 17,
    .starting = 1, .idle = 2, .busy = n - 4, .retiring = 1, .total = n,
    .max_children_reached = 4,
    .seconds_at_max = 12.5,
    .restarts = 12345678,
    .quick_failures = 3,
    .give_ups = 0,
    .spawn_failures = 1,
    .reloads = 2,
    .last_reload_us = NOW_US - 60 * G_USEC_PER_SEC,
    .last_reload_result = "done",
    .start_time_us = NOW_US - G_GINT64_CONSTANT(3) * 86400 * G_USEC_PER_SEC,
    .uptime_seconds = 3 * 86400.0 + 7,
    .version = "2.0.0",
    .children = children,
    .n_children = n,
  };
  for (guint i = 0; i < n; i++) {
    children[i] = (PoolChildStatus) {
      .slot = i,
      .pid = 4194304 - (pid_t) i,
      .state = i % 4,
      .started_us = NOW_US - (gint64) i * 3700 * G_USEC_PER_SEC,
      .age_seconds = i * 3700.0 + (i == 7 ? 90000 : 0),
      .slot_restarts = 99999999,
      .last_exit_status = i == 0 ? -1 : i == 1 ? (SIGSEGV) : (255 << 8),
      .rss_bytes = 1023 * G_GUINT64_CONSTANT(1048576),
      .pss_bytes = (guint64) i * 12345678,
      .cpu_seconds = 9999.9,
    };
  }
  return st;
}

static void test_text_fits_80_columns(void)
{
  PoolChildStatus children[8];
  PoolStatus st = sample_pool(children, 8, "php");
  g_autoptr(GString) out = g_string_new(NULL);

  status_format_text(&st, out);
  g_assert_true(g_utf8_validate(out->str, -1, NULL));
  g_auto(GStrv) lines = g_strsplit(out->str, "\n", -1);
  guint rows = 0;
  for (char **l = lines; *l; l++) {
    if (g_utf8_strlen(*l, -1) > 80)
      g_error("line longer than 80 columns (%ld): '%s'", g_utf8_strlen(*l, -1), *l);
    if (g_regex_match_simple("^ +[0-9]+ +4194[0-9]+ ", *l, 0, 0))
      rows++;
  }
  g_assert_cmpuint(rows, ==, 8);
  g_assert_nonnull(strstr(out->str, "spawn-fcgi pool php: dynamic, 2-8 children"));
  g_assert_nonnull(strstr(out->str, "SIGSEGV"));
  g_assert_nonnull(strstr(out->str, "exit 255"));
  g_assert_nonnull(strstr(out->str, "3 waiting, at most 17 seen"));
}

static void test_text_escapes_names(void)
{
  PoolChildStatus children[1];
  PoolStatus st = sample_pool(children, 1, "a\x1b[2Jb\xff\xfe\n");
  g_autoptr(GString) out = g_string_new(NULL);

  st.listen = "/tmp/\x07x";
  status_format_text(&st, out);
  g_assert_true(g_utf8_validate(out->str, -1, NULL));
  g_assert_null(strchr(out->str, '\x1b'));
  g_assert_null(strchr(out->str, '\x07'));
  g_assert_nonnull(strstr(out->str, "pool a\\x1b[2Jb\\xff\\xfe\\x0a:"));
  g_assert_nonnull(strstr(out->str, "/tmp/\\x07x"));
}

static void test_json_valid_utf8(void)
{
  PoolChildStatus children[2];
  PoolStatus st = sample_pool(children, 2, "bad\xc3(\"quote\"\\\x01\n\xe2\x82\xac");
  g_autoptr(GString) out = g_string_new(NULL);

  st.listen = "/run/\xff.sock";
  st.queue_known = false;
  status_format_json(&st, out);
  g_assert_true(g_utf8_validate(out->str, -1, NULL));
  for (const char *p = out->str; *p; p++)
    g_assert_true((unsigned char) *p >= 0x20 || (*p == '\n' && p[1] == '\0'));
  g_assert_nonnull(strstr(out->str, "\"instance\": \"bad\xef\xbf\xbd(\\\"quote\\\"\\\\\\u0001\\n\xe2\x82\xac\""));
  g_assert_nonnull(strstr(out->str, "\"listen\": \"/run/\xef\xbf\xbd.sock\""));
  g_assert_nonnull(strstr(out->str, "\"accept_queue\": null"));
  g_assert_nonnull(strstr(out->str, "\"last_exit_code\": -1"));
  g_assert_nonnull(strstr(out->str, "\"last_exit_code\": 139"));
  g_assert_true(g_str_has_prefix(out->str, "{"));
  g_assert_true(g_str_has_suffix(out->str, "]}\n"));
}

/* Every sample belongs to a family announced with # HELP and # TYPE just
 * before; counters end in _total. */
static void test_prometheus_families(void)
{
  PoolChildStatus children[3];
  PoolStatus st = sample_pool(children, 3, "x\"y\\z\nw\xff");
  g_autoptr(GString) out = g_string_new(NULL);
  g_autofree char *family = NULL, *type = NULL;

  status_format_prometheus(&st, out);
  g_assert_true(g_utf8_validate(out->str, -1, NULL));
  g_auto(GStrv) lines = g_strsplit(out->str, "\n", -1);
  for (char **l = lines; *l && **l; l++) {
    if (g_str_has_prefix(*l, "# HELP ")) {
      g_auto(GStrv) f = g_strsplit(*l + 7, " ", 2);
      g_free(family);
      family = g_strdup(f[0]);
      g_assert_true(g_str_has_prefix(family, "spawn_fcgi_"));
      continue;
    }
    if (g_str_has_prefix(*l, "# TYPE ")) {
      g_auto(GStrv) f = g_strsplit(*l + 7, " ", 2);
      g_assert_cmpstr(f[0], ==, family);
      g_free(type);
      type = g_strdup(f[1]);
      g_assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0);
      g_assert_cmpint(g_str_has_suffix(family, "_total"), ==, strcmp(type, "counter") == 0);
      continue;
    }
    size_t name_len = strcspn(*l, "{ ");
    g_assert_nonnull(family);
    g_assert_cmpint(name_len, ==, strlen(family));
    g_assert_true(strncmp(*l, family, name_len) == 0);
  }
  g_assert_nonnull(strstr(out->str, "spawn_fcgi_info{instance=\"x\\\"y\\\\z\\nw\xef\xbf\xbd\","));
  g_assert_nonnull(strstr(out->str, "spawn_fcgi_restarts_total 12345678\n"));
  g_assert_nonnull(strstr(out->str, "spawn_fcgi_accept_queue 3\n"));
  g_assert_nonnull(strstr(out->str, "spawn_fcgi_children{state=\"retiring\"} 1\n"));
  g_assert_nonnull(strstr(out->str,
                          "spawn_fcgi_child_state{slot=\"1\",pid=\"4194303\",state=\"idle\"} 1\n"));
  g_assert_nonnull(strstr(out->str,
                          "spawn_fcgi_child_cpu_seconds_total{slot=\"2\",pid=\"4194302\"} 9999.900\n"));
  g_assert_nonnull(strstr(out->str, "spawn_fcgi_last_reload_result{result=\"done\"} 1\n"));
}

static void test_prometheus_without_queue(void)
{
  PoolChildStatus children[1];
  PoolStatus st = sample_pool(children, 1, "");
  g_autoptr(GString) out = g_string_new(NULL);

  st.queue_known = false;
  status_format_prometheus(&st, out);
  g_assert_null(strstr(out->str, "spawn_fcgi_accept_queue"));
}

static void test_summary(void)
{
  PoolStatus st = { .queue_known = true, .total = 4, .busy = 1, .idle = 3,
                    .accept_queue = 0, .restarts = 12 };
  g_autofree char *known = status_summary(&st, NULL);
  g_assert_cmpstr(known, ==, "4 children: 1 busy, 3 idle; queue 0; 12 restarts");
  st.retiring = 2;
  st.total = 6;
  g_autofree char *retiring = status_summary(&st, "stopping");
  g_assert_cmpstr(retiring, ==, "6 children: 1 busy, 3 idle, 2 retiring; queue 0; 12 restarts; "
                  "stopping");
  st.queue_known = false;
  g_autofree char *unknown = status_summary(&st, "reloading");
  g_assert_cmpstr(unknown, ==, "6 children running; 12 restarts; reloading");
}

static void test_format_names(void)
{
  StatusFormat f;
  g_assert_true(status_format_from_name("prometheus", &f));
  g_assert_cmpint(f, ==, STATUS_FORMAT_PROMETHEUS);
  g_assert_true(status_format_from_name("json", &f));
  g_assert_cmpint(f, ==, STATUS_FORMAT_JSON);
  g_assert_false(status_format_from_name("xml", &f));
}

static void test_parse_proc(void)
{
  guint64 rss = 0, pss = 0, ticks = 0, pages = 0;
  const char *rollup = "55a0c0000000-7ffd1d9f6000 ---p 00000000 00:00 0     [rollup]\n"
                       "Rss:                2048 kB\n"
                       "Pss:                 512 kB\n"
                       "Pss_Anon:            256 kB\n";
  g_assert_true(status_parse_smaps_rollup(rollup, &rss, &pss));
  g_assert_cmpuint(rss, ==, 2048 * 1024);
  g_assert_cmpuint(pss, ==, 512 * 1024);
  g_assert_false(status_parse_smaps_rollup("Rss: 1 kB\n", &rss, &pss));
  /* No sign, a unit, and a size in bytes that fits. */
  g_assert_false(status_parse_smaps_rollup("Rss: -1 kB\nPss: 1 kB\n", &rss, &pss));
  g_assert_false(status_parse_smaps_rollup("Rss: 1\nPss: 1 kB\n", &rss, &pss));
  g_assert_false(status_parse_smaps_rollup("Rss: 18014398509481984 kB\nPss: 1 kB\n",
                                           &rss, &pss));
  g_assert_true(status_parse_smaps_rollup("Rss:\t3 kB\nPss: 18014398509481983 kB\n",
                                          &rss, &pss));
  g_assert_cmpuint(rss, ==, 3 * 1024);
  g_assert_cmpuint(pss, ==, G_GUINT64_CONSTANT(18014398509481983) * 1024);

  /* A command name with spaces and a ')' in it. */
  const char *stat = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 "
                     "5000 10000000 777 18446744073709551615";
  g_assert_true(status_parse_proc_stat(stat, &ticks, &pages));
  g_assert_cmpuint(ticks, ==, 300);
  g_assert_cmpuint(pages, ==, 777);
  g_assert_false(status_parse_proc_stat("garbage", &ticks, &pages));
}

static void test_read_proc_of_self(void)
{
  PoolChildStatus child = { .pid = getpid() };
  PoolChildStatus gone = { .pid = 0 };
  PoolChildStatus both[2] = { child, gone };
  PoolStatus st = { .children = both, .n_children = 2 };

  /* Burn some CPU time (not wall time) so that the count is above 0. */
  volatile guint64 x = 0;
  clock_t until = clock() + CLOCKS_PER_SEC / 10;
  while (clock() < until)
    x++;
  pool_status_read_proc(&st);
  g_assert_cmpuint(both[0].rss_bytes, >, 0);
  g_assert_cmpuint(both[0].pss_bytes, >, 0);
  g_assert_cmpuint(both[0].pss_bytes, <=, both[0].rss_bytes);
  g_assert_cmpfloat(both[0].cpu_seconds, >, 0);
  g_assert_cmpuint(both[1].rss_bytes, ==, 0);
}

/* The server's variant: RSS and CPU every time, PSS within its budget
 * (at least one child per call). */
static void test_read_proc_cached(void)
{
  PoolChildStatus child = { .pid = getpid() };
  PoolStatus st = { .children = &child, .n_children = 1 };
  StatusPssCache *cache = status_pss_cache_new();

  pool_status_read_proc_cached(&st, cache);
  g_assert_cmpuint(child.rss_bytes, >, 0);
  g_assert_cmpuint(child.pss_bytes, >, 0);
  guint64 pss = child.pss_bytes;
  child = (PoolChildStatus) { .pid = getpid() };
  pool_status_read_proc_cached(&st, cache);
  /* Remembered, not read again within STATUS_PSS_MAX_AGE_S. */
  g_assert_cmpuint(child.pss_bytes, ==, pss);
  status_pss_cache_free(cache);
}

int main(int argc, char **argv)
{
  g_setenv("TZ", "UTC", TRUE);
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/status/text-80-columns", test_text_fits_80_columns);
  g_test_add_func("/status/text-escapes", test_text_escapes_names);
  g_test_add_func("/status/json-utf8", test_json_valid_utf8);
  g_test_add_func("/status/prometheus-families", test_prometheus_families);
  g_test_add_func("/status/prometheus-no-queue", test_prometheus_without_queue);
  g_test_add_func("/status/summary", test_summary);
  g_test_add_func("/status/format-names", test_format_names);
  g_test_add_func("/status/parse-proc", test_parse_proc);
  g_test_add_func("/status/read-proc-self", test_read_proc_of_self);
  g_test_add_func("/status/read-proc-cached", test_read_proc_cached);
  return g_test_run();
}
