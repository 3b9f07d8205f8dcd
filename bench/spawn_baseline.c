/* spawn_baseline: the raw floor under forkscope's spawn figures (bench/run).
 *
 *   spawn_baseline fork IMAGE_BYTES N
 *       the parent touches an IMAGE_BYTES warm image, then N times: fork();
 *       the child writes one byte to a pipe and _exit(0)s. Time from before
 *       fork() to the parent reading that byte.
 *   spawn_baseline spawn IMAGE_BYTES N [PATH]
 *       the same parent (holding the touched image), N times posix_spawn of
 *       PATH (default /bin/true) with its stdout on the pipe. Time from before
 *       posix_spawn() to the first byte or EOF on the pipe, whichever comes
 *       first: /bin/true writes nothing, so this is spawn-to-exit, an upper
 *       bound of its time to a first byte.
 *   spawn_baseline rebuild IMAGE_BYTES N
 *       posix_spawn of this program in child mode: the child touches its own
 *       IMAGE_BYTES image (as a fresh interpreter re-imports its modules) and
 *       then writes its first byte. The floor under the spawn backend.
 *
 * Each child is waited for after the byte arrived, outside the timing.
 * Prints one JSON object: {"mode":..,"image_bytes":..,"samples_ns":[..]}. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static uint64_t
now_ns(void)
{
	struct timespec ts;
	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static char *
touch_image(uint64_t bytes)
{
	if (bytes == 0)
		return NULL;
	char *p = malloc(bytes);
	if (!p) {
		fprintf(stderr, "spawn_baseline: cannot allocate %" PRIu64 " bytes\n", bytes);
		exit(1);
	}
	long page = sysconf(_SC_PAGESIZE);
	for (uint64_t off = 0; off < bytes; off += (uint64_t) page)
		((volatile char *) p)[off] = (char) off;
	return p;
}

/* Block until one byte or EOF; returns when either happened. */
static void
wait_first_byte(int fd)
{
	char c;
	for (;;) {
		ssize_t n = read(fd, &c, 1);
		if (n >= 0)
			return;
		if (errno != EINTR) {
			perror("spawn_baseline: read");
			exit(1);
		}
	}
}

static void
reap(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			break;
}

/* The parent's side once the child exists: time to its first byte on p, then
 * reap it. */
static uint64_t
finish(pid_t pid, int p[2], uint64_t t0)
{
	(void) close(p[1]);
	wait_first_byte(p[0]);
	uint64_t t1 = now_ns();
	(void) close(p[0]);
	reap(pid);
	return t1 - t0;
}

static uint64_t
one_fork(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("spawn_baseline: pipe");
		exit(1);
	}
	uint64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0) {
		perror("spawn_baseline: fork");
		exit(1);
	}
	if (pid == 0) {
		char c = 'x';
		(void) write(p[1], &c, 1);
		_exit(0);
	}
	return finish(pid, p, t0);
}

static uint64_t
one_spawn(char *const argv[])
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("spawn_baseline: pipe");
		exit(1);
	}
	posix_spawn_file_actions_t fa;
	(void) posix_spawn_file_actions_init(&fa);
	(void) posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	uint64_t t0 = now_ns();
	pid_t pid;
	int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	(void) posix_spawn_file_actions_destroy(&fa);
	if (r != 0) {
		fprintf(stderr, "spawn_baseline: posix_spawn %s: %s\n", argv[0], strerror(r));
		exit(1);
	}
	return finish(pid, p, t0);
}

static int
usage(void)
{
	fprintf(stderr, "usage: spawn_baseline fork|spawn|rebuild IMAGE_BYTES N [PATH]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "__child") == 0) {
		/* rebuild mode, child side: build the image, then the first byte. */
		(void) touch_image(strtoull(argv[2], NULL, 10));
		char c = 'x';
		(void) write(1, &c, 1);
		return 0;
	}
	if (argc < 4)
		return usage();
	const char *mode = argv[1];
	uint64_t image = strtoull(argv[2], NULL, 10);
	long n = strtol(argv[3], NULL, 10);
	if (n <= 0)
		return usage();
	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return 1;
	self[len] = '\0';
	char *spawn_argv[] = { (char *) (argc > 4 ? argv[4] : "/bin/true"), NULL };
	char *rebuild_argv[] = { self, (char *) "__child", argv[2], NULL };

	/* The parent holds the warm image in every mode: posix_spawn's cost
	 * must not depend on it, fork's does. */
	char *img = touch_image(image);
	uint64_t *samples = calloc((size_t) n, sizeof(*samples));
	if (!samples)
		return 1;
	/* One untimed round first: page cache, dynamic loader, the pipe paths. */
	for (long i = -1; i < n; i++) {
		uint64_t t;
		if (strcmp(mode, "fork") == 0)
			t = one_fork();
		else if (strcmp(mode, "spawn") == 0)
			t = one_spawn(spawn_argv);
		else if (strcmp(mode, "rebuild") == 0)
			t = one_spawn(rebuild_argv);
		else
			return usage();
		if (i >= 0)
			samples[i] = t;
	}
	printf("{\"mode\":\"%s\",\"image_bytes\":%" PRIu64 ",\"samples_ns\":[", mode, image);
	for (long i = 0; i < n; i++)
		printf("%s%" PRIu64, i ? "," : "", samples[i]);
	printf("]}\n");
	free(samples);
	free(img);
	return 0;
}
