/* test-limits: the limits.conf parser, resolver and applier.
 *
 * The doc's test cases (docs/limits-conf.md) come first, each its own test,
 * with the doc's fixture users and starting limits; then one group of
 * tests per rule, reading files (real temp files), and applying in forked
 * children.  Group lookups are faked: no /etc and no root needed. */
#include "config.h"

#include "limits-conf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define INF RLIM_INFINITY
#define NR_OPEN ((rlim_t) 1048576)

/* ---- Fixture: users, groups, starting limits ---- */

static gid_t alice_groups[] = { 1000, 50, 2000 };
static gid_t carol_groups[] = { 3000 };
static gid_t num_groups[] = { 7000 };

static const Identity alice = {
  .name = (char *) "alice", .uid = 1000, .gid = 1000,
  .groups = alice_groups, .n_groups = G_N_ELEMENTS(alice_groups),
};
static const Identity carol = {
  .name = (char *) "carol", .uid = 5000, .gid = 3000,
  .groups = carol_groups, .n_groups = G_N_ELEMENTS(carol_groups),
};
/* A user literally named "1000". */
static const Identity user1000 = {
  .name = (char *) "1000", .uid = 7000, .gid = 7000,
  .groups = num_groups, .n_groups = G_N_ELEMENTS(num_groups),
};

typedef struct {
  const char *name;
  gid_t gid;
  const char *members[3];
} FakeGroup;

/* gid 3000 (carol's primary group) deliberately has no entry.  "ops" lists
 * alice as a member without being in her group list, "web" is in no one's
 * member list. */
static const FakeGroup fake_groups[] = {
  { "alice", 1000, { NULL } },
  { "staff", 50, { "alice", NULL } },
  { "dev", 2000, { "alice", NULL } },
  { "ops", 60, { "alice", NULL } },
  { "web", 70, { NULL } },
  { "empty", 80, { NULL } },
};

static guint fake_lookups;

static gboolean listed_in(const FakeGroup *g, const char *user)
{
  for (int i = 0; user != NULL && g->members[i] != NULL; i++)
    if (strcmp(g->members[i], user) == 0)
      return TRUE;
  return FALSE;
}

static gboolean fake_by_name(const char *group, const char *user, gid_t *gid,
                             gboolean *listed, gpointer data G_GNUC_UNUSED)
{
  fake_lookups++;
  for (gsize i = 0; i < G_N_ELEMENTS(fake_groups); i++) {
    if (strcmp(fake_groups[i].name, group) == 0) {
      *gid = fake_groups[i].gid;
      *listed = listed_in(&fake_groups[i], user);
      return TRUE;
    }
  }
  return FALSE;
}

static gboolean fake_by_gid(gid_t gid, const char *user, gboolean *listed,
                            gpointer data G_GNUC_UNUSED)
{
  fake_lookups++;
  for (gsize i = 0; i < G_N_ELEMENTS(fake_groups); i++) {
    if (fake_groups[i].gid == gid) {
      *listed = listed_in(&fake_groups[i], user);
      return TRUE;
    }
  }
  return FALSE;
}

static const LimitsGroupLookup fake_lookup = {
  .by_name = fake_by_name,
  .by_gid = fake_by_gid,
};

/* nofile 1024/4096, core 0/unlimited, stack 8 MiB/unlimited, memlock
 * 65536/65536, nice 0/0, rtprio 0/0, everything else unlimited. */
static void fixture_context(LimitsContext *ctx, const Identity *id)
{
  memset(ctx, 0, sizeof *ctx);
  ctx->id = id;
  for (int i = 0; i < LIMITS_N_RLIMITS; i++)
    ctx->start[i] = (struct rlimit) { INF, INF };
  ctx->start[RLIMIT_NOFILE] = (struct rlimit) { 1024, 4096 };
  ctx->start[RLIMIT_CORE] = (struct rlimit) { 0, INF };
  ctx->start[RLIMIT_STACK] = (struct rlimit) { 8 * 1024 * 1024, INF };
  ctx->start[RLIMIT_MEMLOCK] = (struct rlimit) { 65536, 65536 };
  ctx->start[RLIMIT_NICE] = (struct rlimit) { 0, 0 };
  ctx->start[RLIMIT_RTPRIO] = (struct rlimit) { 0, 0 };
  ctx->nr_open = NR_OPEN;
  ctx->groups = &fake_lookup;
}

static LimitsPlan *resolve_texts(const Identity *id, const LimitsText *texts,
                                 gsize n_texts)
{
  LimitsContext ctx;
  g_autoptr(GError) error = NULL;
  LimitsPlan *plan;

  fixture_context(&ctx, id);
  plan = limits_resolve_texts(&ctx, texts, n_texts, &error);
  g_assert_no_error(error);
  g_assert_nonnull(plan);
  return plan;
}

static LimitsPlan *resolve_for(const Identity *id, const char *text)
{
  LimitsText t = { "t.conf", text, -1 };
  return resolve_texts(id, &t, 1);
}

static LimitsPlan *resolve(const char *text)
{
  return resolve_for(&alice, text);
}

#define assert_rl(plan, res, soft, hard)                           \
  do {                                                             \
    struct rlimit rl_;                                             \
    limits_plan_get((plan), (res), &rl_);                          \
    g_assert_cmpuint(rl_.rlim_cur, ==, (rlim_t) (soft));           \
    g_assert_cmpuint(rl_.rlim_max, ==, (rlim_t) (hard));           \
  } while (0)

#define assert_nofile(text, soft, hard)                            \
  do {                                                             \
    g_autoptr(LimitsPlan) p_ = resolve(text);                      \
    assert_rl(p_, RLIMIT_NOFILE, soft, hard);                      \
  } while (0)

static void assert_unchanged(const LimitsPlan *plan)
{
  LimitsContext ctx;
  fixture_context(&ctx, &alice);
  for (int i = 0; i < LIMITS_N_RLIMITS; i++) {
    struct rlimit rl;
    g_assert_false(limits_plan_get(plan, i, &rl));
    g_assert_cmpuint(rl.rlim_cur, ==, ctx.start[i].rlim_cur);
    g_assert_cmpuint(rl.rlim_max, ==, ctx.start[i].rlim_max);
  }
}

/* TRUE when some warning contains `needle`. */
static gboolean has_warning(const LimitsPlan *plan, const char *needle)
{
  const GPtrArray *w = limits_plan_warnings(plan);
  for (guint i = 0; i < w->len; i++)
    if (strstr(w->pdata[i], needle) != NULL)
      return TRUE;
  return FALSE;
}

/* One line alone must be skipped with a warning naming t.conf:1. */
static void assert_skipped(const char *text, const char *reason)
{
  g_autoptr(LimitsPlan) plan = resolve(text);
  if (limits_plan_n_warnings(plan) != 1)
    g_error("expected one warning for \"%s\", got %u", text,
            limits_plan_n_warnings(plan));
  g_assert_true(has_warning(plan, "t.conf:1: "));
  if (reason != NULL && !has_warning(plan, reason))
    g_error("warning for \"%s\" is \"%s\", expected it to contain \"%s\"", text,
            (const char *) limits_plan_warnings(plan)->pdata[0], reason);
  assert_unchanged(plan);
}

/* "<domain> soft nofile 2000" for each of the NULL-terminated domains:
 * alice's nofile is then 2000/4096 when `matches`, else still 1024/4096. */
