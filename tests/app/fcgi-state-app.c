/*
 * fcgi-state-app: a FastCGI application (libfcgi, accepting on fd 0) that
 * answers every request with text/plain "key: value" lines describing the
 * process it runs in. Integration tests use it to check what spawn-fcgi
 * handed over: ids, groups, fds, signals, environment, limits, ...
 *
 * State that libfcgi itself changes (open fds, signal dispositions) is
 * recorded at startup, before FCGX_Init, and reported with a "startup_"
 * prefix. Values are escaped: backslash, newline, CR and other control
 * bytes become \\, \n, \r and \xHH.
 *
 * Keys (one per line, some repeated):
 *   pid ppid sid pgid uid euid suid gid egid sgid groups cwd umask root
 *   priority no_new_privs setuid0 setgid0 capinh capprm capeff capbnd capamb
 *   startup_fd (repeated: "N TARGET")  fd (repeated, at request time)
 *   startup_fd0_listening startup_fd0_family startup_fd0_type
 *   startup_fd0_nonblock startup_fd0_cloexec startup_fd0_address
 *   startup_sigblk startup_sigign startup_sigcgt
 *   fd0_listening fd0_family ... (the same for fd 0 at request time)
 *   env (repeated: "KEY=VALUE", the process environment at startup)
 *   arg (repeated: argv[0..])
 *   rlimit_NAME ("SOFT HARD", "unlimited" for RLIM_INFINITY)
 *   request_count query_string request_method script_filename
 *
 * Options:
 *   --marker PATH        write the pid to PATH at startup
 *   --marker-dir DIR     create DIR/PID at startup (for several children)
 *   --exit N             exit with status N right after the markers
 *   --exit-after-ms MS   exit MS milliseconds after startup
 *   --exit-status N      status used by --exit-after-ms (default 0)
 *   --ignore-term        ignore SIGTERM (after libfcgi is initialised)
 *   --hello              answer "hello from PID" only
 *
 * If fd 0 is not a listening socket, the state is printed once on stdout
 * and the program exits 0 (plain CGI style).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

extern char **environ;

/* ---- a small growable string ---- */

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

static void die_oom(void)
{
	static const char msg[] = "fcgi-state-app: out of memory\n";
	ssize_t r = write(2, msg, sizeof msg - 1);
	(void)r;
	_exit(70);
}

static void buf_reserve(struct buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		die_oom();
	b->data = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Append s escaped so that it fits on one line. */
static void buf_add_escaped(struct buf *b, const char *s)
{
	if (!s)
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\\')
			buf_add(b, "\\\\", 2);
		else if (*p == '\n')
			buf_add(b, "\\n", 2);
		else if (*p == '\r')
			buf_add(b, "\\r", 2);
		else if (*p < 0x20 || *p == 0x7f)
			buf_printf(b, "\\x%02x", *p);
		else
			buf_add(b, (const char *)p, 1);
	}
}

static void kv(struct buf *b, const char *key, const char *value)
{
	buf_printf(b, "%s: ", key);
	buf_add_escaped(b, value);
	buf_add(b, "\n", 1);
}

__attribute__((format(printf, 3, 4)))
static void kvf(struct buf *b, const char *key, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	kv(b, key, tmp);
}

/* ---- state that is taken at startup ---- */

static struct buf startup;   /* preformatted startup_* lines */
static char **startup_env;   /* copy of environ at startup */
static int startup_argc;
static char **startup_argv;

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* List every open fd with its readlink target, as "KEY: N TARGET" lines. */
static void list_fds(struct buf *b, const char *key)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		kvf(b, key, "error %s", strerror(errno));
		return;
	}
	int self = dirfd(d);
	int fds[4096];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		int fd = atoi(e->d_name);
		if (fd == self)
			continue;
		if (n < sizeof fds / sizeof fds[0])
			fds[n++] = fd;
	}
	closedir(d);
	qsort(fds, n, sizeof fds[0], cmp_int);
	for (size_t i = 0; i < n; i++) {
		char path[64], target[PATH_MAX];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
		ssize_t len = readlink(path, target, sizeof target - 1);
		if (len < 0)
			snprintf(target, sizeof target, "?%s", strerror(errno));
		else
			target[len] = '\0';
		char line[PATH_MAX + 32];
		snprintf(line, sizeof line, "%d %s", fds[i], target);
		kv(b, key, line);
	}
}

static const char *family_name(int family)
{
	switch (family) {
	case AF_UNIX: return "unix";
	case AF_INET: return "inet";
	case AF_INET6: return "inet6";
	default: return NULL;
	}
}

