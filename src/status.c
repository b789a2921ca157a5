/* status: text, JSON and Prometheus views of a PoolStatus.  See status.h. */
#include "config.h"

#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"

static const char *const state_names[] = {
  [POOL_CHILD_STARTING] = "starting",
  [POOL_CHILD_IDLE] = "idle",
  [POOL_CHILD_BUSY] = "busy",
  [POOL_CHILD_RETIRING] = "retiring",
};

static const char *const reload_results[] = { "none", "running", "done", "failed" };

const char *pool_child_state_name(PoolChildState state)
{
  if ((guint) state < G_N_ELEMENTS(state_names))
    return state_names[state];
  return "unknown";
}

gboolean status_format_from_name(const char *name, StatusFormat *out)
{
  static const struct { const char *name; StatusFormat format; } formats[] = {
    { "text", STATUS_FORMAT_TEXT },
    { "json", STATUS_FORMAT_JSON },
    { "prometheus", STATUS_FORMAT_PROMETHEUS },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(formats); i++) {
    if (strcmp(name, formats[i].name) == 0) {
      *out = formats[i].format;
      return TRUE;
    }
  }
  return FALSE;
}

void status_format(const PoolStatus *st, StatusFormat format, GString *out)
{
  switch (format) {
  case STATUS_FORMAT_TEXT: status_format_text(st, out); return;
  case STATUS_FORMAT_JSON: status_format_json(st, out); return;
  case STATUS_FORMAT_PROMETHEUS: status_format_prometheus(st, out); return;
  }
}

static const char *or_empty(const char *s)
{
  return s ? s : "";
}

static double seconds(gint64 us)
{
  return (double) us / G_USEC_PER_SEC;
}

/* A double without the locale's decimal comma. */
static void append_double(GString *out, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%.3f", v));
}

