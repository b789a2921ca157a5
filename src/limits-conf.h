/* limits-conf: the target user's limits.conf, resolved the way pam_limits does.
 *
 * Parsing and resolving are pure: text and an identity in, a plan out.
 * Applying the plan is a thin layer of setrlimit/setpriority calls that
 * runs in the process that becomes the application, while still
 * privileged, and does not allocate. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/resource.h>

#include "identity.h"

#define LIMITS_DEFAULT_FILE "/etc/security/limits.conf"
#define LIMITS_DEFAULT_DIR  "/etc/security/limits.d"

/* Files larger than this are refused. */
#define LIMITS_MAX_FILE_SIZE (16u * 1024 * 1024)
/* Warnings kept in a plan; further ones are only counted. */
#define LIMITS_MAX_WARNINGS 100
/* Number of rlimit resources known (RLIMIT_CPU .. RLIMIT_RTTIME). */
#define LIMITS_N_RLIMITS 16
/* /proc/sys/fs/nr_open when it cannot be read (the kernel default). */
#define LIMITS_DEFAULT_NR_OPEN ((rlim_t) 1024 * 1024)

#define LIMITS_ERROR (limits_error_quark())
GQuark limits_error_quark(void);

typedef enum {
  LIMITS_ERROR_READ,     /* a file could not be read (EACCES, ELOOP, EIO, too large) */
  LIMITS_ERROR_APPLY,    /* the kernel refused a value */
} LimitsError;

typedef struct LimitsPlan LimitsPlan;

/* Reads the limits files and resolves them for `id`.
 * file == NULL: LIMITS_DEFAULT_FILE.  dir == NULL: LIMITS_DEFAULT_DIR, except
 * that an explicit file alone reads no directory (pam_limits' conf= rule).
 * A missing default file or directory is fine; a missing explicit file is
 * an error.  Malformed lines become warnings kept in the plan; unreadable
 * files are a fatal error (NULL + error).  Starts from the calling
 * process's limits and /proc/sys/fs/nr_open, and looks groups up in NSS. */
LimitsPlan *limits_load(const char *file, const char *dir, const Identity *id,
                        GError **error);

/* "file:line: reason" for every skipped line, in reading order.  At most
 * LIMITS_MAX_WARNINGS are kept; when more were found, a last entry says how
 * many were left out. */
const GPtrArray *limits_plan_warnings(const LimitsPlan *plan);

/* TRUE when a matching `nonewprivs 1` line asks for no_new_privs. */
bool limits_plan_no_new_privs(const LimitsPlan *plan);

/* A readable account of the plan: every resource with soft/hard and the
 * file:line that set it, skipped lines with reasons, whether a "no limits"
 * line stopped processing, and what is ignored (maxlogins). */
void limits_plan_explain(const LimitsPlan *plan, GString *out);

/* Applies rlimits, then priority.  Does not allocate.  On failure writes a
 * one-line message naming the resource, the wanted and current values and
 * the file:line into msg and returns false, unless ignore_errors, in which
 * case each failure is written to stderr as a warning and true is
 * returned. */
bool limits_apply(const LimitsPlan *plan, bool ignore_errors,
                  char *msg, size_t msg_len);

void limits_plan_free(LimitsPlan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LimitsPlan, limits_plan_free)

/* ---- Reading the plan (explain, tests) ---- */

/* The soft/hard values the plan gives `resource` (RLIMIT_*), starting from
 * the starting limits, soft lowered to hard.  Returns TRUE when a matching
 * line set the soft or the hard value, FALSE (and the starting values) when
 * the resource stays as it is or is unknown. */
bool limits_plan_get(const LimitsPlan *plan, int resource, struct rlimit *out);

/* TRUE and the value when a matching line sets the priority. */
bool limits_plan_priority(const LimitsPlan *plan, int *priority);

/* TRUE when a matching "no limits" line (`<domain> -`) stopped processing:
 * nothing at all is applied. */
bool limits_plan_stopped(const LimitsPlan *plan);

/* How many warnings were found in total (kept or not). */
guint limits_plan_n_warnings(const LimitsPlan *plan);

/* ---- The pure path: text and an identity in, a plan out ---- */

/* Group lookups, injectable so that tests need no /etc/group. */
typedef struct {
  /* TRUE when the group exists; then *gid is its gid and *listed whether
   * `user` (NULL: nobody) is in its member list. */
  gboolean (*by_name)(const char *group, const char *user, gid_t *gid,
                      gboolean *listed, gpointer data);
  /* TRUE when a group with `gid` exists; then *listed as above. */
  gboolean (*by_gid)(gid_t gid, const char *user, gboolean *listed,
                     gpointer data);
  gpointer data;
} LimitsGroupLookup;

/* getgrnam/getgrgid. */
extern const LimitsGroupLookup limits_nss_groups;

/* Everything the resolver depends on besides the file texts. */
typedef struct {
  const Identity *id;                        /* the target user */
  struct rlimit start[LIMITS_N_RLIMITS];     /* limits before applying */
  rlim_t nr_open;                            /* replaces nofile unlimited */
  const LimitsGroupLookup *groups;           /* NULL: limits_nss_groups */
} LimitsContext;

/* The calling process's limits, /proc/sys/fs/nr_open and NSS. */
void limits_context_init(LimitsContext *ctx, const Identity *id);

/* limits_load() with an explicit context. */
LimitsPlan *limits_load_with(const char *file, const char *dir,
                             const LimitsContext *ctx, GError **error);

/* One file given as text: name (for file:line), text, length (-1: up to
 * the NUL). */
typedef struct {
  const char *name;
  const char *text;
  gssize len;
} LimitsText;

/* Resolves the texts as if they were the files read in that order.  Fails
 * only for a text larger than LIMITS_MAX_FILE_SIZE. */
LimitsPlan *limits_resolve_texts(const LimitsContext *ctx,
                                 const LimitsText *files, gsize n_files,
                                 GError **error);

/* Streaming form of the same, used by limits_load(): memory stays bounded
 * by the number of resources and the longest line, not by the number of
 * lines.  Data may be fed in chunks of any size, split anywhere. */
typedef struct LimitsResolver LimitsResolver;

LimitsResolver *limits_resolver_new(const LimitsContext *ctx);
void limits_resolver_begin_file(LimitsResolver *r, const char *name);
gboolean limits_resolver_feed(LimitsResolver *r, const char *data, gsize len,
                              GError **error);
void limits_resolver_end_file(LimitsResolver *r);
/* Records a file that was not read (missing, a directory), for explain. */
void limits_resolver_note_file(LimitsResolver *r, const char *name,
                               const char *why);
/* TRUE once a "no limits" line matched: further input is ignored. */
gboolean limits_resolver_stopped(const LimitsResolver *r);
/* Ends resolving and returns the plan; frees r. */
LimitsPlan *limits_resolver_finish(LimitsResolver *r);
void limits_resolver_free(LimitsResolver *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LimitsResolver, limits_resolver_free)
