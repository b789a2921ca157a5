/* status: a PoolStatus (pool-status.h) as people and tools read it.
 *
 *   text        a header about the pool, then one row per child; fits 80
 *               columns; control characters and invalid UTF-8 in names
 *               and paths are shown escaped
 *   JSON        one object; always valid UTF-8 (bad bytes become U+FFFD)
 *   prometheus  the text exposition format 0.0.4, every name prefixed
 *               spawn_fcgi_, counters ending in _total
 *
 * The same fields in all three; their names are documented in
 * spawn-fcgi(1).  Formatting is pure; pool_status_read_proc() is the one
 * function here that reads the system (/proc of each child). */
#pragma once

#include <glib.h>

#include "pool-status.h"

typedef enum {
  STATUS_FORMAT_TEXT,
  STATUS_FORMAT_JSON,
  STATUS_FORMAT_PROMETHEUS,
} StatusFormat;

/* "text", "json", "prometheus" -> format; FALSE for anything else. */
gboolean status_format_from_name(const char *name, StatusFormat *out);
const char *pool_child_state_name(PoolChildState state);

void status_format(const PoolStatus *status, StatusFormat format, GString *out);
void status_format_text(const PoolStatus *status, GString *out);
void status_format_json(const PoolStatus *status, GString *out);
void status_format_prometheus(const PoolStatus *status, GString *out);

/* The short summary for systemd's STATUS= line:
 * "4 children: 1 busy, 3 idle[, N starting][, N retiring]; queue 0;
 * 12 restarts[; PHASE]".  Without
 * load signals (queue_known false) busy and idle are unknown:
 * "4 children running; 12 restarts".  phase: NULL, "reloading",
 * "stopping". */
char *status_summary(const PoolStatus *status, const char *phase);

/* Fills rss_bytes (/proc/PID/stat), pss_bytes (/proc/PID/smaps_rollup)
 * and cpu_seconds (/proc/PID/stat) of every child; what cannot be read
 * stays 0. */
void pool_status_read_proc(PoolStatus *status);

/* The same within a budget for a server that answers often: PSS needs a
 * walk of the child's page tables (about 0.3-1 ms for a php-cgi), so per
 * call it is read only for the children whose value is oldest and older
 * than STATUS_PSS_MAX_AGE_S, one at least and more while the call has
 * taken less than STATUS_PSS_BUDGET_US, and remembered in cache in
 * between (0, unknown, before the first read); RSS and CPU time are
 * always read (a few microseconds each). */
#define STATUS_PSS_BUDGET_US 300
#define STATUS_PSS_MAX_AGE_S 30
typedef struct StatusPssCache StatusPssCache;
StatusPssCache *status_pss_cache_new(void);
void status_pss_cache_free(StatusPssCache *cache);
void pool_status_read_proc_cached(PoolStatus *status, StatusPssCache *cache);

/* The parsers behind it, for tests: the Rss and Pss lines of smaps_rollup
 * (kB) in bytes; utime + stime of a stat line in clock ticks, and its rss
 * in pages. */
gboolean status_parse_smaps_rollup(const char *text, guint64 *rss, guint64 *pss);
gboolean status_parse_proc_stat(const char *text, guint64 *ticks, guint64 *rss_pages);
