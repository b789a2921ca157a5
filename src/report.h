/* report: a small structured printer for --check, as indented text for
 * people or as JSON for tools, from the same calls.
 *
 *   section "socket" { key: value ... } ...
 *
 * Text:  "socket:\n  path: /run/x.sock\n"
 * JSON:  {"socket": {"path": "/run/x.sock"}} */
#pragma once

#include <glib.h>
#include <stdbool.h>

typedef struct {
  GString *out;
  bool json;
  bool first_section;
  bool first_key;
  bool open;
} Report;

void report_init(Report *r, GString *out, bool json);
void report_section(Report *r, const char *name);
void report_str(Report *r, const char *key, const char *value);   /* NULL: null */
void report_int(Report *r, const char *key, gint64 value);
void report_bool(Report *r, const char *key, bool value);
void report_strv(Report *r, const char *key, const char *const *values);
void report_int_list(Report *r, const char *key, const guint32 *values, gsize n);
void report_finish(Report *r);

/* s as a JSON string literal: invalid UTF-8 replaced by U+FFFD, control
 * characters escaped. */
void report_json_string(GString *out, const char *s);