static void assert_domains(gboolean matches, ...) G_GNUC_NULL_TERMINATED;
static void assert_domains(gboolean matches, ...)
{
  rlim_t want = matches ? 2000 : 1024;
  const char *domain;
  va_list ap;

  va_start(ap, matches);
  while ((domain = va_arg(ap, const char *)) != NULL) {
    g_autofree char *text = g_strdup_printf("%s soft nofile 2000", domain);
    g_autoptr(LimitsPlan) plan = resolve(text);
    struct rlimit rl;

    limits_plan_get(plan, RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != want || rl.rlim_max != 4096)
      g_error("\"%s\": nofile %llu/%llu, expected %llu/4096", text,
              (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max,
              (unsigned long long) want);
  }
  va_end(ap);
}

static char *explain(const LimitsPlan *plan)
{
  GString *out = g_string_new(NULL);
  limits_plan_explain(plan, out);
  return g_string_free(out, FALSE);
}

/* The explanation of the plan a resolver makes when fed `t` in chunks of
 * `step` bytes. */
static char *explain_fed(const LimitsText *t, gsize step)
{
  gsize len = t->len < 0 ? strlen(t->text) : (gsize) t->len;
  LimitsContext ctx;
  g_autoptr(LimitsResolver) r = NULL;
  g_autoptr(LimitsPlan) p = NULL;

  fixture_context(&ctx, &alice);
  r = limits_resolver_new(&ctx);
  limits_resolver_begin_file(r, t->name);
  for (gsize off = 0; off < len; off += step)
    g_assert_true(limits_resolver_feed(r, t->text + off, MIN(step, len - off), NULL));
  limits_resolver_end_file(r);
  p = limits_resolver_finish(g_steal_pointer(&r));
  return explain(p);
}

/* `prefix`, then `piece` n times, then `suffix`. */
static char *repeat(const char *prefix, const char *piece, guint n, const char *suffix)
{
  GString *out = g_string_new(prefix);
  for (guint i = 0; i < n; i++)
    g_string_append(out, piece);
  g_string_append(out, suffix);
  return g_string_free(out, FALSE);
}

/* ---- Checks on texts: explanations, warnings, errors, child output ---- */

static void check_needles(const char *text, gboolean present, va_list ap)
{
  const char *needle;
  while ((needle = va_arg(ap, const char *)) != NULL)
    if ((strstr(text, needle) != NULL) != present)
      g_error("\"%s\" %s in:\n%s", needle, present ? "not found" : "found", text);
}

/* Each of the NULL-terminated needles occurs in `text`. */
static void assert_contains(const char *text, ...) G_GNUC_NULL_TERMINATED;
static void assert_contains(const char *text, ...)
{
  va_list ap;
  va_start(ap, text);
  check_needles(text, TRUE, ap);
  va_end(ap);
}

/* None of the NULL-terminated needles occurs in `text`. */
static void assert_lacks(const char *text, ...) G_GNUC_NULL_TERMINATED;
static void assert_lacks(const char *text, ...)
{
  va_list ap;
  va_start(ap, text);
  check_needles(text, FALSE, ap);
  va_end(ap);
}

static void assert_matches(const char *text, const char *regex)
{
  if (!g_regex_match_simple(regex, text, 0, 0))
    g_error("/%s/ does not match:\n%s", regex, text);
}

/* ---- Temporary directories with files ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
  g_autofree char *path = g_build_filename(dir, name, NULL);
  g_autoptr(GError) error = NULL;
  g_file_set_contents(path, text, -1, &error);
  g_assert_no_error(error);
}

static void remove_tree(const char *path)
{
  struct stat st;
  if (lstat(path, &st) != 0)
    return;
  if (S_ISDIR(st.st_mode)) {
    GDir *d = g_dir_open(path, 0, NULL);
    const char *name;
    chmod(path, 0700);
    while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
      g_autofree char *sub = g_build_filename(path, name, NULL);
      remove_tree(sub);
    }
    if (d != NULL)
      g_dir_close(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

static LimitsPlan *load(const char *file, const char *dir, const Identity *id,
                        GError **error)
{
  LimitsContext ctx;
  fixture_context(&ctx, id);
  return limits_load_with(file, dir, &ctx, error);
}

/* Loading fails with LIMITS_ERROR_READ, and the message holds each of the
 * NULL-terminated needles. */
static void assert_load_fails(const char *file, const char *dir, ...) G_GNUC_NULL_TERMINATED;
static void assert_load_fails(const char *file, const char *dir, ...)
{
  g_autoptr(GError) error = NULL;
  va_list ap;

  g_assert_null(load(file, dir, &alice, &error));
  g_assert_error(error, LIMITS_ERROR, LIMITS_ERROR_READ);
  va_start(ap, dir);
  check_needles(error->message, TRUE, ap);
  va_end(ap);
}

/* A temporary directory with limits.conf and a directory of drop-ins in
 * it; freeing it removes it all. */
typedef struct {
  char *tmp;     /* the temporary directory */
  char *file;    /* tmp/limits.conf */
  char *dir;     /* the drop-in directory; NULL for none (NO_DIR) */
} TmpTree;

#define NO_DIR NULL    /* no drop-in directory: limits.conf alone */
#define TMP_DIR ""     /* the drop-ins beside limits.conf, in tmp itself */

static void tmp_tree_free(TmpTree *tree)
{
  remove_tree(tree->tmp);
  g_free(tree->tmp);
  g_free(tree->file);
  g_free(tree->dir);
  g_free(tree);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TmpTree, tmp_tree_free)

/* Where the drop-ins go: the drop-in directory, or tmp without one. */
static const char *tmp_tree_dropins(const TmpTree *tree)
{
  return tree->dir != NULL ? tree->dir : tree->tmp;
}

/* Makes the tree: `dir` (NO_DIR, TMP_DIR or a name made in tmp) for the
 * drop-ins; limits.conf holding `conf` unless that is NULL; then one
 * drop-in for each (name, text) pair that follows, up to a NULL name. */
static TmpTree *tmp_tree_new(const char *dir, const char *conf, ...) G_GNUC_NULL_TERMINATED;
static TmpTree *tmp_tree_new(const char *dir, const char *conf, ...)
{
  TmpTree *tree = g_new0(TmpTree, 1);
  g_autoptr(GError) error = NULL;
  const char *name;
  va_list ap;

  tree->tmp = g_dir_make_tmp("test-limits-XXXXXX", &error);
  g_assert_no_error(error);
  tree->file = g_build_filename(tree->tmp, "limits.conf", NULL);
  if (dir != NULL && *dir == '\0')
    tree->dir = g_strdup(tree->tmp);
  else if (dir != NULL) {
    tree->dir = g_build_filename(tree->tmp, dir, NULL);
    g_assert_cmpint(mkdir(tree->dir, 0755), ==, 0);
  }
  if (conf != NULL)
    write_file(tree->tmp, "limits.conf", conf);
  va_start(ap, conf);
  while ((name = va_arg(ap, const char *)) != NULL)
    write_file(tmp_tree_dropins(tree), name, va_arg(ap, const char *));
  va_end(ap);
  return tree;
}

/* A path in tmp. */
static char *tmp_tree_path(const TmpTree *tree, const char *name)
{
  return g_build_filename(tree->tmp, name, NULL);
}

/* A symlink `name` -> `target` among the drop-ins. */
static void tmp_tree_link(const TmpTree *tree, const char *target, const char *name)
{
  g_autofree char *path = g_build_filename(tmp_tree_dropins(tree), name, NULL);
  g_assert_cmpint(symlink(target, path), ==, 0);
}

/* Loads the tree for alice, which must succeed. */
static LimitsPlan *tmp_tree_load(const TmpTree *tree)
{
  g_autoptr(GError) error = NULL;
  LimitsPlan *plan = load(tree->file, tree->dir, &alice, &error);
  g_assert_no_error(error);
  g_assert_nonnull(plan);
  return plan;
}

/* ---- Doc test cases ---- */

typedef struct {
  const char *path;
  const char *text;
  rlim_t soft, hard;
} NofileCase;

static const NofileCase doc_nofile_cases[] = {
  { "/limits/doc/01-soft-raise", "* soft nofile 2000", 2000, 4096 },
  { "/limits/doc/02-hard-lowers-soft", "* hard nofile 800", 800, 800 },
  { "/limits/doc/03-both", "* - nofile 3000", 3000, 3000 },
  { "/limits/doc/04-soft-above-hard", "* soft nofile 9000", 4096, 4096 },
  { "/limits/doc/05-soft-then-hard", "* soft nofile 9000\n* hard nofile 3000", 3000, 3000 },
  { "/limits/doc/06-user-beats-group",
    "@staff - nofile 2000\nalice - nofile 3000\n@staff - nofile 2500", 3000, 3000 },
  { "/limits/doc/07-group-beats-default", "@staff - nofile 2000\n* - nofile 3000", 2000, 2000 },
  { "/limits/doc/08-same-class-last-wins", "* - nofile 2000\n* - nofile 3000", 3000, 3000 },
  { "/limits/doc/09-soft-rejected-drops-hard", "alice soft nofile 2000\n@staff - nofile 3000",
    2000, 4096 },
  { "/limits/doc/10-hard-kept", "alice hard nofile 2000\n@staff - nofile 3000", 2000, 2000 },
  { "/limits/doc/11-group-soft-default-both", "@staff soft nofile 2000\n* - nofile 3000",
    2000, 4096 },
};

static void test_nofile_case(gconstpointer data)
{
  const NofileCase *c = data;
  assert_nofile(c->text, c->soft, c->hard);
}

static void test_doc_12(void)
{
  g_autoptr(LimitsPlan) p1 = resolve("* soft nofile 2000#3000");
  g_autoptr(LimitsPlan) p2 = resolve("\t* soft core 10 # x");
  assert_rl(p1, RLIMIT_NOFILE, 2000, 4096);
  assert_rl(p2, RLIMIT_CORE, 10240, INF);
  g_assert_cmpuint(limits_plan_n_warnings(p1) + limits_plan_n_warnings(p2), ==, 0);
}

static void test_doc_13(void)
{
  g_autoptr(LimitsPlan) p = resolve("ALICE soft nofile 2000");
  assert_nofile("* SOFT NOFILE 2000", 2000, 4096);
  assert_unchanged(p);
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
}

static void test_doc_14(void)
{
  g_autoptr(LimitsPlan) p = resolve("* - core 10\n* - cpu 2\n* - stack 100");
  assert_rl(p, RLIMIT_CORE, 10240, 10240);
  assert_rl(p, RLIMIT_CPU, 120, 120);
  assert_rl(p, RLIMIT_STACK, 102400, 102400);
}

static void test_doc_15(void)
{
  g_autoptr(LimitsPlan) p = resolve("* - core -1\n* - stack infinity\n* - fsize -");
  assert_rl(p, RLIMIT_CORE, INF, INF);
  assert_rl(p, RLIMIT_STACK, INF, INF);
  assert_rl(p, RLIMIT_FSIZE, INF, INF);
  g_assert_true(limits_plan_get(p, RLIMIT_FSIZE, &(struct rlimit) { 0 }));
}

static void test_doc_16(void) { assert_nofile("* soft nofile unlimited", 4096, 4096); }

static void test_doc_17(void)
{
  assert_skipped("* soft nofile abc", "'abc'");
}

static void test_doc_18(void)
{
  assert_skipped("* soft nofiles 2000", "unknown item 'nofiles'");
  assert_skipped("* medium nofile 2000", "unknown type 'medium'");
  assert_skipped("* soft nofile", "missing value");
  assert_skipped("*soft nofile 2000", NULL);
}

static void test_doc_19(void)
{
  assert_domains(TRUE, "1000:1000", ":1000", "1000:", NULL);
  assert_domains(FALSE, ":1001", "2000:1000", NULL);
}

static void test_doc_20(void)
{
  assert_nofile("1000: soft nofile 2000\nalice soft nofile 3000\n* soft nofile 2500",
                3000, 4096);
}

static void test_doc_21(void) { assert_nofile("@:50 soft nofile 2000", 2000, 4096); }

static void test_doc_22(void)
{
  g_autoptr(LimitsPlan) p = resolve("@50:50 soft core 7");
  assert_unchanged(p);
}

static void test_doc_23(void)
{
  g_autoptr(LimitsPlan) p1 = resolve_for(&carol, "@3000: soft core 5");
  g_autoptr(LimitsPlan) p2 = resolve_for(&carol, "@:3000 soft nofile 2000");
  assert_rl(p1, RLIMIT_CORE, 5120, INF);
  assert_unchanged(p2);
}

static void test_doc_24(void)
{
  g_autoptr(LimitsPlan) p1 = resolve("alice -\n* soft nofile 2000");
  g_autoptr(LimitsPlan) p2 = resolve("* soft nofile 2000\nalice -");
  g_assert_true(limits_plan_stopped(p1));
  g_assert_true(limits_plan_stopped(p2));
  assert_unchanged(p1);
  assert_unchanged(p2);
}

static void test_doc_25(void)
{
  g_autoptr(LimitsPlan) p = resolve("* -\n* soft nofile 2000");
  g_assert_false(limits_plan_stopped(p));
  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
}

static void test_doc_26(void)
{
  g_autoptr(LimitsPlan) p1 = resolve("* - nice -5");
  g_autoptr(LimitsPlan) p2 = resolve("* - nice 50");
  assert_rl(p1, RLIMIT_NICE, 25, 25);
  assert_rl(p2, RLIMIT_NICE, 1, 1);
}

static void test_doc_27(void)
{
  g_autoptr(LimitsPlan) p = resolve("alice - priority 5\n* - priority 7");
  int prio = 0;
  g_assert_true(limits_plan_priority(p, &prio));
  g_assert_cmpint(prio, ==, 7);
}

static void test_doc_28(void)
{
  g_autoptr(LimitsPlan) p = resolve("* - nonewprivs 1");
  g_autoptr(LimitsPlan) none = resolve("* - nofile 2000");
  g_assert_true(limits_plan_no_new_privs(p));
  g_assert_false(limits_plan_no_new_privs(none));
}

static void test_doc_29(void)
{
  g_autoptr(LimitsPlan) pa = resolve_for(&alice, "1000 soft nofile 2000");
  g_autoptr(LimitsPlan) pn = resolve_for(&user1000, "1000 soft nofile 2000");
  assert_unchanged(pa);
  assert_rl(pn, RLIMIT_NOFILE, 2000, 4096);
}

static void test_doc_30(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new("limits.d", "alice - nofile 2000\n",
                                         "a.conf", "* - nofile 3000\n", NULL);
  g_autoptr(LimitsPlan) p = tmp_tree_load(tree);
  assert_rl(p, RLIMIT_NOFILE, 2000, 2000);
}

static void test_doc_31(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new(TMP_DIR, "",
                                         "10.conf", "* - nofile 2000\n",
                                         "9.conf", "* - nofile 3000\n", NULL);
  g_autoptr(LimitsPlan) p = tmp_tree_load(tree);
  assert_rl(p, RLIMIT_NOFILE, 3000, 3000);
}

static void test_doc_32(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new("limits.d", "",
                                         "a.conf", "* soft nofile 2000\n",
                                         "z.txt", "* soft core 1\n",
                                         ".h.conf", "* soft stack 1\n",
                                         "z.conf~", "* soft memlock 1\n", NULL);
  g_autoptr(LimitsPlan) p = tmp_tree_load(tree);
  g_autofree char *text = explain(p);

  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
  assert_rl(p, RLIMIT_CORE, 0, INF);
  assert_rl(p, RLIMIT_STACK, 8 * 1024 * 1024, INF);
  assert_rl(p, RLIMIT_MEMLOCK, 65536, 65536);
  assert_contains(text, "a.conf: 1 line", NULL);
  assert_lacks(text, "z.txt", ".h.conf", "z.conf~", NULL);
}

static void test_doc_33(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new(TMP_DIR, "* soft nofile 2000\n",
                                         "a.conf", "* soft core 1\n",
                                         "c.conf", "* soft stack 1\n", NULL);
  g_autofree char *loop = tmp_tree_path(tree, "b.conf");

  tmp_tree_link(tree, "b.conf", "b.conf");
  assert_load_fails(tree->file, tree->dir, loop, g_strerror(ELOOP), NULL);
}

/* ---- Applying, in forked children ---- */

typedef void (*ChildFunc)(GString *out);

/* Runs fn in a forked child and returns what it wrote. */
static char *run_in_child(ChildFunc fn)
{
  int fds[2];
  pid_t pid;
  int status;
  GString *got;
  char buf[512];
  ssize_t n;

  g_assert_cmpint(pipe(fds), ==, 0);
  pid = fork();
  g_assert_cmpint(pid, >=, 0);
  if (pid == 0) {
    GString *out = g_string_new(NULL);
    gboolean written;

    close(fds[0]);
    fn(out);
    written = write(fds[1], out->str, out->len) >= 0;
    g_string_free(out, TRUE);
    _exit(written ? 0 : 2);
  }
  got = g_string_new(NULL);
  close(fds[1]);
  while ((n = read(fds[0], buf, sizeof buf)) > 0)
    g_string_append_len(got, buf, n);
  close(fds[0]);
  g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
  g_assert_true(WIFEXITED(status));
  g_assert_cmpint(WEXITSTATUS(status), ==, 0);
  return g_string_free(got, FALSE);
}

static LimitsPlan *plan_from_current(const char *text)
{
  LimitsContext ctx;
  LimitsText t = { "t.conf", text, -1 };
  limits_context_init(&ctx, &alice);
  ctx.groups = &fake_lookup;
  return limits_resolve_texts(&ctx, &t, 1, NULL);
}

/* Applies `text`, resolved against this process's limits; FALSE, with
 * "fail: " and the message in `out`, when that fails. */
static gboolean child_apply(GString *out, const char *text, bool ignore_errors,
                            char *msg, gsize msg_size)
{
  g_autoptr(LimitsPlan) plan = plan_from_current(text);
  if (limits_apply(plan, ignore_errors, msg, msg_size))
    return TRUE;
  g_string_append_printf(out, "fail: %s", msg);
  return FALSE;
}

/* Appends the nofile limits as "soft/hard". */
static void append_nofile(GString *out)
{
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  g_string_append_printf(out, "%llu/%llu", (unsigned long long) rl.rlim_cur,
                         (unsigned long long) rl.rlim_max);
}

/* Sets nofile to 1024/4096 (lowering only); FALSE when that is impossible
 * or when raising the hard limit works (CAP_SYS_RESOURCE present). */
static gboolean child_nofile_1024_4096(GString *out)
{
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max < 4096) {
    g_string_append(out, "skip: hard nofile below 4096");
    return FALSE;
  }
  rl = (struct rlimit) { 1024, 4096 };
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    g_string_append_printf(out, "skip: cannot lower nofile: %s", g_strerror(errno));
    return FALSE;
  }
  rl.rlim_max = 4097;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
    g_string_append(out, "skip: this process can raise hard limits");
    return FALSE;
  }
  return TRUE;
}

