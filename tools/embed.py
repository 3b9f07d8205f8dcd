#!/usr/bin/env python3
"""Embed a text file as a C string: embed.py INPUT OUTPUT SYMBOL."""
import sys

src, dst, symbol = sys.argv[1:4]
data = open(src, "rb").read()
with open(dst, "w") as out:
    out.write("/* generated from %s: do not edit */\n" % src.split("/")[-1])
    out.write("const char %s[] =\n" % symbol)
    for line in data.decode("utf-8").splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        out.write('\t"%s"\n' % esc)
    out.write("\t;\n")
