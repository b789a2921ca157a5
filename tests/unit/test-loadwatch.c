/* Unit tests for the load signals (src/loadwatch.c), on real listening
 * sockets of the test process.  No root needed. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loadwatch.h"

#define BACKLOG 7
#define CLIENTS 3

/* ---- listening sockets --------------------------------------------------- */

static int listen_unix_at(const char *path)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(fd, >=, 0);
  g_strlcpy(un.sun_path, path, sizeof un.sun_path);
  g_assert_cmpint(bind(fd, (struct sockaddr *) &un, sizeof un), ==, 0);
  g_assert_cmpint(listen(fd, BACKLOG), ==, 0);
  return fd;
}

static int listen_unix_abstract(void)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int n = g_snprintf(un.sun_path + 1, sizeof un.sun_path - 1,
                     "spawn-fcgi-test-loadwatch-%ld-%u", (long) getpid(), g_random_int());
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(bind(fd, (struct sockaddr *) &un,
                       (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + n)), ==, 0);
  g_assert_cmpint(listen(fd, BACKLOG), ==, 0);
  return fd;
}

/* A bind() with no name gives a kernel-chosen abstract one ("\0" and five
 * hex digits), the oddest name a passed socket can have. */
static int listen_unix_autobound(void)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(bind(fd, (struct sockaddr *) &un, sizeof un.sun_family), ==, 0);
  g_assert_cmpint(listen(fd, BACKLOG), ==, 0);
  return fd;
}

/* -1 where the address family is not available. */
static int listen_tcp(int family, const char *address)
{
  struct sockaddr_storage ss = { .ss_family = (sa_family_t) family };
  socklen_t len;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *) &ss;
    g_assert_cmpint(inet_pton(AF_INET, address, &in->sin_addr), ==, 1);
    len = sizeof *in;
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
    g_assert_cmpint(inet_pton(AF_INET6, address, &in6->sin6_addr), ==, 1);
    len = sizeof *in6;
  }
  if (bind(fd, (struct sockaddr *) &ss, len) < 0) {
    close(fd);
    return -1;
  }
  g_assert_cmpint(listen(fd, BACKLOG), ==, 0);
  return fd;
}

/* Connects to the listener's own address (a wildcard one through the
 * loopback address of its family). */
static int connect_to(int listen_fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd;

  g_assert_cmpint(getsockname(listen_fd, (struct sockaddr *) &ss, &len), ==, 0);
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *) &ss;
    if (in->sin_addr.s_addr == htonl(INADDR_ANY))
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
      in6->sin6_addr = in6addr_loopback;
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(connect(fd, (struct sockaddr *) &ss, len), ==, 0);
  return fd;
}

static int connect_unix_path(const char *path)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(fd, >=, 0);
  g_strlcpy(un.sun_path, path, sizeof un.sun_path);
  g_assert_cmpint(connect(fd, (struct sockaddr *) &un, sizeof un), ==, 0);
  return fd;
}

/* ---- children holding connections ---------------------------------------- */

typedef struct {
  pid_t pid;
  int release;   /* closing it lets the child exit */
} Holder;

/* Forks a child that accepts n connections from listen_fd, reports that
 * it holds them, and keeps them until released. */
static Holder holder_start(int listen_fd, guint n)
{
  int ready[2], release[2];
  Holder h;
  char c;

  g_assert_cmpint(pipe2(ready, O_CLOEXEC), ==, 0);
  g_assert_cmpint(pipe2(release, O_CLOEXEC), ==, 0);
  h.pid = fork();
  g_assert_cmpint(h.pid, >=, 0);
  if (h.pid == 0) {
    close(ready[0]);
    close(release[1]);
    for (guint i = 0; i < n; i++)
      if (accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC) < 0)
        _exit(1);
    if (write(ready[1], "r", 1) != 1)
      _exit(1);
    while (read(release[0], &c, 1) > 0)
      ;
    _exit(0);
  }
  close(ready[1]);
  close(release[0]);
  g_assert_cmpint(read(ready[0], &c, 1), ==, 1);
  close(ready[0]);
  h.release = release[1];
  return h;
}

