#pragma once
/* fd-reuse tracking for the LD_PRELOAD probe (fd-alias, docs/catalogue.md).
 *
 * A fork child starts with the fds that crossed the fork. When it closes one
 * of them (close, close_range, or a dup2 over it) the number is recorded
 * (`fd_close`), and the next call that creates an fd with that number is an
 * `fd_reuse`: an object of the parent that still holds the number now reaches
 * whatever reused it. On reused numbers only, the first write from each
 * distinct call site is sampled (`fd_write_sample`), so two writers on one fd
 * show. Everything is async-signal-safe and lives in static tables; the hot
 * path of a wrapper is one bitmap test. Fds at or above FDT_MAX are not
 * tracked. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define FDT_MAX 1024
#define FDT_WORDS (FDT_MAX / 64)
#define FDT_CLOSED_SLOTS 64 /* remembered closes of inherited fds */
#define FDT_REUSE_SLOTS 16  /* reused fds whose writes are sampled */
#define FDT_SITES 4	    /* distinct call sites sampled per reused fd */
#define FDT_SAMPLE_BYTES 32 /* first bytes kept per sample */
#define FDT_MAX_GENERATIONS 4 /* reuses of one number recorded after it was closed again */

/* Bits per fd: crossed the fork and still open; closed and not reused yet;
 * reused (writes are sampled). */
extern uint64_t fdt_inherited[FDT_WORDS];
extern uint64_t fdt_pending[FDT_WORDS];
extern uint64_t fdt_reused[FDT_WORDS];

static inline bool
fdt_bit(const uint64_t *map, int fd)
{
	return fd >= 0 && fd < FDT_MAX && (__atomic_load_n(&map[fd >> 6], __ATOMIC_RELAXED) >> (fd & 63) & 1);
}

/* Watch only fd across this fork (the actor runtime knows which of its fds
 * have owners that outlive the scrub); -1: nothing. */
void fdtrack_watch_only(int fd);
/* Constructor: learn the probe's own text range (its internal calls are not the program's). */
void fdtrack_init(void);
/* Child side of a fork, before the program runs: the fds that crossed it. */
void fdtrack_after_fork(void);
/* Is a return address inside the probe itself? */
bool fdtrack_from_probe(const void *caller);

/* A close of fd (in fdt_inherited or fdt_reused): before the call, describe
 * what goes; after a successful call, record it. */
struct fdt_closing {
	int fd;
	bool inherited;
	char target[200];
	const char *kind;
	uint64_t ino, dev;
};
void fdtrack_close_prepare(int fd, struct fdt_closing *c);
void fdtrack_close_done(const struct fdt_closing *c, const char *via);

/* fd was just created by via and its number is in fdt_pending. */
void fdtrack_reused(int fd, const char *via, pid_t tid);

/* A write of len bytes (ret: what the call returned) on a reused fd. */
void fdtrack_write(int fd, const char *via, const void *caller, const void *buf, size_t len, ssize_t ret);
void fdtrack_writev(int fd, const char *via, const void *caller, const struct iovec *iov, int iovcnt, ssize_t ret);

/* Resolve addr to "module" (basename of its mapping) and offset in the file
 * from /proc/self/maps, without malloc. Returns 0 or -errno. */
int fdtrack_site(uintptr_t addr, char *module, size_t module_size, uint64_t *ret_offset, char *path,
		 size_t path_size, uintptr_t *ret_start, uintptr_t *ret_end);
