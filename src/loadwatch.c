/* loadwatch: the accept queue and the busy children of a listening socket,
 * from sock_diag netlink and /proc.  See loadwatch.h. */
#include "config.h"

#include "loadwatch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>  /* TCP_LISTEN, TCP_ESTABLISHED, ... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

G_DEFINE_QUARK(spawn-fcgi-loadwatch-error, loadwatch_error)

/* The kernel never puts more than this into one netlink datagram of a dump
 * when the reader offers this much (net/netlink/af_netlink.c). */
#define DUMP_BUFFER_SIZE 32768

/* TCP states of a connection a child may still hold: from established to
 * closed by both sides.  Connections waiting in the accept queue have no
 * inode yet, so they never match a child's fd. */
#define TCP_HELD_STATES                                                 \
  ((1u << TCP_ESTABLISHED) | (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) | \
   (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING))

struct LoadWatch {
  int family;                 /* AF_UNIX, AF_INET, AF_INET6 */
  guint32 inode;              /* the listening socket's, as in socket:[INODE] */
  guint32 cookie[2];          /* sock_diag's cookie of the listening socket */

  /* AF_UNIX: the name the kernel reports for the listener (abstract names
   * start with a NUL byte) and the file it is bound to; its accepted
   * sockets carry both. */
  guint8 unix_name[sizeof ((struct sockaddr_un *) NULL)->sun_path];
  gsize unix_name_len;
  bool unix_has_vfs;
  struct unix_diag_vfs unix_vfs;

  /* AF_INET, AF_INET6: local port (host order) and address */
  guint16 port;
  guint32 addr[4];            /* network order, as in inet_diag_sockid */
  bool addr_any;              /* bound to 0.0.0.0 or :: */

  int netlink_fd;             /* -1: opened on the next request */
  guint32 seq;
  GArray *accepted;           /* guint32 inodes of connections accepted from the
                               * listener, sorted once collected */
  guint8 *buffer;             /* DUMP_BUFFER_SIZE bytes */
};

/* ---- netlink ------------------------------------------------------------- */

/* Called for each reply message; FALSE with error stops the request. */
typedef gboolean (*ReplyFunc)(LoadWatch *lw, const struct nlmsghdr *h,
                              gpointer data, GError **error);

static void netlink_close(LoadWatch *lw)
{
  if (lw->netlink_fd >= 0)
    close(lw->netlink_fd);
  lw->netlink_fd = -1;
}

static gboolean netlink_send(LoadWatch *lw, bool dump, const void *req, size_t req_len,
                             const void *bytecode, size_t bytecode_len, GError **error)
{
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  struct nlattr attr = {
    .nla_len = (guint16) (NLA_HDRLEN + bytecode_len),
    .nla_type = INET_DIAG_REQ_BYTECODE,
  };
  struct nlmsghdr h = {
    .nlmsg_len = (guint32) (NLMSG_LENGTH(req_len) +
                            (bytecode_len ? NLA_HDRLEN + bytecode_len : 0)),
    .nlmsg_type = SOCK_DIAG_BY_FAMILY,
    .nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0),
    .nlmsg_seq = ++lw->seq,
  };
  struct iovec iov[] = {
    { &h, NLMSG_HDRLEN },
    { (void *) req, req_len },
    { &attr, NLA_HDRLEN },
    { (void *) bytecode, bytecode_len },
  };
  struct msghdr msg = {
    .msg_name = &kernel,
    .msg_namelen = sizeof kernel,
    .msg_iov = iov,
    .msg_iovlen = bytecode_len ? 4 : 2,
  };

  /* the request structs are multiples of 4 bytes, so no padding is needed */
  G_STATIC_ASSERT(sizeof(struct unix_diag_req) % NLMSG_ALIGNTO == 0);
  G_STATIC_ASSERT(sizeof(struct inet_diag_req_v2) % NLMSG_ALIGNTO == 0);

  if (lw->netlink_fd < 0) {
    lw->netlink_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (lw->netlink_fd < 0) {
      int saved = errno;
      g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
                  "cannot open a sock_diag netlink socket: %s", g_strerror(saved));
      return FALSE;
    }
  }
  if (sendmsg(lw->netlink_fd, &msg, MSG_DONTWAIT) < 0) {
    int saved = errno;
    g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
                "cannot send a sock_diag request: %s", g_strerror(saved));
    return FALSE;
  }
  return TRUE;
}

