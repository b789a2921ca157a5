/* limits-conf: limits.conf and limits.d read, resolved for one user and
 * applied, following the rules in docs/limits-conf.md.  See limits-conf.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* strerrordesc_np */
#endif
#include "config.h"

#include "limits-conf.h"
#include "trusted-file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

G_DEFINE_QUARK(spawn-fcgi-limits-error, limits_error)

G_STATIC_ASSERT(RLIMIT_CPU >= 0 && RLIMIT_RTTIME < LIMITS_N_RLIMITS);
G_STATIC_ASSERT(RLIMIT_NICE < LIMITS_N_RLIMITS);

#define READ_CHUNK     (64 * 1024)
#define GROUP_CACHE_MAX 256
#define QUOTE_MAX      48

/* ---- Items ---- */

typedef enum {
  ITEM_RLIMIT,
  ITEM_PRIORITY,
  ITEM_NONEWPRIVS,
  ITEM_MAXLOGINS,
} ItemKind;

typedef enum {
  UNIT_KIB,       /* file value in KiB, kernel value in bytes */
  UNIT_BYTES,
  UNIT_MINUTES,   /* file value in minutes, kernel value in seconds */
  UNIT_COUNT,
  UNIT_USEC,
  UNIT_NICE,      /* file value a nice value n, kernel value 20 - n */
  UNIT_NONE,
} Unit;

typedef struct {
  const char *name;
  gsize len;
  ItemKind kind;
  int resource;   /* RLIMIT_* for ITEM_RLIMIT, else -1 */
  Unit unit;
} Item;

#define ITEM(name, ...) { name, sizeof(name) - 1, __VA_ARGS__ }

/* In the order of limits.conf(5); explain lists resources in this order. */
static const Item items[] = {
  ITEM("core",         ITEM_RLIMIT,     RLIMIT_CORE,       UNIT_KIB),
  ITEM("data",         ITEM_RLIMIT,     RLIMIT_DATA,       UNIT_KIB),
  ITEM("fsize",        ITEM_RLIMIT,     RLIMIT_FSIZE,      UNIT_KIB),
  ITEM("memlock",      ITEM_RLIMIT,     RLIMIT_MEMLOCK,    UNIT_KIB),
  ITEM("nofile",       ITEM_RLIMIT,     RLIMIT_NOFILE,     UNIT_COUNT),
  ITEM("rss",          ITEM_RLIMIT,     RLIMIT_RSS,        UNIT_KIB),
  ITEM("stack",        ITEM_RLIMIT,     RLIMIT_STACK,      UNIT_KIB),
  ITEM("cpu",          ITEM_RLIMIT,     RLIMIT_CPU,        UNIT_MINUTES),
  ITEM("nproc",        ITEM_RLIMIT,     RLIMIT_NPROC,      UNIT_COUNT),
  ITEM("as",           ITEM_RLIMIT,     RLIMIT_AS,         UNIT_KIB),
  ITEM("maxlogins",    ITEM_MAXLOGINS,  -1,                UNIT_NONE),
  ITEM("maxsyslogins", ITEM_MAXLOGINS,  -1,                UNIT_NONE),
  ITEM("nonewprivs",   ITEM_NONEWPRIVS, -1,                UNIT_NONE),
  ITEM("priority",     ITEM_PRIORITY,   -1,                UNIT_NONE),
  ITEM("locks",        ITEM_RLIMIT,     RLIMIT_LOCKS,      UNIT_COUNT),
  ITEM("sigpending",   ITEM_RLIMIT,     RLIMIT_SIGPENDING, UNIT_COUNT),
  ITEM("msgqueue",     ITEM_RLIMIT,     RLIMIT_MSGQUEUE,   UNIT_BYTES),
  ITEM("nice",         ITEM_RLIMIT,     RLIMIT_NICE,       UNIT_NICE),
  ITEM("rtprio",       ITEM_RLIMIT,     RLIMIT_RTPRIO,     UNIT_COUNT),
  ITEM("rttime",       ITEM_RLIMIT,     RLIMIT_RTTIME,     UNIT_USEC),
};

/* ---- Plan ---- */

/* Precedence classes: a smaller value is more specific. */
enum {
  CLASS_USER = 0,
  CLASS_GROUP = 1,
  CLASS_DEFAULT = 2,
  CLASS_NONE = 3,
  CLASS_PERCENT = 4,   /* %-domains: only maxlogins, which is ignored */
};

typedef struct {
  guint32 file;   /* index into LimitsPlan.files */
  guint32 line;   /* 0: not set */
} Origin;

typedef struct {
  rlim_t soft, hard;
  guint8 soft_class, hard_class;
  bool soft_unlimited, hard_unlimited;   /* nofile: asked unlimited */
  Origin soft_from, hard_from;
} Slot;

typedef struct {
  char *name;
  char *note;      /* NULL when read */
  guint lines;
} FileInfo;

struct LimitsPlan {
  char *user;
  uid_t uid;
  gid_t gid;
  rlim_t nr_open;
  struct rlimit start[LIMITS_N_RLIMITS];
  Slot slots[LIMITS_N_RLIMITS];

  bool priority_set;
  int priority;
  Origin priority_from;

  bool nonewprivs_set;
  bool nonewprivs;
  Origin nonewprivs_from;

  bool stopped;
  Origin stopped_from;
  char *stopped_domain;

  guint logins_lines;
  Origin logins_from;

  GPtrArray *files;      /* FileInfo* */
  GPtrArray *warnings;   /* char* */
  guint n_warnings;
};

static void file_info_free(gpointer p)
{
  FileInfo *f = p;
  g_free(f->name);
  g_free(f->note);
  g_free(f);
}

void limits_plan_free(LimitsPlan *plan)
{
  if (plan == NULL)
    return;
  g_free(plan->user);
  g_free(plan->stopped_domain);
  g_ptr_array_unref(plan->files);
  g_ptr_array_unref(plan->warnings);
  g_free(plan);
}

static void reset_slots(LimitsPlan *plan)
{
  for (int i = 0; i < LIMITS_N_RLIMITS; i++) {
    plan->slots[i] = (Slot) { .soft_class = CLASS_NONE, .hard_class = CLASS_NONE };
  }
  plan->priority_set = false;
  plan->nonewprivs_set = false;
  plan->nonewprivs = false;
  plan->logins_lines = 0;
}

static bool slot_is_set(const Slot *s)
{
  return s->soft_class != CLASS_NONE || s->hard_class != CLASS_NONE;
}