static void child_raise_hard(GString *out)
{
  g_autoptr(LimitsPlan) plan = NULL;
  char msg[512];

  if (!child_nofile_1024_4096(out))
    return;
  plan = plan_from_current("# raise\n* hard nofile 8000\n");
  if (limits_apply(plan, false, msg, sizeof msg)) {
    g_string_append(out, "fail: apply succeeded");
    return;
  }
  g_string_append(out, "ok ");
  append_nofile(out);
  g_string_append_printf(out, ": %s", msg);
}

/* Runs fn in a forked child: NULL when the child skipped (and so does the
 * test), else what it wrote, which begins with "ok". */
static char *run_child_ok(ChildFunc fn)
{
  char *got = run_in_child(fn);
  if (g_str_has_prefix(got, "skip: ")) {
    g_test_skip(got + 6);
    g_free(got);
    return NULL;
  }
  if (!g_str_has_prefix(got, "ok"))
    g_error("child: %s", got);
  return got;
}

static void test_doc_34(void)
{
  g_autofree char *got = run_child_ok(child_raise_hard);
  if (got != NULL)
    assert_contains(got, "ok 1024/4096: ", "nofile", "hard 8000",
                    "current soft 1024, hard 4096", "t.conf:2", g_strerror(EPERM), NULL);
}