/* Handles one datagram; *done once the answer is complete. */
static gboolean netlink_handle(LoadWatch *lw, size_t len, bool dump, ReplyFunc on_reply,
                               gpointer data, bool *done, GError **error)
{
  int left = (int) len;

  for (const struct nlmsghdr *h = (const struct nlmsghdr *) lw->buffer;
       NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    if (h->nlmsg_seq != lw->seq)
      continue;  /* left over from an earlier request */
    if (h->nlmsg_type == NLMSG_DONE) {
      *done = true;
      return TRUE;
    }
    if (h->nlmsg_type == NLMSG_ERROR) {
      const struct nlmsgerr *e = NLMSG_DATA(h);
      int err = h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) ? -e->error : EPROTO;
      /* ESTALE: the inode now belongs to another socket (cookie) */
      g_set_error(error, LOADWATCH_ERROR,
                  err == ENOENT || err == ESTALE ? LOADWATCH_ERROR_GONE
                                                 : LOADWATCH_ERROR_FAILED,
                  "sock_diag: %s", g_strerror(err));
      return FALSE;
    }
    if (!on_reply(lw, h, data, error))
      return FALSE;
    if (!dump) {
      *done = true;
      return TRUE;
    }
  }
  return TRUE;
}

/* Sends one request and passes each reply message to on_reply, reading
 * without ever waiting: the kernel queues each part of the answer before
 * the read that asks for it returns. */
static gboolean netlink_request(LoadWatch *lw, bool dump, const void *req, size_t req_len,
                                const void *bytecode, size_t bytecode_len,
                                ReplyFunc on_reply, gpointer data, GError **error)
{
  bool done = false;

  if (!netlink_send(lw, dump, req, req_len, bytecode, bytecode_len, error))
    goto fail;
  while (!done) {
    ssize_t n = recv(lw->netlink_fd, lw->buffer, DUMP_BUFFER_SIZE, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int saved = errno;
      g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
                  "cannot read the sock_diag answer: %s", g_strerror(saved));
      goto fail;
    }
    if (n == 0 || n > DUMP_BUFFER_SIZE) {
      g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
                  n == 0 ? "the sock_diag answer ended early"
                         : "a sock_diag answer did not fit the buffer");
      goto fail;
    }
    if (!netlink_handle(lw, (size_t) n, dump, on_reply, data, &done, error))
      goto fail;
  }
  return TRUE;

fail:
  /* an unfinished dump would answer the next request: start afresh */
  netlink_close(lw);
  return FALSE;
}

/* Fills tb[type] with the attributes following a reply's fixed part. */
static void attrs_parse(const struct nlmsghdr *h, size_t fixed,
                        const struct nlattr **tb, int max)
{
  const guint8 *p = (const guint8 *) NLMSG_DATA(h) + NLMSG_ALIGN(fixed);
  const guint8 *end = (const guint8 *) h + h->nlmsg_len;

  memset(tb, 0, sizeof *tb * (size_t) (max + 1));
  while (end - p >= NLA_HDRLEN) {
    const struct nlattr *a = (const struct nlattr *) p;
    if (a->nla_len < NLA_HDRLEN || a->nla_len > end - p)
      break;
    if (a->nla_type <= max)
      tb[a->nla_type] = a;
    p += NLA_ALIGN(a->nla_len);
  }
}

static const void *attr_data(const struct nlattr *a, size_t need)
{
  if (a == NULL || a->nla_len < NLA_HDRLEN + need)
    return NULL;
  return (const guint8 *) a + NLA_HDRLEN;
}

static gboolean reply_too_short(const struct nlmsghdr *h, size_t fixed, GError **error)
{
  if (h->nlmsg_len >= NLMSG_LENGTH(fixed))
    return FALSE;
  g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
              "sock_diag sent a short answer");
  return TRUE;
}

/* ---- unix sockets -------------------------------------------------------- */

typedef struct {
  bool learn;       /* loadwatch_new: take the cookie, name and file */
  LoadQueue *queue;
} UnixListenerReply;