/* Values of resource `i` once the plan is applied to `cur`. */
static struct rlimit slot_apply(const Slot *s, struct rlimit cur)
{
  if (s->soft_class != CLASS_NONE)
    cur.rlim_cur = s->soft;
  if (s->hard_class != CLASS_NONE)
    cur.rlim_max = s->hard;
  if (cur.rlim_cur > cur.rlim_max)
    cur.rlim_cur = cur.rlim_max;
  return cur;
}

const GPtrArray *limits_plan_warnings(const LimitsPlan *plan)
{
  return plan->warnings;
}

guint limits_plan_n_warnings(const LimitsPlan *plan)
{
  return plan->n_warnings;
}

bool limits_plan_no_new_privs(const LimitsPlan *plan)
{
  return !plan->stopped && plan->nonewprivs_set && plan->nonewprivs;
}

bool limits_plan_stopped(const LimitsPlan *plan)
{
  return plan->stopped;
}

bool limits_plan_priority(const LimitsPlan *plan, int *priority)
{
  if (plan->stopped || !plan->priority_set)
    return false;
  *priority = plan->priority;
  return true;
}

bool limits_plan_get(const LimitsPlan *plan, int resource, struct rlimit *out)
{
  if (resource < 0 || resource >= LIMITS_N_RLIMITS) {
    *out = (struct rlimit) { RLIM_INFINITY, RLIM_INFINITY };
    return false;
  }
  *out = slot_apply(&plan->slots[resource], plan->start[resource]);
  return slot_is_set(&plan->slots[resource]);
}

/* ---- Group lookups ---- */

/* NSS, through identity, which owns every passwd and group lookup. */
static gboolean nss_by_name(const char *group, const char *user, gid_t *gid,
                            gboolean *listed, gpointer data G_GNUC_UNUSED)
{
  return identity_group_by_name(group, user, gid, listed);
}

static gboolean nss_by_gid(gid_t gid, const char *user, gboolean *listed,
                           gpointer data G_GNUC_UNUSED)
{
  return identity_group_by_gid(gid, user, listed);
}

const LimitsGroupLookup limits_nss_groups = {
  .by_name = nss_by_name,
  .by_gid = nss_by_gid,
  .data = NULL,
};

/* ---- Context ---- */

static rlim_t read_nr_open(void)
{
  g_autofree char *text = NULL;
  guint64 v;

  if (!g_file_get_contents("/proc/sys/fs/nr_open", &text, NULL, NULL))
    return LIMITS_DEFAULT_NR_OPEN;
  g_strstrip(text);
  if (!g_ascii_string_to_unsigned(text, 10, 1, G_MAXUINT32, &v, NULL))
    return LIMITS_DEFAULT_NR_OPEN;
  return (rlim_t) v;
}

void limits_context_init(LimitsContext *ctx, const Identity *id)
{
  memset(ctx, 0, sizeof *ctx);
  ctx->id = id;
  for (int i = 0; i < LIMITS_N_RLIMITS; i++) {
    if (getrlimit(i, &ctx->start[i]) != 0)
      ctx->start[i] = (struct rlimit) { RLIM_INFINITY, RLIM_INFINITY };
  }
  ctx->nr_open = read_nr_open();
  ctx->groups = &limits_nss_groups;
}

/* ---- Resolver ---- */

typedef struct {
  gboolean exists;
  gid_t gid;
  gboolean listed;
} GroupInfo;

struct LimitsResolver {
  LimitsPlan *plan;
  const Identity *id;
  gsize user_len;
  const LimitsGroupLookup *groups;
  GHashTable *group_cache;   /* name -> GroupInfo, at most GROUP_CACHE_MAX */

  bool in_file;
  guint32 file;              /* index of the file being read */
  guint line;
  gsize file_bytes;
  GString *partial;          /* a line split across chunks */

  char quoted[QUOTE_MAX * 4 + 8];   /* the last quote() */
};

LimitsResolver *limits_resolver_new(const LimitsContext *ctx)
{
  LimitsResolver *r;
  LimitsPlan *plan;

  g_return_val_if_fail(ctx != NULL && ctx->id != NULL, NULL);
  r = g_new0(LimitsResolver, 1);
  plan = g_new0(LimitsPlan, 1);

  plan->user = g_strdup(ctx->id->name);
  plan->uid = ctx->id->uid;
  plan->gid = ctx->id->gid;
  plan->nr_open = ctx->nr_open;
  memcpy(plan->start, ctx->start, sizeof plan->start);
  reset_slots(plan);
  plan->files = g_ptr_array_new_with_free_func(file_info_free);
  plan->warnings = g_ptr_array_new_with_free_func(g_free);

  r->plan = plan;
  r->id = ctx->id;
  r->user_len = ctx->id->name != NULL ? strlen(ctx->id->name) : 0;
  r->groups = ctx->groups != NULL ? ctx->groups : &limits_nss_groups;
  r->partial = g_string_new(NULL);
  return r;
}

void limits_resolver_free(LimitsResolver *r)
{
  if (r == NULL)
    return;
  limits_plan_free(r->plan);
  if (r->group_cache != NULL)
    g_hash_table_unref(r->group_cache);
  g_string_free(r->partial, TRUE);
  g_free(r);
}

gboolean limits_resolver_stopped(const LimitsResolver *r)
{
  return r->plan->stopped;
}

static guint32 add_file(LimitsResolver *r, const char *name, const char *note)
{
  FileInfo *f = g_new0(FileInfo, 1);
  f->name = g_strdup(name);
  f->note = g_strdup(note);
  g_ptr_array_add(r->plan->files, f);
  return r->plan->files->len - 1;
}

void limits_resolver_note_file(LimitsResolver *r, const char *name,
                               const char *why)
{
  add_file(r, name, why);
}

/* A token: a piece of the line, not NUL-terminated. */
typedef struct {
  const char *s;
  gsize n;
} Tok;

static gboolean tok_eq(Tok t, const char *word)
{
  gsize n = strlen(word);
  return t.n == n && memcmp(t.s, word, n) == 0;
}

static gboolean tok_eq_ci(Tok t, const char *word)
{
  gsize n = strlen(word);
  return t.n == n && g_ascii_strncasecmp(t.s, word, n) == 0;
}

/* 'text' for messages: bounded, non-printable bytes escaped. */
static const char *quote(LimitsResolver *r, Tok t)
{
  char *out = r->quoted;
  gsize o = 0;

  out[o++] = '\'';
  for (gsize i = 0; i < t.n && i < QUOTE_MAX; i++) {
    guchar c = (guchar) t.s[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out[o++] = (char) c;
    } else {
      static const char hex[] = "0123456789abcdef";
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 0xf];
    }
  }
  if (t.n > QUOTE_MAX) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o++] = '\'';
  out[o] = '\0';
  return out;
}

