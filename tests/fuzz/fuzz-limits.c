// fuzz-sources: limits-conf.c identity.c log.c trusted-file.c
/* fuzz-limits: libFuzzer target for the limits.conf parser and resolver.
 *
 * Input: the first byte picks the user (low 2 bits: alice, carol, the user
 * named "1000", a uid without passwd entry) and a chunk size for the
 * streaming pass (next 3 bits); the rest is up to 8 files separated by
 * 0x1e bytes.  Each input is resolved from whole texts and again fed in
 * small chunks; both plans must explain identically, and the plan must
 * keep its invariants (soft <= hard, nothing set once stopped, bounded
 * warnings).  Any violation aborts. */
#include "config.h"

#include "limits-conf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILES 8
#define SEPARATOR '\x1e'

static gid_t alice_groups[] = { 1000, 50, 2000 };
static gid_t carol_groups[] = { 3000 };
static gid_t num_groups[] = { 7000 };

static const Identity users[4] = {
  { .name = (char *) "alice", .uid = 1000, .gid = 1000,
    .groups = alice_groups, .n_groups = G_N_ELEMENTS(alice_groups) },
  { .name = (char *) "carol", .uid = 5000, .gid = 3000,
    .groups = carol_groups, .n_groups = G_N_ELEMENTS(carol_groups) },
  { .name = (char *) "1000", .uid = 7000, .gid = 7000,
    .groups = num_groups, .n_groups = G_N_ELEMENTS(num_groups) },
  { .name = NULL, .uid = 4242, .gid = (gid_t) -1 },
};

static const struct {
  const char *name;
  gid_t gid;
  const char *member;
} groups[] = {
  { "alice", 1000, NULL },
  { "staff", 50, "alice" },
  { "dev", 2000, "alice" },
  { "ops", 60, "carol" },
  { "web", 70, NULL },
};

static gboolean fake_by_name(const char *group, const char *user, gid_t *gid,
                             gboolean *listed, gpointer data G_GNUC_UNUSED)
{
  for (gsize i = 0; i < G_N_ELEMENTS(groups); i++) {
    if (strcmp(groups[i].name, group) == 0) {
      *gid = groups[i].gid;
      *listed = user != NULL && groups[i].member != NULL &&
                strcmp(user, groups[i].member) == 0;
      return TRUE;
    }
  }
  return FALSE;
}

static gboolean fake_by_gid(gid_t gid, const char *user, gboolean *listed,
                            gpointer data G_GNUC_UNUSED)
{
  for (gsize i = 0; i < G_N_ELEMENTS(groups); i++) {
    if (groups[i].gid == gid) {
      *listed = user != NULL && groups[i].member != NULL &&
                strcmp(user, groups[i].member) == 0;
      return TRUE;
    }
  }
  return FALSE;
}

static const LimitsGroupLookup fake_lookup = { fake_by_name, fake_by_gid, NULL };

static void check_plan(const LimitsPlan *plan)
{
  const GPtrArray *w = limits_plan_warnings(plan);

  for (int i = 0; i < LIMITS_N_RLIMITS; i++) {
    struct rlimit rl;
    bool set = limits_plan_get(plan, i, &rl);
    if (rl.rlim_cur > rl.rlim_max)
      abort();
    if (set && limits_plan_stopped(plan))
      abort();
  }
  if (limits_plan_stopped(plan) && limits_plan_no_new_privs(plan))
    abort();
  if (w->len > LIMITS_MAX_WARNINGS + 1 || w->len > limits_plan_n_warnings(plan) + 1)
    abort();
}

static char *explain(const LimitsPlan *plan)
{
  GString *out = g_string_new(NULL);
  limits_plan_explain(plan, out);
  return g_string_free(out, FALSE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *const names[MAX_FILES] = {
    "limits.conf", "d/0.conf", "d/1.conf", "d/2.conf",
    "d/3.conf", "d/4.conf", "d/5.conf", "d/6.conf",
  };
  LimitsContext ctx;
  LimitsText files[MAX_FILES];
  gsize n_files = 0, chunk;
  const char *p, *end;
  g_autoptr(LimitsPlan) whole = NULL;
  g_autoptr(LimitsPlan) streamed = NULL;
  g_autoptr(LimitsResolver) r = NULL;
  g_autofree char *a = NULL;
  g_autofree char *b = NULL;

  if (size < 1)
    return 0;

  memset(&ctx, 0, sizeof ctx);
  ctx.id = &users[data[0] & 3];
  for (int i = 0; i < LIMITS_N_RLIMITS; i++)
    ctx.start[i] = (struct rlimit) { RLIM_INFINITY, RLIM_INFINITY };
  ctx.start[RLIMIT_NOFILE] = (struct rlimit) { 1024, 4096 };
  ctx.start[RLIMIT_CORE] = (struct rlimit) { 0, RLIM_INFINITY };
  ctx.start[RLIMIT_MEMLOCK] = (struct rlimit) { 65536, 65536 };
  ctx.start[RLIMIT_NICE] = (struct rlimit) { 0, 0 };
  ctx.nr_open = 1048576;
  ctx.groups = &fake_lookup;
  chunk = ((data[0] >> 2) & 7) + 1;

  p = (const char *) data + 1;
  end = (const char *) data + size;
  while (n_files < MAX_FILES) {
    const char *sep = memchr(p, SEPARATOR, (gsize) (end - p));
    const char *stop = sep != NULL && n_files < MAX_FILES - 1 ? sep : end;
    files[n_files] = (LimitsText) { names[n_files], p, stop - p };
    n_files++;
    if (stop == end)
      break;
    p = stop + 1;
  }

  whole = limits_resolve_texts(&ctx, files, n_files, NULL);
  if (whole == NULL)
    abort();
  check_plan(whole);

  r = limits_resolver_new(&ctx);
  for (gsize f = 0; f < n_files && !limits_resolver_stopped(r); f++) {
    limits_resolver_begin_file(r, files[f].name);
    for (gsize off = 0; off < (gsize) files[f].len; off += chunk) {
      gsize n = MIN(chunk, (gsize) files[f].len - off);
      if (!limits_resolver_feed(r, files[f].text + off, n, NULL))
        abort();
    }
    limits_resolver_end_file(r);
  }
  streamed = limits_resolver_finish(g_steal_pointer(&r));
  check_plan(streamed);

  a = explain(whole);
  b = explain(streamed);
  if (strcmp(a, b) != 0)
    abort();
  return 0;
}