static gboolean unix_listener_reply(LoadWatch *lw, const struct nlmsghdr *h,
                                    gpointer data, GError **error)
{
  UnixListenerReply *r = data;
  const struct unix_diag_msg *m = NLMSG_DATA(h);
  const struct nlattr *tb[UNIX_DIAG_MAX + 1];

  if (reply_too_short(h, sizeof *m, error))
    return FALSE;
  if (m->udiag_ino != lw->inode || m->udiag_state != TCP_LISTEN) {
    g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED,
                "sock_diag describes another socket than the listening one");
    return FALSE;
  }
  attrs_parse(h, sizeof *m, tb, UNIX_DIAG_MAX);
  if (r->learn) {
    const struct nlattr *name = tb[UNIX_DIAG_NAME];
    const struct unix_diag_vfs *vfs = attr_data(tb[UNIX_DIAG_VFS], sizeof *vfs);
    gsize name_len = name ? name->nla_len - NLA_HDRLEN : 0;
    if (name_len == 0 || name_len > sizeof lw->unix_name) {
      g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED,
                  "sock_diag reports no usable name for the listening socket");
      return FALSE;
    }
    memcpy(lw->cookie, m->udiag_cookie, sizeof lw->cookie);
    memcpy(lw->unix_name, attr_data(name, 0), name_len);
    lw->unix_name_len = name_len;
    lw->unix_has_vfs = vfs != NULL;
    if (vfs)
      lw->unix_vfs = *vfs;
  }
  if (r->queue) {
    const struct unix_diag_rqlen *q = attr_data(tb[UNIX_DIAG_RQLEN], sizeof *q);
    if (q == NULL) {
      g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED,
                  "sock_diag reports no queue for the listening socket");
      return FALSE;
    }
    r->queue->queued = q->udiag_rqueue;
    r->queue->backlog = q->udiag_wqueue;
  }
  return TRUE;
}

/* Asks for the listening socket itself, by inode and cookie. */
static gboolean unix_listener_query(LoadWatch *lw, UnixListenerReply *r, GError **error)
{
  struct unix_diag_req req = {
    .sdiag_family = AF_UNIX,
    .udiag_states = 1u << TCP_LISTEN,
    .udiag_ino = lw->inode,
    .udiag_show = UDIAG_SHOW_RQLEN | (r->learn ? UDIAG_SHOW_NAME | UDIAG_SHOW_VFS : 0),
    .udiag_cookie = { lw->cookie[0], lw->cookie[1] },
  };
  return netlink_request(lw, false, &req, sizeof req, NULL, 0,
                         unix_listener_reply, r, error);
}

static gboolean unix_accepted_reply(LoadWatch *lw, const struct nlmsghdr *h,
                                    gpointer data G_GNUC_UNUSED, GError **error)
{
  const struct unix_diag_msg *m = NLMSG_DATA(h);
  const struct nlattr *tb[UNIX_DIAG_MAX + 1];

  if (reply_too_short(h, sizeof *m, error))
    return FALSE;
  if (m->udiag_ino == 0)
    return TRUE;
  attrs_parse(h, sizeof *m, tb, UNIX_DIAG_MAX);
  const struct nlattr *name = tb[UNIX_DIAG_NAME];
  if (name == NULL || (gsize) (name->nla_len - NLA_HDRLEN) != lw->unix_name_len ||
      memcmp(attr_data(name, 0), lw->unix_name, lw->unix_name_len) != 0)
    return TRUE;
  /* an old socket file of the same path is another listener */
  if (lw->unix_has_vfs) {
    const struct unix_diag_vfs *vfs = attr_data(tb[UNIX_DIAG_VFS], sizeof *vfs);
    if (vfs == NULL || vfs->udiag_vfs_ino != lw->unix_vfs.udiag_vfs_ino ||
        vfs->udiag_vfs_dev != lw->unix_vfs.udiag_vfs_dev)
      return TRUE;
  }
  g_array_append_val(lw->accepted, m->udiag_ino);
  return TRUE;
}

/* Connected sockets carrying the listener's name: the accepted ones (a
 * client's own socket has its own name, or none). */
static gboolean unix_collect_accepted(LoadWatch *lw, GError **error)
{
  struct unix_diag_req req = {
    .sdiag_family = AF_UNIX,
    .udiag_states = 1u << TCP_ESTABLISHED,
    .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS,
  };
  return netlink_request(lw, true, &req, sizeof req, NULL, 0,
                         unix_accepted_reply, NULL, error);
}

/* ---- TCP ----------------------------------------------------------------- */

/* Bytecode keeping only sockets whose local port is lw->port, so that a
 * dump costs no more than the sockets of this port. */
typedef struct {
  struct inet_diag_bc_op ge, ge_port, le, le_port;
} PortFilter;

static void port_filter_init(PortFilter *f, guint16 port)
{
  /* "yes" goes on to the next test, "no" jumps past the end: rejected */
  f->ge = (struct inet_diag_bc_op) { INET_DIAG_BC_S_GE, 8, sizeof *f + 4 };
  f->ge_port = (struct inet_diag_bc_op) { 0, 0, port };
  f->le = (struct inet_diag_bc_op) { INET_DIAG_BC_S_LE, 8, sizeof *f - 8 + 4 };
  f->le_port = (struct inet_diag_bc_op) { 0, 0, port };
}

