/* libFuzzer: every /proc text parser of probes/procfs.h on the same input.
 * The parsers take (text, len) with no NUL and must never read past len,
 * write past their output or hit undefined behaviour, whatever the kernel
 * (or a hostile file) gives. The input is handed over in a buffer of exactly
 * len bytes so ASan sees any read past it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probes/procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);

	struct proc_stat st;
	(void) procfs_parse_stat(text, size, &st);
	struct proc_status status;
	(void) procfs_parse_status(text, size, &status);

	/* fdinfo the way procfs_read_fdinfo uses it: count, then parse again
	 * with room for every target. */
	struct proc_fdinfo fi;
	struct epoll_target few[2];
	if (procfs_parse_fdinfo(text, size, &fi, few, 2) == 0 && fi.n_targets > 2 && fi.n_targets < 100000) {
		size_t n = fi.n_targets;
		struct epoll_target *all = calloc(n, sizeof(*all));
		if (all) {
			(void) procfs_parse_fdinfo(text, size, &fi, all, n);
			free(all);
		}
	}
	(void) procfs_parse_fdinfo(text, size, &fi, NULL, 0);

	struct proc_syscall sc;
	if (procfs_parse_syscall(text, size, &sc) == 0) {
		struct syscall_wait w;
		syscall_wait_decode(&sc, &w);
		char name[32];
		(void) syscall_name_or_number(sc.nr, name, sizeof(name));
		(void) futex_cmd_name(w.futex_cmd);
		(void) procfs_syscall_resolve_restart(&sc, "do_sys_poll");
		(void) procfs_syscall_resolve_restart(&sc, "hrtimer_nanosleep");
	}

	struct proc_io io;
	(void) procfs_parse_io(text, size, &io);

	pid_t pids[8];
	(void) procfs_parse_pid_list(text, size, pids, 8);
	(void) procfs_parse_pid_list(text, size, NULL, 0);

	char wchan[64], tiny[2];
	procfs_parse_wchan(text, size, wchan, sizeof(wchan));
	procfs_parse_wchan(text, size, tiny, sizeof(tiny));

	/* readlink targets are NUL-terminated strings */
	char *target = malloc(size + 1);
	if (target) {
		memcpy(target, data, size);
		target[size] = '\0';
		uint64_t ino;
		bool deleted;
		(void) fd_kind_classify(target, &ino, &deleted);
		(void) fd_kind_from_name(target);
		(void) syscall_from_name(target);
		free(target);
	}
	free(text);
	return 0;
}