static const char *file_name(const LimitsPlan *plan, guint32 file)
{
  const FileInfo *f = g_ptr_array_index(plan->files, file);
  return f->name;
}

static G_GNUC_PRINTF(2, 3) void warn_add(LimitsResolver *r, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *reason = NULL;

  va_start(ap, fmt);
  reason = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_ptr_array_add(r->plan->warnings,
                  g_strdup_printf("%s:%u: %s", file_name(r->plan, r->file),
                                  r->line, reason));
}

/* Counts a warning and tells whether it is to be kept (and formatted). */
static gboolean warn_counted(LimitsResolver *r)
{
  r->plan->n_warnings++;
  return r->plan->warnings->len < LIMITS_MAX_WARNINGS;
}

#define WARN(r, ...)                              \
  do {                                            \
    if (warn_counted(r))                          \
      warn_add((r), __VA_ARGS__);                 \
  } while (0)

/* ---- Numbers ---- */

static gboolean all_digits(Tok t)
{
  if (t.n == 0)
    return FALSE;
  for (gsize i = 0; i < t.n; i++)
    if (!g_ascii_isdigit(t.s[i]))
      return FALSE;
  return TRUE;
}

/* Plain decimal, saturating at G_MAXUINT64. */
static gboolean parse_u64(Tok t, guint64 *out)
{
  guint64 v = 0;
  if (!all_digits(t))
    return FALSE;
  for (gsize i = 0; i < t.n; i++) {
    guint d = (guint) (t.s[i] - '0');
    if (v > G_MAXUINT64 / 10 || (v == G_MAXUINT64 / 10 && d > G_MAXUINT64 % 10)) {
      *out = G_MAXUINT64;
      return TRUE;
    }
    v = v * 10 + d;
  }
  *out = v;
  return TRUE;
}

/* Decimal with an optional sign, saturating at +-G_MAXINT64/2. */
static gboolean parse_s64(Tok t, gint64 *out)
{
  gboolean neg = FALSE;
  guint64 v;

  if (t.n > 0 && (t.s[0] == '-' || t.s[0] == '+')) {
    neg = t.s[0] == '-';
    t.s++;
    t.n--;
  }
  if (!parse_u64(t, &v))
    return FALSE;
  if (v > G_MAXINT64 / 2)
    v = G_MAXINT64 / 2;
  *out = neg ? -(gint64) v : (gint64) v;
  return TRUE;
}

/* A uid or gid: decimal, at most 2^32-1. */
static gboolean parse_id32(Tok t, guint32 *out)
{
  guint64 v;
  if (!parse_u64(t, &v) || v > G_MAXUINT32)
    return FALSE;
  *out = (guint32) v;
  return TRUE;
}

static gboolean is_unlimited_word(Tok t)
{
  return tok_eq(t, "-1") || tok_eq(t, "-") || tok_eq_ci(t, "unlimited") ||
         tok_eq_ci(t, "infinity");
}

static rlim_t saturating_mul(rlim_t v, rlim_t m)
{
  if (v == RLIM_INFINITY)
    return RLIM_INFINITY;
  if (v > RLIM_INFINITY / m)
    return RLIM_INFINITY;
  return v * m;
}

/* ---- Domains ---- */

typedef enum {
  DOM_NAME,        /* a user name */
  DOM_ALL,         /* * */
  DOM_UID_RANGE,   /* min:max, :uid, min: */
  DOM_GROUP,       /* @group */
  DOM_GID_MEMBER,  /* @:gid */
  DOM_GID_RANGE,   /* @min:max, @min: (primary gid) */
  DOM_PCT_ALL,     /* % */
  DOM_PCT_GROUP,   /* %group */
  DOM_PCT_GID,     /* %:gid */
} DomainKind;

typedef struct {
  DomainKind kind;
  Tok text;        /* the whole domain */
  Tok name;        /* group name for DOM_GROUP / DOM_PCT_GROUP */
  guint32 min, max;
} Domain;

typedef enum {
  RANGE_BAD,
  RANGE_ONE,       /* :x */
  RANGE_MINMAX,    /* a:b and a: */
} RangeKind;

static RangeKind parse_range(Tok t, guint32 *min, guint32 *max)
{
  const char *colon = memchr(t.s, ':', t.n);
  Tok left = { t.s, (gsize) (colon - t.s) };
  Tok right = { colon + 1, t.n - left.n - 1 };

  if (left.n == 0) {
    if (!parse_id32(right, min))
      return RANGE_BAD;
    *max = *min;
    return RANGE_ONE;
  }
  if (!parse_id32(left, min))
    return RANGE_BAD;
  if (right.n == 0) {
    *max = G_MAXUINT32;
    return RANGE_MINMAX;
  }
  if (!parse_id32(right, max))
    return RANGE_BAD;
  return RANGE_MINMAX;
}

static const char range_help[] =
  "expected min:max, :id or min: with decimal ids up to 4294967295";

static gboolean parse_domain(LimitsResolver *r, Tok t, Domain *d)
{
  memset(d, 0, sizeof *d);
  d->text = t;

  if (tok_eq(t, "*")) {
    d->kind = DOM_ALL;
    return TRUE;
  }
  if (t.s[0] == '@' || t.s[0] == '%') {
    gboolean pct = t.s[0] == '%';
    Tok rest = { t.s + 1, t.n - 1 };
    if (pct && rest.n == 0) {
      d->kind = DOM_PCT_ALL;
      return TRUE;
    }
    if (memchr(rest.s, ':', rest.n) != NULL) {
      RangeKind k = parse_range(rest, &d->min, &d->max);
      if (k == RANGE_BAD) {
        WARN(r, "invalid gid range %s (%s)", quote(r, t), range_help);
        return FALSE;
      }
      if (pct && k != RANGE_ONE) {
        WARN(r, "%s: a gid range is not supported with %%, only %%:gid",
             quote(r, t));
        return FALSE;
      }
      d->kind = pct ? DOM_PCT_GID : k == RANGE_ONE ? DOM_GID_MEMBER : DOM_GID_RANGE;
      return TRUE;
    }
    if (rest.n == 0) {
      WARN(r, "empty group name in domain '@'");
      return FALSE;
    }
    d->kind = pct ? DOM_PCT_GROUP : DOM_GROUP;
    d->name = rest;
    return TRUE;
  }
  if (memchr(t.s, ':', t.n) != NULL) {
    if (parse_range(t, &d->min, &d->max) == RANGE_BAD) {
      WARN(r, "invalid uid range %s (%s)", quote(r, t), range_help);
      return FALSE;
    }
    d->kind = DOM_UID_RANGE;
    return TRUE;
  }
  d->kind = DOM_NAME;
  return TRUE;
}