/* Decimal digits without printf: the metrics have hundreds of them. */
static void append_int(GString *out, gint64 v)
{
  char buf[24];
  int i = sizeof buf;
  guint64 u = v < 0 ? -(guint64) v : (guint64) v;

  do {
    buf[--i] = (char) ('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    buf[--i] = '-';
  g_string_append_len(out, buf + i, (gssize) sizeof buf - i);
}

/* The exit status as a shell reports it: N, or 128 + signal. */
static int exit_code(int wait_status)
{
  if (wait_status < 0)
    return -1;
  if (WIFSIGNALED(wait_status))
    return 128 + WTERMSIG(wait_status);
  return WEXITSTATUS(wait_status);
}

/* ---- text ---------------------------------------------------------------- */

/* Names and paths come from the configuration and the file system: no
 * control character reaches the terminal, bad UTF-8 is shown as \xHH. */
static void append_printable(GString *out, const char *s)
{
  const char *p = or_empty(s);

  while (*p) {
    gunichar c = g_utf8_get_char_validated(p, -1);
    if (c == (gunichar) -1 || c == (gunichar) -2) {
      g_string_append_printf(out, "\\x%02x", (unsigned char) *p);
      p++;
      continue;
    }
    if (c == '\\')
      g_string_append(out, "\\\\");
    else if (g_unichar_iscntrl(c))
      g_string_append_printf(out, "\\x%02x", (unsigned) c & 0xff);
    else
      g_string_append_len(out, p, g_utf8_next_char(p) - p);
    p = g_utf8_next_char(p);
  }
}

/* 45s, 3m05s, 2h07m, 4d03h */
static void append_duration(GString *out, double secs)
{
  guint64 s = secs > 0 ? (guint64) secs : 0;

  if (s < 60)
    g_string_append_printf(out, "%" G_GUINT64_FORMAT "s", s);
  else if (s < 3600)
    g_string_append_printf(out, "%" G_GUINT64_FORMAT "m%02" G_GUINT64_FORMAT "s",
                           s / 60, s % 60);
  else if (s < 86400)
    g_string_append_printf(out, "%" G_GUINT64_FORMAT "h%02" G_GUINT64_FORMAT "m",
                           s / 3600, s % 3600 / 60);
  else
    g_string_append_printf(out, "%" G_GUINT64_FORMAT "d%02" G_GUINT64_FORMAT "h",
                           s / 86400, s % 86400 / 3600);
}

/* 12.3M; "-" for unknown (0) */
static void append_size(GString *out, guint64 bytes)
{
  static const char units[] = "KMGT";
  double v = (double) bytes / 1024;
  int u = 0;

  if (bytes == 0) {
    g_string_append_c(out, '-');
    return;
  }
  while (v >= 1000 && u < 3) {
    v /= 1024;
    u++;
  }
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append_printf(out, "%s%c",
                         g_ascii_formatd(buf, sizeof buf, v < 10 ? "%.1f" : "%.0f", v),
                         units[u]);
}

static void append_local_time(GString *out, gint64 wall_us, const char *format)
{
  g_autoptr(GDateTime) t = g_date_time_new_from_unix_local(wall_us / G_USEC_PER_SEC);
  g_autofree char *s = t ? g_date_time_format(t, format) : NULL;
  g_string_append(out, s ? s : "?");
}

/* printf into a column of width w (left-aligned when w < 0). */
static void column(GString *out, int w, const GString *cell)
{
  g_string_append_printf(out, "%*s", w, cell->str);
}

static void text_header(const PoolStatus *st, GString *out)
{
  g_string_append(out, "spawn-fcgi pool ");
  if (st->instance && st->instance[0])
    append_printable(out, st->instance);
  else
    g_string_append(out, "(no instance name)");
  g_string_append_printf(out, ": %s, %u-%u children, spawn-fcgi %s\n",
                         or_empty(st->pm), st->min_children, st->max_children,
                         or_empty(st->version));

  g_string_append(out, "     Since: ");
  append_local_time(out, st->start_time_us, "%Y-%m-%d %H:%M:%S %Z");
  g_string_append(out, "; up ");
  append_duration(out, st->uptime_seconds);
  g_string_append(out, "\n    Listen: ");
  append_printable(out, st->listen);
  g_string_append_printf(out, " (%s), backlog %u\n", or_empty(st->listen_source),
                         st->backlog);

  if (st->queue_known)
    g_string_append_printf(out, "     Queue: %u waiting, at most %u seen\n",
                           st->accept_queue, st->max_accept_queue);
  else
    g_string_append(out, "     Queue: unknown\n");
  g_string_append_printf(out, "  Children: %u: %u starting, %u busy, %u idle, %u retiring\n",
                         st->total, st->starting, st->busy, st->idle, st->retiring);
  g_string_append_printf(out, "    At max: %" G_GUINT64_FORMAT " times, ",
                         st->max_children_reached);
  append_duration(out, st->seconds_at_max);
  g_string_append(out, " in all\n");
  g_string_append_printf(out, "  Restarts: %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT
                         " quick failures, %" G_GUINT64_FORMAT " give-ups, %"
                         G_GUINT64_FORMAT " spawn failures)\n",
                         st->restarts, st->quick_failures, st->give_ups,
                         st->spawn_failures);
  g_string_append_printf(out, "   Reloads: %" G_GUINT64_FORMAT, st->reloads);
  if (st->last_reload_us > 0) {
    g_string_append(out, ", last ");
    append_local_time(out, st->last_reload_us, "%Y-%m-%d %H:%M:%S");
    g_string_append_printf(out, ": %s", or_empty(st->last_reload_result));
  }
  g_string_append_c(out, '\n');
}

static void describe_last_exit(GString *cell, int wait_status)
{
  if (wait_status < 0)
    g_string_append_c(cell, '-');
  else if (WIFSIGNALED(wait_status)) {
    const char *name = sigabbrev_np(WTERMSIG(wait_status));
    if (name)
      g_string_append_printf(cell, "SIG%s", name);
    else
      g_string_append_printf(cell, "signal %d", WTERMSIG(wait_status));
  } else
    g_string_append_printf(cell, "exit %d", WEXITSTATUS(wait_status));
}

/* One row: 79 columns at most for every value up to 7-digit pids, 8-digit
 * restart counts and 9999.9 CPU seconds. */
static void text_row(const PoolChildStatus *c, GString *out)
{
  g_autoptr(GString) cell = g_string_new(NULL);
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append_printf(out, "%4u %7d %-8s ", c->slot, (int) c->pid,
                         pool_child_state_name(c->state));
  append_local_time(out, c->started_us, "%H:%M:%S");
  g_string_append_c(out, ' ');
  append_duration(cell, c->age_seconds);
  column(out, -7, cell);
  g_string_append_printf(out, " %8" G_GUINT64_FORMAT " ", c->slot_restarts);
  g_string_truncate(cell, 0);
  describe_last_exit(cell, c->last_exit_status);
  column(out, -9, cell);
  g_string_append_c(out, ' ');
  g_string_truncate(cell, 0);
  append_size(cell, c->rss_bytes);
  column(out, 6, cell);
  g_string_append_c(out, ' ');
  g_string_truncate(cell, 0);
  append_size(cell, c->pss_bytes);
  column(out, 6, cell);
  g_string_append_printf(out, " %7s\n", g_ascii_formatd(buf, sizeof buf, "%.1f",
                                                        c->cpu_seconds));
}

void status_format_text(const PoolStatus *st, GString *out)
{
  text_header(st, out);
  g_string_append(out, "\nSLOT     PID STATE    STARTED  AGE     RESTARTS LAST-EXIT"
                       "    RSS    PSS     CPU\n");
  for (guint i = 0; i < st->n_children; i++)
    text_row(&st->children[i], out);
}

/* ---- JSON ---------------------------------------------------------------- */

typedef struct {
  GString *out;
  bool first;
} Json;

static void json_key(Json *j, const char *key)
{
  g_string_append(j->out, j->first ? "" : ", ");
  j->first = false;
  report_json_string(j->out, key);
  g_string_append(j->out, ": ");
}

static void json_str(Json *j, const char *key, const char *value)
{
  json_key(j, key);
  report_json_string(j->out, or_empty(value));
}

static void json_uint(Json *j, const char *key, guint64 value)
{
  json_key(j, key);
  g_string_append_printf(j->out, "%" G_GUINT64_FORMAT, value);
}

static void json_int(Json *j, const char *key, gint64 value)
{
  json_key(j, key);
  g_string_append_printf(j->out, "%" G_GINT64_FORMAT, value);
}

static void json_double(Json *j, const char *key, double value)
{
  json_key(j, key);
  append_double(j->out, value);
}

/* A wall-clock time in seconds since the epoch; null for 0 (never). */
static void json_time(Json *j, const char *key, gint64 wall_us)
{
  json_key(j, key);
  if (wall_us > 0)
    append_double(j->out, seconds(wall_us));
  else
    g_string_append(j->out, "null");
}

static void json_child(const PoolChildStatus *c, GString *out)
{
  Json j = { out, true };

  g_string_append_c(out, '{');
  json_uint(&j, "slot", c->slot);
  json_int(&j, "pid", c->pid);
  json_str(&j, "state", pool_child_state_name(c->state));
  json_time(&j, "started", c->started_us);
  json_double(&j, "age_seconds", c->age_seconds);
  json_uint(&j, "slot_restarts", c->slot_restarts);
  json_int(&j, "last_exit_code", exit_code(c->last_exit_status));
  json_uint(&j, "rss_bytes", c->rss_bytes);
  json_uint(&j, "pss_bytes", c->pss_bytes);
  json_double(&j, "cpu_seconds", c->cpu_seconds);
  g_string_append_c(out, '}');
}

void status_format_json(const PoolStatus *st, GString *out)
{
  Json j = { out, true };

  g_string_append_c(out, '{');
  json_str(&j, "instance", st->instance);
  json_str(&j, "version", st->version);
  json_str(&j, "pm", st->pm);
  json_uint(&j, "min_children", st->min_children);
  json_uint(&j, "max_children", st->max_children);
  json_str(&j, "listen", st->listen);
  json_str(&j, "listen_source", st->listen_source);
  json_uint(&j, "backlog", st->backlog);
  json_key(&j, "accept_queue");
  if (st->queue_known)
    g_string_append_printf(out, "%u", st->accept_queue);
  else
    g_string_append(out, "null");
  json_uint(&j, "max_accept_queue", st->max_accept_queue);
  json_uint(&j, "starting", st->starting);
  json_uint(&j, "idle", st->idle);
  json_uint(&j, "busy", st->busy);
  json_uint(&j, "retiring", st->retiring);
  json_uint(&j, "total", st->total);
  json_uint(&j, "max_children_reached", st->max_children_reached);
  json_double(&j, "seconds_at_max", st->seconds_at_max);
  json_uint(&j, "restarts", st->restarts);
  json_uint(&j, "quick_failures", st->quick_failures);
  json_uint(&j, "give_ups", st->give_ups);
  json_uint(&j, "spawn_failures", st->spawn_failures);
  json_uint(&j, "reloads", st->reloads);
  json_time(&j, "last_reload", st->last_reload_us);
  json_str(&j, "last_reload_result", st->last_reload_result);
  json_time(&j, "start_time", st->start_time_us);
  json_double(&j, "uptime_seconds", st->uptime_seconds);
  json_key(&j, "children");
  g_string_append_c(out, '[');
  for (guint i = 0; i < st->n_children; i++) {
    if (i)
      g_string_append(out, ", ");
    json_child(&st->children[i], out);
  }
  g_string_append(out, "]}\n");
}

/* ---- Prometheus ---------------------------------------------------------- */

#define PROM_PREFIX "spawn_fcgi_"

static void prom_family(GString *out, const char *name, const char *type, const char *help)
{
  g_string_append_printf(out, "# HELP " PROM_PREFIX "%s %s\n# TYPE " PROM_PREFIX "%s %s\n",
                         name, help, name, type);
}

/* A label value: valid UTF-8, with backslash, double quote and newline
 * escaped as the exposition format asks; other control characters, which
 * would reach the terminal of whoever reads the metrics, become U+FFFD. */
static void prom_label_value(GString *out, const char *value)
{
  /* Most values (numbers, names) are valid already: no copy for them. */
  g_autofree char *copy = g_utf8_validate(or_empty(value), -1, NULL)
                          ? NULL : g_utf8_make_valid(value, -1);
  const char *valid = copy ? copy : or_empty(value);

  for (const char *p = valid; *p; p++) {
    if (*p == '\\')
      g_string_append(out, "\\\\");
    else if (*p == '"')
      g_string_append(out, "\\\"");
    else if (*p == '\n')
      g_string_append(out, "\\n");
    else if ((unsigned char) *p < 0x20 || *p == 0x7f)
      g_string_append(out, "\xef\xbf\xbd");
    else
      g_string_append_c(out, *p);
  }
}

static void prom_label(GString *out, bool *first, const char *name, const char *value)
{
  g_string_append_c(out, *first ? '{' : ',');
  g_string_append(out, name);
  g_string_append(out, "=\"");
  prom_label_value(out, value);
  g_string_append_c(out, '"');
  *first = false;
}

/* name{labels} value; labels: NULL-terminated name, value pairs. */
static void prom_sample(GString *out, const char *name, double value,
                        const char *const *labels)
{
  bool first = true;

  g_string_append(out, PROM_PREFIX);
  g_string_append(out, name);
  for (gsize i = 0; labels && labels[i]; i += 2)
    prom_label(out, &first, labels[i], labels[i + 1]);
  if (!first)
    g_string_append_c(out, '}');
  g_string_append_c(out, ' ');
  if (value == (double) (gint64) value)
    append_int(out, (gint64) value);
  else
    append_double(out, value);
  g_string_append_c(out, '\n');
}

static void prom_gauge(GString *out, const char *name, const char *help, double value)
{
  prom_family(out, name, "gauge", help);
  prom_sample(out, name, value, NULL);
}

static void prom_counter(GString *out, const char *name, const char *help, double value)
{
  prom_family(out, name, "counter", help);
  prom_sample(out, name, value, NULL);
}

static void prom_pool(const PoolStatus *st, GString *out)
{
  const char *info[] = { "instance", or_empty(st->instance), "version", or_empty(st->version),
                         "pm", or_empty(st->pm), "listen", or_empty(st->listen),
                         "listen_source", or_empty(st->listen_source), NULL };

  prom_family(out, "info", "gauge", "The pool: instance name, version, pm mode, listening "
              "address and where it came from (always 1).");
  prom_sample(out, "info", 1, info);
  prom_gauge(out, "children_min", "Least number of children the pool keeps.",
             st->min_children);
  prom_gauge(out, "children_max", "Most children the pool may run.", st->max_children);
  prom_gauge(out, "listen_backlog", "Backlog of the listening socket.", st->backlog);
  if (st->queue_known) {
    prom_gauge(out, "accept_queue", "Connections waiting to be accepted now.",
               st->accept_queue);
    prom_gauge(out, "accept_queue_max", "Most connections seen waiting since the start.",
               st->max_accept_queue);
  }

  prom_family(out, "children", "gauge", "Children by state.");
  const guint by_state[] = { [POOL_CHILD_STARTING] = st->starting, [POOL_CHILD_IDLE] = st->idle,
                             [POOL_CHILD_BUSY] = st->busy, [POOL_CHILD_RETIRING] = st->retiring };
  for (gsize i = 0; i < G_N_ELEMENTS(by_state); i++)
    prom_sample(out, "children", by_state[i],
                (const char *[]) { "state", state_names[i], NULL });

  prom_counter(out, "max_children_reached_total",
               "Times the pool reached its maximum while connections waited.",
               (double) st->max_children_reached);
  prom_counter(out, "max_children_seconds_total", "Seconds spent at the maximum.",
               st->seconds_at_max);
  prom_counter(out, "restarts_total", "Children started again after an exit.",
               (double) st->restarts);
  prom_counter(out, "quick_failures_total", "Children that failed soon after their start.",
               (double) st->quick_failures);
  prom_counter(out, "give_ups_total", "Times the pool gave up after quick failures.",
               (double) st->give_ups);
  prom_counter(out, "spawn_failures_total", "Children that could not be started (fork "
               "or launch failed before exec).", (double) st->spawn_failures);
  prom_counter(out, "reloads_total", "Reloads (SIGHUP) started.", (double) st->reloads);
  if (st->last_reload_us > 0)
    prom_gauge(out, "last_reload_timestamp_seconds", "Start of the last reload, "
               "seconds since the epoch.", seconds(st->last_reload_us));
  prom_family(out, "last_reload_result", "gauge", "Outcome of the last reload: 1 for the "
              "current one.");
  for (gsize i = 0; i < G_N_ELEMENTS(reload_results); i++)
    prom_sample(out, "last_reload_result",
                g_strcmp0(st->last_reload_result, reload_results[i]) == 0,
                (const char *[]) { "result", reload_results[i], NULL });
  prom_gauge(out, "start_time_seconds", "Start of the supervisor, seconds since the epoch.",
             seconds(st->start_time_us));
  prom_gauge(out, "uptime_seconds", "Seconds since the supervisor started.",
             st->uptime_seconds);
}

typedef double (*ChildValue)(const PoolChildStatus *c);

static double child_start(const PoolChildStatus *c) { return seconds(c->started_us); }
static double child_age(const PoolChildStatus *c) { return c->age_seconds; }
static double child_restarts(const PoolChildStatus *c) { return (double) c->slot_restarts; }
static double child_exit(const PoolChildStatus *c) { return exit_code(c->last_exit_status); }
static double child_rss(const PoolChildStatus *c) { return (double) c->rss_bytes; }
static double child_pss(const PoolChildStatus *c) { return (double) c->pss_bytes; }
static double child_cpu(const PoolChildStatus *c) { return c->cpu_seconds; }

static void prom_children(const PoolStatus *st, GString *out)
{
  static const struct {
    const char *name, *type, *help;
    ChildValue value;
  } series[] = {
    { "child_start_time_seconds", "gauge", "Start of the child, seconds since the epoch.",
      child_start },
    { "child_age_seconds", "gauge", "Seconds since the child started.", child_age },
    { "child_slot_restarts_total", "counter", "Restarts of the child's slot.",
      child_restarts },
    { "child_slot_last_exit_code", "gauge", "Exit status of the slot's previous child "
      "(128 + signal when killed; -1: none).", child_exit },
    { "child_resident_memory_bytes", "gauge", "Resident memory (RSS) of the child.",
      child_rss },
    { "child_proportional_memory_bytes", "gauge", "Proportional set size (PSS) of the "
      "child: its share of memory, shared pages divided among their users.", child_pss },
    { "child_cpu_seconds_total", "counter", "User and system CPU time of the child.",
      child_cpu },
  };
  char slot[16], pid[16];

  prom_family(out, "child_state", "gauge", "State of each child: 1 for its current state.");
  for (guint i = 0; i < st->n_children; i++) {
    const PoolChildStatus *c = &st->children[i];
    g_snprintf(slot, sizeof slot, "%u", c->slot);
    g_snprintf(pid, sizeof pid, "%d", (int) c->pid);
    for (gsize s = 0; s < G_N_ELEMENTS(state_names); s++)
      prom_sample(out, "child_state", c->state == (PoolChildState) s,
                  (const char *[]) { "slot", slot, "pid", pid, "state", state_names[s], NULL });
  }
  for (gsize k = 0; k < G_N_ELEMENTS(series); k++) {
    prom_family(out, series[k].name, series[k].type, series[k].help);
    for (guint i = 0; i < st->n_children; i++) {
      const PoolChildStatus *c = &st->children[i];
      g_snprintf(slot, sizeof slot, "%u", c->slot);
      g_snprintf(pid, sizeof pid, "%d", (int) c->pid);
      prom_sample(out, series[k].name, series[k].value(c),
                  (const char *[]) { "slot", slot, "pid", pid, NULL });
    }
  }
}

void status_format_prometheus(const PoolStatus *st, GString *out)
{
  prom_pool(st, out);
  prom_children(st, out);
}

/* ---- summary ------------------------------------------------------------- */

char *status_summary(const PoolStatus *st, const char *phase)
{
  GString *out = g_string_new(NULL);

  if (st->queue_known) {
    g_string_append_printf(out, "%u children: %u busy, %u idle", st->total, st->busy,
                           st->idle);
    if (st->starting)
      g_string_append_printf(out, ", %u starting", st->starting);
    if (st->retiring)
      g_string_append_printf(out, ", %u retiring", st->retiring);
    g_string_append_printf(out, "; queue %u", st->accept_queue);
  } else
    g_string_append_printf(out, "%u children running", st->total);
  g_string_append_printf(out, "; %" G_GUINT64_FORMAT " restarts", st->restarts);
  if (phase)
    g_string_append_printf(out, "; %s", phase);
  return g_string_free(out, FALSE);
}

/* ---- /proc --------------------------------------------------------------- */

/* "NAME:   1234 kB" at the start of line, in bytes: digits only, no
 * sign, and a size in bytes that fits. */
static bool parse_kb_field(const char *line, const char *name, guint64 *bytes)
{
  gsize name_len = strlen(name);
  char *end;

  if (strncmp(line, name, name_len) != 0 || line[name_len] != ':')
    return false;
  const char *digits = line + name_len + 1;
  digits += strspn(digits, " \t");
  if (!g_ascii_isdigit(digits[0]))
    return false;
  errno = 0;
  guint64 kb = g_ascii_strtoull(digits, &end, 10);
  if (errno != 0 || end == digits || strncmp(end, " kB", 3) != 0 || kb > G_MAXUINT64 / 1024)
    return false;
  *bytes = kb * 1024;
  return true;
}

gboolean status_parse_smaps_rollup(const char *text, guint64 *rss, guint64 *pss)
{
  bool have_rss = false, have_pss = false;

  for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    if (parse_kb_field(line, "Rss", rss))
      have_rss = true;
    else if (parse_kb_field(line, "Pss", pss))
      have_pss = true;
  }
  return have_rss && have_pss;
}

gboolean status_parse_proc_stat(const char *text, guint64 *ticks, guint64 *rss_pages)
{
  /* The command name may hold spaces and parentheses: fields start after
   * the last ')'.  utime and stime are fields 14 and 15 of the line, rss
   * field 24. */
  const char *p = strrchr(text, ')');
  guint64 field[25] = { 0 };
  int n = 3;                 /* p + 2 is field 3, the state */

  if (p == NULL || p[1] != ' ' || p[2] == '\0')
    return FALSE;
  p += 2;
  /* Fields 4 to 24 are numbers (some signed: those are not used). */
  for (p = strchr(p, ' '); p && n < 24; p = strchr(p, ' ')) {
    char *end;
    n++;
    field[n] = g_ascii_strtoull(p + 1, &end, 10);
    if (end == p + 1)
      field[n] = 0;
    p = end;
  }
  if (n < 24)
    return FALSE;
  *ticks = field[14] + field[15];
  *rss_pages = field[24];
  return TRUE;
}

/* A small /proc file into buf (NUL-terminated); FALSE when it cannot be
 * read (the child is gone). */
static gboolean read_proc_file(pid_t pid, const char *name, char *buf, size_t size)
{
  char path[64];
  size_t len = 0;
  ssize_t n;

  g_snprintf(path, sizeof path, "/proc/%d/%s", (int) pid, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return FALSE;
  while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      close(fd);
      return FALSE;
    }
    len += (size_t) n;
  }
  close(fd);
  buf[len] = '\0';
  return TRUE;
}

