/* What every libFuzzer target over GLib code shares: GLib warnings and
 * criticals are bugs, so they abort (which libFuzzer reports with the
 * input) instead of GLib's breakpoint trap. */
#pragma once

#include <glib.h>
#include <stdlib.h>

static GLogWriterOutput fuzz_abort_on_warning(GLogLevelFlags level, const GLogField *fields,
                                              gsize n_fields, gpointer data)
{
  GLogWriterOutput out = g_log_writer_standard_streams(level, fields, n_fields, data);
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    abort();
  return out;
}

static inline void fuzz_abort_on_glib_warnings(void)
{
  g_log_set_writer_func(fuzz_abort_on_warning, NULL, NULL);
}
