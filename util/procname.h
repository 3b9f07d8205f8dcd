#pragma once
/* What to call a process in reports: its comm says "python3" for every
 * Python script and is cut to 15 characters; its command line says more. */
#include <stddef.h>

/* A malloc'ed name: for an interpreter (python3, bash, sh, perl, node, ...)
 * "PROG SCRIPT" (the first argument that is not an option; the module of
 * -m), else the program's base name when comm was cut, else comm. NULL when
 * neither comm nor argv says anything. */
char *process_display_name(const char *comm, const char *const *argv, size_t argc);