/* Group lookups are remembered (a bounded number of them): a group name
 * under its name, a gid under ":gid" (no group name contains ':'). */
static GroupInfo *cache_get(LimitsResolver *r, const char *key)
{
  return r->group_cache != NULL ? g_hash_table_lookup(r->group_cache, key) : NULL;
}

static void cache_put(LimitsResolver *r, const char *key, const GroupInfo *info)
{
  if (r->group_cache == NULL)
    r->group_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  if (g_hash_table_size(r->group_cache) < GROUP_CACHE_MAX)
    g_hash_table_insert(r->group_cache, g_strdup(key), g_memdup2(info, sizeof *info));
}

static GroupInfo lookup_group_name(LimitsResolver *r, Tok name)
{
  GroupInfo info = { FALSE, 0, FALSE };
  GroupInfo *cached;
  char buf[256];
  g_autofree char *heap = NULL;
  char *cname;

  if (memchr(name.s, '\0', name.n) != NULL)
    return info;
  if (name.n < sizeof buf) {
    memcpy(buf, name.s, name.n);
    buf[name.n] = '\0';
    cname = buf;
  } else {
    cname = heap = g_strndup(name.s, name.n);
  }

  cached = cache_get(r, cname);
  if (cached != NULL)
    return *cached;
  info.exists = r->groups->by_name(cname, r->id->name, &info.gid, &info.listed,
                                   r->groups->data);
  cache_put(r, cname, &info);
  return info;
}

static GroupInfo lookup_group_gid(LimitsResolver *r, gid_t gid)
{
  GroupInfo info = { FALSE, gid, FALSE };
  GroupInfo *cached;
  char key[16];

  snprintf(key, sizeof key, ":%u", (unsigned) gid);
  cached = cache_get(r, key);
  if (cached != NULL)
    return *cached;
  info.exists = r->groups->by_gid(gid, r->id->name, &info.listed, r->groups->data);
  cache_put(r, key, &info);
  return info;
}

/* The user's primary gid, or a gid in the group list (getgrouplist). */
static gboolean in_group_list(const Identity *id, gid_t gid)
{
  if (id->gid != (gid_t) -1 && id->gid == gid)
    return TRUE;
  for (gsize i = 0; i < id->n_groups; i++)
    if (id->groups[i] == gid)
      return TRUE;
  return FALSE;
}

static gboolean member_of_gid(LimitsResolver *r, gid_t gid)
{
  GroupInfo g = lookup_group_gid(r, gid);
  return g.exists && (g.listed || in_group_list(r->id, gid));
}

static gboolean member_of_name(LimitsResolver *r, Tok name)
{
  GroupInfo g = lookup_group_name(r, name);
  return g.exists && (g.listed || in_group_list(r->id, g.gid));
}

static gboolean primary_gid_in(LimitsResolver *r, const Domain *d)
{
  gid_t gid = r->id->gid;
  if (gid == (gid_t) -1)
    return FALSE;
  return gid >= d->min && gid <= d->max;
}

/* The class by which `d` matches the user, or CLASS_NONE. */
static int domain_match(LimitsResolver *r, const Domain *d)
{
  if (r->id->name != NULL && d->text.n == r->user_len &&
      memcmp(d->text.s, r->id->name, r->user_len) == 0)
    return CLASS_USER;

  switch (d->kind) {
  case DOM_NAME:
    return CLASS_NONE;
  case DOM_ALL:
    return CLASS_DEFAULT;
  case DOM_UID_RANGE:
    return r->id->uid >= d->min && r->id->uid <= d->max ? CLASS_USER : CLASS_NONE;
  case DOM_GROUP:
    return member_of_name(r, d->name) ? CLASS_GROUP : CLASS_NONE;
  case DOM_GID_MEMBER:
    return member_of_gid(r, d->min) ? CLASS_GROUP : CLASS_NONE;
  case DOM_GID_RANGE:
    return primary_gid_in(r, d) ? CLASS_GROUP : CLASS_NONE;
  case DOM_PCT_ALL:
    return CLASS_PERCENT;
  case DOM_PCT_GROUP:
    return member_of_name(r, d->name) ? CLASS_PERCENT : CLASS_NONE;
  case DOM_PCT_GID:
    return member_of_gid(r, d->min) ? CLASS_PERCENT : CLASS_NONE;
  }
  return CLASS_NONE;
}

/* ---- Lines ---- */

static gboolean is_blank(char c)
{
  return c == ' ' || c == '\t';
}

static Origin here(const LimitsResolver *r)
{
  return (Origin) { r->file, r->line };
}

static void no_limits_line(LimitsResolver *r, Tok domain_tok)
{
  Domain d;
  int cls;

  if (!parse_domain(r, domain_tok, &d))
    return;
  /* The user by name, group or id range stops; * and % never do. */
  cls = domain_match(r, &d);
  if (cls != CLASS_USER && cls != CLASS_GROUP)
    return;

  reset_slots(r->plan);
  r->plan->stopped = true;
  r->plan->stopped_from = here(r);
  r->plan->stopped_domain = g_strdup(quote(r, domain_tok));
}

static const Item *find_item(Tok t)
{
  for (gsize i = 0; i < G_N_ELEMENTS(items); i++)
    if (t.n == items[i].len && g_ascii_strncasecmp(t.s, items[i].name, t.n) == 0)
      return &items[i];
  return NULL;
}

enum { TYPE_SOFT = 1, TYPE_HARD = 2 };

/* Parses the value of an rlimit item into the kernel value. */
static gboolean rlimit_value(LimitsResolver *r, const Item *item, Tok v,
                             rlim_t *out, bool *unlimited)
{
  guint64 n;

  *unlimited = false;
  if (item->unit == UNIT_NICE) {
    gint64 nice;
    if (!parse_s64(v, &nice)) {
      WARN(r, "invalid value %s for nice (expected an integer from -20 to 19)",
           quote(r, v));
      return FALSE;
    }
    nice = CLAMP(nice, -20, 19);
    *out = (rlim_t) (20 - nice);
    return TRUE;
  }

  if (is_unlimited_word(v)) {
    n = RLIM_INFINITY;
  } else if (!parse_u64(v, &n)) {
    WARN(r, "invalid value %s for %s (expected a decimal number, or -1, "
         "unlimited or infinity)", quote(r, v), item->name);
    return FALSE;
  } else if (n > RLIM_INFINITY) {
    n = RLIM_INFINITY;
  }

  switch (item->unit) {
  case UNIT_KIB:
    n = saturating_mul(n, 1024);
    break;
  case UNIT_MINUTES:
    n = saturating_mul(n, 60);
    break;
  default:
    break;
  }
  if (item->resource == RLIMIT_NOFILE && n == RLIM_INFINITY) {
    n = r->plan->nr_open;
    *unlimited = true;
  }
  *out = (rlim_t) n;
  return TRUE;
}