static void holder_stop(Holder *h)
{
  int status;
  close(h->release);
  g_assert_cmpint(waitpid(h->pid, &status, 0), ==, h->pid);
  g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A pid that was a child of ours and is gone (until the kernel reuses it,
 * which it does not do at once). */
static pid_t vanished_pid(void)
{
  pid_t pid = fork();
  g_assert_cmpint(pid, >=, 0);
  if (pid == 0)
    _exit(0);
  g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
  return pid;
}

/* ---- the checks ---------------------------------------------------------- */

/* A TCP connection enters the accept queue when the server side handles
 * the client's last ACK, which may come just after connect() returned:
 * read the queue again until it shows what is known to be on its way. */
static LoadQueue queue_reaching(LoadWatch *lw, guint expected)
{
  LoadQueue q = { 0 };
  for (int i = 0; i < 10000; i++) {
    g_autoptr(GError) error = NULL;
    g_assert_true(loadwatch_queue(lw, &q, &error));
    g_assert_no_error(error);
    if (q.queued >= expected)
      break;
    g_usleep(1000);
  }
  return q;
}

/* K waiting connections are K queued; children accept some and are busy
 * while they hold them, an idle child, the listener's own process (which
 * holds the clients' ends) and a pid that is gone are not. */
static void check_listener(int listen_fd, int (*connect_client)(int, gconstpointer),
                           gconstpointer where)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(LoadWatch) lw = loadwatch_new(listen_fd, &error);
  int clients[CLIENTS];
  LoadQueue q;

  g_assert_no_error(error);
  g_assert_nonnull(lw);

  q = queue_reaching(lw, 0);
  g_assert_cmpuint(q.queued, ==, 0);
  g_assert_cmpuint(q.backlog, ==, BACKLOG);

  for (guint i = 0; i < CLIENTS; i++)
    clients[i] = connect_client(listen_fd, where);
  q = queue_reaching(lw, CLIENTS);
  g_assert_cmpuint(q.queued, ==, CLIENTS);
  g_assert_cmpuint(q.backlog, ==, BACKLOG);

  Holder busy = holder_start(listen_fd, 2);
  Holder idle = holder_start(listen_fd, 0);
  pid_t pids[] = { busy.pid, idle.pid, getpid(), vanished_pid() };
  bool result[G_N_ELEMENTS(pids)];
  for (guint i = 0; i < G_N_ELEMENTS(pids); i++)
    result[i] = true;

  q = queue_reaching(lw, 0);
  g_assert_cmpuint(q.queued, ==, CLIENTS - 2);
  g_assert_true(loadwatch_busy(lw, pids, G_N_ELEMENTS(pids), result, &error));
  g_assert_no_error(error);
  g_assert_true(result[0]);
  g_assert_false(result[1]);
  g_assert_false(result[2]);
  g_assert_false(result[3]);

  /* a connection whose client has gone is still held */
  close(clients[0]);
  close(clients[1]);
  g_assert_true(loadwatch_busy(lw, pids, 2, result, &error));
  g_assert_no_error(error);
  g_assert_true(result[0]);
  g_assert_false(result[1]);

  /* idle was forked later and holds a copy of busy's release pipe */
  holder_stop(&idle);
  holder_stop(&busy);
  g_assert_true(loadwatch_busy(lw, pids, 2, result, &error));
  g_assert_no_error(error);
  g_assert_false(result[0]);
  g_assert_false(result[1]);

  close(clients[2]);
}

static int connect_listener(int listen_fd, gconstpointer unused)
{
  return connect_to(listen_fd);
}

static int connect_path(int listen_fd, gconstpointer path)
{
  return connect_unix_path(path);
}

static void test_unix_path(void)
{
  g_autofree char *dir = g_dir_make_tmp("loadwatch-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "s", NULL);
  int fd = listen_unix_at(path);
  check_listener(fd, connect_path, path);
  close(fd);
  g_unlink(path);
  g_rmdir(dir);
}

static void test_unix_abstract(void)
{
  int fd = listen_unix_abstract();
  check_listener(fd, connect_listener, NULL);
  close(fd);
}

static void test_unix_autobound(void)
{
  int fd = listen_unix_autobound();
  check_listener(fd, connect_listener, NULL);
  close(fd);
}

/* Many other connected unix sockets: the dump spans many netlink
 * datagrams, and the listener's connections are found among them. */
static void test_unix_among_many(void)
{
  enum { PAIRS = 300 };
  int pairs[PAIRS][2];
  int fd;

  for (guint i = 0; i < PAIRS; i++)
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]), ==, 0);
  fd = listen_unix_abstract();
  check_listener(fd, connect_listener, NULL);
  close(fd);
  for (guint i = 0; i < PAIRS; i++) {
    close(pairs[i][0]);
    close(pairs[i][1]);
  }
}

/* The kernel keeps the name a socket was bound with: after its directory
 * is renamed the listener and its connections still carry the old one,
 * and a new socket bound at the old path is another listener. */