/* Describe fd 0: listening?, family, type, O_NONBLOCK, local address. */
static bool describe_fd0(struct buf *b, const char *prefix)
{
	char key[64];
	int accepting = 0;
	socklen_t len = sizeof accepting;
	bool listening = false;

	snprintf(key, sizeof key, "%sfd0_listening", prefix);
	if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0) {
		listening = accepting != 0;
		kv(b, key, listening ? "yes" : "no");
	} else {
		kv(b, key, "no");
	}

	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	len = sizeof ss;
	snprintf(key, sizeof key, "%sfd0_family", prefix);
	if (getsockname(0, (struct sockaddr *)&ss, &len) == 0) {
		const char *name = family_name(ss.ss_family);
		if (name)
			kv(b, key, name);
		else
			kvf(b, key, "other(%d)", ss.ss_family);
	} else {
		kv(b, key, "none");
	}

	snprintf(key, sizeof key, "%sfd0_address", prefix);
	char addr[INET6_ADDRSTRLEN + 16] = "";
	if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
		size_t max = len > offsetof(struct sockaddr_un, sun_path)
			? len - offsetof(struct sockaddr_un, sun_path) : 0;
		if (max > 0 && un->sun_path[0] == '\0')
			kvf(b, key, "@%.*s", (int)(max - 1), un->sun_path + 1);
		else
			kvf(b, key, "%.*s", (int)strnlen(un->sun_path, max), un->sun_path);
	} else if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
		kvf(b, key, "%s:%u", addr, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
		kvf(b, key, "[%s]:%u", addr, ntohs(in6->sin6_port));
	} else {
		kv(b, key, "");
	}

	snprintf(key, sizeof key, "%sfd0_type", prefix);
	int type = 0;
	len = sizeof type;
	if (getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
		kv(b, key, type == SOCK_STREAM ? "stream"
			: type == SOCK_DGRAM ? "dgram"
			: type == SOCK_SEQPACKET ? "seqpacket" : "other");
	else
		kv(b, key, "none");

	snprintf(key, sizeof key, "%sfd0_nonblock", prefix);
	int fl = fcntl(0, F_GETFL);
	kv(b, key, fl < 0 ? "closed" : (fl & O_NONBLOCK) ? "yes" : "no");

	snprintf(key, sizeof key, "%sfd0_cloexec", prefix);
	int fdfl = fcntl(0, F_GETFD);
	kv(b, key, fdfl < 0 ? "closed" : (fdfl & FD_CLOEXEC) ? "yes" : "no");

	return listening;
}

/* Copy selected "Name:\tvalue" lines of /proc/self/status as KEY lines. */
static void proc_status(struct buf *b, const char *prefix,
                        const char *const *names)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return;
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		for (const char *const *n = names; *n; n++) {
			if (strcmp(line, *n) != 0)
				continue;
			char *v = colon + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			char key[64];
			snprintf(key, sizeof key, "%s%s", prefix, *n);
			for (char *k = key; *k; k++)
				if (*k >= 'A' && *k <= 'Z')
					*k = (char)(*k - 'A' + 'a');
			kv(b, key, v);
		}
	}
	fclose(f);
}

static void record_startup(int argc, char **argv)
{
	/* The fd list first: nothing of ours is open yet. */
	list_fds(&startup, "startup_fd");
	describe_fd0(&startup, "startup_");
	static const char *const sigs[] = { "SigBlk", "SigIgn", "SigCgt", NULL };
	proc_status(&startup, "startup_", sigs);

	size_t n = 0;
	while (environ && environ[n])
		n++;
	startup_env = calloc(n + 1, sizeof *startup_env);
	if (!startup_env)
		die_oom();
	for (size_t i = 0; i < n; i++) {
		startup_env[i] = strdup(environ[i]);
		if (!startup_env[i])
			die_oom();
	}
	startup_argc = argc;
	startup_argv = argv;
}

/* ---- state that is taken at request time ---- */

static const struct {
	int resource;
	const char *name;
} rlimits[] = {
	{ RLIMIT_CPU, "cpu" },
	{ RLIMIT_FSIZE, "fsize" },
	{ RLIMIT_DATA, "data" },
	{ RLIMIT_STACK, "stack" },
	{ RLIMIT_CORE, "core" },
	{ RLIMIT_RSS, "rss" },
	{ RLIMIT_NPROC, "nproc" },
	{ RLIMIT_NOFILE, "nofile" },
	{ RLIMIT_MEMLOCK, "memlock" },
	{ RLIMIT_AS, "as" },
	{ RLIMIT_LOCKS, "locks" },
	{ RLIMIT_SIGPENDING, "sigpending" },
	{ RLIMIT_MSGQUEUE, "msgqueue" },
	{ RLIMIT_NICE, "nice" },
	{ RLIMIT_RTPRIO, "rtprio" },
	{ RLIMIT_RTTIME, "rttime" },
};