static void set_rlimit(LimitsResolver *r, const Item *item, int type, int cls,
                       rlim_t value, bool unlimited)
{
  Slot *s = &r->plan->slots[item->resource];

  /* The soft half is considered first; when precedence rejects it, the
   * hard half of a "-" line is dropped too (rule 15). */
  if (type & TYPE_SOFT) {
    if (s->soft_class < cls)
      return;
    s->soft = value;
    s->soft_class = (guint8) cls;
    s->soft_unlimited = unlimited;
    s->soft_from = here(r);
  }
  if (type & TYPE_HARD) {
    if (s->hard_class < cls)
      return;
    s->hard = value;
    s->hard_class = (guint8) cls;
    s->hard_unlimited = unlimited;
    s->hard_from = here(r);
  }
}

static void limit_line(LimitsResolver *r, Tok dom_tok, Tok type_tok, Tok item_tok,
                       Tok value)
{
  const Item *item;
  Domain d;
  int type = 0;
  int cls;
  rlim_t rv = 0;
  bool unlimited = false;
  gint64 num = 0;

  if (!parse_domain(r, dom_tok, &d))
    return;

  item = find_item(item_tok);
  if (item == NULL) {
    WARN(r, "unknown item %s", quote(r, item_tok));
    return;
  }

  if (tok_eq_ci(type_tok, "soft"))
    type = TYPE_SOFT;
  else if (tok_eq_ci(type_tok, "hard"))
    type = TYPE_HARD;
  else if (tok_eq(type_tok, "-"))
    type = TYPE_SOFT | TYPE_HARD;
  else if (item->kind == ITEM_RLIMIT || item->kind == ITEM_PRIORITY) {
    WARN(r, "unknown type %s (expected soft, hard or -)", quote(r, type_tok));
    return;
  }

  switch (item->kind) {
  case ITEM_RLIMIT:
    if (!rlimit_value(r, item, value, &rv, &unlimited))
      return;
    break;
  case ITEM_PRIORITY:
    if (!parse_s64(value, &num)) {
      WARN(r, "invalid value %s for priority (expected an integer)",
           quote(r, value));
      return;
    }
    num = CLAMP(num, INT_MIN, INT_MAX);
    break;
  case ITEM_NONEWPRIVS:
    if (!tok_eq(value, "0") && !tok_eq(value, "1")) {
      WARN(r, "invalid value %s for nonewprivs (expected 0 or 1)",
           quote(r, value));
      return;
    }
    num = value.s[0] == '1';
    break;
  case ITEM_MAXLOGINS:
    if (!is_unlimited_word(value) && !all_digits(value)) {
      WARN(r, "invalid value %s for %s (expected a decimal number or unlimited)",
           quote(r, value), item->name);
      return;
    }
    break;
  }

  cls = domain_match(r, &d);
  if (cls == CLASS_NONE)
    return;
  if (item->kind == ITEM_MAXLOGINS) {
    if (r->plan->logins_lines++ == 0)
      r->plan->logins_from = here(r);
    return;
  }
  if (cls == CLASS_PERCENT)
    return;   /* % lines only count logins */

  switch (item->kind) {
  case ITEM_RLIMIT:
    set_rlimit(r, item, type, cls, rv, unlimited);
    break;
  case ITEM_PRIORITY:
    r->plan->priority_set = true;
    r->plan->priority = (int) num;
    r->plan->priority_from = here(r);
    break;
  case ITEM_NONEWPRIVS:
    r->plan->nonewprivs_set = true;
    r->plan->nonewprivs = num != 0;
    r->plan->nonewprivs_from = here(r);
    break;
  case ITEM_MAXLOGINS:
    break;
  }
}

/* One line, without its '\n'. */
static void process_line(LimitsResolver *r, const char *s, gsize n)
{
  const char *p, *end, *hash;
  Tok tok[3] = { 0 };
  Tok value;
  int nt;
  int fields;

  r->line++;
  if (n > 0 && s[n - 1] == '\r')
    n--;
  while (n > 0 && g_ascii_isspace(*s)) {
    s++;
    n--;
  }
  hash = memchr(s, '#', n);
  if (hash != NULL)
    n = (gsize) (hash - s);
  if (n == 0)
    return;

  p = s;
  end = s + n;
  for (nt = 0; nt < 3; nt++) {
    const char *start;
    while (p < end && is_blank(*p))
      p++;
    if (p == end)
      break;
    start = p;
    while (p < end && !is_blank(*p))
      p++;
    tok[nt] = (Tok) { start, (gsize) (p - start) };
  }
  while (p < end && is_blank(*p))
    p++;
  while (end > p && is_blank(end[-1]))
    end--;
  value = (Tok) { p, (gsize) (end - p) };
  fields = nt + (value.n > 0 ? 1 : 0);

  if (fields == 2 && tok[1].s[0] == '-') {
    no_limits_line(r, tok[0]);
  } else if (fields >= 4) {
    limit_line(r, tok[0], tok[1], tok[2], value);
  } else if (fields == 3) {
    WARN(r, "missing value (expected '<domain> <type> <item> <value>')");
  } else if (fields == 2) {
    WARN(r, "expected '<domain> <type> <item> <value>' or '<domain> -', "
         "got 2 fields");
  } else {
    WARN(r, "expected '<domain> <type> <item> <value>', got only %s",
         quote(r, tok[0]));
  }
}

void limits_resolver_begin_file(LimitsResolver *r, const char *name)
{
  g_return_if_fail(!r->in_file);
  r->file = add_file(r, name, NULL);
  r->line = 0;
  r->file_bytes = 0;
  r->in_file = true;
  g_string_truncate(r->partial, 0);
}

