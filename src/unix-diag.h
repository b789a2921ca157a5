/* unix-diag: which file a unix socket is bound to, as the kernel knows it.
 *
 * A socket's address (getsockname) is only the path it was bound at; the
 * file now at that path may be another one.  sock_diag (NETLINK_SOCK_DIAG,
 * UDIAG_SHOW_VFS) reports the device and inode of the very file bind()
 * created, whatever was renamed or replaced since.  Comparing that with
 * fstat() of a descriptor proves which file is the socket's own. */
#pragma once

#include <sys/types.h>

/* The device and inode of the file that the unix socket sock_fd is bound
 * to.  0, or -errno: -ENODATA when the socket has no file (unbound, or an
 * abstract address); any other -errno when sock_diag cannot tell (-ENOENT
 * from a kernel without unix_diag). */
int unix_diag_bound_file(int sock_fd, dev_t *dev, ino_t *ino);
