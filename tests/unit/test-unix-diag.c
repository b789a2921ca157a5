/* unix-diag on real unix sockets (no root needed): the file a socket is
 * bound to is the one bind() created, whatever happened to its name. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unix-diag.h"

typedef struct {
  char *dir;
  int fd;
} Fixture;

static void setup(Fixture *f, gconstpointer data)
{
  (void) data;
  f->dir = g_dir_make_tmp("unix-diag-XXXXXX", NULL);
  g_assert_nonnull(f->dir);
  f->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(f->fd, >=, 0);
}

static void teardown(Fixture *f, gconstpointer data)
{
  (void) data;
  close(f->fd);
  g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);
  for (const char *name; d && (name = g_dir_read_name(d)) != NULL;) {
    g_autofree char *p = g_build_filename(f->dir, name, NULL);
    g_unlink(p);
  }
  g_rmdir(f->dir);
  g_free(f->dir);
}

static char *bind_in(Fixture *f, const char *name)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  char *path = g_build_filename(f->dir, name, NULL);
  g_strlcpy(un.sun_path, path, sizeof un.sun_path);
  g_assert_cmpint(bind(f->fd, (struct sockaddr *) &un, sizeof un), ==, 0);
  return path;
}

static void test_bound_file_is_the_created_one(Fixture *f, gconstpointer data)
{
  (void) data;
  g_autofree char *path = bind_in(f, "a.sock");
  struct stat st;
  dev_t dev;
  ino_t ino;

  g_assert_cmpint(lstat(path, &st), ==, 0);
  g_assert_cmpint(unix_diag_bound_file(f->fd, &dev, &ino), ==, 0);
  g_assert_cmpuint(dev, ==, st.st_dev);
  g_assert_cmpuint(ino, ==, st.st_ino);
}

static void test_renamed_and_replaced_name(Fixture *f, gconstpointer data)
{
  (void) data;
  g_autofree char *path = bind_in(f, "a.sock");
  g_autofree char *moved = g_build_filename(f->dir, "moved.sock", NULL);
  struct stat ours, other;
  dev_t dev;
  ino_t ino;

  g_assert_cmpint(lstat(path, &ours), ==, 0);
  g_assert_cmpint(rename(path, moved), ==, 0);
  g_assert_true(g_file_set_contents(path, "not a socket\n", -1, NULL));
  g_assert_cmpint(lstat(path, &other), ==, 0);
  g_assert_cmpint(unix_diag_bound_file(f->fd, &dev, &ino), ==, 0);
  g_assert_cmpuint(ino, ==, ours.st_ino);
  g_assert_cmpuint(ino, !=, other.st_ino);
}

static void test_no_file(Fixture *f, gconstpointer data)
{
  (void) data;
  dev_t dev;
  ino_t ino;

  /* unbound */
  g_assert_cmpint(unix_diag_bound_file(f->fd, &dev, &ino), ==, -ENODATA);
  /* abstract */
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  g_snprintf(un.sun_path + 1, sizeof un.sun_path - 1, "unix-diag-test-%d", (int) getpid());
  g_assert_cmpint(bind(f->fd, (struct sockaddr *) &un,
                       offsetof(struct sockaddr_un, sun_path) + 1 +
                       strlen(un.sun_path + 1)), ==, 0);
  g_assert_cmpint(unix_diag_bound_file(f->fd, &dev, &ino), ==, -ENODATA);
}

static void test_not_a_socket(void)
{
  dev_t dev;
  ino_t ino;
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  g_assert_cmpint(unix_diag_bound_file(fd, &dev, &ino), ==, -ENOTSOCK);
  close(fd);
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add("/unix-diag/bound-file-is-the-created-one", Fixture, NULL, setup,
             test_bound_file_is_the_created_one, teardown);
  g_test_add("/unix-diag/renamed-and-replaced-name", Fixture, NULL, setup,
             test_renamed_and_replaced_name, teardown);
  g_test_add("/unix-diag/no-file", Fixture, NULL, setup, test_no_file, teardown);
  g_test_add_func("/unix-diag/not-a-socket", test_not_a_socket);
  return g_test_run();
}
