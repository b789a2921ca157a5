/* Unit tests for the status server (src/status-server.c): requests,
 * answers and the limits, over a real unix socket in a temp directory. */
#include "config.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "status-server.h"

static void test_parse_requests(void)
{
  static const struct { const char *req; StatusRequest want; bool head; } cases[] = {
    { "GET /status HTTP/1.0\r\n\r\n", STATUS_REQUEST_TEXT, false },
    { "GET /status HTTP/1.1\r\nHost: x\r\n\r\n", STATUS_REQUEST_TEXT, false },
    { "GET /status?json HTTP/1.0\n\n", STATUS_REQUEST_JSON, false },
    { "GET /status.json HTTP/1.0\r\n\r\n", STATUS_REQUEST_JSON, false },
    { "HEAD /metrics HTTP/1.0\r\n\r\n", STATUS_REQUEST_PROMETHEUS, true },
    { "GET /metrics?x=1 HTTP/1.1\r\nAccept: */*\r\n\r\n", STATUS_REQUEST_PROMETHEUS, false },
    { "GET /status HTTP/1.0\r\n", STATUS_REQUEST_INCOMPLETE, false },
    { "GET /other HTTP/1.0\r\n\r\n", STATUS_REQUEST_NOT_FOUND, false },
    { "POST /metrics HTTP/1.0\r\n\r\n", STATUS_REQUEST_BAD_METHOD, false },
    { "GET /metrics\r\n\r\n", STATUS_REQUEST_BAD, false },
    { "GET metrics HTTP/1.0\r\n\r\n", STATUS_REQUEST_BAD, false },
    { "GET  /metrics HTTP/1.0\r\n\r\n", STATUS_REQUEST_BAD, false },
    { "get /metrics HTTP/1.0\r\n\r\n", STATUS_REQUEST_BAD, false },
    { "GET /metrics HTTP/2.0\r\n\r\n", STATUS_REQUEST_BAD, false },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    bool head;
    StatusRequest got = status_request_parse(cases[i].req, strlen(cases[i].req), &head);
    if (got != cases[i].want)
      g_error("'%s': got %d, want %d", cases[i].req, got, cases[i].want);
    g_assert_cmpint(head, ==, cases[i].head);
  }
  /* A NUL byte, and a request that never ends within the limit. */
  bool head;
  g_assert_cmpint(status_request_parse("GET /\0 HTTP/1.0\r\n\r\n", 20, &head), ==,
                  STATUS_REQUEST_BAD);
  g_autofree char *big = g_strnfill(STATUS_MAX_REQUEST, 'A');
  g_assert_cmpint(status_request_parse(big, STATUS_MAX_REQUEST, &head), ==,
                  STATUS_REQUEST_BAD);
  g_assert_cmpint(status_request_parse(big, STATUS_MAX_REQUEST - 1, &head), ==,
                  STATUS_REQUEST_INCOMPLETE);
}

/* ---- a server on a real socket ---- */

typedef struct {
  char *dir;
  char *path;
  StatusServer *server;
  PoolChildStatus children[2];
  guint fills;
} Fixture;

static void fill(PoolStatus *st, gpointer data)
{
  Fixture *f = data;
  f->fills++;
  st->pm = "static";
  st->min_children = st->max_children = 2;
  st->total = st->idle = 2;
  st->restarts = 7;
  st->last_reload_result = "none";
  st->start_time_us = g_get_real_time();
  st->children = f->children;
  st->n_children = 2;
  for (guint i = 0; i < 2; i++)
    f->children[i] = (PoolChildStatus) { .slot = i, .pid = getpid(), .state = POOL_CHILD_IDLE,
                                         .started_us = g_get_real_time(),
                                         .last_exit_status = -1 };
}

static void setup(Fixture *f, gconstpointer unused)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  GError *error = NULL;

  f->dir = g_dir_make_tmp("status-server-XXXXXX", &error);
  g_assert_no_error(error);
  f->path = g_build_filename(f->dir, "s", NULL);
  g_strlcpy(un.sun_path, f->path, sizeof un.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(bind(fd, (struct sockaddr *) &un, sizeof un), ==, 0);
  g_assert_cmpint(listen(fd, 64), ==, 0);
  PoolStatus base = { .instance = "unit", .listen = "/x.sock", .listen_source = "own",
                      .backlog = 5, .version = "9.9" };
  f->server = status_server_new(&fd, 1, &base, &error);
  g_assert_no_error(error);
}

static void teardown(Fixture *f, gconstpointer unused)
{
  status_server_free(f->server);
  g_unlink(f->path);
  g_rmdir(f->dir);
  g_free(f->path);
  g_free(f->dir);
}

static bool server_readable(Fixture *f, int timeout_ms)
{
  struct pollfd p = { .fd = status_server_fd(f->server), .events = POLLIN };
  return poll(&p, 1, timeout_ms) == 1;
}

