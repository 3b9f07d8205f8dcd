#pragma once
/* The fd wrappers of the probe shim (probes/preload_fd.c). */

/* Constructor: resolve the real functions. */
void preload_fd_init(void);
/* A wrapper elsewhere in the shim created fd (pidfd_open). */
void preload_fd_created(int fd, const char *via, const void *caller);
