/* bench-limits: speed and memory of the limits.conf parser and resolver.
 *
 * Generates configurations of 1,000, 10,000 and 100,000 lines, in one file
 * and spread over 50 files, and for each prints the median time of the pure
 * path (texts in memory -> plan), the time of limits_load() on the same
 * content written to files, and the peak RSS of a fresh process that loads
 * those files (which must not grow with the number of lines).  Prints
 * numbers only; never fails on timing.
 *
 *   bench-limits                  the whole table
 *   bench-limits --load FILE DIR  (internal) load once, for the RSS column */
#include "config.h"

#include "limits-conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static gid_t bench_groups[] = { 1000, 50, 2000 };
static const Identity bench_user = {
  .name = (char *) "alice", .uid = 1000, .gid = 1000,
  .groups = bench_groups, .n_groups = G_N_ELEMENTS(bench_groups),
};

/* Groups "staff" (50), "dev" (2000) and "grp0".."grp49" (3000..3049). */
static gboolean fake_by_name(const char *group, const char *user, gid_t *gid,
                             gboolean *listed, gpointer data G_GNUC_UNUSED)
{
  *listed = FALSE;
  if (strcmp(group, "staff") == 0) {
    *gid = 50;
    *listed = user != NULL && strcmp(user, "alice") == 0;
    return TRUE;
  }
  if (strcmp(group, "dev") == 0) {
    *gid = 2000;
    return TRUE;
  }
  if (g_str_has_prefix(group, "grp")) {
    *gid = 3000 + (gid_t) atoi(group + 3);
    return TRUE;
  }
  return FALSE;
}

static gboolean fake_by_gid(gid_t gid, const char *user G_GNUC_UNUSED,
                            gboolean *listed, gpointer data G_GNUC_UNUSED)
{
  *listed = FALSE;
  return gid == 50 || gid == 2000 || (gid >= 3000 && gid < 3050);
}

static const LimitsGroupLookup fake_lookup = { fake_by_name, fake_by_gid, NULL };

static void bench_context(LimitsContext *ctx)
{
  limits_context_init(ctx, &bench_user);
  ctx->groups = &fake_lookup;
}

/* ---- Generating configurations ---- */

