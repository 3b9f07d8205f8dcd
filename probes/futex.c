#include "probes/futex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/macro.h"

#define FUTEX_TID_MASK_LOCAL 0x3fffffffu

static int
read_u32(pid_t pid, uint64_t addr, uint32_t *ret)
{
	uint32_t v;
	struct iovec local = {.iov_base = &v, .iov_len = sizeof(v)};
	struct iovec remote = {.iov_base = (void *) (uintptr_t) addr, .iov_len = sizeof(v)};
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return -errno;
	if (n != sizeof(v))
		return -EFAULT;
	*ret = v;
	return 0;
}

static bool
is_pi_cmd(int cmd)
{
	return cmd == 6 || cmd == 7 || cmd == 8 || cmd == 11 || cmd == 12 || cmd == 13;
}

/* Tgid of a tid, through /proc/TID (tids resolve there though not listed). */
static pid_t
tgid_of(pid_t tid)
{
	char path[64], buf[4096];
	(void) snprintf(path, sizeof(path), "/proc/%d/status", (int) tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	(void) close(fd);
	if (n <= 0)
		return 0;
	struct proc_status st;
	if (procfs_parse_status(buf, (size_t) n, &st) < 0 || !(st.present & PROC_STATUS_TGID))
		return -1;
	return st.tgid;
}

pid_t
futex_owner_candidate(const struct futex_info *info)
{
	if (info->pi_owner_tid > 0)
		return info->pi_owner_tid;
	if (info->owner_read && info->owner_tid > 0)
		return info->owner_tid;
	return 0;
}

int
futex_inspect(pid_t pid, const struct syscall_wait *w, struct futex_info *ret)
{
	if (!w->is_futex || w->futex_uaddr == 0)
		return -EINVAL;
	struct futex_info f = {
	    .uaddr = w->futex_uaddr,
	    .op = w->futex_op,
	    .cmd = w->futex_cmd,
	    .private_flag = w->futex_private,
	    .clock_realtime = w->futex_clock_realtime,
	    .val = w->futex_val,
	};
	uint32_t v;
	int r = read_u32(pid, f.uaddr, &v);
	if (r < 0) {
		f.word_error = -r;
	} else {
		f.word_read = true;
		f.word = v;
		if (is_pi_cmd(f.cmd))
			f.pi_owner_tid = (pid_t) (v & FUTEX_TID_MASK_LOCAL);
	}
	r = read_u32(pid, f.uaddr + FUTEX_GLIBC_OWNER_OFFSET, &v);
	if (r < 0) {
		f.owner_error = -r;
	} else {
		f.owner_read = true;
		f.owner_tid = (pid_t) (int32_t) v;
	}

	pid_t owner = futex_owner_candidate(&f);
	if (owner > 0) {
		char path[64];
		(void) snprintf(path, sizeof(path), "/proc/%d/task/%d", (int) pid, (int) owner);
		if (access(path, F_OK) == 0) {
			f.owner_where = FUTEX_OWNER_SAME_PROCESS;
			f.owner_pid = pid;
		} else {
			pid_t tgid = tgid_of(owner);
			if (tgid > 0) {
				f.owner_where = FUTEX_OWNER_OUTSIDE;
				f.owner_pid = tgid;
			} else if (tgid == 0) {
				f.owner_where = FUTEX_OWNER_NOWHERE;
			}
		}
	}
	*ret = f;
	return 0;
}

static const char *const where_names[] = {
    [FUTEX_OWNER_UNKNOWN] = "unknown",
    [FUTEX_OWNER_SAME_PROCESS] = "same_process",
    [FUTEX_OWNER_OTHER_PROCESS] = "other_process",
    [FUTEX_OWNER_OUTSIDE] = "outside",
    [FUTEX_OWNER_NOWHERE] = "nowhere",
};

const char *
futex_owner_where_name(enum futex_owner_where where)
{
	if ((size_t) where < ARRAY_SIZE(where_names))
		return where_names[where];
	return "unknown";
}

int
futex_owner_where_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(where_names); i++)
		if (strcmp(where_names[i], name) == 0)
			return (int) i;
	return -EINVAL;
}