static void child_lower_soft(GString *out)
{
  struct rlimit before, after;
  char msg[256];

  getrlimit(RLIMIT_NOFILE, &before);
  if (before.rlim_cur < 64) {
    g_string_append(out, "skip: nofile soft limit already tiny");
    return;
  }
  if (!child_apply(out, "* soft nofile 50\n", false, msg, sizeof msg))
    return;
  getrlimit(RLIMIT_NOFILE, &after);
  if (after.rlim_cur != 50 || after.rlim_max != before.rlim_max) {
    g_string_append_printf(out, "fail: got %llu/%llu",
                           (unsigned long long) after.rlim_cur,
                           (unsigned long long) after.rlim_max);
    return;
  }
  g_string_append_printf(out, "ok msg='%s'", msg);
}

static void child_ignore_errors(GString *out)
{
  char msg[512];
  struct rlimit rl;

  /* The failing nofile must not stop core from being lowered. */
  if (!child_nofile_1024_4096(out) ||
      !child_apply(out, "* hard nofile 8000\n* - core 0\n", true, msg, sizeof msg))
    return;
  getrlimit(RLIMIT_CORE, &rl);
  if (rl.rlim_cur != 0 || rl.rlim_max != 0) {
    g_string_append(out, "fail: core not lowered");
    return;
  }
  g_string_append_printf(out, "ok %s", msg);
}

static void child_soft_above_hard(GString *out)
{
  char msg[512];

  if (!child_nofile_1024_4096(out) ||
      !child_apply(out, "* soft nofile 100000\n", false, msg, sizeof msg))
    return;
  g_string_append(out, "ok ");
  append_nofile(out);
}

static void child_priority(GString *out)
{
  g_autofree char *text = NULL;
  char msg[256];
  int before;

  errno = 0;
  before = getpriority(PRIO_PROCESS, 0);
  if (before >= 19) {
    g_string_append(out, "skip: already at nice 19");
    return;
  }
  text = g_strdup_printf("* - priority %d\n", before + 1);
  if (!child_apply(out, text, false, msg, sizeof msg))
    return;
  g_string_append_printf(out, "ok %d", getpriority(PRIO_PROCESS, 0) - before);
}

static void child_stopped(GString *out)
{
  struct rlimit before, after;
  char msg[256];

  getrlimit(RLIMIT_NOFILE, &before);
  if (!child_apply(out, "* soft nofile 10\nalice -\n", false, msg, sizeof msg))
    return;
  getrlimit(RLIMIT_NOFILE, &after);
  g_string_append(out, before.rlim_cur == after.rlim_cur ? "ok" : "fail: changed");
}

typedef struct {
  const char *path;
  ChildFunc child;
  const char *output;   /* all the child must write, or NULL */
  const char *part;     /* a part of it, or NULL */
} ApplyCase;

static const ApplyCase apply_cases[] = {
  { "/limits/apply/lower-soft", child_lower_soft, "ok msg=''", NULL },
  { "/limits/apply/ignore-errors", child_ignore_errors, NULL, "t.conf:1" },
  { "/limits/apply/soft-above-hard", child_soft_above_hard, "ok 4096/4096", NULL },
  { "/limits/apply/priority", child_priority, "ok 1", NULL },
  { "/limits/apply/stopped", child_stopped, NULL, NULL },
};

static void test_apply_case(gconstpointer data)
{
  const ApplyCase *c = data;
  g_autofree char *got = run_child_ok(c->child);

  if (got == NULL)
    return;
  if (c->output != NULL)
    g_assert_cmpstr(got, ==, c->output);
  if (c->part != NULL)
    assert_contains(got, c->part, NULL);
}

/* ---- Rule 1-3: files ---- */

static void test_files_byte_order(void)
{
  /* "B.conf" < "a.conf" in byte order: a.conf is read last and wins. */
  g_autoptr(TmpTree) tree = tmp_tree_new("d", "",
                                         "a.conf", "* - nofile 2000\n",
                                         "B.conf", "* - nofile 3000\n", NULL);
  g_autoptr(LimitsPlan) p = tmp_tree_load(tree);
  assert_rl(p, RLIMIT_NOFILE, 2000, 2000);
}

static void test_files_skipped_entries(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new(TMP_DIR, "* soft core 1\n",
                                         "target", "* soft nofile 2000\n",
                                         ".conf", "* soft stack 1\n", NULL);
  g_autofree char *subdir = tmp_tree_path(tree, "x.conf");
  g_autoptr(LimitsPlan) p = NULL;
  g_autofree char *text = NULL;

  /* open() says ENOENT, as for a file that vanished after the listing. */
  tmp_tree_link(tree, "nowhere", "d.conf");
  g_assert_cmpint(mkdir(subdir, 0755), ==, 0);
  tmp_tree_link(tree, "target", "l.conf");
  p = tmp_tree_load(tree);
  assert_rl(p, RLIMIT_CORE, 1024, INF);
  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);   /* symlink to a file is read */
  assert_rl(p, RLIMIT_STACK, 8 * 1024 * 1024, INF);
  text = explain(p);
  assert_contains(text, "d.conf: gone or a dangling symlink, skipped",
                  "x.conf: a directory, ignored", NULL);
}

static void test_files_explicit_file_alone(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new(NO_DIR, "* soft nofile 2000\n", NULL);
  g_autoptr(LimitsPlan) p = tmp_tree_load(tree);
  g_autofree char *text = explain(p);

  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
  assert_lacks(text, LIMITS_DEFAULT_DIR, NULL);
}

static void test_files_missing(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new(NO_DIR, "", NULL);
  g_autofree char *file = tmp_tree_path(tree, "nope.conf");
  g_autofree char *dir = tmp_tree_path(tree, "nope.d");

  assert_load_fails(file, NULL, file, NULL);
  assert_load_fails(tree->file, dir, dir, NULL);
}

static void test_files_not_regular(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new(NO_DIR, NULL, NULL);
  g_autofree char *fifo = tmp_tree_path(tree, "f.conf");
  g_autoptr(GError) error = NULL;
  g_autoptr(LimitsPlan) devnull = NULL;

  /* The main file a directory: EISDIR. */
  assert_load_fails(tree->tmp, NULL, g_strerror(EISDIR), NULL);

  /* A FIFO would block: refused, not read. */
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  assert_load_fails(fifo, NULL, "not a regular file", NULL);

  /* /dev/null: an empty file. */
  devnull = load("/dev/null", NULL, &alice, &error);
  g_assert_no_error(error);
  assert_unchanged(devnull);
}

static void test_files_too_large(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new(NO_DIR, NULL, NULL);
  g_autofree char *big = tmp_tree_path(tree, "big.conf");
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  LimitsText t;
  LimitsContext ctx;
  int fd;

  /* A sparse file of LIMITS_MAX_FILE_SIZE + 1 bytes. */
  fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(ftruncate(fd, LIMITS_MAX_FILE_SIZE + 1), ==, 0);
  close(fd);
  assert_load_fails(big, NULL, big, "16 MiB", NULL);

  /* Exactly the maximum is fine (pure path). */
  text = g_malloc(LIMITS_MAX_FILE_SIZE + 1);
  memset(text, '#', LIMITS_MAX_FILE_SIZE + 1);
  t = (LimitsText) { "t.conf", text, LIMITS_MAX_FILE_SIZE };
  limits_plan_free(resolve_texts(&alice, &t, 1));
  t.len = LIMITS_MAX_FILE_SIZE + 1;
  fixture_context(&ctx, &alice);
  g_assert_null(limits_resolve_texts(&ctx, &t, 1, &error));
  g_assert_error(error, LIMITS_ERROR, LIMITS_ERROR_READ);
}

