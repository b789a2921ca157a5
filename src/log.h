/* log: the program's only voice on stderr.
 *
 * Every message starts with "spawn-fcgi: ".  When stderr is connected to
 * the journal (JOURNAL_STREAM names it), each line carries an sd-daemon
 * priority prefix so journalctl shows warnings and errors as such. */
#pragma once

#include <glib.h>

void log_init(void);

void log_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void log_warning(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void log_notice(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void log_info(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* log_warning() for the path between fork and exec: formats into a buffer
 * on the stack (lines are cut at 1 KiB) and writes it with one write(2),
 * without allocating and without stdio's lock. */
void log_warning_unbuffered(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
