#!/usr/bin/env python3
"""Every public header compiles on its own (STYLE.md, issue 12).

For each .h under the given source directories, compile a translation unit
holding only `#include "dir/header.h"` (twice: #pragma once must hold) with
-fsyntax-only and the project's own flags, taken from the build's
compile_commands.json: the flags every target shares (standard, defines,
warnings turned into errors) plus the source and build roots and the
dependencies' include directories. A header without a `#pragma once` line, a header that needs another include first,
uses a type it does not declare or breaks the second inclusion fails.

The first test point checks the checker: a header that uses size_t without
<stddef.h> must be refused, or every other point would mean nothing.

TAP on stdout, one point per header.
usage: header_check.py BUILD_DIR SOURCE_ROOT DIR...
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import tempfile

# Per-file or per-run flags that say nothing about the code.
DROP_PREFIXES = ("-fdiagnostics-color", "-MD", "-MMD", "-Winvalid-pch")


def project_flags(build_dir, source_root):
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        commands = json.load(f)
    if not commands:
        raise SystemExit("Bail out! empty compile_commands.json")
    argvs = []
    for entry in commands:
        argv = entry.get("arguments") or shlex.split(entry["command"])
        argvs.append((entry.get("directory", build_dir), argv))
    compiler = argvs[0][1][0]
    shared = None
    include_dirs = []
    roots = (os.path.realpath(source_root), os.path.realpath(build_dir))
    for directory, argv in argvs:
        tokens = []
        i = 1
        while i < len(argv):
            t = argv[i]
            if t in ("-o", "-MQ", "-MF", "-MT"):
                i += 2
                continue
            if t in ("-I", "-isystem") and i + 1 < len(argv):
                t += argv[i + 1]
                i += 1
            i += 1
            if t.startswith(("-I", "-isystem")):
                flag = "-isystem" if t.startswith("-isystem") else "-I"
                path = os.path.realpath(os.path.join(directory, t[len(flag):]))
                # The roots themselves, and the dependencies' directories;
                # not a target's private directory inside the tree.
                inside = any(path.startswith(r + os.sep) for r in roots)
                if not inside and (flag, path) not in include_dirs:
                    include_dirs.append((flag, path))
                continue
            if t.startswith("-") and t != "-c" and not t.startswith(DROP_PREFIXES):
                tokens.append(t)
        shared = tokens if shared is None else [t for t in shared if t in tokens]
    flags = list(dict.fromkeys(shared))
    for flag, path in include_dirs:
        flags += [flag, path]
    return compiler, flags


def check(compiler, flags, include_root, header):
    with open(os.path.join(include_root, header), errors="replace") as f:
        if "#pragma once" not in (line.strip() for line in f):
            return False, "%s: no #pragma once line" % header
    source = '#include "%s"\n#include "%s"\n' % (header, header)
    proc = subprocess.run(
        [compiler] + flags + ["-I", include_root, "-fsyntax-only", "-x", "c", "-"],
        input=source, capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr


def headers_under(source_root, dirs):
    found = []
    for d in dirs:
        top = os.path.join(source_root, d)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(".h"):
                    found.append(os.path.relpath(os.path.join(dirpath, name), source_root))
    return found


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    build_dir, source_root, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    compiler, flags = project_flags(build_dir, source_root)
    headers = headers_under(source_root, dirs)
    print("TAP version 13")
    print("1..%d" % (len(headers) + 1))

    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "broken"))
        with open(os.path.join(tmp, "broken", "needs_stddef.h"), "w") as f:
            f.write("#pragma once\nsize_t broken_length(const char *s);\n")
        ok, _ = check(compiler, flags, tmp, "broken/needs_stddef.h")
        print("%s 1 - the checker refuses a header that is not self-contained" % ("not ok" if ok else "ok"))
        failed = int(ok)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda h: check(compiler, flags, source_root, h), headers))
    for n, (header, (ok, err)) in enumerate(zip(headers, results), start=2):
        print("%s %d - %s compiles alone" % ("ok" if ok else "not ok", n, header))
        if not ok:
            failed += 1
            for line in err.strip().splitlines()[:12]:
                print("# " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
