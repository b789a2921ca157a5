/*
 * malloc-guard: an LD_PRELOAD library for the integration tests that makes
 * every heap allocation on spawn-fcgi's path from fork (or, in --no-fork
 * mode, from the first launch step, setsid) to exec fatal.
 *
 * That path runs after the privilege drop and in a forked copy of a process
 * that may have held locks: it must not allocate (launch.h).  The guard
 * arms itself in the child of every fork() and at setsid() in a process
 * named spawn-fcgi; any malloc, calloc, realloc, memalign or free(non-NULL)
 * then writes one line naming the call to $MALLOC_GUARD_REPORT (appended;
 * stderr if unset) and aborts.  exec() loads a fresh copy, unarmed, so the
 * application itself is never affected.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The allocator this library stands in front of: glibc's, or a sanitizer
 * runtime's.  dlsym() may itself allocate while they are being looked up;
 * those few bytes come from a static arena and are never freed. */
static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void *(*next_memalign)(size_t, size_t);
static void (*next_free)(void *);

static _Alignas(16) char arena[4096];
static size_t arena_used;

static void *from_arena(size_t size)
{
  size = (size + 15) & ~(size_t) 15;
  if (size > sizeof arena - arena_used)
    return NULL;
  void *p = arena + arena_used;
  arena_used += size;
  return p;
}

static int in_arena(const void *p)
{
  return (const char *) p >= arena && (const char *) p < arena + sizeof arena;
}

static int resolving;

/* On first use, whoever comes first (a constructor of another library may
 * allocate before ours runs). */
static void resolve(void)
{
  if (next_free != NULL || resolving)
    return;
  resolving = 1;
  next_malloc = (void *(*)(size_t)) dlsym(RTLD_NEXT, "malloc");
  next_calloc = (void *(*)(size_t, size_t)) dlsym(RTLD_NEXT, "calloc");
  next_realloc = (void *(*)(void *, size_t)) dlsym(RTLD_NEXT, "realloc");
  next_memalign = (void *(*)(size_t, size_t)) dlsym(RTLD_NEXT, "memalign");
  next_free = (void (*)(void *)) dlsym(RTLD_NEXT, "free");
  resolving = 0;
}

static volatile int armed;
static int watching;
static const char *report_path;

static void say(int fd, const char *s)
{
  ssize_t r = write(fd, s, strlen(s));
  (void) r;
}

static void caught(const char *call)
{
  int fd = report_path
           ? open(report_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
           : STDERR_FILENO;
  armed = 0;
  if (fd >= 0) {
    say(fd, "malloc-guard: ");
    say(fd, call);
    say(fd, " between fork and exec\n");
  }
  abort();
}

static void arm(void)
{
  armed = 1;
}

__attribute__((constructor)) static void malloc_guard_init(void)
{
  resolve();
  if (strcmp(program_invocation_short_name, "spawn-fcgi") != 0)
    return;
  watching = 1;
  report_path = getenv("MALLOC_GUARD_REPORT");
  pthread_atfork(NULL, NULL, arm);
}

/* --no-fork: launch_exec() starts with setsid() in the process itself. */
pid_t setsid(void)
{
  if (watching)
    arm();
  return (pid_t) syscall(SYS_setsid);
}

void *malloc(size_t size)
{
  if (armed)
    caught("malloc");
  resolve();
  if (next_malloc == NULL)
    return from_arena(size);
  return next_malloc(size);
}

void *calloc(size_t n, size_t size)
{
  if (armed)
    caught("calloc");
  resolve();
  if (next_calloc == NULL)
    return n != 0 && size > sizeof arena / n ? NULL : from_arena(n * size);
  return next_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
  if (armed)
    caught("realloc");
  resolve();
  return next_realloc(p, size);
}

void *memalign(size_t alignment, size_t size)
{
  if (armed)
    caught("memalign");
  resolve();
  return next_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
  if (armed)
    caught("aligned_alloc");
  resolve();
  return next_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
  if (armed)
    caught("posix_memalign");
  resolve();
  void *p = next_memalign(alignment, size);
  if (p == NULL)
    return ENOMEM;
  *out = p;
  return 0;
}

void *reallocarray(void *p, size_t n, size_t size)
{
  if (armed)
    caught("reallocarray");
  if (size != 0 && n > (size_t) -1 / size) {
    errno = ENOMEM;
    return NULL;
  }
  resolve();
  return next_realloc(p, n * size);
}

void free(void *p)
{
  if (p != NULL && armed)
    caught("free");
  if (p == NULL || in_arena(p))
    return;
  resolve();
  next_free(p);
}