static long ticks_per_second(void)
{
  static long ticks;
  if (ticks <= 0)
    ticks = sysconf(_SC_CLK_TCK);
  return ticks;
}

/* RSS and CPU time, from one cheap file: read every time. */
static void read_rss_and_cpu(PoolChildStatus *c)
{
  static long page_size;
  char buf[1024];
  guint64 pages, ticks;

  if (page_size <= 0)
    page_size = sysconf(_SC_PAGESIZE);
  if (read_proc_file(c->pid, "stat", buf, sizeof buf) &&
      status_parse_proc_stat(buf, &ticks, &pages) && ticks_per_second() > 0) {
    c->cpu_seconds = (double) ticks / (double) ticks_per_second();
    c->rss_bytes = pages * (guint64) page_size;
  }
}

static guint64 read_pss(pid_t pid)
{
  char buf[4096];
  guint64 rss = 0, pss = 0;

  if (read_proc_file(pid, "smaps_rollup", buf, sizeof buf))
    status_parse_smaps_rollup(buf, &rss, &pss);
  return pss;
}

void pool_status_read_proc(PoolStatus *st)
{
  for (guint i = 0; i < st->n_children; i++) {
    PoolChildStatus *c = &st->children[i];
    if (c->pid <= 0)
      continue;
    read_rss_and_cpu(c);
    c->pss_bytes = read_pss(c->pid);
  }
}