static gboolean tcp_dump(LoadWatch *lw, guint32 states, ReplyFunc on_reply,
                         gpointer data, GError **error)
{
  struct inet_diag_req_v2 req = {
    .sdiag_family = (guint8) lw->family,
    .sdiag_protocol = IPPROTO_TCP,
    .idiag_states = states,
  };
  PortFilter filter;

  port_filter_init(&filter, lw->port);
  return netlink_request(lw, true, &req, sizeof req, &filter, sizeof filter,
                         on_reply, data, error);
}

static bool tcp_same_local(const LoadWatch *lw, const struct inet_diag_msg *m)
{
  if (ntohs(m->id.idiag_sport) != lw->port)
    return false;
  if (lw->addr_any)
    return true;
  if (lw->family == AF_INET)
    return m->id.idiag_src[0] == lw->addr[0];
  return memcmp(m->id.idiag_src, lw->addr, sizeof lw->addr) == 0;
}

typedef struct {
  bool learn;
  bool found;
  LoadQueue *queue;
} TcpListenerReply;

static gboolean tcp_listener_reply(LoadWatch *lw, const struct nlmsghdr *h,
                                   gpointer data, GError **error)
{
  TcpListenerReply *r = data;
  const struct inet_diag_msg *m = NLMSG_DATA(h);

  if (reply_too_short(h, sizeof *m, error))
    return FALSE;
  if (m->idiag_inode != lw->inode || !tcp_same_local(lw, m))
    return TRUE;
  if (r->learn)
    memcpy(lw->cookie, m->id.idiag_cookie, sizeof lw->cookie);
  else if (memcmp(lw->cookie, m->id.idiag_cookie, sizeof lw->cookie) != 0)
    return TRUE;
  r->found = true;
  if (r->queue) {
    r->queue->queued = m->idiag_rqueue;
    r->queue->backlog = m->idiag_wqueue;
  }
  return TRUE;
}

static gboolean tcp_listener_query(LoadWatch *lw, TcpListenerReply *r, GError **error)
{
  if (!tcp_dump(lw, 1u << TCP_LISTEN, tcp_listener_reply, r, error))
    return FALSE;
  if (!r->found) {
    g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_GONE,
                "sock_diag does not list the listening socket");
    return FALSE;
  }
  return TRUE;
}

static gboolean tcp_accepted_reply(LoadWatch *lw, const struct nlmsghdr *h,
                                   gpointer data G_GNUC_UNUSED, GError **error)
{
  const struct inet_diag_msg *m = NLMSG_DATA(h);

  if (reply_too_short(h, sizeof *m, error))
    return FALSE;
  if (m->idiag_inode != 0 && tcp_same_local(lw, m))
    g_array_append_val(lw->accepted, m->idiag_inode);
  return TRUE;
}

static gboolean tcp_collect_accepted(LoadWatch *lw, GError **error)
{
  return tcp_dump(lw, TCP_HELD_STATES, tcp_accepted_reply, NULL, error);
}

/* ---- the listening socket ------------------------------------------------ */

static gboolean describe_listener(LoadWatch *lw, int listen_fd, GError **error)
{
  struct stat st;
  int listening = 0, domain = 0;
  socklen_t len = sizeof listening;

  if (fstat(listen_fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
    g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED,
                "fd %d is not a socket", listen_fd);
    return FALSE;
  }
  if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
      !listening) {
    g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED,
                "fd %d is not a listening socket", listen_fd);
    return FALSE;
  }
  len = sizeof domain;
  if (getsockopt(listen_fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
    domain = AF_UNSPEC;
  lw->family = domain;
  lw->inode = (guint32) st.st_ino;
  memset(lw->cookie, 0xff, sizeof lw->cookie);  /* INET_DIAG_NOCOOKIE */

  if (domain == AF_UNIX) {
    UnixListenerReply r = { .learn = true };
    return unix_listener_query(lw, &r, error);
  }
  if (domain == AF_INET || domain == AF_INET6) {
    struct sockaddr_storage ss = { 0 };
    socklen_t ss_len = sizeof ss;
    TcpListenerReply r = { .learn = true };
    if (getsockname(listen_fd, (struct sockaddr *) &ss, &ss_len) < 0) {
      int saved = errno;
      g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
                  "cannot read the address of fd %d: %s", listen_fd, g_strerror(saved));
      return FALSE;
    }
    if (ss.ss_family != domain ||
        ss_len < (domain == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6))) {
      g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
                  "fd %d has no complete address of its family", listen_fd);
      return FALSE;
    }
    if (domain == AF_INET) {
      const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
      lw->port = ntohs(in->sin_port);
      lw->addr[0] = in->sin_addr.s_addr;
      lw->addr_any = in->sin_addr.s_addr == htonl(INADDR_ANY);
    } else {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
      lw->port = ntohs(in6->sin6_port);
      memcpy(lw->addr, &in6->sin6_addr, sizeof lw->addr);
      lw->addr_any = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    }
    return tcp_listener_query(lw, &r, error);
  }
  g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED,
              "fd %d is neither a unix nor an IPv4 or IPv6 socket", listen_fd);
  return FALSE;
}

