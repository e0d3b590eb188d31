/*
 * sockop - run a sequence of socket operations and report each step's errno.
 * Part of selnet's conformance suite (adapted from the kernel-oracle
 * prototype): runs as a static binary inside the QEMU guest's initramfs.
 *
 * Usage: sockop [-k] [-n] [-r READYPATH] NAME OP [OP ...]
 *   NAME is the scenario label printed on every RESULT line.
 *   -k   keep going after a failed step (default: stop at the first failure)
 *   -n   no fork: run the ops in this process and print directly
 *   -r   create READYPATH when the child exits without having reached ready=
 *
 * By default sockop forks: the child runs the ops (and changes domain), and
 * writes its report into a MAP_SHARED anonymous mapping; the parent, which
 * stays in the caller's domain, prints it after the child exits.  So the test
 * domain needs no permission at all on the console, pipes or files: only the
 * checks under test (plus whatever the ops themselves need) are exercised.
 * "ready=PATH" is likewise carried out by the parent.
 *
 * Ops:
 *   ctx=CONTEXT        write CONTEXT to /proc/self/attr/current (dyntransition)
 *   exec=CONTEXT       write CONTEXT to /proc/self/attr/exec, then re-exec self
 *                      with the remaining ops (exec transition) and the socket
 *                      still open (-F).  The new image prints directly (-n), so
 *                      that domain needs fd use + write on the console.
 *   sendfd             socketpair(AF_UNIX); a forked child (same domain) sends the
 *                      socket (the accepted one if any) over it with SCM_RIGHTS; this
 *                      process closes its own copies and keeps the other end
 *   recvfd             recvmsg() on that end: the socket comes back (after ctx=,
 *                      in another domain); "result=MSG_CTRUNC" when the message
 *                      arrived without the descriptor (security_file_receive said no)
 *   sockcreate=CONTEXT write CONTEXT to /proc/self/attr/sockcreate
 *   sock=KIND          socket(): tcp udp raw icmp sctp dccp, "6" suffix for AF_INET6
 *   timeout=MS         SIGALRM after MS ms: a blocking call then fails with EINTR
 *   reuse              setsockopt(SO_REUSEADDR, 1)
 *   bind=ADDR:PORT     bind();  ADDR is 1.2.3.4 or [v6addr]
 *   listen             listen(fd, 16)
 *   connect=ADDR:PORT  connect()
 *   accept[=MS]        wait up to MS (default 5000) ms for a connection, then accept()
 *   send               send("x") on the accepted fd if any, else the socket; an
 *                      unconnected datagram socket replies to the last sender
 *   sendto=ADDR:PORT   sendto("x")  (icmp/raw sockets send an ICMP echo request)
 *   fastopen=ADDR:PORT sendto("x", MSG_FASTOPEN)
 *   recv               wait up to 2 s, then recvfrom() (accepted fd if any);
 *                      on timeout still call it with MSG_DONTWAIT (EAGAIN)
 *   waiteof[=MS]       poll() until the peer closed (no recv: no read check)
 *   close              close the socket (and the accepted fd)
 *   rstclose           close with SO_LINGER {1, 0}: the peer gets a reset and
 *                      no side keeps the port in TIME_WAIT
 *   bind=unspec:ADDR:PORT  bind() a sockaddr_in with sa_family AF_UNSPEC (its length is
 *                      sizeof(sockaddr_in6) on an IPv6 socket)
 *   connect=unspec     connect() to AF_UNSPEC: the disconnect
 *   setsockopt=NAME    setsockopt(NAME, 1) (SO_LINGER: {0, 0}) on the accepted fd if any
 *   getsockopt=NAME    getsockopt(NAME)
 *   shutdown           shutdown(SHUT_RDWR)
 *   getsockname, getpeername
 *   (send, sendto and fastopen use MSG_NOSIGNAL: an EPIPE is reported, not a SIGPIPE)
 *   ready=PATH         have the parent create PATH (tells the runner that e.g.
 *                      listen() is done)
 *   sleep=MS           sleep MS milliseconds
 *   loadpolicy=PATH    write PATH to /sys/fs/selinux/load in ONE write()
 *   enforce=0|1        write to /sys/fs/selinux/enforce
 *
 * Output, one line per step:
 *   RESULT name=NAME pid=PID step=N op=OP arg=ARG result=ok|ERRNAME errno=N
 * plus "CONTEXT name=NAME pid=PID context=..." after ctx= (and at start).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SOCK_DCCP
#define SOCK_DCCP 6
#endif
#ifndef IPPROTO_DCCP
#define IPPROTO_DCCP 33
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

static const char *name = "-";
static int step;
static int fd = -1, afd = -1, keep_going, nofork;
static int unixfd = -1, passed_afd;         /* sendfd/recvfd: our end, which fd was sent */
static int sock_kind;                      /* 0 normal, 1 icmp/raw (ICMP payloads) */
static int sock_v6, connected;
static struct sockaddr_storage last_from;  /* sender of the last datagram received */
static socklen_t last_from_len;

