/* unix-diag: which file a unix socket is bound to.  See unix-diag.h. */
#include "config.h"

#include "unix-diag.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The kernel reports an internal dev_t: 12 bits major, 20 bits minor. */
static dev_t from_kernel_dev(uint32_t dev)
{
  return makedev(dev >> 20, dev & 0xfffff);
}

static int ask(int nl, uint32_t ino)
{
  struct {
    struct nlmsghdr nlh;
    struct unix_diag_req req;
  } msg = {
    .nlh = {
      .nlmsg_len = sizeof msg,
      .nlmsg_type = SOCK_DIAG_BY_FAMILY,
      .nlmsg_flags = NLM_F_REQUEST,
      .nlmsg_seq = 1,
    },
    .req = {
      .sdiag_family = AF_UNIX,
      .udiag_states = ~0U,
      .udiag_ino = ino,
      .udiag_show = UDIAG_SHOW_VFS,
      .udiag_cookie = { ~0U, ~0U },   /* no cookie check */
    },
  };
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  if (sendto(nl, &msg, sizeof msg, 0, (struct sockaddr *) &kernel, sizeof kernel) < 0)
    return -errno;
  return 0;
}

/* The UNIX_DIAG_VFS attribute of the answer about socket inode ino. */
static int parse(const void *buf, size_t len, uint32_t ino, dev_t *dev, ino_t *file_ino)
{
  for (const struct nlmsghdr *h = buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      const struct nlmsgerr *e = NLMSG_DATA(h);
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e))
        return -EBADMSG;
      return e->error < 0 ? e->error : -EBADMSG;
    }
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_seq != 1 ||
        h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
      continue;
    const struct unix_diag_msg *m = NLMSG_DATA(h);
    if (m->udiag_family != AF_UNIX || m->udiag_ino != ino)
      continue;
    int attr_len = (int) (h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
    for (const struct rtattr *a = (const struct rtattr *) (m + 1); RTA_OK(a, attr_len);
         a = RTA_NEXT(a, attr_len)) {
      if (a->rta_type == UNIX_DIAG_VFS && RTA_PAYLOAD(a) >= sizeof(struct unix_diag_vfs)) {
        const struct unix_diag_vfs *vfs = RTA_DATA(a);
        *dev = from_kernel_dev(vfs->udiag_vfs_dev);
        *file_ino = vfs->udiag_vfs_ino;
        return 0;
      }
    }
    return -ENODATA;   /* the socket has no file */
  }
  return -EBADMSG;
}

int unix_diag_bound_file(int sock_fd, dev_t *dev, ino_t *ino)
{
  struct stat st;
  /* aligned for struct nlmsghdr; one answer about one socket fits */
  uint32_t buf[2048];

  if (fstat(sock_fd, &st) < 0)
    return -errno;
  if (!S_ISSOCK(st.st_mode) || st.st_ino > UINT32_MAX)
    return -ENOTSOCK;

  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0)
    return -errno;
  int rc = ask(nl, (uint32_t) st.st_ino);
  if (rc == 0) {
    struct sockaddr_nl from = { 0 };
    socklen_t from_len = sizeof from;
    ssize_t n;
    do
      n = recvfrom(nl, buf, sizeof buf, 0, (struct sockaddr *) &from, &from_len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
      rc = -errno;
    else if (from.nl_family != AF_NETLINK || from.nl_pid != 0)
      rc = -EBADMSG;   /* only the kernel answers */
    else
      rc = parse(buf, (size_t) n, (uint32_t) st.st_ino, dev, ino);
  }
  close(nl);
  return rc;
}