static void test_files_no_limits_stops_later_files(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new(TMP_DIR, "* soft core 1\n",
                                         "a.conf", "* soft nofile 2000\n@staff -\n* soft stack 1\n",
                                         "b.conf", "* soft memlock 1\n", NULL);
  g_autoptr(LimitsPlan) p = NULL;
  g_autofree char *text = NULL;

  /* Never opened: processing stopped before. */
  tmp_tree_link(tree, "c.conf", "c.conf");
  p = tmp_tree_load(tree);
  g_assert_true(limits_plan_stopped(p));
  assert_unchanged(p);
  text = explain(p);
  assert_lacks(text, "b.conf", NULL);
  assert_contains(text, "a.conf:2", "No limits", NULL);
}

static void test_files_empty_dir(void)
{
  g_autoptr(TmpTree) tree = tmp_tree_new("limits.d", "* soft nofile 2000\n",
                                         "README", "* soft core 1\n", NULL);
  g_autoptr(LimitsPlan) p = tmp_tree_load(tree);
  g_autofree char *text = explain(p);

  assert_contains(text, "limits.d: no *.conf files", NULL);
  assert_rl(p, RLIMIT_CORE, 0, INF);
}

/* limits_load() itself: the process's own limits and real NSS lookups of
 * root (uid 0, primary group root, which every system has). */
static void test_files_load_nss(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TmpTree) tree = NULL;
  g_autoptr(LimitsPlan) p = NULL;
  Identity root = { 0 };
  struct rlimit now, got;

  if (!identity_lookup_user("root", &root, &error)) {
    g_test_skip(error->message);
    return;
  }
  tree = tmp_tree_new(NO_DIR, "@root soft core 0\n@:0 hard core 0\n"
                              "@nosuch-group-xyz soft nofile 1\n", NULL);
  p = limits_load(tree->file, NULL, &root, &error);
  g_assert_no_error(error);
  getrlimit(RLIMIT_NOFILE, &now);
  assert_rl(p, RLIMIT_CORE, 0, 0);
  g_assert_false(limits_plan_get(p, RLIMIT_NOFILE, &got));
  g_assert_cmpuint(got.rlim_cur, ==, now.rlim_cur);
  g_assert_cmpuint(got.rlim_max, ==, now.rlim_max);
  identity_clear(&root);
}

/* ---- Rules 4-7: lines ---- */

static void test_lines_comments_and_blanks(void)
{
  g_autoptr(LimitsPlan) p = resolve(
      "# comment\n"
      "\n"
      "   \t  \n"
      "   # indented comment\n"
      "#* soft nofile 10\n"
      "* soft nofile 2000# trailing\n"
      "* soft core 2#3\n"
      "\t \t* \t hard \t stack\t 100 \t\n");
  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
  assert_rl(p, RLIMIT_CORE, 2048, INF);
  assert_rl(p, RLIMIT_STACK, 102400, 102400);   /* soft lowered to hard */
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
}

static void test_lines_crlf(void)
{
  g_autoptr(LimitsPlan) p = resolve(
      "* soft nofile unlimited\r\n"
      "* hard core 10\r\n"
      "* soft stack 100 # c\r\n"
      "\r\n");
  g_autoptr(LimitsPlan) stop = resolve("alice -\r\n* soft nofile 2000\r\n");
  assert_rl(p, RLIMIT_NOFILE, 4096, 4096);
  assert_rl(p, RLIMIT_CORE, 0, 10240);
  assert_rl(p, RLIMIT_STACK, 102400, INF);
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
  g_assert_true(limits_plan_stopped(stop));
}

static void test_lines_no_final_newline(void)
{
  assert_nofile("* soft core 1\n* soft nofile 2000", 2000, 4096);
}

static void test_lines_case(void)
{
  g_autoptr(LimitsPlan) p = resolve("* HaRd NoFiLe UnLiMiTeD\n* SOFT CORE INFINITY\n"
                                    "* - NONEWPRIVS 1");
  g_autoptr(LimitsPlan) grp = resolve("@STAFF soft nofile 2000");
  assert_rl(p, RLIMIT_NOFILE, 1024, NR_OPEN);
  assert_rl(p, RLIMIT_CORE, INF, INF);
  g_assert_true(limits_plan_no_new_privs(p));
  assert_unchanged(grp);
  g_assert_cmpuint(limits_plan_n_warnings(grp), ==, 0);
}

static void test_lines_value_rest_of_line(void)
{
  /* The value is the rest of the line: "20 30" is not a number (D3). */
  assert_skipped("* soft nofile 20 30", "'20 30'");
  assert_skipped("* soft nofile 2000 extra", "'2000 extra'");
}

static void test_lines_field_counts(void)
{
  assert_skipped("alice", "only 'alice'");
  assert_skipped("alice soft", "got 2 fields");
  assert_skipped("alice soft nofile", "missing value");
  /* Two fields, the second starting with '-': a no-limits line. */
  {
    g_autoptr(LimitsPlan) p = resolve("alice -anything\n* soft nofile 5");
    g_assert_true(limits_plan_stopped(p));
    g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
  }
}

static void test_lines_long(void)
{
  g_autofree char *comment = repeat("#", "x", 300000, "\n");
  g_autofree char *line = repeat("* soft nofile", "\t ", 100000, "2000\n");
  g_autofree char *text = g_strconcat(comment, line, NULL);
  g_autoptr(LimitsPlan) p = resolve(text);

  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
}

static void test_lines_nul_bytes(void)
{
  static const char text[] = "* soft nofile 2000\0junk\n@st\0aff soft core 1\n"
                             "* soft stack 1\n";
  LimitsText t = { "t.conf", text, sizeof text - 1 };
  g_autoptr(LimitsPlan) p = resolve_texts(&alice, &t, 1);

  assert_rl(p, RLIMIT_NOFILE, 1024, 4096);
  assert_rl(p, RLIMIT_CORE, 0, INF);
  assert_rl(p, RLIMIT_STACK, 1024, INF);
  g_assert_true(has_warning(p, "t.conf:1: invalid value '2000\\x00junk'"));
}

static void test_lines_chunked_feed(void)
{
  static const char text[] =
      "# header\r\n* soft nofile 2000\n@staff hard core 10\nalice - stack 64\n"
      "bad line here\n1000: soft memlock 1\n* - priority 3\nno newline at end";
  LimitsText t = { "t.conf", text, -1 };
  g_autoptr(LimitsPlan) whole = resolve_texts(&alice, &t, 1);
  g_autofree char *expected = explain(whole);

  for (gsize step = 1; step <= 7; step++) {
    g_autofree char *got = explain_fed(&t, step);
    g_assert_cmpstr(got, ==, expected);
  }
}

/* ---- Rules 8-13: domains ---- */

static void test_domains_uid_ranges(void)
{
  assert_domains(TRUE, "0:", "0:4294967295", "01000:01000", NULL);
  assert_domains(FALSE, "999:999", "1001:", ":0", "4294967295:", "1000:999", NULL);
}

static void test_domains_uid_invalid(void)
{
  /* D2: pam_limits would truncate 4294967296 to 0 and match everyone. */
  assert_skipped("4294967296: soft nofile 2000", "invalid uid range '4294967296:'");
  assert_skipped(":4294967296 soft nofile 2000", "invalid uid range");
  assert_skipped("0:99999999999999999999999 soft nofile 2000", "invalid uid range");
  assert_skipped(": soft nofile 2000", "invalid uid range ':'");
  assert_skipped(":x soft nofile 2000", "invalid uid range");
  assert_skipped("a:b soft nofile 2000", "invalid uid range");
  assert_skipped("-1: soft nofile 2000", "invalid uid range");
  assert_skipped("+1000: soft nofile 2000", "invalid uid range");
  assert_skipped("1000:+2000 soft nofile 2000", "invalid uid range");
  assert_skipped("0x10: soft nofile 2000", "invalid uid range");
  assert_skipped("1:2:3 soft nofile 2000", "invalid uid range");
  assert_skipped("alice: soft nofile 2000", "invalid uid range");
}

