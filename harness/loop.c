#include "harness/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/macro.h"
#include "util/timeutil.h"

struct watch {
	int fd;
	loop_fd_fn fn;
	void *userdata;
	bool removed;
};

struct timer {
	uint64_t id;
	uint64_t deadline;
	loop_timer_fn fn;
	void *userdata;
};

struct loop {
	int epfd;
	int wake[2];
	struct watch **watches;
	size_t n_watches, cap_watches;
	struct timer *timers;
	size_t n_timers, cap_timers;
	uint64_t next_timer_id;
	bool quit;
	loop_timer_fn wake_fn;
	void *wake_userdata;
};

static void
wake_drain(struct loop *l, int fd, uint32_t events, void *userdata)
{
	char buf[64];
	/* Our own socketpair: the write end lives as long as the loop, so no EOF. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (l->wake_fn)
		l->wake_fn(l, l->wake_userdata);
}

int
loop_new(struct loop **ret)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->wake[0] = l->wake[1] = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, l->wake) < 0)
		goto fail;
	if (loop_add_fd(l, l->wake[0], EPOLLIN, wake_drain, NULL) < 0)
		goto fail;
	*ret = l;
	return 0;
fail:;
	int e = -errno;
	loop_free(l);
	return e ? e : -ENOMEM;
}

void
loop_free(struct loop *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_watches; i++)
		free(l->watches[i]);
	free(l->watches);
	free(l->timers);
	if (l->epfd >= 0)
		(void) close(l->epfd);
	if (l->wake[0] >= 0)
		(void) close(l->wake[0]);
	if (l->wake[1] >= 0)
		(void) close(l->wake[1]);
	free(l);
}

static struct watch *
find_watch(struct loop *l, int fd)
{
	for (size_t i = 0; i < l->n_watches; i++)
		if (l->watches[i]->fd == fd && !l->watches[i]->removed)
			return l->watches[i];
	return NULL;
}

bool
loop_has_fd(struct loop *l, int fd)
{
	return find_watch(l, fd) != NULL;
}

int
loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *userdata)
{
	if (find_watch(l, fd))
		return -EEXIST;
	if (l->n_watches == l->cap_watches) {
		size_t cap = l->cap_watches ? l->cap_watches * 2 : 16;
		struct watch **w = realloc(l->watches, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		l->watches = w;
		l->cap_watches = cap;
	}
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct watch){ .fd = fd, .fn = fn, .userdata = userdata };
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = -errno;
		free(w);
		return e;
	}
	l->watches[l->n_watches++] = w;
	return 0;
}

int
loop_remove_fd(struct loop *l, int fd)
{
	struct watch *w = find_watch(l, fd);
	if (!w)
		return -ENOENT;
	(void) epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	/* Freed after dispatch: a pending epoll event may still point at it. */
	w->removed = true;
	return 0;
}

static void
collect_removed(struct loop *l)
{
	size_t j = 0;
	for (size_t i = 0; i < l->n_watches; i++) {
		if (l->watches[i]->removed)
			free(l->watches[i]);
		else
			l->watches[j++] = l->watches[i];
	}
	l->n_watches = j;
}

uint64_t
loop_add_timer(struct loop *l, uint64_t deadline_ns, loop_timer_fn fn, void *userdata)
{
	if (l->n_timers == l->cap_timers) {
		size_t cap = l->cap_timers ? l->cap_timers * 2 : 16;
		struct timer *t = realloc(l->timers, cap * sizeof(*t));
		if (!t)
			return 0;
		l->timers = t;
		l->cap_timers = cap;
	}
	uint64_t id = ++l->next_timer_id;
	l->timers[l->n_timers++] = (struct timer){ id, deadline_ns, fn, userdata };
	return id;
}

void
loop_cancel_timer(struct loop *l, uint64_t id)
{
	for (size_t i = 0; i < l->n_timers; i++)
		if (l->timers[i].id == id) {
			l->timers[i] = l->timers[--l->n_timers];
			return;
		}
}

static int
next_timeout_ms(struct loop *l)
{
	if (l->n_timers == 0)
		return -1;
	uint64_t earliest = UINT64_MAX;
	for (size_t i = 0; i < l->n_timers; i++)
		earliest = MIN(earliest, l->timers[i].deadline);
	uint64_t now = now_ns();
	if (earliest <= now)
		return 0;
	uint64_t ms = (earliest - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;
	return ms > 86400000 ? 86400000 : (int) ms;
}

static void
fire_timers(struct loop *l)
{
	uint64_t now = now_ns();
	/* Fire one due timer at a time: callbacks add and cancel timers. */
	for (;;) {
		size_t due = l->n_timers;
		for (size_t i = 0; i < l->n_timers; i++)
			if (l->timers[i].deadline <= now &&
			    (due == l->n_timers || l->timers[i].deadline < l->timers[due].deadline))
				due = i;
		if (due == l->n_timers)
			return;
		struct timer t = l->timers[due];
		l->timers[due] = l->timers[--l->n_timers];
		t.fn(l, t.userdata);
	}
}

int
loop_run_once(struct loop *l)
{
	struct epoll_event events[32];
	int n = epoll_wait(l->epfd, events, (int) ARRAY_SIZE(events), next_timeout_ms(l));
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		struct watch *w = events[i].data.ptr;
		if (w->removed)
			continue;
		w->fn(l, w->fd, events[i].events, w->userdata);
	}
	fire_timers(l);
	collect_removed(l);
	return 0;
}

int
loop_run(struct loop *l)
{
	while (!l->quit) {
		int r = loop_run_once(l);
		if (r < 0)
			return r;
	}
	return 0;
}

void
loop_quit(struct loop *l)
{
	l->quit = true;
}

bool
loop_quitting(struct loop *l)
{
	return l->quit;
}

int
loop_wake_fd(struct loop *l)
{
	return l->wake[1];
}

void
loop_set_wake_handler(struct loop *l, loop_timer_fn fn, void *userdata)
{
	l->wake_fn = fn;
	l->wake_userdata = userdata;
}