static void on_alarm(int sig) { (void)sig; }
static pid_t child;
static void on_term(int sig) { (void)sig; if (child > 0) kill(child, SIGKILL); }

/* the payload: "x", or an ICMP / ICMPv6 echo request for ping and raw sockets */
static size_t payload(unsigned char *b)
{
	if (!sock_kind) {
		b[0] = 'x';
		return 1;
	}
	memset(b, 0, 16);
	b[0] = sock_v6 ? 128 : 8;              /* echo request */
	b[4] = 0x12; b[5] = 0x34; b[7] = 1;    /* id, seq */
	memcpy(b + 8, "selnet!!", 8);
	if (!sock_v6) {                        /* raw ICMPv4 needs the checksum */
		unsigned sum = 0;
		for (int i = 0; i < 16; i += 2)
			sum += (b[i] << 8) | b[i + 1];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		sum = ~sum & 0xffff;
		b[2] = sum >> 8; b[3] = sum & 0xff;
	}
	return 16;
}

/* report buffer shared between the forked child and the parent */
#define SHM_SIZE (1 << 20)
struct shm {
	volatile int ready;          /* child asks parent to create ready_path */
	char ready_path[256];
	size_t len;
	char buf[];
};
static struct shm *shm;
static const char *ready_default;   /* -r PATH: created when the child exits early */

static void emit(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!shm) {
		vprintf(fmt, ap);
		fflush(stdout);
	} else {
		size_t room = SHM_SIZE - sizeof(*shm) - shm->len;
		int n = vsnprintf(shm->buf + shm->len, room, fmt, ap);
		if (n > 0)
			shm->len += (size_t)n < room ? (size_t)n : room - 1;
	}
	va_end(ap);
}

static void show_context(void)
{
	char buf[256] = "";
	int f = open("/proc/self/attr/current", O_RDONLY);
	if (f >= 0) {
		ssize_t n = read(f, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = 0;
			buf[strcspn(buf, "\n")] = 0;
		}
		close(f);
	}
	emit("CONTEXT name=%s pid=%d context=%s\n", name, (int)getpid(),
	     buf[0] ? buf : "?");
}

static int report(const char *op, const char *arg, int rc, int err)
{
	const char *en = rc < 0 ? strerrorname_np(err) : "ok";
	emit("RESULT name=%s pid=%d step=%d op=%s arg=%s result=%s errno=%d\n",
	     name, (int)getpid(), step, op, arg ? arg : "-", en ? en : "?",
	     rc < 0 ? err : 0);
	return rc;
}

/* "1.2.3.4:80" or "[::1]:80" -> sockaddr; the family follows the text */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon;
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, end - s - 1);
		host[end - s - 1] = 0;
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(atoi(end + 2));
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -1;
		*len = sizeof(*a);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, colon - s);
	host[colon - s] = 0;
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons(atoi(colon + 1));
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return -1;
	*len = sizeof(*a);
	return 0;
}