typedef struct {
  pid_t pid;                 /* the key in by_pid points here */
  guint64 pss;
  gint64 read_us;            /* monotonic */
  bool read;                 /* read_us and pss are set */
  bool seen;                 /* still a child at the last call */
} PssEntry;

/* g_int_hash reads the pid through its key pointer */
G_STATIC_ASSERT(sizeof(pid_t) == sizeof(gint));

struct StatusPssCache {
  GHashTable *by_pid;        /* &entry->pid -> PssEntry */
};

StatusPssCache *status_pss_cache_new(void)
{
  StatusPssCache *cache = g_new0(StatusPssCache, 1);
  cache->by_pid = g_hash_table_new_full(g_int_hash, g_int_equal, NULL, g_free);
  return cache;
}

void status_pss_cache_free(StatusPssCache *cache)
{
  if (cache == NULL)
    return;
  g_hash_table_unref(cache->by_pid);
  g_free(cache);
}

static gboolean forget_unseen(gpointer key G_GNUC_UNUSED, gpointer value,
                              gpointer data G_GNUC_UNUSED)
{
  PssEntry *e = value;
  bool gone = !e->seen;
  e->seen = false;
  return gone;
}

void pool_status_read_proc_cached(PoolStatus *st, StatusPssCache *cache)
{
  gint64 now = g_get_monotonic_time();
  gint64 max_age = (gint64) STATUS_PSS_MAX_AGE_S * G_USEC_PER_SEC;

  for (guint i = 0; i < st->n_children; i++) {
    PoolChildStatus *c = &st->children[i];
    if (c->pid <= 0)
      continue;
    read_rss_and_cpu(c);
    PssEntry *e = g_hash_table_lookup(cache->by_pid, &c->pid);
    if (e == NULL) {
      e = g_new0(PssEntry, 1);
      e->pid = c->pid;
      g_hash_table_insert(cache->by_pid, &e->pid, e);
    }
    e->seen = true;
    c->pss_bytes = e->pss;
  }
  /* Refresh the stalest, within the budget (at least one). */
  for (guint n = 0; n == 0 || g_get_monotonic_time() - now < STATUS_PSS_BUDGET_US; n++) {
    PoolChildStatus *oldest = NULL;
    PssEntry *oldest_entry = NULL;
    for (guint i = 0; i < st->n_children; i++) {
      PoolChildStatus *c = &st->children[i];
      PssEntry *e = c->pid > 0 ? g_hash_table_lookup(cache->by_pid, &c->pid) : NULL;
      if (e && (!e->read || now - e->read_us >= max_age) &&
          (!oldest_entry || !e->read || e->read_us < oldest_entry->read_us)) {
        oldest = c;
        oldest_entry = e;
      }
    }
    if (oldest == NULL)
      break;
    oldest_entry->pss = oldest->pss_bytes = read_pss(oldest->pid);
    oldest_entry->read_us = now;
    oldest_entry->read = true;
  }
  g_hash_table_foreach_remove(cache->by_pid, forget_unseen, NULL);
}
