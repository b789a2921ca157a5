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
 * "4 children: 1 busy, 3 idle; queue 0; 12 restarts[; PHASE]".  Without
 * load signals (queue_known false) busy and idle are unknown:
 * "4 children running; 12 restarts".  phase: NULL, "reloading",
 * "stopping". */
char *status_summary(const PoolStatus *status, const char *phase);

/* Fills rss_bytes and pss_bytes (/proc/PID/smaps_rollup) and cpu_seconds
 * (/proc/PID/stat) of every child; what cannot be read stays 0. */
void pool_status_read_proc(PoolStatus *status);

/* The parsers behind it, for tests: the Rss and Pss lines of smaps_rollup
 * (kB) in bytes; utime + stime of a stat line in clock ticks. */
gboolean status_parse_smaps_rollup(const char *text, guint64 *rss, guint64 *pss);
gboolean status_parse_proc_stat(const char *text, guint64 *ticks);
