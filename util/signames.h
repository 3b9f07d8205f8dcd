#pragma once
#include <signal.h>
#include <stdint.h>

/* "SIGINT" for 2; "SIG41" for real-time signals; never NULL. */
const char *signal_name(int sig);
/* Accepts "SIGINT", "INT", "int", "2". Returns the number or -EINVAL. */
int signal_parse(const char *text);
/* Write "SIGINT,SIGTERM" for a 64-bit mask as /proc/PID/status prints (bit n-1 = signal n). */
char *sigmask_format(uint64_t mask, char *buf, size_t size);