static void test_domains_gid(void)
{
  assert_domains(TRUE, "@1000:1000" /* primary */, "@999:",
                 "@:1000" /* primary, exists */, "@:2000", "@:60" /* member list */, NULL);
  assert_domains(FALSE, "@1001:", "@2000:2000" /* supplementary */, "@:70", "@:4294967295",
                 NULL);
  assert_skipped("@4294967296: soft nofile 2000", "invalid gid range '@4294967296:'");
  assert_skipped("@: soft nofile 2000", "invalid gid range");
  assert_skipped("@:-5 soft nofile 2000", "invalid gid range");
  assert_skipped("@ soft nofile 2000", "empty group name");
}

static void test_domains_groups(void)
{
  static gid_t web_groups[] = { 1000, 70 };
  const Identity webby = {
    .name = (char *) "webby", .uid = 1100, .gid = 1000,
    .groups = web_groups, .n_groups = G_N_ELEMENTS(web_groups),
  };
  g_autoptr(LimitsPlan) via_grouplist = resolve_for(&webby, "@web soft nofile 2000");

  assert_domains(TRUE, "@alice" /* primary group */, "@staff", "@ops" /* member list only */,
                 NULL);
  assert_domains(FALSE, "@web", "@empty", "@nosuch", NULL);
  assert_rl(via_grouplist, RLIMIT_NOFILE, 2000, 4096);
  {
    g_autoptr(LimitsPlan) p = resolve("@nosuch soft nofile 2000");
    g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
  }
}

static void test_domains_group_cache(void)
{
  g_autofree char *text = repeat("", "@staff soft nofile 2000\n@nosuch soft core 1\n"
                                     "@:2000 hard core 2\n", 1000, "");
  g_autoptr(LimitsPlan) p = NULL;

  fake_lookups = 0;
  p = resolve(text);
  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
  assert_rl(p, RLIMIT_CORE, 0, 2048);
  g_assert_cmpuint(fake_lookups, ==, 3);
}

static void test_domains_names(void)
{
  assert_domains(TRUE, "alice", NULL);
  assert_domains(FALSE, "alicia", "alic", "*x", NULL);
}

static void test_domains_no_passwd_entry(void)
{
  const Identity nobody = { .name = NULL, .uid = 4242, .gid = (gid_t) -1 };
  g_autoptr(LimitsPlan) p1 = resolve_for(&nobody, "* soft nofile 2000");
  g_autoptr(LimitsPlan) p2 = resolve_for(&nobody, "4242: soft nofile 2000");
  g_autoptr(LimitsPlan) p3 = resolve_for(&nobody, "@0: soft nofile 2000\n"
                                         "@staff soft core 1");
  g_autofree char *text = explain(p1);
  assert_rl(p1, RLIMIT_NOFILE, 2000, 4096);
  assert_rl(p2, RLIMIT_NOFILE, 2000, 4096);
  assert_unchanged(p3);
  assert_contains(text, "uid 4242", NULL);
}

static void test_domains_percent(void)
{
  g_autoptr(LimitsPlan) p = resolve("% - nofile 2000\n%staff soft core 1\n"
                                    "%:50 - priority 5\n% - nonewprivs 1");
  g_autoptr(LimitsPlan) logins = resolve("% - maxlogins 2\n%staff hard maxlogins 3\n"
                                         "%:50 - maxsyslogins unlimited");
  g_autofree char *text = explain(logins);

  assert_unchanged(p);
  g_assert_false(limits_plan_priority(p, &(int) { 0 }));
  g_assert_false(limits_plan_no_new_privs(p));
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
  g_assert_cmpuint(limits_plan_n_warnings(logins), ==, 0);
  assert_contains(text, "maxlogins", "t.conf:1 and 2 more lines", NULL);
  assert_skipped("%1:2 - maxlogins 3", "not supported with %");
}

/* ---- Rules 14-16: precedence ---- */

static void test_precedence_classes(void)
{
  /* A later, less specific line never overrides; same class: last wins. */
  assert_nofile("1000: - nofile 2000\n@staff - nofile 3000\n* - nofile 3500", 2000, 2000);
  assert_nofile("@:50 - nofile 2000\n@dev - nofile 2500\n* - nofile 3500", 2500, 2500);
  assert_nofile("* - nofile 2000\n@dev - nofile 2500\nalice - nofile 3000", 3000, 3000);
  assert_nofile("alice - nofile 3000\n:1000 - nofile 2000", 2000, 2000);
  /* Rule 15: hard rejected as well when the soft half is rejected. */
  assert_nofile("@staff soft nofile 2000\n* - nofile 3000\n", 2000, 4096);
  /* Hard alone is not affected by the soft class. */
  assert_nofile("alice soft nofile 2000\n* hard nofile 3000\n", 2000, 3000);
}

static void test_precedence_priority_last_wins(void)
{
  g_autoptr(LimitsPlan) p = resolve("* - priority 1\nalice - priority -3\n"
                                    "* soft priority 4\n* - nonewprivs 1\n"
                                    "alice - nonewprivs 0\n");
  int prio = 0;
  g_assert_true(limits_plan_priority(p, &prio));
  g_assert_cmpint(prio, ==, 4);
  g_assert_false(limits_plan_no_new_privs(p));
}

/* ---- Rules 17-24: types, items, values ---- */

static void test_values_units(void)
{
  g_autoptr(LimitsPlan) p = resolve(
      "* - data 1\n* - fsize 2\n* - rss 3\n* - memlock 4\n* - as 5\n"
      "* - nproc 6\n* - locks 7\n* - sigpending 8\n* - rtprio 9\n"
      "* - msgqueue 10\n* - rttime 11\n");
  assert_rl(p, RLIMIT_DATA, 1024, 1024);
  assert_rl(p, RLIMIT_FSIZE, 2048, 2048);
  assert_rl(p, RLIMIT_RSS, 3072, 3072);
  assert_rl(p, RLIMIT_MEMLOCK, 4096, 4096);
  assert_rl(p, RLIMIT_AS, 5120, 5120);
  assert_rl(p, RLIMIT_NPROC, 6, 6);
  assert_rl(p, RLIMIT_LOCKS, 7, 7);
  assert_rl(p, RLIMIT_SIGPENDING, 8, 8);
  assert_rl(p, RLIMIT_RTPRIO, 9, 9);
  assert_rl(p, RLIMIT_MSGQUEUE, 10, 10);
  assert_rl(p, RLIMIT_RTTIME, 11, 11);
}

static void test_values_saturation(void)
{
  g_autoptr(LimitsPlan) p = resolve(
      "* - core 18014398509481983\n"        /* (2^64-1)/1024: still fits */
      "* - data 18014398509481984\n"        /* 2^54 KiB overflows */
      "* - cpu 307445734561825860\n"        /* fits in seconds */
      "* - rss 99999999999999999999999\n"
      "* - msgqueue 18446744073709551615\n"
      "* - rttime 18446744073709551616\n"
      "* - nofile 99999999999999999999999\n"
      "* - nproc 0\n");
  assert_rl(p, RLIMIT_CORE, 18446744073709550592ull, 18446744073709550592ull);
  assert_rl(p, RLIMIT_DATA, INF, INF);
  assert_rl(p, RLIMIT_CPU, 18446744073709551600ull, 18446744073709551600ull);
  assert_rl(p, RLIMIT_RSS, INF, INF);
  assert_rl(p, RLIMIT_MSGQUEUE, INF, INF);
  assert_rl(p, RLIMIT_RTTIME, INF, INF);
  assert_rl(p, RLIMIT_NOFILE, NR_OPEN, NR_OPEN);   /* rule 21 */
  assert_rl(p, RLIMIT_NPROC, 0, 0);
  {
    g_autoptr(LimitsPlan) cpu = resolve("* - cpu 307445734561825861");
    assert_rl(cpu, RLIMIT_CPU, INF, INF);
  }
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
}

static void test_values_unlimited_words(void)
{
  static const char *const words[] = { "-1", "-", "unlimited", "infinity",
                                       "UNLIMITED", "Infinity" };
  for (gsize i = 0; i < G_N_ELEMENTS(words); i++) {
    g_autofree char *text = g_strdup_printf("* - as %s\n* hard nofile %s", words[i], words[i]);
    g_autoptr(LimitsPlan) p = resolve(text);
    assert_rl(p, RLIMIT_AS, INF, INF);
    assert_rl(p, RLIMIT_NOFILE, 1024, NR_OPEN);
  }
}

static void test_values_d3(void)
{
  assert_skipped("* soft nofile 12abc", "'12abc'");
  assert_skipped("* soft nofile 0x800", "'0x800'");
  assert_skipped("* soft nofile -5", "'-5'");
  assert_skipped("* soft nofile +5", "'+5'");
  assert_skipped("* soft nofile -2", NULL);
  assert_skipped("* soft core 1.5", NULL);
  assert_skipped("* soft core --", NULL);
  assert_skipped("* soft core unlimitedx", NULL);
}

