#include "harness/registry.h"

#include <pthread.h>

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static bool atfork_reinit;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
atfork_child(void)
{
	/* Plain assignment is all a fresh mutex is, and it is safe in the
	 * child of a fork. */
	if (atfork_reinit)
		registry_mutex = (pthread_mutex_t) PTHREAD_MUTEX_INITIALIZER;
}

static void
atfork_register(void)
{
	(void) pthread_atfork(NULL, NULL, atfork_child);
}

void
registry_set_atfork_reinit(bool enabled)
{
	(void) pthread_once(&atfork_once, atfork_register);
	atfork_reinit = enabled;
}

void
registry_lock(void)
{
	(void) pthread_mutex_lock(&registry_mutex);
}

void
registry_unlock(void)
{
	(void) pthread_mutex_unlock(&registry_mutex);
}