static guint64 rng_next(guint64 *s)
{
  guint64 x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

/* One line of a plausible configuration: comments, blank lines, every kind
 * of domain and item, a few invalid lines, never a "no limits" line. */
static void gen_line(GString *out, guint64 *rng)
{
  static const char *const items[] = {
    "nofile", "nproc", "core", "stack", "memlock", "as", "cpu", "data",
    "fsize", "rss", "locks", "sigpending", "msgqueue", "rtprio", "rttime",
  };
  static const char *const types[] = { "soft", "hard", "-" };
  guint64 r = rng_next(rng);
  guint kind = (guint) (r % 100);
  guint64 v = (r >> 8) % 100000;

  if (kind < 10) {
    g_string_append(out, "# a comment explaining the next lines\n");
    return;
  }
  if (kind < 15) {
    g_string_append(out, "\n");
    return;
  }

  switch ((r >> 24) % 10) {
  case 0: g_string_append(out, "*"); break;
  case 1: g_string_append(out, "alice"); break;
  case 2: g_string_append_printf(out, "user%u", (guint) (v % 1000)); break;
  case 3: g_string_append(out, "@staff"); break;
  case 4: g_string_append_printf(out, "@grp%u", (guint) (v % 50)); break;
  case 5: g_string_append_printf(out, "%u:", (guint) (v % 2000)); break;
  case 6: g_string_append_printf(out, ":%u", (guint) (v % 2000)); break;
  case 7: g_string_append_printf(out, "%u:%u", (guint) (v % 1000), (guint) (v % 3000)); break;
  case 8: g_string_append(out, "@:50"); break;
  default: g_string_append_printf(out, "@%u:%u", (guint) (v % 2000), 2000u); break;
  }
  g_string_append_c(out, '\t');

  if (kind < 17) {
    g_string_append_printf(out, "-\tpriority\t%d\n", (int) (v % 40) - 20);
  } else if (kind < 18) {
    g_string_append_printf(out, "-\tnonewprivs\t%u\n", (guint) (v & 1));
  } else if (kind < 19) {
    g_string_append(out, "-\tmaxlogins\t4\n");
  } else if (kind < 21) {
    g_string_append_printf(out, "soft\tnice\t%d\n", (int) (v % 40) - 20);
  } else if (kind < 22) {
    g_string_append(out, "soft\tnofile\t12abc\n");   /* invalid: a warning */
  } else {
    const char *item = items[(r >> 32) % G_N_ELEMENTS(items)];
    const char *type = types[(r >> 40) % G_N_ELEMENTS(types)];
    if ((r >> 48) % 10 == 0)
      g_string_append_printf(out, "%s\t%s\tunlimited\n", type, item);
    else
      g_string_append_printf(out, "%s\t%s\t%" G_GUINT64_FORMAT "\n", type, item, v + 1);
  }
}

/* `lines` lines spread over `n_files` texts. */
static GPtrArray *gen_texts(guint lines, guint n_files)
{
  GPtrArray *texts = g_ptr_array_new_with_free_func(g_free);
  guint64 rng = 0x9e3779b97f4a7c15ull;

  for (guint f = 0; f < n_files; f++) {
    GString *t = g_string_new(NULL);
    guint from = (guint) ((guint64) lines * f / n_files);
    guint to = (guint) ((guint64) lines * (f + 1) / n_files);
    for (guint i = from; i < to; i++)
      gen_line(t, &rng);
    g_ptr_array_add(texts, g_string_free(t, FALSE));
  }
  return texts;
}

/* ---- Measuring ---- */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double median(double *v, guint n)
{
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double time_pure(const LimitsContext *ctx, GPtrArray *texts, guint reps)
{
  g_autofree LimitsText *files = g_new(LimitsText, texts->len);
  g_autofree double *t = g_new(double, reps);

  for (guint i = 0; i < texts->len; i++)
    files[i] = (LimitsText) { g_strdup_printf("%02u.conf", i), texts->pdata[i], -1 };
  for (guint r = 0; r < reps; r++) {
    gint64 start = g_get_monotonic_time();
    LimitsPlan *plan = limits_resolve_texts(ctx, files, texts->len, NULL);
    t[r] = (double) (g_get_monotonic_time() - start) / 1000.0;
    if (plan == NULL || limits_plan_stopped(plan))
      g_error("unexpected plan");
    limits_plan_free(plan);
  }
  for (guint i = 0; i < texts->len; i++)
    g_free((char *) files[i].name);
  return median(t, reps);
}

/* Writes the texts: one as limits.conf, or 50 into a limits.d next to an
 * empty limits.conf. */
static void write_files(const char *dir, GPtrArray *texts, char **file, char **confdir)
{
  g_autoptr(GError) error = NULL;

  *file = g_build_filename(dir, "limits.conf", NULL);
  *confdir = NULL;
  if (texts->len == 1) {
    if (!g_file_set_contents(*file, texts->pdata[0], -1, &error))
      g_error("%s", error->message);
    return;
  }
  if (!g_file_set_contents(*file, "", 0, &error))
    g_error("%s", error->message);
  *confdir = g_build_filename(dir, "limits.d", NULL);
  g_mkdir_with_parents(*confdir, 0755);
  for (guint i = 0; i < texts->len; i++) {
    g_autofree char *name = g_strdup_printf("%02u.conf", i);
    g_autofree char *path = g_build_filename(*confdir, name, NULL);
    if (!g_file_set_contents(path, texts->pdata[i], -1, &error))
      g_error("%s", error->message);
  }
}

static double time_load(const LimitsContext *ctx, const char *file, const char *dir,
                        guint reps)
{
  g_autofree double *t = g_new(double, reps);

  for (guint r = 0; r < reps; r++) {
    g_autoptr(GError) error = NULL;
    gint64 start = g_get_monotonic_time();
    LimitsPlan *plan = limits_load_with(file, dir, ctx, &error);
    t[r] = (double) (g_get_monotonic_time() - start) / 1000.0;
    if (plan == NULL)
      g_error("%s", error->message);
    limits_plan_free(plan);
  }
  return median(t, reps);
}

/* Peak RSS (KiB) of a fresh process that loads the files once. */
static long rss_of_load(const char *self, const char *file, const char *dir)
{
  struct rusage ru;
  int status;
  pid_t pid = fork();

  if (pid < 0)
    g_error("fork: %s", g_strerror(errno));
  if (pid == 0) {
    execl(self, self, "--load", file, dir != NULL ? dir : "", (char *) NULL);
    _exit(127);
  }
  if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    g_error("the --load child failed");
  return ru.ru_maxrss;
}

static int load_once(const char *file, const char *dir)
{
  LimitsContext ctx;
  g_autoptr(GError) error = NULL;
  LimitsPlan *plan;

  bench_context(&ctx);
  plan = limits_load_with(file, dir[0] != '\0' ? dir : NULL, &ctx, &error);
  if (plan == NULL) {
    fprintf(stderr, "bench-limits: %s\n", error->message);
    return 1;
  }
  limits_plan_free(plan);
  return 0;
}

static void remove_tree(const char *path)
{
  GDir *d = g_dir_open(path, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
    g_autofree char *sub = g_build_filename(path, name, NULL);
    if (g_file_test(sub, G_FILE_TEST_IS_DIR) && !g_file_test(sub, G_FILE_TEST_IS_SYMLINK))
      remove_tree(sub);
    else
      unlink(sub);
  }
  if (d != NULL)
    g_dir_close(d);
  rmdir(path);
}

int main(int argc, char **argv)
{
  static const guint sizes[] = { 1000, 10000, 100000 };
  static const guint file_counts[] = { 1, 50 };
  double ms[G_N_ELEMENTS(file_counts)][G_N_ELEMENTS(sizes)];
  g_autofree char *self = NULL;
  g_autofree char *tmp = NULL;
  LimitsContext ctx;

  if (argc == 4 && strcmp(argv[1], "--load") == 0)
    return load_once(argv[2], argv[3]);
  if (argc != 1) {
    fprintf(stderr, "usage: bench-limits\n");
    return 2;
  }

  self = g_file_read_link("/proc/self/exe", NULL);
  tmp = g_dir_make_tmp("bench-limits-XXXXXX", NULL);
  if (self == NULL || tmp == NULL)
    g_error("cannot find myself or make a temporary directory");
  bench_context(&ctx);

  printf("limits.conf parse+resolve (median of several runs; RSS of a fresh "
         "process loading the files)\n\n");
  printf("%8s %6s %10s %10s %10s %12s %10s\n",
         "lines", "files", "bytes", "pure ms", "ns/line", "load ms", "peak RSS");
  for (guint f = 0; f < G_N_ELEMENTS(file_counts); f++) {
    for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
      g_autoptr(GPtrArray) texts = gen_texts(sizes[s], file_counts[f]);
      g_autofree char *casedir = g_strdup_printf("%s/%u-%u", tmp, sizes[s], file_counts[f]);
      g_autofree char *file = NULL;
      g_autofree char *confdir = NULL;
      guint reps = sizes[s] >= 100000 ? 11 : sizes[s] >= 10000 ? 21 : 51;
      gsize bytes = 0;
      double load_ms;
      long rss;

      for (guint i = 0; i < texts->len; i++)
        bytes += strlen(texts->pdata[i]);
      g_mkdir_with_parents(casedir, 0755);
      write_files(casedir, texts, &file, &confdir);

      time_pure(&ctx, texts, 3);   /* warm up */
      ms[f][s] = time_pure(&ctx, texts, reps);
      load_ms = time_load(&ctx, file, confdir, reps);
      rss = rss_of_load(self, file, confdir);

      printf("%8u %6u %10zu %10.3f %10.1f %12.3f %7ld KiB\n", sizes[s],
             file_counts[f], bytes, ms[f][s], ms[f][s] * 1e6 / sizes[s], load_ms, rss);
      fflush(stdout);
    }
  }

  printf("\n");
  for (guint f = 0; f < G_N_ELEMENTS(file_counts); f++) {
    double ratio = ms[f][2] / ms[f][1];
    double big = ms[f][2];
    printf("%2u file%s: 100k/10k time ratio %.1fx (target <= 12x: %s); "
           "100k lines in %.2f ms (target <= 50 ms: %s)\n",
           file_counts[f], file_counts[f] == 1 ? " " : "s", ratio,
           ratio <= 12.0 ? "yes" : "no", big, big <= 50.0 ? "yes" : "no");
  }

  remove_tree(tmp);
  return 0;
}
