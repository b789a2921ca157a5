// fuzz-sources: sockets.c systemd.c
// fuzz-packages: glib-2.0 libsystemd
/* fuzz-address: libFuzzer target for the address parsing of sockets.c:
 * socket_plan_tcp() (TCP address and port) and socket_plan_unix() (path).
 *
 * Input: byte 0 picks the function (low bit: 0 TCP, 1 unix), bytes 1-2 are
 * the port (big-endian), the rest is the address or path (up to the first
 * NUL).
 *
 * socket_plan_tcp() resolves host names, and the target must never send a
 * DNS query.  The bracketed form ("[...]") is parsed with AI_NUMERICHOST or
 * refused before any lookup, so it is always used as is.  Any other
 * address is used only when it is a numeric address already
 * (getaddrinfo() with AI_NUMERICHOST accepts it, which is the step that
 * glibc takes before it would look a name up); the rest is skipped.
 *
 * A parsed address must print as "A.B.C.D:PORT" or "[V6]:PORT", and that
 * text parsed again must give the same address. */
#include "config.h"

#include "sockets.h"
#include "fuzz-glib.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  fuzz_abort_on_glib_warnings();
  return 0;
}

/* True if resolving `address` cannot send a name lookup. */
static bool cannot_resolve_names(const char *address)
{
  struct addrinfo hints = { 0 }, *res = NULL;

  if (address[0] == '\0' || address[0] == '[')
    return true;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
  if (getaddrinfo(address, "1", &hints, &res) != 0)
    return false;
  freeaddrinfo(res);
  return true;
}

static void same_address(const SocketPlan *a, const SocketPlan *b)
{
  if (a->addr.ss_family != b->addr.ss_family || a->addr_len != b->addr_len)
    abort();
  if (a->addr.ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *) &a->addr;
    const struct sockaddr_in *y = (const struct sockaddr_in *) &b->addr;
    if (x->sin_port != y->sin_port || x->sin_addr.s_addr != y->sin_addr.s_addr)
      abort();
  } else {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *) &a->addr;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *) &b->addr;
    if (x->sin6_port != y->sin6_port ||
        memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) != 0)
      abort();
  }
}

static void fuzz_tcp(const char *address, guint16 port)
{
  SocketPlan plan = { 0 }, again = { 0 };
  GError *error = NULL;

  if (!cannot_resolve_names(address))
    return;
  if (!socket_plan_tcp(&plan, address, port, &error)) {
    if (error == NULL || error->domain != SOCKET_ERROR ||
        error->code != SOCKET_ERROR_INVALID || error->message[0] == '\0')
      abort();
    g_error_free(error);
    socket_plan_clear(&plan);
    return;
  }
  if (error != NULL || plan.source != SOCKET_SOURCE_TCP || plan.addr_text == NULL)
    abort();
  if (plan.addr.ss_family == AF_INET) {
    if (plan.addr_len != sizeof(struct sockaddr_in))
      abort();
  } else if (plan.addr.ss_family == AF_INET6) {
    if (plan.addr_len != sizeof(struct sockaddr_in6))
      abort();
  } else {
    abort();
  }

  /* "HOST:PORT" or "[HOST]:PORT", with our port. */
  g_autofree char *suffix = g_strdup_printf(":%u", (unsigned) port);
  if (!g_str_has_suffix(plan.addr_text, suffix))
    abort();
  g_autofree char *host = g_strndup(plan.addr_text,
                                    strlen(plan.addr_text) - strlen(suffix));
  if ((plan.addr.ss_family == AF_INET6) != (host[0] == '['))
    abort();
  if (!socket_plan_tcp(&again, host, port, &error))
    abort();
  same_address(&plan, &again);
  socket_plan_clear(&again);
  socket_plan_clear(&plan);
}

static void fuzz_unix(const char *path)
{
  SocketPlan plan = { 0 };
  GError *error = NULL;
  size_t max = sizeof ((struct sockaddr_un *) NULL)->sun_path - 1;

  if (socket_plan_unix(&plan, path, &error)) {
    if (error != NULL || path[0] == '\0' || strlen(path) > max ||
        plan.path == NULL || strcmp(plan.path, path) != 0 ||
        plan.source != SOCKET_SOURCE_UNIX)
      abort();
  } else {
    if (error == NULL || (path[0] != '\0' && strlen(path) <= max))
      abort();
    g_error_free(error);
  }
  socket_plan_clear(&plan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 3)
    return 0;
  guint16 port = (guint16) ((data[1] << 8) | data[2]);
  g_autofree char *text = g_strndup((const char *) data + 3, size - 3);

  if (data[0] & 1)
    fuzz_unix(text);
  else
    fuzz_tcp(text, port);
  return 0;
}
