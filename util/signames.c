#include "util/signames.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	int sig;
	const char *name;
} table[] = {
	{ SIGHUP, "SIGHUP" },	  { SIGINT, "SIGINT" },	    { SIGQUIT, "SIGQUIT" }, { SIGILL, "SIGILL" },
	{ SIGTRAP, "SIGTRAP" },	  { SIGABRT, "SIGABRT" },   { SIGBUS, "SIGBUS" },   { SIGFPE, "SIGFPE" },
	{ SIGKILL, "SIGKILL" },	  { SIGUSR1, "SIGUSR1" },   { SIGSEGV, "SIGSEGV" }, { SIGUSR2, "SIGUSR2" },
	{ SIGPIPE, "SIGPIPE" },	  { SIGALRM, "SIGALRM" },   { SIGTERM, "SIGTERM" }, { SIGSTKFLT, "SIGSTKFLT" },
	{ SIGCHLD, "SIGCHLD" },	  { SIGCONT, "SIGCONT" },   { SIGSTOP, "SIGSTOP" }, { SIGTSTP, "SIGTSTP" },
	{ SIGTTIN, "SIGTTIN" },	  { SIGTTOU, "SIGTTOU" },   { SIGURG, "SIGURG" },   { SIGXCPU, "SIGXCPU" },
	{ SIGXFSZ, "SIGXFSZ" },	  { SIGVTALRM, "SIGVTALRM" }, { SIGPROF, "SIGPROF" }, { SIGWINCH, "SIGWINCH" },
	{ SIGIO, "SIGIO" },	  { SIGPWR, "SIGPWR" },	    { SIGSYS, "SIGSYS" },
};

const char *
signal_name(int sig)
{
	static _Thread_local char buf[16];
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].sig == sig)
			return table[i].name;
	(void) snprintf(buf, sizeof(buf), "SIG%d", sig);
	return buf;
}

int
signal_parse(const char *text)
{
	if (!text || !*text)
		return -EINVAL;
	if (isdigit((unsigned char) text[0])) {
		char *end;
		long v = strtol(text, &end, 10);
		if (*end || v <= 0 || v > 64)
			return -EINVAL;
		return (int) v;
	}
	const char *bare = strncasecmp(text, "SIG", 3) == 0 ? text + 3 : text;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcasecmp(table[i].name + 3, bare) == 0)
			return table[i].sig;
	return -EINVAL;
}

char *
sigmask_format(uint64_t mask, char *buf, size_t size)
{
	size_t len = 0;
	if (size == 0)
		return buf;
	buf[0] = '\0';
	for (int sig = 1; sig <= 64; sig++) {
		if (!(mask & (1ULL << (sig - 1))))
			continue;
		int n = snprintf(buf + len, size - len, "%s%s", len ? "," : "", signal_name(sig));
		if (n < 0 || (size_t) n >= size - len)
			break;
		len += (size_t) n;
	}
	return buf;
}