static int write_file(const char *path, const char *data, size_t len)
{
	int f = open(path, O_WRONLY);
	if (f < 0)
		return -1;
	ssize_t n = write(f, data, len);
	int e = errno;
	close(f);
	errno = e;
	return n == (ssize_t)len ? 0 : -1;
}

static int wait_readable(int f, int ms)
{
	struct pollfd p = { .fd = f, .events = POLLIN };
	int r = poll(&p, 1, ms);
	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	return r < 0 ? -1 : 0;
}

static const struct { const char *name; int level, opt; } options[] = {
	{ "SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR }, { "SO_REUSEPORT", SOL_SOCKET, SO_REUSEPORT },
	{ "SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE }, { "SO_RCVBUF", SOL_SOCKET, SO_RCVBUF },
	{ "SO_SNDBUF", SOL_SOCKET, SO_SNDBUF }, { "SO_BROADCAST", SOL_SOCKET, SO_BROADCAST },
	{ "SO_LINGER", SOL_SOCKET, SO_LINGER }, { "SO_RCVLOWAT", SOL_SOCKET, SO_RCVLOWAT },
	{ "SO_DEBUG", SOL_SOCKET, SO_DEBUG }, { "SO_ERROR", SOL_SOCKET, SO_ERROR },
	{ "SO_TYPE", SOL_SOCKET, SO_TYPE }, { "SO_ACCEPTCONN", SOL_SOCKET, SO_ACCEPTCONN },
	{ "SO_DOMAIN", SOL_SOCKET, SO_DOMAIN }, { "SO_PROTOCOL", SOL_SOCKET, SO_PROTOCOL },
	{ "TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY },
};

static int find_option(const char *n, int *level, int *opt)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (!strcasecmp(n, options[i].name)) {
			*level = options[i].level;
			*opt = options[i].opt;
			return 0;
		}
	return -1;
}

static int do_op(char *op, char **rest, int nrest)
{
	char *arg = strchr(op, '=');
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc;
	if (arg)
		*arg++ = 0;

	if (!strcmp(op, "ctx")) {
		rc = write_file("/proc/self/attr/current", arg, strlen(arg));
		report(op, arg, rc, errno);
		show_context();
		return rc;
	}
	if (!strcmp(op, "sockcreate")) {
		rc = write_file("/proc/self/attr/sockcreate", arg, strlen(arg));
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "exec")) {
		rc = write_file("/proc/self/attr/exec", arg, strlen(arg));
		report(op, arg, rc, errno);
		if (rc < 0)
			return rc;
		char **av = calloc(nrest + 10, sizeof(char *));
		char stepbuf[16];
		int k = 0;
		snprintf(stepbuf, sizeof(stepbuf), "%d", step);
		char statebuf[64];   /* the socket stays open across exec: tell the new image */
		snprintf(statebuf, sizeof(statebuf), "%d:%d:%d:%d:%d", fd, afd, sock_kind, sock_v6,
			 connected);
		av[k++] = "sockop";
		av[k++] = "-n";
		av[k++] = "-s";
		av[k++] = stepbuf;
		av[k++] = "-F";
		av[k++] = statebuf;
		if (keep_going)
			av[k++] = "-k";
		av[k++] = (char *)name;
		for (int i = 0; i < nrest; i++)
			av[k++] = rest[i];
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return report("execve", "/proc/self/exe", -1, errno);
		self[n] = 0;
		if (shm) {   /* hand over what was reported so far */
			fwrite(shm->buf, 1, shm->len, stdout);
			fflush(stdout);
			shm->len = 0;
		}
		execv(self, av);   /* not /proc/self/exe: comm would become "exe" */
		return report("execve", self, -1, errno);
	}
	if (!strcmp(op, "sendfd")) {
		int sv[2], st = 0, pass = afd >= 0 ? afd : fd;
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			return report(op, arg, -1, errno);
		pid_t c = fork();
		if (c < 0)
			return report(op, arg, -1, errno);
		if (c == 0) {   /* the sender: reports nothing (its pid is not the test's) */
			char one = 'f', cbuf[CMSG_SPACE(sizeof(int))];
			struct iovec iov = { &one, 1 };
			struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
					    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
			memset(cbuf, 0, sizeof(cbuf));
			struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &pass, sizeof(int));
			_exit(sendmsg(sv[1], &m, 0) < 0 ? (errno & 0x7f) : 0);
		}
		close(sv[1]);
		waitpid(c, &st, 0);
		/* the process keeps no copy: only the one in flight reaches recvfd */
		passed_afd = afd >= 0;
		if (afd >= 0)
			close(afd);
		close(fd);
		afd = fd = -1;
		unixfd = sv[0];
		rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
		return report(op, arg, rc, rc < 0 && WIFEXITED(st) ? WEXITSTATUS(st) : EIO);
	}
	if (!strcmp(op, "recvfd")) {
		char one, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &one, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		int got = -1;
		rc = recvmsg(unixfd, &m, 0);
		if (rc < 0)
			return report(op, arg, -1, errno);
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
				memcpy(&got, CMSG_DATA(cm), sizeof(int));
		close(unixfd);
		unixfd = -1;
		if (got < 0) {   /* __receive_fd refused it: recvmsg succeeds, MSG_CTRUNC */
			emit("RESULT name=%s pid=%d step=%d op=%s arg=- result=%s errno=0\n", name,
			     (int)getpid(), step, op, m.msg_flags & MSG_CTRUNC ? "MSG_CTRUNC" : "NOFD");
			return -1;
		}
		if (passed_afd)
			afd = got;
		else
			fd = got;
		return report(op, arg, 0, 0);
	}
	if (!strcmp(op, "sock")) {
		int dom = AF_INET, type = SOCK_STREAM, proto = 0;
		sock_kind = !strncmp(arg, "raw", 3) || !strncmp(arg, "icmp", 4);
		sock_v6 = strstr(arg, "6") != NULL;
		connected = 0;
		if (sock_v6)
			dom = AF_INET6;
		if (!strncmp(arg, "udp", 3))
			type = SOCK_DGRAM;
		else if (!strncmp(arg, "raw", 3))
			type = SOCK_RAW, proto = dom == AF_INET6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
		else if (!strncmp(arg, "icmp", 4))
			type = SOCK_DGRAM, proto = dom == AF_INET6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
		else if (!strncmp(arg, "sctp", 4))
			type = SOCK_STREAM, proto = IPPROTO_SCTP;
		else if (!strncmp(arg, "dccp", 4))
			type = SOCK_DCCP, proto = IPPROTO_DCCP;
		if (fd >= 0)
			close(fd);
		fd = socket(dom, type, proto);
		return report(op, arg, fd, errno);
	}
	if (!strcmp(op, "reuse")) {
		int one = 1;
		rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "timeout")) {
		struct sigaction sa = { .sa_handler = on_alarm };   /* no SA_RESTART */
		struct itimerval it = { .it_value = { atoi(arg) / 1000, (atoi(arg) % 1000) * 1000 } };
		sigaction(SIGALRM, &sa, NULL);
		return setitimer(ITIMER_REAL, &it, NULL);
	}
	if ((!strcmp(op, "bind") && arg && !strncmp(arg, "unspec:", 7)) ||
	    (!strcmp(op, "connect") && arg && !strcmp(arg, "unspec"))) {
		socklen_t len = sock_v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		memset(&ss, 0, sizeof(ss));
		if (op[0] == 'b') {
			if (parse_addr(arg + 7, &ss, &sl) < 0 || ss.ss_family != AF_INET)
				return report(op, arg, -1, EINVAL);
			ss.ss_family = AF_UNSPEC;   /* the address stays, as a sockaddr_in */
			rc = bind(fd, (struct sockaddr *)&ss, len);
		} else {
			rc = connect(fd, (struct sockaddr *)&ss, len);
			if (rc == 0)
				connected = 0;
		}
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "setsockopt") || !strcmp(op, "getsockopt")) {
		int level, opt, one = 1, val[4] = { 0 };
		struct linger lg = { 0, 0 };
		socklen_t vl = sizeof(val);
		int f = afd >= 0 ? afd : fd;
		if (!arg || find_option(arg, &level, &opt) < 0)
			return report(op, arg, -1, EINVAL);
		if (op[0] == 'g')
			rc = getsockopt(f, level, opt, val, &vl);
		else if (opt == SO_LINGER && level == SOL_SOCKET)
			rc = setsockopt(f, level, opt, &lg, sizeof(lg));
		else
			rc = setsockopt(f, level, opt, &one, sizeof(one));
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "shutdown")) {
		rc = shutdown(afd >= 0 ? afd : fd, SHUT_RDWR);
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "getsockname") || !strcmp(op, "getpeername")) {
		sl = sizeof(ss);
		int f = afd >= 0 ? afd : fd;
		rc = op[3] == 's' ? getsockname(f, (struct sockaddr *)&ss, &sl)
				  : getpeername(f, (struct sockaddr *)&ss, &sl);
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "bind") || !strcmp(op, "connect") || !strcmp(op, "sendto") ||
	    !strcmp(op, "fastopen")) {
		unsigned char b[16];
		size_t n = payload(b);
		if (!arg || parse_addr(arg, &ss, &sl) < 0)
			return report(op, arg, -1, EINVAL);
		if (!strcmp(op, "bind"))
			rc = bind(fd, (struct sockaddr *)&ss, sl);
		else if (!strcmp(op, "connect"))
			rc = connect(fd, (struct sockaddr *)&ss, sl), connected = rc == 0;
		else if (!strcmp(op, "sendto"))
			rc = sendto(afd >= 0 ? afd : fd, b, n, MSG_NOSIGNAL, (struct sockaddr *)&ss, sl);
		else
			rc = sendto(fd, b, n, MSG_FASTOPEN | MSG_NOSIGNAL, (struct sockaddr *)&ss, sl);
		return report(op, arg, rc < 0 ? -1 : 0, errno);
	}
	if (!strcmp(op, "listen")) {
		rc = listen(fd, 16);
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "accept")) {
		rc = wait_readable(fd, arg ? atoi(arg) : 5000);
		if (rc == 0) {
			afd = accept(fd, NULL, NULL);
			rc = afd;
		}
		return report(op, arg, rc < 0 ? -1 : 0, errno);
	}
	if (!strcmp(op, "send")) {
		unsigned char b[16];
		size_t n = payload(b);
		if (afd < 0 && !connected && last_from_len)
			rc = sendto(fd, b, n, MSG_NOSIGNAL, (struct sockaddr *)&last_from, last_from_len);
		else
			rc = send(afd >= 0 ? afd : fd, b, n, MSG_NOSIGNAL);
		return report(op, arg, rc < 0 ? -1 : 0, errno);
	}
	if (!strcmp(op, "recv")) {
		char b[256];
		int f = afd >= 0 ? afd : fd;
		last_from_len = sizeof(last_from);
		rc = wait_readable(f, arg ? atoi(arg) : 2000);
		/* the read check is made by recvmsg(), so call it even after a timeout */
		rc = recvfrom(f, b, sizeof(b), rc == 0 ? 0 : MSG_DONTWAIT,
			      (struct sockaddr *)&last_from, &last_from_len);
		if (rc < 0)
			last_from_len = 0;
		return report(op, arg, rc < 0 ? -1 : 0, errno);
	}
	if (!strcmp(op, "waiteof")) {   /* wait for the peer to close; poll() makes no SELinux check */
		wait_readable(afd >= 0 ? afd : fd, arg ? atoi(arg) : 2000);
		return 0;
	}
	if (!strcmp(op, "rstclose")) {   /* SO_LINGER 0: reset, so no TIME_WAIT blocks later binds */
		struct linger l = { 1, 0 };
		rc = setsockopt(afd >= 0 ? afd : fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		if (afd >= 0)
			close(afd);
		close(fd);
		afd = fd = -1;
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "close")) {
		if (afd >= 0)
			close(afd);
		rc = close(fd);
		afd = fd = -1;
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "ready")) {
		if (shm) {
			snprintf(shm->ready_path, sizeof(shm->ready_path), "%s", arg);
			__sync_synchronize();
			shm->ready = 1;
			return report(op, arg, 0, 0);
		}
		rc = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (rc >= 0)
			close(rc);
		return report(op, arg, rc < 0 ? -1 : 0, errno);
	}
	if (!strcmp(op, "sleep")) {
		struct timespec ts = { atoi(arg) / 1000, (atoi(arg) % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		return 0;
	}
	if (!strcmp(op, "loadpolicy")) {
		int f = open(arg, O_RDONLY);
		struct stat st;
		if (f < 0 || fstat(f, &st) < 0)
			return report(op, arg, -1, errno);
		char *buf = malloc(st.st_size);
		ssize_t got = 0;
		while (got < st.st_size) {
			ssize_t n = read(f, buf + got, st.st_size - got);
			if (n <= 0)
				return report(op, arg, -1, n < 0 ? errno : EIO);
			got += n;
		}
		close(f);
		/* selinuxfs "load" only accepts the whole policy in a single write */
		rc = write_file("/sys/fs/selinux/load", buf, st.st_size);
		free(buf);
		return report(op, arg, rc, errno);
	}
	if (!strcmp(op, "enforce")) {
		rc = write_file("/sys/fs/selinux/enforce", arg, strlen(arg));
		return report(op, arg, rc, errno);
	}
	return report(op, arg, -1, EINVAL);
}

static int run_ops(int i, int argc, char **argv)
{
	show_context();
	for (; i < argc; i++) {
		step++;
		if (do_op(argv[i], argv + i + 1, argc - i - 1) < 0 && !keep_going)
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1, status;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-k"))
			keep_going = 1;
		else if (!strcmp(argv[i], "-n"))
			nofork = 1;
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			step = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-r") && i + 1 < argc)
			ready_default = argv[++i];
		else if (!strcmp(argv[i], "-F") && i + 1 < argc) {
			/* after exec=: the inherited socket, and a running timeout=, whose handler
			 * exec reset (SIGALRM would kill instead of interrupting a call) */
			struct sigaction sa = { .sa_handler = on_alarm };
			sscanf(argv[++i], "%d:%d:%d:%d:%d", &fd, &afd, &sock_kind, &sock_v6,
			       &connected);
			sigaction(SIGALRM, &sa, NULL);
		}
		else
			break;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: sockop [-k] [-n] NAME OP...\n");
		return 2;
	}
	name = argv[i++];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (nofork)
		return run_ops(i, argc, argv);

	shm = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0)
		_exit(run_ops(i, argc, argv));
	child = pid;
	signal(SIGTERM, on_term);   /* the runner ends a peer that waits in vain */
	for (int made = 0, done = 0; !done;) {
		pid_t w = waitpid(pid, &status, made ? 0 : WNOHANG);
		if (w < 0 && errno != EINTR) {
			perror("waitpid");
			return 2;
		}
		done = w == pid;
		if (!made && (shm->ready || (done && ready_default))) {
			/* "ready or gone": never leave the runner waiting for a dead child */
			int f = open(shm->ready ? shm->ready_path : ready_default,
				     O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (f >= 0)
				close(f);
			made = 1;
		} else if (!done && !made) {
			usleep(2000);
		}
	}
	fwrite(shm->buf, 1, shm->len, stdout);
	fflush(stdout);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