static void fmt_rlim(char *out, size_t size, rlim_t v)
{
	if (v == RLIM_INFINITY)
		snprintf(out, size, "unlimited");
	else
		snprintf(out, size, "%llu", (unsigned long long)v);
}

/* Does the call succeed? Tried in a child so that our own ids stay. */
static const char *try_in_child(int which)
{
	pid_t pid = fork();
	if (pid < 0)
		return "unknown";
	if (pid == 0) {
		int r = which == 0 ? setuid(0) : setgid(0);
		_exit(r == 0 ? 0 : 1);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return "unknown";
	}
	if (!WIFEXITED(status))
		return "unknown";
	return WEXITSTATUS(status) == 0 ? "succeeds" : "fails";
}

static void describe(struct buf *b, FCGX_ParamArray envp, unsigned long count)
{
	kvf(b, "pid", "%ld", (long)getpid());
	kvf(b, "ppid", "%ld", (long)getppid());
	kvf(b, "sid", "%ld", (long)getsid(0));
	kvf(b, "pgid", "%ld", (long)getpgid(0));

	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	getresuid(&ruid, &euid, &suid);
	getresgid(&rgid, &egid, &sgid);
	kvf(b, "uid", "%lu", (unsigned long)ruid);
	kvf(b, "euid", "%lu", (unsigned long)euid);
	kvf(b, "suid", "%lu", (unsigned long)suid);
	kvf(b, "gid", "%lu", (unsigned long)rgid);
	kvf(b, "egid", "%lu", (unsigned long)egid);
	kvf(b, "sgid", "%lu", (unsigned long)sgid);

	int ng = getgroups(0, NULL);
	gid_t *groups = ng > 0 ? calloc((size_t)ng, sizeof *groups) : NULL;
	if (ng > 0 && !groups)
		die_oom();
	if (ng > 0)
		ng = getgroups(ng, groups);
	buf_add(b, "groups:", 7);
	if (ng > 0) {
		unsigned long *sorted = calloc((size_t)ng, sizeof *sorted);
		if (!sorted)
			die_oom();
		for (int i = 0; i < ng; i++)
			sorted[i] = groups[i];
		/* insertion sort: the list is short */
		for (int i = 1; i < ng; i++) {
			unsigned long v = sorted[i];
			int j = i - 1;
			while (j >= 0 && sorted[j] > v) {
				sorted[j + 1] = sorted[j];
				j--;
			}
			sorted[j + 1] = v;
		}
		for (int i = 0; i < ng; i++)
			buf_printf(b, " %lu", sorted[i]);
		free(sorted);
	}
	buf_add(b, "\n", 1);
	free(groups);

	char path[PATH_MAX];
	if (getcwd(path, sizeof path))
		kv(b, "cwd", path);
	else
		kvf(b, "cwd", "?%s", strerror(errno));

	mode_t mask = umask(0);
	umask(mask);
	kvf(b, "umask", "%04o", (unsigned)mask);

	ssize_t len = readlink("/proc/self/root", path, sizeof path - 1);
	if (len >= 0) {
		path[len] = '\0';
		kv(b, "root", path);
	} else {
		kvf(b, "root", "?%s", strerror(errno));
	}

	errno = 0;
	int prio = getpriority(PRIO_PROCESS, 0);
	if (prio == -1 && errno != 0)
		kvf(b, "priority", "?%s", strerror(errno));
	else
		kvf(b, "priority", "%d", prio);

	int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	kvf(b, "no_new_privs", "%d", nnp);
	kv(b, "setuid0", try_in_child(0));
	kv(b, "setgid0", try_in_child(1));

	static const char *const caps[] = {
		"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", NULL };
	proc_status(b, "", caps);

	for (size_t i = 0; i < sizeof rlimits / sizeof rlimits[0]; i++) {
		struct rlimit rl;
		char key[64], soft[32], hard[32];
		snprintf(key, sizeof key, "rlimit_%s", rlimits[i].name);
		if (getrlimit(rlimits[i].resource, &rl) != 0) {
			kvf(b, key, "?%s", strerror(errno));
			continue;
		}
		fmt_rlim(soft, sizeof soft, rl.rlim_cur);
		fmt_rlim(hard, sizeof hard, rl.rlim_max);
		kvf(b, key, "%s %s", soft, hard);
	}

	buf_add(b, startup.data ? startup.data : "", startup.len);
	describe_fd0(b, "");
	list_fds(b, "fd");

	for (char **e = startup_env; e && *e; e++)
		kv(b, "env", *e);
	for (int i = 0; i < startup_argc; i++)
		kv(b, "arg", startup_argv[i]);

	kvf(b, "request_count", "%lu", count);
	if (envp) {
		const char *qs = FCGX_GetParam("QUERY_STRING", envp);
		kv(b, "query_string", qs ? qs : "");
		const char *m = FCGX_GetParam("REQUEST_METHOD", envp);
		kv(b, "request_method", m ? m : "");
		const char *sf = FCGX_GetParam("SCRIPT_FILENAME", envp);
		kv(b, "script_filename", sf ? sf : "");
	}
}