static void test_values_nice(void)
{
  static const struct { const char *v; rlim_t want; } cases[] = {
    { "19", 1 }, { "-20", 40 }, { "0", 20 }, { "-1", 21 }, { "+5", 15 },
    { "20", 1 }, { "-21", 40 }, { "99999999999999999999999", 1 },
    { "-99999999999999999999999", 40 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *text = g_strdup_printf("* - nice %s", cases[i].v);
    g_autoptr(LimitsPlan) p = resolve(text);
    assert_rl(p, RLIMIT_NICE, cases[i].want, cases[i].want);
  }
  assert_skipped("* - nice unlimited", "for nice");
  assert_skipped("* - nice -", "for nice");
  assert_skipped("* - nice infinity", "for nice");
  assert_skipped("* - nice 0x5", "for nice");
  assert_skipped("* - nice 5x", "for nice");
}

static void test_values_priority(void)
{
  static const struct { const char *v; int want; } cases[] = {
    { "-5", -5 }, { "0", 0 }, { "+3", 3 }, { "-1", -1 },
    { "99999999999", INT_MAX }, { "-99999999999999999999999", INT_MIN },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *text = g_strdup_printf("* hard priority %s", cases[i].v);
    g_autoptr(LimitsPlan) p = resolve(text);
    int prio = 12345;
    g_assert_true(limits_plan_priority(p, &prio));
    g_assert_cmpint(prio, ==, cases[i].want);
  }
  assert_skipped("* - priority abc", "for priority");
  assert_skipped("* - priority unlimited", "for priority");
  assert_skipped("* bogus priority 5", "unknown type 'bogus'");
}

static void test_values_nonewprivs_d4(void)
{
  g_autoptr(LimitsPlan) p = resolve("* - nonewprivs 1\n* - nonewprivs 2\n"
                                    "* - nonewprivs yes\n");
  g_autoptr(LimitsPlan) untyped = resolve("* whatever nonewprivs 1");
  g_autoptr(LimitsPlan) cleared = resolve("* - nonewprivs 1\nalice soft nonewprivs 0");
  g_assert_true(limits_plan_no_new_privs(p));
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 2);
  g_assert_true(has_warning(p, "t.conf:2: invalid value '2' for nonewprivs"));
  g_assert_true(has_warning(p, "t.conf:3: "));
  g_assert_true(limits_plan_no_new_privs(untyped));
  g_assert_false(limits_plan_no_new_privs(cleared));
}

static void test_values_maxlogins(void)
{
  g_autoptr(LimitsPlan) p = resolve("* - maxlogins 4\nalice whatever maxsyslogins 2\n"
                                    "* soft nofile 2000\n");
  g_autofree char *text = explain(p);
  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
  assert_contains(text, "maxlogins", "not a login session", "t.conf:1", NULL);
  assert_skipped("* - maxlogins many", "for maxlogins");
}

/* ---- Rule 20: no limits ---- */

static void test_no_limits_domains(void)
{
  static const char *const stops[] = {
    "alice -", "@staff -", "@ops -", "@:50 -", "@1000:1000 -", "@1000: -",
    "1000: -", ":1000 -", "0:2000 -",
  };
  static const char *const goes_on[] = {
    "* -", "% -", "%staff -", "%:50 -", "bob -", "@web -", "@nosuch -",
    "@:70 -", "1001: -", "ALICE -",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(stops); i++) {
    g_autofree char *text = g_strdup_printf("* soft nofile 2000\n* - priority 3\n"
                                            "* - nonewprivs 1\n%s\n* soft core 1\n",
                                            stops[i]);
    g_autoptr(LimitsPlan) p = resolve(text);
    g_assert_true(limits_plan_stopped(p));
    assert_unchanged(p);
    g_assert_false(limits_plan_priority(p, &(int) { 0 }));
    g_assert_false(limits_plan_no_new_privs(p));
  }
  for (gsize i = 0; i < G_N_ELEMENTS(goes_on); i++) {
    g_autofree char *text = g_strdup_printf("%s\n* soft nofile 2000\n", goes_on[i]);
    g_autoptr(LimitsPlan) p = resolve(text);
    g_assert_false(limits_plan_stopped(p));
    assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
  }
  assert_skipped("4294967296: -", "invalid uid range");
}

static void test_no_limits_keeps_earlier_warnings(void)
{
  g_autoptr(LimitsPlan) p = resolve("* soft nofile abc\nalice -\n* soft core xyz\n");
  g_assert_true(limits_plan_stopped(p));
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 1);
  g_assert_true(has_warning(p, "t.conf:1: "));
}

static void test_no_limits_stops_later_texts(void)
{
  LimitsText t[] = {
    { "a.conf", "* soft nofile 2000\n", -1 },
    { "b.conf", "@dev -\n", -1 },
    { "c.conf", "* soft core 1\n* soft core bad\n", -1 },
  };
  g_autoptr(LimitsPlan) p = resolve_texts(&alice, t, G_N_ELEMENTS(t));

  g_assert_true(limits_plan_stopped(p));
  assert_unchanged(p);
  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 0);
}

/* ---- Warnings ---- */

static void test_warnings_file_line(void)
{
  LimitsText t[] = {
    { "/etc/security/limits.conf", "# x\n* soft nofile abc\n", -1 },
    { "/etc/security/limits.d/a.conf", "\n\n* bogus core 1\n", -1 },
  };
  g_autoptr(LimitsPlan) p = resolve_texts(&alice, t, G_N_ELEMENTS(t));
  const GPtrArray *w = limits_plan_warnings(p);

  g_assert_cmpuint(w->len, ==, 2);
  g_assert_true(g_str_has_prefix(w->pdata[0], "/etc/security/limits.conf:2: "));
  g_assert_true(g_str_has_prefix(w->pdata[1], "/etc/security/limits.d/a.conf:3: "));
  assert_contains(w->pdata[1], "'bogus'", NULL);
}

static void test_warnings_bounded(void)
{
  g_autofree char *text = repeat("", "* soft nofile bad\n", 1000, "* soft nofile 2000\n");
  g_autoptr(LimitsPlan) p = resolve(text);
  const GPtrArray *w = limits_plan_warnings(p);

  g_assert_cmpuint(limits_plan_n_warnings(p), ==, 1000);
  g_assert_cmpuint(w->len, ==, LIMITS_MAX_WARNINGS + 1);
  g_assert_true(g_str_has_prefix(w->pdata[LIMITS_MAX_WARNINGS - 1], "t.conf:100: "));
  g_assert_cmpstr(w->pdata[LIMITS_MAX_WARNINGS], ==, "(900 more skipped lines not listed)");
  assert_rl(p, RLIMIT_NOFILE, 2000, 4096);
}

static void test_warnings_quoting(void)
{
  g_autofree char *text = repeat("* soft nofile ", "z", 1000, "\x01\n");
  g_autoptr(LimitsPlan) p1 = resolve(text);
  g_autoptr(LimitsPlan) p2 = resolve("* soft nofile \x7f\xff\\");
  const char *w1 = limits_plan_warnings(p1)->pdata[0];
  const char *w2 = limits_plan_warnings(p2)->pdata[0];

  g_assert_cmpuint(strlen(w1), <, 200);
  assert_contains(w1, "zzz...'", NULL);
  assert_contains(w2, "'\\x7f\\xff\\x5c'", NULL);
}

/* ---- Explain ---- */

static void test_explain(void)
{
  LimitsText t[] = {
    { "limits.conf", "* soft nofile 2000\n@staff - core 10\nalice hard stack 4096\n"
                     "* soft nofile bad\n* - maxlogins 3\n", -1 },
    { "d/a.conf", "* - priority 5\n* - nonewprivs 1\n* hard nofile unlimited\n", -1 },
  };
  g_autoptr(LimitsPlan) p = resolve_texts(&alice, t, G_N_ELEMENTS(t));
  g_autofree char *text = explain(p);

  if (g_test_verbose())
    g_printerr("%s", text);
  assert_contains(text, "Limits for user alice (uid 1000, gid 1000)",
                  "limits.conf: 5 lines", "d/a.conf: 3 lines", NULL);
  assert_matches(text, "\\n  nofile +2000 +1048576 \\(unlimited = nr_open\\) +"
                       "soft limits.conf:1, hard d/a.conf:3\\n");
  assert_matches(text, "\\n  core +10240 \\(10 KiB\\) +10240 \\(10 KiB\\) +"
                       "limits.conf:2\\n");
  assert_matches(text, "\\n  stack +4194304 \\(4 MiB\\) +4194304 \\(4 MiB\\) +"
                       "hard limits.conf:3; soft lowered to hard\\n");
  assert_matches(text, "\\n  cpu +unlimited +unlimited +\\(unchanged\\)\\n");
  assert_contains(text, "priority      5, set by d/a.conf:1",
                  "nonewprivs    yes, set by d/a.conf:2",
                  "maxlogins     ignored: a service is not a login session (limits.conf:5)",
                  "Skipped lines (1):\n  limits.conf:4: invalid value 'bad'", NULL);
  assert_lacks(text, "No limits", NULL);
}