gboolean limits_resolver_feed(LimitsResolver *r, const char *data, gsize len,
                              GError **error)
{
  const char *p = data, *end = data + len;

  g_return_val_if_fail(r->in_file, FALSE);
  if (r->plan->stopped)
    return TRUE;
  if (len > LIMITS_MAX_FILE_SIZE - r->file_bytes) {
    g_set_error(error, LIMITS_ERROR, LIMITS_ERROR_READ,
                "'%s' is larger than %u MiB", file_name(r->plan, r->file),
                LIMITS_MAX_FILE_SIZE / (1024 * 1024));
    return FALSE;
  }
  r->file_bytes += len;

  if (r->partial->len > 0) {
    const char *nl = memchr(p, '\n', len);
    if (nl == NULL) {
      g_string_append_len(r->partial, p, (gssize) len);
      return TRUE;
    }
    g_string_append_len(r->partial, p, nl - p);
    process_line(r, r->partial->str, r->partial->len);
    g_string_truncate(r->partial, 0);
    p = nl + 1;
  }
  while (p < end && !r->plan->stopped) {
    const char *nl = memchr(p, '\n', (gsize) (end - p));
    if (nl == NULL) {
      g_string_append_len(r->partial, p, end - p);
      break;
    }
    process_line(r, p, (gsize) (nl - p));
    p = nl + 1;
  }
  return TRUE;
}

void limits_resolver_end_file(LimitsResolver *r)
{
  FileInfo *f;

  g_return_if_fail(r->in_file);
  if (r->partial->len > 0 && !r->plan->stopped)
    process_line(r, r->partial->str, r->partial->len);
  f = g_ptr_array_index(r->plan->files, r->file);
  f->lines = r->line;
  r->in_file = false;
  /* Do not keep a buffer sized for one huge line. */
  if (r->partial->allocated_len > READ_CHUNK) {
    g_string_free(r->partial, TRUE);
    r->partial = g_string_new(NULL);
  } else {
    g_string_truncate(r->partial, 0);
  }
}

LimitsPlan *limits_resolver_finish(LimitsResolver *r)
{
  LimitsPlan *plan;

  if (r->in_file)
    limits_resolver_end_file(r);
  plan = g_steal_pointer(&r->plan);
  if (plan->n_warnings > plan->warnings->len)
    g_ptr_array_add(plan->warnings,
                    g_strdup_printf("(%u more skipped lines not listed)",
                                    plan->n_warnings - plan->warnings->len));
  r->plan = NULL;
  limits_resolver_free(r);
  return plan;
}

LimitsPlan *limits_resolve_texts(const LimitsContext *ctx,
                                 const LimitsText *files, gsize n_files,
                                 GError **error)
{
  g_autoptr(LimitsResolver) r = limits_resolver_new(ctx);

  for (gsize i = 0; i < n_files && !limits_resolver_stopped(r); i++) {
    gsize len = files[i].len < 0 ? strlen(files[i].text) : (gsize) files[i].len;
    limits_resolver_begin_file(r, files[i].name);
    if (!limits_resolver_feed(r, files[i].text, len, error))
      return NULL;
    limits_resolver_end_file(r);
  }
  return limits_resolver_finish(g_steal_pointer(&r));
}

/* ---- Files ---- */

typedef enum {
  FILE_REQUIRED,   /* explicit file: must exist */
  FILE_OPTIONAL,   /* default file: missing is fine */
  FILE_IN_DIR,     /* limits.d entry: vanished, dangling or a directory is skipped */
} FileMode;

static gboolean read_error(GError **error, const char *what, const char *path, int err)
{
  g_set_error(error, LIMITS_ERROR, LIMITS_ERROR_READ, "cannot %s '%s': %s",
              what, path, g_strerror(err));
  return FALSE;
}

static gboolean read_file(LimitsResolver *r, const char *path, FileMode mode,
                          char *buf, GError **error)
{
  struct stat st;
  int fd;
  gboolean ok = TRUE;

  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT && mode == FILE_OPTIONAL) {
      limits_resolver_note_file(r, path, "not found");
      return TRUE;
    }
    if (err == ENOENT && mode == FILE_IN_DIR) {
      limits_resolver_note_file(r, path, "gone or a dangling symlink, skipped");
      return TRUE;
    }
    return read_error(error, "open", path, err);
  }
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return read_error(error, "read", path, err);
  }
  if (S_ISDIR(st.st_mode) && mode == FILE_IN_DIR) {
    close(fd);
    limits_resolver_note_file(r, path, "a directory, ignored");
    return TRUE;
  }
  if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
    close(fd);
    g_set_error(error, LIMITS_ERROR, LIMITS_ERROR_READ,
                "cannot read '%s': %s", path,
                S_ISDIR(st.st_mode) ? g_strerror(EISDIR) : "not a regular file");
    return FALSE;
  }
  /* Root believes what it says: nobody else may be able to change it.
   * (A character device such as /dev/null says nothing.) */
  g_autofree char *untrusted = S_ISREG(st.st_mode) ? trusted_file_problem(fd, path) : NULL;
  if (untrusted != NULL) {
    close(fd);
    g_set_error(error, LIMITS_ERROR, LIMITS_ERROR_READ,
                "refusing limits file '%s': %s", path, untrusted);
    return FALSE;
  }

  limits_resolver_begin_file(r, path);
  while (!limits_resolver_stopped(r)) {
    ssize_t n = read(fd, buf, READ_CHUNK);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      ok = read_error(error, "read", path, errno);
      break;
    }
    if (n == 0)
      break;
    if (!limits_resolver_feed(r, buf, (gsize) n, error)) {
      ok = FALSE;
      break;
    }
  }
  close(fd);
  limits_resolver_end_file(r);
  return ok;
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The *.conf names in dir, in byte order; NULL + error when unreadable.
 * A missing directory gives an empty list when missing_ok. */
static GPtrArray *list_dir(const char *dir, gboolean missing_ok,
                           gboolean *missing, GError **error)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  DIR *d;
  struct dirent *e;

  *missing = FALSE;
  d = opendir(dir);
  if (d == NULL) {
    if (errno == ENOENT && missing_ok) {
      *missing = TRUE;
      return g_steal_pointer(&names);
    }
    read_error(error, "read directory", dir, errno);
    return NULL;
  }
  /* Whoever can add a file here decides the limits. */
  g_autofree char *untrusted = trusted_file_problem(dirfd(d), dir);
  if (untrusted != NULL) {
    closedir(d);
    g_set_error(error, LIMITS_ERROR, LIMITS_ERROR_READ,
                "refusing limits directory '%s': %s", dir, untrusted);
    return NULL;
  }
  for (;;) {
    errno = 0;
    e = readdir(d);
    if (e == NULL)
      break;
    if (e->d_name[0] == '.' || !g_str_has_suffix(e->d_name, ".conf"))
      continue;
    g_ptr_array_add(names, g_strdup(e->d_name));
  }
  if (errno != 0) {
    int err = errno;
    closedir(d);
    read_error(error, "read directory", dir, err);
    return NULL;
  }
  closedir(d);
  g_ptr_array_sort(names, compare_names);
  return g_steal_pointer(&names);
}

