#pragma once
/* The actor runtime's registry lock: a process-global mutex the runtime takes
 * when it records a child and when a child registers itself at boot. The
 * forkserver holds it from a spawn request until its completion, so a child
 * forked while another thread holds it inherits it locked with no owner: the
 * lost-wakeup-futex class. */
#include <stdbool.h>

void registry_lock(void);
void registry_unlock(void);
/* fixes.atfork_locks: reinitialise the lock in the child of every fork (the
 * pthread_atfork remedy). Set before each spawn. */
void registry_set_atfork_reinit(bool enabled);