static void test_unix_renamed(void)
{
  g_autofree char *top = g_dir_make_tmp("loadwatch-XXXXXX", NULL);
  g_autofree char *old_dir = g_build_filename(top, "old", NULL);
  g_autofree char *new_dir = g_build_filename(top, "new", NULL);
  g_autofree char *old_path = g_build_filename(old_dir, "s", NULL);
  g_autofree char *new_path = g_build_filename(new_dir, "s", NULL);
  int fd, impostor, impostor_client;

  g_assert_cmpint(g_mkdir(old_dir, 0700), ==, 0);
  fd = listen_unix_at(old_path);
  g_assert_cmpint(g_rename(old_dir, new_dir), ==, 0);

  /* another listener at the old path, with a connection of its own
   * accepted and held by the test process */
  g_assert_cmpint(g_mkdir(old_dir, 0700), ==, 0);
  impostor = listen_unix_at(old_path);
  impostor_client = connect_unix_path(old_path);
  int impostor_accepted = accept4(impostor, NULL, NULL, SOCK_CLOEXEC);
  g_assert_cmpint(impostor_accepted, >=, 0);

  check_listener(fd, connect_path, new_path);

  close(impostor_accepted);
  close(impostor_client);
  close(impostor);
  close(fd);
  g_unlink(old_path);
  g_unlink(new_path);
  g_rmdir(old_dir);
  g_rmdir(new_dir);
  g_rmdir(top);
}

static void test_tcp(gconstpointer data)
{
  const char *address = data;
  int fd = listen_tcp(strchr(address, ':') ? AF_INET6 : AF_INET, address);
  if (fd < 0) {
    g_test_skip("address family not available");
    return;
  }
  check_listener(fd, connect_listener, NULL);
  close(fd);
}

/* Two listeners on one port (SO_REUSEPORT): each one's queue is its own,
 * told apart by the inode. */
static void test_tcp_reuseport(void)
{
  struct sockaddr_in in = { .sin_family = AF_INET };
  socklen_t len = sizeof in;
  int one = 1, a, b, clients[CLIENTS];
  g_autoptr(GError) error = NULL;

  a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  g_assert_cmpint(setsockopt(a, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), ==, 0);
  g_assert_cmpint(setsockopt(b, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), ==, 0);
  g_assert_cmpint(bind(a, (struct sockaddr *) &in, sizeof in), ==, 0);
  g_assert_cmpint(getsockname(a, (struct sockaddr *) &in, &len), ==, 0);
  g_assert_cmpint(bind(b, (struct sockaddr *) &in, sizeof in), ==, 0);
  g_assert_cmpint(listen(a, BACKLOG), ==, 0);
  g_assert_cmpint(listen(b, BACKLOG + 1), ==, 0);

  g_autoptr(LoadWatch) wa = loadwatch_new(a, &error);
  g_assert_no_error(error);
  g_autoptr(LoadWatch) wb = loadwatch_new(b, &error);
  g_assert_no_error(error);
  for (guint i = 0; i < CLIENTS; i++)
    clients[i] = connect_to(a);

  LoadQueue qa = { 0 }, qb = { 0 };
  for (int i = 0; i < 10000 && qa.queued + qb.queued < CLIENTS; i++) {
    if (i > 0)
      g_usleep(1000);
    g_assert_true(loadwatch_queue(wa, &qa, &error));
    g_assert_true(loadwatch_queue(wb, &qb, &error));
    g_assert_no_error(error);
  }
  g_assert_cmpuint(qa.queued + qb.queued, ==, CLIENTS);
  g_assert_cmpuint(qa.backlog, ==, BACKLOG);
  g_assert_cmpuint(qb.backlog, ==, BACKLOG + 1);

  for (guint i = 0; i < CLIENTS; i++)
    close(clients[i]);
  close(a);
  close(b);
}

static void test_not_a_listener(void)
{
  g_autoptr(GError) error = NULL;
  int sv[2];
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int pipefd[2];

  g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
  g_assert_null(loadwatch_new(pipefd[0], &error));
  g_assert_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED);
  g_clear_error(&error);
  close(pipefd[0]);
  close(pipefd[1]);

  g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  g_assert_null(loadwatch_new(sv[0], &error));
  g_assert_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED);
  g_clear_error(&error);

  g_assert_cmpint(udp, >=, 0);
  g_assert_null(loadwatch_new(udp, &error));
  g_assert_error(error, LOADWATCH_ERROR, LOADWATCH_ERROR_UNSUPPORTED);

  close(sv[0]);
  close(sv[1]);
  close(udp);
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/loadwatch/unix-path", test_unix_path);
  g_test_add_func("/loadwatch/unix-abstract", test_unix_abstract);
  g_test_add_func("/loadwatch/unix-autobound", test_unix_autobound);
  g_test_add_func("/loadwatch/unix-renamed", test_unix_renamed);
  g_test_add_func("/loadwatch/unix-among-many", test_unix_among_many);
  g_test_add_data_func("/loadwatch/tcp-ipv4", "127.0.0.1", test_tcp);
  g_test_add_data_func("/loadwatch/tcp-ipv4-any", "0.0.0.0", test_tcp);
  g_test_add_data_func("/loadwatch/tcp-ipv6", "::1", test_tcp);
  g_test_add_data_func("/loadwatch/tcp-ipv6-any", "::", test_tcp);
  g_test_add_func("/loadwatch/tcp-reuseport", test_tcp_reuseport);
  g_test_add_func("/loadwatch/not-a-listener", test_not_a_listener);
  return g_test_run();
}