LimitsPlan *limits_load_with(const char *file, const char *dir,
                             const LimitsContext *ctx, GError **error)
{
  g_autoptr(LimitsResolver) r = NULL;
  g_autofree char *buf = NULL;
  gboolean explicit_file = file != NULL;
  gboolean explicit_dir = dir != NULL;

  if (file == NULL)
    file = LIMITS_DEFAULT_FILE;
  if (dir == NULL && !explicit_file)
    dir = LIMITS_DEFAULT_DIR;

  r = limits_resolver_new(ctx);
  buf = g_malloc(READ_CHUNK);
  if (!read_file(r, file, explicit_file ? FILE_REQUIRED : FILE_OPTIONAL, buf, error))
    return NULL;

  if (dir != NULL && !limits_resolver_stopped(r)) {
    gboolean missing;
    g_autoptr(GPtrArray) names = list_dir(dir, !explicit_dir, &missing, error);
    if (names == NULL)
      return NULL;
    if (missing)
      limits_resolver_note_file(r, dir, "directory not found");
    else if (names->len == 0)
      limits_resolver_note_file(r, dir, "no *.conf files");
    for (guint i = 0; i < names->len && !limits_resolver_stopped(r); i++) {
      g_autofree char *path = g_build_filename(dir, names->pdata[i], NULL);
      if (!read_file(r, path, FILE_IN_DIR, buf, error))
        return NULL;
    }
  }
  return limits_resolver_finish(g_steal_pointer(&r));
}

LimitsPlan *limits_load(const char *file, const char *dir, const Identity *id,
                        GError **error)
{
  LimitsContext ctx;
  limits_context_init(&ctx, id);
  return limits_load_with(file, dir, &ctx, error);
}

/* ---- Explain ---- */

static void append_size(GString *out, guint64 v)
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  guint u = 0;

  if (v < 1024)
    return;
  if (v % 1024 == 0) {
    guint64 x = v / 1024;
    while (x >= 1024 && x % 1024 == 0 && u < G_N_ELEMENTS(units) - 1) {
      x /= 1024;
      u++;
    }
    g_string_append_printf(out, " (%" G_GUINT64_FORMAT " %s)", x, units[u]);
  } else {
    double d = (double) v / 1024.0;
    while (d >= 1024.0 && u < G_N_ELEMENTS(units) - 1) {
      d /= 1024.0;
      u++;
    }
    g_string_append_printf(out, " (~%.1f %s)", d, units[u]);
  }
}

static void append_value(GString *out, const Item *item, rlim_t v, bool nr_open)
{
  if (v == RLIM_INFINITY) {
    g_string_append(out, "unlimited");
    return;
  }
  g_string_append_printf(out, "%" G_GUINT64_FORMAT, (guint64) v);
  switch (item->unit) {
  case UNIT_KIB:
  case UNIT_BYTES:
    append_size(out, v);
    break;
  case UNIT_MINUTES:
    g_string_append(out, " s");
    if (v >= 60 && v % 60 == 0)
      g_string_append_printf(out, " (%" G_GUINT64_FORMAT " min)", (guint64) v / 60);
    break;
  case UNIT_USEC:
    g_string_append(out, " us");
    break;
  case UNIT_NICE:
    if (v >= 1 && v <= 40)
      g_string_append_printf(out, " (nice %d)", 20 - (int) v);
    break;
  default:
    break;
  }
  if (nr_open)
    g_string_append(out, " (unlimited = nr_open)");
}

static void append_origin(GString *out, const LimitsPlan *plan, Origin o)
{
  g_string_append_printf(out, "%s:%u", file_name(plan, o.file), o.line);
}

/* The soft, hard and origin cells of one resource row. */
static void explain_cells(const LimitsPlan *plan, const Item *item, GString *cell[3])
{
  const Slot *s = &plan->slots[item->resource];
  struct rlimit st = plan->start[item->resource];
  struct rlimit v = slot_apply(s, st);
  bool soft = s->soft_class != CLASS_NONE, hard = s->hard_class != CLASS_NONE;
  bool lowered = slot_is_set(s) && v.rlim_cur != (soft ? s->soft : st.rlim_cur);
  GString *from = cell[2];

  append_value(cell[0], item, v.rlim_cur, soft && s->soft_unlimited && !lowered);
  append_value(cell[1], item, v.rlim_max, hard && s->hard_unlimited);

  if (soft && hard && s->soft_from.file == s->hard_from.file &&
      s->soft_from.line == s->hard_from.line) {
    append_origin(from, plan, s->soft_from);
  } else if (soft && hard) {
    g_string_append(from, "soft ");
    append_origin(from, plan, s->soft_from);
    g_string_append(from, ", hard ");
    append_origin(from, plan, s->hard_from);
  } else if (soft) {
    g_string_append(from, "soft ");
    append_origin(from, plan, s->soft_from);
    g_string_append(from, "; hard unchanged");
  } else if (hard) {
    g_string_append(from, "hard ");
    append_origin(from, plan, s->hard_from);
    if (!lowered)
      g_string_append(from, "; soft unchanged");
  } else {
    g_string_append(from, "(unchanged)");
  }
  if (lowered)
    g_string_append(from, "; soft lowered to hard");
}

static void explain_table(const LimitsPlan *plan, GString *out)
{
  const char *head[4] = { "resource", "soft", "hard", "set by" };
  GString *cells[LIMITS_N_RLIMITS][3];
  const Item *rows[LIMITS_N_RLIMITS];
  gsize width[3] = { strlen(head[0]), strlen(head[1]), strlen(head[2]) };
  guint n = 0;

  for (gsize i = 0; i < G_N_ELEMENTS(items) && n < LIMITS_N_RLIMITS; i++) {
    if (items[i].kind != ITEM_RLIMIT)
      continue;
    rows[n] = &items[i];
    for (int c = 0; c < 3; c++)
      cells[n][c] = g_string_new(NULL);
    explain_cells(plan, rows[n], cells[n]);
    width[0] = MAX(width[0], strlen(rows[n]->name));
    width[1] = MAX(width[1], cells[n][0]->len);
    width[2] = MAX(width[2], cells[n][1]->len);
    n++;
  }

  g_string_append_printf(out, "  %-*s  %-*s  %-*s  %s\n", (int) width[0], head[0],
                         (int) width[1], head[1], (int) width[2], head[2], head[3]);
  for (guint r = 0; r < n; r++) {
    g_string_append_printf(out, "  %-*s  %-*s  %-*s  %s\n",
                           (int) width[0], rows[r]->name,
                           (int) width[1], cells[r][0]->str,
                           (int) width[2], cells[r][1]->str,
                           cells[r][2]->str);
    for (int c = 0; c < 3; c++)
      g_string_free(cells[r][c], TRUE);
  }
}

