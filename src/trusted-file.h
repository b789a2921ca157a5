/* trusted-file: may spawn-fcgi believe what a file says?
 *
 * The configuration file and the limits files decide what root does, so
 * only root (or the caller, when spawn-fcgi does not run as root) may be
 * able to change them.  As sshd's StrictModes: the file and every
 * directory above it must be owned by root or the caller and writable by
 * no group and nobody else.  A sticky directory (/tmp) may be writable by
 * others when what it holds on the way is owned by root or the caller:
 * nobody else can rename or remove that.  ACLs are not looked at. */
#pragma once

#include <glib.h>

/* NULL when the open file fd (named path, as the user gave it) may be
 * believed; otherwise why not, naming the file or directory at fault:
 * "'/etc/x.conf' is writable by others".  The directories checked are
 * those of the file's real path, which must still name the file fd. */
char *trusted_file_problem(int fd, const char *path);
