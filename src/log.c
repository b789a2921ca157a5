/* log: messages on stderr, with journal priorities.  See log.h. */
#include "config.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static gboolean to_journal;

void log_init(void)
{
  const char *js = g_getenv("JOURNAL_STREAM");
  g_auto(GStrv) parts = js ? g_strsplit(js, ":", 3) : NULL;
  guint64 dev, ino;
  struct stat st;

  /* "DEV:INO" of the journal's stream, which must be our stderr. */
  to_journal = parts != NULL && g_strv_length(parts) == 2 &&
               g_ascii_string_to_unsigned(parts[0], 10, 0, G_MAXUINT64, &dev, NULL) &&
               g_ascii_string_to_unsigned(parts[1], 10, 0, G_MAXUINT64, &ino, NULL) &&
               fstat(STDERR_FILENO, &st) == 0 &&
               (guint64) st.st_dev == dev && (guint64) st.st_ino == ino;
}

static void emit(int priority, const char *fmt, va_list ap) G_GNUC_PRINTF(2, 0);

static void emit(int priority, const char *fmt, va_list ap)
{
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  /* Warnings say so in the text too, for readers without priorities. */
  const char *kind = priority == LOG_WARNING ? "warning: " : "";
  if (to_journal)
    fprintf(stderr, "<%d>spawn-fcgi: %s%s\n", priority, kind, msg);
  else
    fprintf(stderr, "spawn-fcgi: %s%s\n", kind, msg);
  fflush(stderr);
}

/* One line, on the stack and written with one write(2). */
static void emit_unbuffered(int priority, const char *msg)
{
  char line[1100];

  const char *kind = priority == LOG_WARNING ? "warning: " : "";
  int n = to_journal ? snprintf(line, sizeof line, "<%d>spawn-fcgi: %s%s\n", priority, kind, msg)
                     : snprintf(line, sizeof line, "spawn-fcgi: %s%s\n", kind, msg);
  if (n > 0) {
    ssize_t w G_GNUC_UNUSED = write(STDERR_FILENO, line, MIN((size_t) n, sizeof line - 1));
  }
}

#define DEFINE_LOG(name, priority)                                      \
  void name(const char *fmt, ...)                                       \
  {                                                                     \
    va_list ap;                                                         \
    va_start(ap, fmt);                                                  \
    emit(priority, fmt, ap);                                            \
    va_end(ap);                                                         \
  }

DEFINE_LOG(log_error, LOG_ERR)
DEFINE_LOG(log_warning, LOG_WARNING)
DEFINE_LOG(log_notice, LOG_NOTICE)
DEFINE_LOG(log_info, LOG_INFO)

void log_warning_unbuffered(const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  /* Formatted where the va_list is started and ended, not handed on.
   * clang-tidy 14's valist checker calls ap uninitialised here only when
   * it has analysed another file first in the same run (alone, log.c is
   * clean): a false positive. */
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);  // NOLINT(clang-analyzer-valist.Uninitialized)
  va_end(ap);
  emit_unbuffered(LOG_WARNING, msg);
}