/* ---- options ---- */

struct options {
	const char *marker;
	const char *marker_dir;
	bool exit_now;
	int exit_code;
	long exit_after_ms;
	int exit_status;
	bool ignore_term;
	bool hello;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: fcgi-state-app [--marker PATH] [--marker-dir DIR] [--exit N]\n"
		"       [--exit-after-ms MS] [--exit-status N] [--ignore-term] [--hello]\n");
	exit(2);
}

static long parse_num(const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "fcgi-state-app: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has_value = i + 1 < argc;
		if (strcmp(a, "--marker") == 0 && has_value) {
			o->marker = argv[++i];
		} else if (strcmp(a, "--marker-dir") == 0 && has_value) {
			o->marker_dir = argv[++i];
		} else if (strcmp(a, "--exit") == 0 && has_value) {
			o->exit_now = true;
			o->exit_code = (int)parse_num(argv[++i], 0, 255);
		} else if (strcmp(a, "--exit-after-ms") == 0 && has_value) {
			o->exit_after_ms = parse_num(argv[++i], 1, 86400000L);
		} else if (strcmp(a, "--exit-status") == 0 && has_value) {
			o->exit_status = (int)parse_num(argv[++i], 0, 255);
		} else if (strcmp(a, "--ignore-term") == 0) {
			o->ignore_term = true;
		} else if (strcmp(a, "--hello") == 0) {
			o->hello = true;
		} else {
			/* Extra arguments are reported ("arg:"), not refused,
			 * except for an option we do not know. */
			if (strncmp(a, "--", 2) == 0)
				usage();
		}
	}
}

static int write_pid_file(const char *path)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid())
	    >= (int)sizeof tmp)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	char line[32];
	int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
	bool ok = write(fd, line, (size_t)n) == n;
	if (close(fd) != 0)
		ok = false;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static volatile sig_atomic_t alarm_status;

static void on_alarm(int sig)
{
	(void)sig;
	_exit(alarm_status);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	record_startup(argc, argv);

	struct options o = { 0 };
	parse_options(argc, argv, &o);

	if (o.marker && write_pid_file(o.marker) != 0) {
		fprintf(stderr, "fcgi-state-app: cannot write marker '%s': %s\n",
			o.marker, strerror(errno));
		return 71;
	}
	if (o.marker_dir) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%ld", o.marker_dir, (long)getpid());
		if (write_pid_file(path) != 0) {
			fprintf(stderr, "fcgi-state-app: cannot write marker '%s': %s\n",
				path, strerror(errno));
			return 71;
		}
	}
	if (o.exit_now)
		return o.exit_code;

	if (o.exit_after_ms > 0) {
		alarm_status = o.exit_status;
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_alarm;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGALRM, &sa, NULL);
		struct itimerval it;
		memset(&it, 0, sizeof it);
		it.it_value.tv_sec = o.exit_after_ms / 1000;
		it.it_value.tv_usec = (o.exit_after_ms % 1000) * 1000;
		setitimer(ITIMER_REAL, &it, NULL);
	}

	struct buf probe = { 0 };
	bool listening = describe_fd0(&probe, "");
	free(probe.data);

	if (!listening) {
		/* Not started as a FastCGI application: report once. */
		struct buf b = { 0 };
		describe(&b, NULL, 0);
		fwrite(b.data, 1, b.len, stdout);
		free(b.data);
		return 0;
	}

	if (FCGX_Init() != 0) {
		fprintf(stderr, "fcgi-state-app: FCGX_Init failed\n");
		return 72;
	}
	if (o.ignore_term)
		signal(SIGTERM, SIG_IGN);

	FCGX_Request req;
	if (FCGX_InitRequest(&req, 0, 0) != 0) {
		fprintf(stderr, "fcgi-state-app: FCGX_InitRequest failed\n");
		return 72;
	}

	unsigned long count = 0;
	while (FCGX_Accept_r(&req) >= 0) {
		count++;
		struct buf b = { 0 };
		buf_printf(&b, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n");
		if (o.hello)
			buf_printf(&b, "hello from %ld\n", (long)getpid());
		else
			describe(&b, req.envp, count);
		FCGX_PutStr(b.data, (int)b.len, req.out);
		free(b.data);
		FCGX_Finish_r(&req);
	}
	return 0;
}