static int connect_client(Fixture *f)
{
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  g_strlcpy(un.sun_path, f->path, sizeof un.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(connect(fd, (struct sockaddr *) &un, sizeof un), ==, 0);
  return fd;
}

/* Runs the server until the client's answer is complete (EOF). */
static char *exchange(Fixture *f, int fd, const char *request)
{
  GString *got = g_string_new(NULL);
  char buf[4096];

  if (request)
    g_assert_cmpint(write(fd, request, strlen(request)), ==, (ssize_t) strlen(request));
  for (;;) {
    struct pollfd p[2] = { { .fd = status_server_fd(f->server), .events = POLLIN },
                           { .fd = fd, .events = POLLIN } };
    g_assert_cmpint(poll(p, 2, 10000), >, 0);
    if (p[0].revents & POLLIN)
      status_server_dispatch(f->server, fill, f);
    if (p[1].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(fd, buf, sizeof buf);
      g_assert_cmpint(n, >=, 0);
      if (n == 0)
        break;
      g_string_append_len(got, buf, n);
    }
  }
  close(fd);
  return g_string_free(got, FALSE);
}

static void test_answers(Fixture *f, gconstpointer unused)
{
  g_autofree char *text = exchange(f, connect_client(f), "GET /status HTTP/1.0\r\n\r\n");
  g_assert_true(g_str_has_prefix(text, "HTTP/1.0 200 OK\r\n"));
  g_assert_nonnull(strstr(text, "Content-Type: text/plain; charset=utf-8\r\n"));
  g_assert_nonnull(strstr(text, "spawn-fcgi pool unit: static, 2-2 children, spawn-fcgi 9.9"));

  g_autofree char *metrics = exchange(f, connect_client(f), "GET /metrics HTTP/1.1\r\n\r\n");
  g_assert_nonnull(strstr(metrics, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  g_assert_nonnull(strstr(metrics, "\r\n\r\n# HELP spawn_fcgi_info "));
  g_assert_nonnull(strstr(metrics, "spawn_fcgi_restarts_total 7\n"));
  const char *body = strstr(metrics, "\r\n\r\n") + 4;
  g_autofree char *want_len = g_strdup_printf("Content-Length: %zu\r\n", strlen(body));
  g_assert_nonnull(strstr(metrics, want_len));

  g_autofree char *json = exchange(f, connect_client(f), "GET /status?json HTTP/1.0\r\n\r\n");
  g_assert_nonnull(strstr(json, "Content-Type: application/json\r\n"));
  g_assert_true(g_str_has_suffix(json, "]}\n"));

  g_autofree char *head = exchange(f, connect_client(f), "HEAD /status.json HTTP/1.0\r\n\r\n");
  g_assert_true(g_str_has_suffix(head, "\r\n\r\n"));
  g_assert_cmpuint(f->fills, ==, 4);

  g_autofree char *missing = exchange(f, connect_client(f), "GET /nope HTTP/1.0\r\n\r\n");
  g_assert_true(g_str_has_prefix(missing, "HTTP/1.0 404 "));
  g_autofree char *post = exchange(f, connect_client(f), "POST /status HTTP/1.0\r\n\r\n");
  g_assert_true(g_str_has_prefix(post, "HTTP/1.0 405 "));
  g_assert_nonnull(strstr(post, "Allow: GET, HEAD\r\n"));
  g_autofree char *bad = exchange(f, connect_client(f), "hello\r\n\r\n");
  g_assert_true(g_str_has_prefix(bad, "HTTP/1.0 400 "));
  /* Errors compute nothing. */
  g_assert_cmpuint(f->fills, ==, 4);

  /* Done: nothing left to wake the caller. */
  g_assert_false(server_readable(f, 0));
}

/* STATUS_MAX_CLIENTS that say nothing occupy the server; the next one gets
 * 503 at once, and the server stays usable once they are gone. */
static void test_too_many_clients(Fixture *f, gconstpointer unused)
{
  int quiet[STATUS_MAX_CLIENTS];

  for (int i = 0; i < STATUS_MAX_CLIENTS; i++)
    quiet[i] = connect_client(f);
  while (server_readable(f, 0))
    status_server_dispatch(f->server, fill, f);
  g_autofree char *refused = exchange(f, connect_client(f), NULL);
  g_assert_true(g_str_has_prefix(refused, "HTTP/1.0 503 "));
  for (int i = 0; i < STATUS_MAX_CLIENTS; i++)
    close(quiet[i]);
  /* Their EOFs free the places. */
  while (server_readable(f, 0))
    status_server_dispatch(f->server, fill, f);
  g_autofree char *ok = exchange(f, connect_client(f), "GET /status HTTP/1.0\r\n\r\n");
  g_assert_true(g_str_has_prefix(ok, "HTTP/1.0 200 "));
  g_assert_false(server_readable(f, 0));
}

/* A client that sends nothing is dropped when its time is up: the timer
 * wakes the server (an event, not a sleep of ours), and then nothing is
 * armed any more. */
static void test_silent_client_dropped(Fixture *f, gconstpointer unused)
{
  int fd = connect_client(f);
  while (server_readable(f, 0))
    status_server_dispatch(f->server, fill, f);
  g_autofree char *got = exchange(f, fd, NULL);
  g_assert_cmpstr(got, ==, "");
  g_assert_cmpuint(f->fills, ==, 0);
  g_assert_false(server_readable(f, 0));
}

/* A client that leaves without reading costs no SIGPIPE. */
static void test_client_gone_before_answer(Fixture *f, gconstpointer unused)
{
  int fd = connect_client(f);
  const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
  g_assert_cmpint(write(fd, req, sizeof req - 1), ==, sizeof req - 1);
  close(fd);
  while (server_readable(f, 100))
    status_server_dispatch(f->server, fill, f);
  g_autofree char *ok = exchange(f, connect_client(f), "GET /status HTTP/1.0\r\n\r\n");
  g_assert_true(g_str_has_prefix(ok, "HTTP/1.0 200 "));
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/status-server/parse", test_parse_requests);
  g_test_add("/status-server/answers", Fixture, NULL, setup, test_answers, teardown);
  g_test_add("/status-server/too-many", Fixture, NULL, setup, test_too_many_clients, teardown);
  g_test_add("/status-server/silent", Fixture, NULL, setup, test_silent_client_dropped,
             teardown);
  g_test_add("/status-server/gone", Fixture, NULL, setup, test_client_gone_before_answer,
             teardown);
  return g_test_run();
}