LoadWatch *loadwatch_new(int listen_fd, GError **error)
{
  LoadWatch *lw = g_new0(LoadWatch, 1);

  lw->netlink_fd = -1;
  lw->accepted = g_array_new(FALSE, FALSE, sizeof(guint32));
  lw->buffer = g_malloc(DUMP_BUFFER_SIZE);
  if (!describe_listener(lw, listen_fd, error)) {
    loadwatch_free(lw);
    return NULL;
  }
  return lw;
}

void loadwatch_free(LoadWatch *lw)
{
  if (lw == NULL)
    return;
  netlink_close(lw);
  g_array_unref(lw->accepted);
  g_free(lw->buffer);
  g_free(lw);
}

gboolean loadwatch_queue(LoadWatch *lw, LoadQueue *out, GError **error)
{
  if (lw->family == AF_UNIX) {
    UnixListenerReply r = { .queue = out };
    return unix_listener_query(lw, &r, error);
  }
  TcpListenerReply r = { .queue = out };
  return tcp_listener_query(lw, &r, error);
}

/* ---- busy children ------------------------------------------------------- */

/* Parses "socket:[INODE]". */
static bool parse_socket_link(const char *link, guint32 *inode)
{
  unsigned long v;
  char *end;

  if (strncmp(link, "socket:[", 8) != 0)
    return false;
  errno = 0;
  v = strtoul(link + 8, &end, 10);
  if (errno != 0 || end == link + 8 || strcmp(end, "]") != 0 || v > G_MAXUINT32)
    return false;
  *inode = (guint32) v;
  return true;
}

static gint compare_inodes(gconstpointer a, gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
  return (x > y) - (x < y);
}

static bool is_accepted(const LoadWatch *lw, guint32 inode)
{
  return bsearch(&inode, lw->accepted->data, lw->accepted->len, sizeof inode,
                 compare_inodes) != NULL;
}

/* Whether pid has one of the accepted connections open.  A pid that is
 * gone holds nothing; its fds are read one at a time, nothing is kept. */
static gboolean pid_holds_accepted(LoadWatch *lw, pid_t pid, bool *holds, GError **error)
{
  char path[64];
  int dir_fd;
  DIR *dir;
  struct dirent *e;

  *holds = false;
  g_snprintf(path, sizeof path, "/proc/%ld/fd", (long) pid);
  dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    int saved = errno;
    if (saved == ENOENT || saved == ESRCH)
      return TRUE;
    g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
                "cannot read '%s': %s", path, g_strerror(saved));
    return FALSE;
  }
  dir = fdopendir(dir_fd);
  if (dir == NULL) {
    int saved = errno;
    close(dir_fd);
    g_set_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_FAILED,
                "cannot read '%s': %s", path, g_strerror(saved));
    return FALSE;
  }
  while (!*holds && (e = readdir(dir)) != NULL) {
    char link[32];
    guint32 inode;
    ssize_t n = readlinkat(dirfd(dir), e->d_name, link, sizeof link - 1);
    if (n < 0)
      continue;  /* ".", "..", or an fd closed meanwhile */
    link[n] = '\0';
    if (parse_socket_link(link, &inode) && is_accepted(lw, inode))
      *holds = true;
  }
  closedir(dir);
  return TRUE;
}

gboolean loadwatch_busy(LoadWatch *lw, const pid_t *pids, guint n,
                        bool *busy, GError **error)
{
  gboolean ok;

  g_array_set_size(lw->accepted, 0);
  ok = lw->family == AF_UNIX ? unix_collect_accepted(lw, error)
                             : tcp_collect_accepted(lw, error);
  if (ok)
    g_array_sort(lw->accepted, compare_inodes);
  for (guint i = 0; ok && i < n; i++) {
    busy[i] = false;
    if (lw->accepted->len > 0)
      ok = pid_holds_accepted(lw, pids[i], &busy[i], error);
  }
  g_array_set_size(lw->accepted, 0);
  return ok;
}