void limits_plan_explain(const LimitsPlan *plan, GString *out)
{
  if (plan->user != NULL)
    g_string_append_printf(out, "Limits for user %s (uid %u, gid %u)\n",
                           plan->user, (unsigned) plan->uid, (unsigned) plan->gid);
  else
    g_string_append_printf(out, "Limits for uid %u (no passwd entry)\n",
                           (unsigned) plan->uid);

  g_string_append(out, "\nFiles, in reading order:\n");
  if (plan->files->len == 0)
    g_string_append(out, "  (none)\n");
  for (guint i = 0; i < plan->files->len; i++) {
    const FileInfo *f = g_ptr_array_index(plan->files, i);
    if (f->note != NULL)
      g_string_append_printf(out, "  %s: %s\n", f->name, f->note);
    else
      g_string_append_printf(out, "  %s: %u line%s\n", f->name, f->lines,
                             f->lines == 1 ? "" : "s");
  }

  if (plan->stopped) {
    g_string_append(out, "\nNo limits: ");
    append_origin(out, plan, plan->stopped_from);
    g_string_append_printf(out, " says %s -, which matches this user.\n"
                           "Nothing is applied (not even earlier lines), and "
                           "later lines and files were not read.\n",
                           plan->stopped_domain);
  }

  g_string_append(out, "\n");
  explain_table(plan, out);
  g_string_append(out, "\n  priority      ");
  if (plan->priority_set) {
    g_string_append_printf(out, "%d, set by ", plan->priority);
    append_origin(out, plan, plan->priority_from);
    g_string_append(out, "\n");
  } else {
    g_string_append(out, "unchanged\n");
  }
  g_string_append(out, "  nonewprivs    ");
  if (plan->nonewprivs_set) {
    g_string_append_printf(out, "%s, set by ", plan->nonewprivs ? "yes" : "no");
    append_origin(out, plan, plan->nonewprivs_from);
    g_string_append(out, "\n");
  } else {
    g_string_append(out, "no\n");
  }
  if (plan->logins_lines > 0) {
    g_string_append(out, "  maxlogins     ignored: a service is not a login session (");
    append_origin(out, plan, plan->logins_from);
    if (plan->logins_lines > 1)
      g_string_append_printf(out, " and %u more line%s", plan->logins_lines - 1,
                             plan->logins_lines == 2 ? "" : "s");
    g_string_append(out, ")\n");
  }

  if (plan->n_warnings == 0) {
    g_string_append(out, "\nSkipped lines: none\n");
  } else {
    g_string_append_printf(out, "\nSkipped lines (%u):\n", plan->n_warnings);
    for (guint i = 0; i < plan->warnings->len; i++)
      g_string_append_printf(out, "  %s\n", (const char *) plan->warnings->pdata[i]);
  }
}

/* ---- Applying (no allocation from here on) ---- */

static const char *rlim_text(rlim_t v, char *buf, size_t len)
{
  if (v == RLIM_INFINITY)
    return "unlimited";
  snprintf(buf, len, "%llu", (unsigned long long) v);
  return buf;
}

static const char *errno_text(int err)
{
  const char *s = strerrordesc_np(err);
  return s != NULL ? s : "unknown error";
}

static void origin_text(const LimitsPlan *plan, const Slot *s, struct rlimit want,
                        struct rlimit cur, char *buf, size_t len)
{
  bool soft = s->soft_class != CLASS_NONE, hard = s->hard_class != CLASS_NONE;
  Origin o;

  if (soft && hard && (s->soft_from.file != s->hard_from.file ||
                       s->soft_from.line != s->hard_from.line)) {
    /* Blame the half that asks for more than there is. */
    o = want.rlim_max > cur.rlim_max ? s->hard_from : s->soft_from;
  } else {
    o = soft ? s->soft_from : s->hard_from;
  }
  snprintf(buf, len, "%s:%u", file_name(plan, o.file), o.line);
}

static void report(bool ignore_errors, char *msg, size_t msg_len, const char *line)
{
  if (msg != NULL && msg_len > 0)
    snprintf(msg, msg_len, "%s", line);
  if (ignore_errors)
    log_warning_unbuffered("%s", line);
}

bool limits_apply(const LimitsPlan *plan, bool ignore_errors,
                  char *msg, size_t msg_len)
{
  char line[1024];

  if (msg != NULL && msg_len > 0)
    msg[0] = '\0';
  if (plan->stopped)
    return true;

  for (gsize i = 0; i < G_N_ELEMENTS(items); i++) {
    const Item *item = &items[i];
    const Slot *s;
    struct rlimit cur, want;
    char b1[24], b2[24], b3[24], b4[24], from[512];

    if (item->kind != ITEM_RLIMIT)
      continue;
    s = &plan->slots[item->resource];
    if (!slot_is_set(s))
      continue;
    if (getrlimit(item->resource, &cur) != 0) {
      int err = errno;
      origin_text(plan, s, plan->start[item->resource], plan->start[item->resource],
                  from, sizeof from);
      snprintf(line, sizeof line, "cannot read the %s limit (asked for by %s): %s",
               item->name, from, errno_text(err));
      report(ignore_errors, msg, msg_len, line);
      if (!ignore_errors)
        return false;
      continue;
    }
    want = slot_apply(s, cur);
    if (setrlimit(item->resource, &want) == 0)
      continue;

    int err = errno;
    origin_text(plan, s, want, cur, from, sizeof from);
    snprintf(line, sizeof line,
             "cannot set %s to soft %s, hard %s (current soft %s, hard %s), "
             "asked for by %s: %s",
             item->name,
             rlim_text(want.rlim_cur, b1, sizeof b1),
             rlim_text(want.rlim_max, b2, sizeof b2),
             rlim_text(cur.rlim_cur, b3, sizeof b3),
             rlim_text(cur.rlim_max, b4, sizeof b4),
             from, errno_text(err));
    report(ignore_errors, msg, msg_len, line);
    if (!ignore_errors)
      return false;
  }

  if (plan->priority_set) {
    int cur;
    errno = 0;
    cur = getpriority(PRIO_PROCESS, 0);
    if (cur == -1 && errno != 0)
      cur = 0;
    if (setpriority(PRIO_PROCESS, 0, plan->priority) != 0) {
      int err = errno;
      snprintf(line, sizeof line,
               "cannot set priority to %d (current %d), asked for by %s:%u: %s",
               plan->priority, cur, file_name(plan, plan->priority_from.file),
               plan->priority_from.line, errno_text(err));
      report(ignore_errors, msg, msg_len, line);
      if (!ignore_errors)
        return false;
    }
  }
  return true;
}
