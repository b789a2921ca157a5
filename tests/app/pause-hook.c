/* pause-hook: an LD_PRELOAD library that lets a test play an attacker at an
 * exact point of spawn-fcgi's work on a socket file.
 *
 * After each call listed below that names a file whose last component is
 * $PAUSE_HOOK_NAME, the process appends one line ("CALL NAME RESULT") to
 * the file $PAUSE_HOOK_LOG and stops itself with SIGSTOP (also for a name
 * that starts with $PAUSE_HOOK_PREFIX, if set).  The test sees
 * the process stopped (state T) with a new line in the log, changes the
 * directory as an attacker would, and sends SIGCONT.  Nothing is timed:
 * the process cannot go on before the test lets it.
 *
 * Without $PAUSE_HOOK_NAME every call passes straight through. */
#undef _FILE_OFFSET_BITS   /* define both fstatat and fstatat64 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int matches(const char *path)
{
  const char *want = getenv("PAUSE_HOOK_NAME");
  const char *prefix = getenv("PAUSE_HOOK_PREFIX");
  if (want == NULL || path == NULL)
    return 0;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  return strcmp(base, want) == 0 ||
         (prefix != NULL && strncmp(base, prefix, strlen(prefix)) == 0);
}

static const char *sun_path_of(const struct sockaddr *addr, socklen_t len)
{
  static char path[sizeof ((struct sockaddr_un *) 0)->sun_path + 1];
  const struct sockaddr_un *un = (const struct sockaddr_un *) addr;
  if (addr == NULL || addr->sa_family != AF_UNIX ||
      len <= offsetof(struct sockaddr_un, sun_path))
    return NULL;
  size_t n = len - offsetof(struct sockaddr_un, sun_path);
  if (n > sizeof path - 1)
    n = sizeof path - 1;
  memcpy(path, un->sun_path, n);
  path[n] = '\0';
  return path;
}

static void pause_after(const char *call, const char *path, long result)
{
  if (!matches(path))
    return;
  int saved = errno;
  const char *log = getenv("PAUSE_HOOK_LOG");
  int fd = log ? open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
  if (fd >= 0) {
    dprintf(fd, "%s %s %ld\n", call, path, result < 0 ? -(long) saved : result);
    close(fd);
  }
  raise(SIGSTOP);
  errno = saved;
}

#define REAL(name) ((__typeof__(&name)) dlsym(RTLD_NEXT, #name))

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
  int rc = REAL(bind)(fd, addr, len);
  pause_after("bind", sun_path_of(addr, len), rc);
  return rc;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
  int rc = REAL(connect)(fd, addr, len);
  pause_after("connect", sun_path_of(addr, len), rc);
  return rc;
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
  int rc = REAL(fstatat)(dirfd, path, st, flags);
  pause_after("fstatat", path, rc);
  return rc;
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
  int rc = REAL(fstatat64)(dirfd, path, st, flags);
  pause_after("fstatat", path, rc);
  return rc;
}

int lstat(const char *path, struct stat *st)
{
  int rc = REAL(lstat)(path, st);
  pause_after("lstat", path, rc);
  return rc;
}

int lstat64(const char *path, struct stat64 *st)
{
  int rc = REAL(lstat64)(path, st);
  pause_after("lstat", path, rc);
  return rc;
}

/* The mode argument of open calls, present only with O_CREAT/O_TMPFILE. */
#define OPEN_MODE(flags, mode)                      \
  do {                                              \
    if ((flags) & (O_CREAT | O_TMPFILE)) {          \
      va_list ap;                                   \
      va_start(ap, flags);                          \
      mode = va_arg(ap, mode_t);                    \
      va_end(ap);                                   \
    }                                               \
  } while (0)

int openat(int dirfd, const char *path, int flags, ...)
{
  mode_t mode = 0;
  OPEN_MODE(flags, mode);
  int rc = REAL(openat)(dirfd, path, flags, mode);
  pause_after("openat", path, rc);
  return rc;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
  mode_t mode = 0;
  OPEN_MODE(flags, mode);
  int rc = REAL(openat64)(dirfd, path, flags, mode);
  pause_after("openat", path, rc);
  return rc;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd,
              const char *newpath, unsigned flags)
{
  int rc = REAL(renameat2)(olddirfd, oldpath, newdirfd, newpath, flags);
  pause_after("renameat2", matches(oldpath) ? oldpath : newpath, rc);
  return rc;
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
  int rc = REAL(mkdirat)(dirfd, path, mode);
  pause_after("mkdirat", path, rc);
  return rc;
}
