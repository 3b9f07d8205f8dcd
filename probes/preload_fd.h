#pragma once
#include <stdbool.h>
/* The fd wrappers of the probe shim (probes/preload_fd.c). */

/* Constructor: resolve the real functions. */
void preload_fd_init(void);
/* In a vfork child (shared memory with the parent): the fd wrappers must
 * neither record nor touch the tables. Defined in preload.c. */
bool preload_fd_paused(void);
/* A wrapper elsewhere in the shim created fd (pidfd_open). */
void preload_fd_created(int fd, const char *via, const void *caller);
