/* report: text or JSON from one description.  See report.h. */
#include "config.h"

#include "report.h"

#include <string.h>

void report_init(Report *r, GString *out, bool json)
{
  memset(r, 0, sizeof *r);
  r->out = out;
  r->json = json;
  r->first_section = true;
  if (json)
    g_string_append_c(out, '{');
}

void report_json_string(GString *out, const char *s)
{
  /* Paths and names are bytes: invalid UTF-8 becomes U+FFFD, so that the
   * document stays valid JSON. */
  g_autofree char *valid = g_utf8_make_valid(s, -1);

  g_string_append_c(out, '"');
  for (const unsigned char *p = (const unsigned char *) valid; *p; p++) {
    switch (*p) {
    case '"': g_string_append(out, "\\\""); break;
    case '\\': g_string_append(out, "\\\\"); break;
    case '\n': g_string_append(out, "\\n"); break;
    case '\t': g_string_append(out, "\\t"); break;
    case '\r': g_string_append(out, "\\r"); break;
    default:
      if (*p < 0x20 || *p == 0x7f)
        g_string_append_printf(out, "\\u%04x", *p);
      else
        g_string_append_c(out, (char) *p);
    }
  }
  g_string_append_c(out, '"');
}

static void close_section(Report *r)
{
  if (r->open && r->json)
    g_string_append_c(r->out, '}');
  r->open = false;
}

void report_section(Report *r, const char *name)
{
  close_section(r);
  if (r->json) {
    if (!r->first_section)
      g_string_append(r->out, ", ");
    report_json_string(r->out, name);
    g_string_append(r->out, ": {");
  } else {
    g_string_append_printf(r->out, "%s:\n", name);
  }
  r->first_section = false;
  r->first_key = true;
  r->open = true;
}

static void key(Report *r, const char *name)
{
  if (r->json) {
    if (!r->first_key)
      g_string_append(r->out, ", ");
    report_json_string(r->out, name);
    g_string_append(r->out, ": ");
  } else {
    g_string_append_printf(r->out, "  %s: ", name);
  }
  r->first_key = false;
}

void report_str(Report *r, const char *name, const char *value)
{
  key(r, name);
  if (!r->json)
    g_string_append_printf(r->out, "%s\n", value ? value : "-");
  else if (value == NULL)
    g_string_append(r->out, "null");
  else
    report_json_string(r->out, value);
}

void report_int(Report *r, const char *name, gint64 value)
{
  key(r, name);
  g_string_append_printf(r->out, r->json ? "%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT "\n",
                         value);
}

void report_bool(Report *r, const char *name, bool value)
{
  key(r, name);
  if (r->json)
    g_string_append(r->out, value ? "true" : "false");
  else
    g_string_append(r->out, value ? "yes\n" : "no\n");
}

void report_strv(Report *r, const char *name, const char *const *values)
{
  key(r, name);
  if (r->json) {
    g_string_append_c(r->out, '[');
    for (gsize i = 0; values && values[i]; i++) {
      if (i)
        g_string_append(r->out, ", ");
      report_json_string(r->out, values[i]);
    }
    g_string_append_c(r->out, ']');
    return;
  }
  for (gsize i = 0; values && values[i]; i++) {
    g_autofree char *q = g_shell_quote(values[i]);
    g_string_append_printf(r->out, "%s%s", i ? " " : "", q);
  }
  g_string_append_c(r->out, '\n');
}

void report_int_list(Report *r, const char *name, const guint32 *values, gsize n)
{
  key(r, name);
  if (r->json)
    g_string_append_c(r->out, '[');
  for (gsize i = 0; i < n; i++)
    g_string_append_printf(r->out, "%s%u", i ? (r->json ? ", " : ",") : "", values[i]);
  g_string_append(r->out, r->json ? "]" : "\n");
}

void report_finish(Report *r)
{
  close_section(r);
  if (r->json)
    g_string_append(r->out, "}\n");
}