static void test_explain_values(void)
{
  g_autoptr(LimitsPlan) p = resolve("* - cpu 2\n* - nice -5\n* - rttime 7\n"
                                    "* - msgqueue 1536\n* - memlock 1536\n");
  g_autofree char *text = explain(p);
  assert_contains(text, "120 s (2 min)", "25 (nice -5)", "7 us", "1536 (~1.5 KiB)",
                  "1572864 (1536 KiB)", "Skipped lines: none", NULL);
}

static void test_explain_stopped(void)
{
  g_autoptr(LimitsPlan) p = resolve("* soft nofile 2000\n@staff -\n");
  g_autofree char *text = explain(p);
  assert_contains(text, "No limits: t.conf:2 says '@staff' -, which matches this user.",
                  "Nothing is applied", NULL);
  assert_matches(text, "\\n  nofile +1024 +4096 +\\(unchanged\\)\\n");
}

/* ---- The fuzz target's invariants on edge inputs ---- */

static void test_fuzz_edge_inputs(void)
{
  /* Crash inputs found by tests/fuzz/fuzz-limits.c go here as well. */
  static const struct { const char *text; gsize len; } inputs[] = {
#define IN(s) { s, sizeof s - 1 }
    IN(""), IN("\n"), IN("\r"), IN("\r\n\r\n"), IN("#"), IN("-"), IN("* -"),
    IN("@"), IN("%"), IN(":"), IN("@:"), IN("%:"), IN("%@"), IN("@%"),
    IN("a b c\r\r"), IN("\t\t\t"), IN("* soft nofile \t"),
    IN("@\0 soft nofile 1"), IN("\0"), IN("* - nofile 1\0"), IN("alice -\0"),
    IN("\v* soft nofile 2000"), IN("* soft nofile 2000\v"),
    IN("* - nice -20\n* - nice 19\n* hard nice 0\n"),
#undef IN
  };

  for (gsize i = 0; i < G_N_ELEMENTS(inputs); i++) {
    LimitsText t = { "t.conf", inputs[i].text, (gssize) inputs[i].len };
    g_autoptr(LimitsPlan) whole = resolve_texts(&alice, &t, 1);
    g_autofree char *a = explain(whole);
    g_autofree char *b = explain_fed(&t, 1);

    g_assert_cmpstr(a, ==, b);
    for (int res = 0; res < LIMITS_N_RLIMITS; res++) {
      struct rlimit rl;
      limits_plan_get(whole, res, &rl);
      g_assert_cmpuint(rl.rlim_cur, <=, rl.rlim_max);
    }
  }
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS(doc_nofile_cases); i++)
    g_test_add_data_func(doc_nofile_cases[i].path, &doc_nofile_cases[i], test_nofile_case);
  g_test_add_func("/limits/doc/12-comments", test_doc_12);
  g_test_add_func("/limits/doc/13-case", test_doc_13);
  g_test_add_func("/limits/doc/14-units", test_doc_14);
  g_test_add_func("/limits/doc/15-unlimited-words", test_doc_15);
  g_test_add_func("/limits/doc/16-nofile-unlimited", test_doc_16);
  g_test_add_func("/limits/doc/17-bad-value", test_doc_17);
  g_test_add_func("/limits/doc/18-bad-lines", test_doc_18);
  g_test_add_func("/limits/doc/19-uid-ranges", test_doc_19);
  g_test_add_func("/limits/doc/20-uid-range-is-user-class", test_doc_20);
  g_test_add_func("/limits/doc/21-gid-member", test_doc_21);
  g_test_add_func("/limits/doc/22-gid-range-primary-only", test_doc_22);
  g_test_add_func("/limits/doc/23-gid-without-group", test_doc_23);
  g_test_add_func("/limits/doc/24-no-limits", test_doc_24);
  g_test_add_func("/limits/doc/25-star-no-limits", test_doc_25);
  g_test_add_func("/limits/doc/26-nice", test_doc_26);
  g_test_add_func("/limits/doc/27-priority-last-wins", test_doc_27);
  g_test_add_func("/limits/doc/28-nonewprivs", test_doc_28);
  g_test_add_func("/limits/doc/29-numeric-name", test_doc_29);
  g_test_add_func("/limits/doc/30-file-then-dir", test_doc_30);
  g_test_add_func("/limits/doc/31-byte-order", test_doc_31);
  g_test_add_func("/limits/doc/32-dir-filter", test_doc_32);
  g_test_add_func("/limits/doc/33-unreadable", test_doc_33);
  g_test_add_func("/limits/doc/34-raise-hard-fails", test_doc_34);

  g_test_add_func("/limits/files/byte-order", test_files_byte_order);
  g_test_add_func("/limits/files/skipped-entries", test_files_skipped_entries);
  g_test_add_func("/limits/files/explicit-file-alone", test_files_explicit_file_alone);
  g_test_add_func("/limits/files/missing", test_files_missing);
  g_test_add_func("/limits/files/not-regular", test_files_not_regular);
  g_test_add_func("/limits/files/too-large", test_files_too_large);
  g_test_add_func("/limits/files/empty-dir", test_files_empty_dir);
  g_test_add_func("/limits/files/load-nss", test_files_load_nss);
  g_test_add_func("/limits/files/no-limits-stops-later-files",
                  test_files_no_limits_stops_later_files);

  g_test_add_func("/limits/lines/comments-and-blanks", test_lines_comments_and_blanks);
  g_test_add_func("/limits/lines/crlf-d1", test_lines_crlf);
  g_test_add_func("/limits/lines/no-final-newline", test_lines_no_final_newline);
  g_test_add_func("/limits/lines/case", test_lines_case);
  g_test_add_func("/limits/lines/value-rest-of-line", test_lines_value_rest_of_line);
  g_test_add_func("/limits/lines/field-counts", test_lines_field_counts);
  g_test_add_func("/limits/lines/long", test_lines_long);
  g_test_add_func("/limits/lines/nul-bytes", test_lines_nul_bytes);
  g_test_add_func("/limits/lines/chunked-feed", test_lines_chunked_feed);

  g_test_add_func("/limits/domains/uid-ranges", test_domains_uid_ranges);
  g_test_add_func("/limits/domains/uid-invalid-d2", test_domains_uid_invalid);
  g_test_add_func("/limits/domains/gid", test_domains_gid);
  g_test_add_func("/limits/domains/groups", test_domains_groups);
  g_test_add_func("/limits/domains/group-cache", test_domains_group_cache);
  g_test_add_func("/limits/domains/names", test_domains_names);
  g_test_add_func("/limits/domains/no-passwd-entry", test_domains_no_passwd_entry);
  g_test_add_func("/limits/domains/percent", test_domains_percent);

  g_test_add_func("/limits/precedence/classes", test_precedence_classes);
  g_test_add_func("/limits/precedence/priority-last-wins", test_precedence_priority_last_wins);

  g_test_add_func("/limits/values/units", test_values_units);
  g_test_add_func("/limits/values/saturation", test_values_saturation);
  g_test_add_func("/limits/values/unlimited-words", test_values_unlimited_words);
  g_test_add_func("/limits/values/junk-d3", test_values_d3);
  g_test_add_func("/limits/values/nice", test_values_nice);
  g_test_add_func("/limits/values/priority", test_values_priority);
  g_test_add_func("/limits/values/nonewprivs-d4", test_values_nonewprivs_d4);
  g_test_add_func("/limits/values/maxlogins", test_values_maxlogins);

  g_test_add_func("/limits/no-limits/domains", test_no_limits_domains);
  g_test_add_func("/limits/no-limits/keeps-earlier-warnings", test_no_limits_keeps_earlier_warnings);
  g_test_add_func("/limits/no-limits/stops-later-texts", test_no_limits_stops_later_texts);

  g_test_add_func("/limits/warnings/file-line", test_warnings_file_line);
  g_test_add_func("/limits/warnings/bounded", test_warnings_bounded);
  g_test_add_func("/limits/warnings/quoting", test_warnings_quoting);

  g_test_add_func("/limits/explain/table", test_explain);
  g_test_add_func("/limits/explain/values", test_explain_values);
  g_test_add_func("/limits/explain/stopped", test_explain_stopped);

  for (gsize i = 0; i < G_N_ELEMENTS(apply_cases); i++)
    g_test_add_data_func(apply_cases[i].path, &apply_cases[i], test_apply_case);

  g_test_add_func("/limits/fuzz/edge-inputs", test_fuzz_edge_inputs);

  return g_test_run();
}
