#!/usr/bin/env bash
# The installed copy (issue 15): `meson install --destdir` of the build, then
# the DESTDIR copy of forkscope run on its own catalogue and probe (found
# relative to the binary), every installed man page rendered without groff
# warnings, the completions loaded. TAP on stdout.
#   tests/test_install.sh MESON BUILD_DIR
set -uo pipefail
meson_cmd="$1"
build="$2"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/forkscope-install.XXXXXX")
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)); failed=1; echo "not ok $n - $1"
	[ -f "$tmp/err" ] && sed 's/^/# /' "$tmp/err" | head -40
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
	local what="$1"; shift
	if "$@" >"$tmp/out" 2>"$tmp/err"; then ok "$what"; else not_ok "$what"; fi
}

# Processes still running a binary of the DESTDIR copy: the pids, one a line.
leftovers() {
	local p exe
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case "$exe" in "$tmp"/*) echo "${p#/proc/}" ;; esac
	done
}

cleanup() {
	local pids
	pids=$(leftovers)
	# Only processes of this test's own copy: their exe is under $tmp.
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "TAP version 13"
if ! DESTDIR="$tmp/root" "$meson_cmd" install -C "$build" --no-rebuild --quiet >"$tmp/err" 2>&1; then
	not_ok "meson install --destdir"
	echo "1..$n"
	exit 1
fi
ok "meson install --destdir"

bin=$(find "$tmp/root" -path '*/bin/forkscope' -type f | head -1)
probe=$(find "$tmp/root" -name libforkscope-probe.so -path '*/forkscope/*' | head -1)
catalogue=$(find "$tmp/root" -type d -path '*/share/forkscope/scenarios' | head -1)
if [ -x "$bin" ] && [ -n "$probe" ] && [ -f "$catalogue/basics/one-child.yaml" ]; then
	ok "installed: bin/forkscope, forkscope/libforkscope-probe.so, share/forkscope/scenarios"
else
	not_ok "installed: bin/forkscope ($bin), the probe ($probe), the catalogue ($catalogue)"
	echo "1..$n"
	exit 1
fi
share=${catalogue%/forkscope/scenarios}
for doc in README.md docs/scenario-format.md docs/architecture.md; do
	check "installed doc/forkscope/$doc" test -s "$share/doc/forkscope/$doc"
done

# From a directory with no ./scenarios: only the installed lookup can work.
mkdir -p "$tmp/cwd" "$tmp/alt/scenarios"
cd "$tmp/cwd" || exit 1
unset FORKSCOPE_PROBE FORKSCOPE_DATADIR
export XDG_STATE_HOME="$tmp/state"

# `scenarios` without a path lists the installed catalogue, all of it.
expected=$(find "$catalogue" -name '*.yaml' | wc -l)
if "$bin" scenarios >"$tmp/out" 2>"$tmp/err" && [ "$(grep -cE '^[A-Za-z0-9_.-]+ +[0-9]+ cells? ' "$tmp/out")" -eq "$expected" ] &&
	grep -q '^one-child ' "$tmp/out"; then
	ok "scenarios without a path lists the installed catalogue ($expected files)"
else
	not_ok "scenarios without a path lists the installed catalogue ($expected files)"
	sed 's/^/# /' "$tmp/out" | head -20
fi

# One installed scenario with the installed binary (the spawn backend execs it).
if "$bin" run --out "$tmp/run1" "$catalogue/basics/one-child.yaml" >"$tmp/out" 2>"$tmp/err" &&
	[ -s "$tmp/run1/result.json" ] && grep -q '3 passed, 0 failed' "$tmp/out"; then
	ok "installed run of basics/one-child.yaml passes (3 cells)"
else
	not_ok "installed run of basics/one-child.yaml passes (3 cells)"
	sed 's/^/# /' "$tmp/out" | head -20
fi

# `run` without a path, catalogue through FORKSCOPE_DATADIR (one scenario, quick).
cp "$catalogue/basics/one-child.yaml" "$tmp/alt/scenarios/"
if FORKSCOPE_DATADIR="$tmp/alt" "$bin" run --out "$tmp/run2" >"$tmp/out" 2>"$tmp/err" &&
	grep -q 'one-child\[backend=spawn\]' "$tmp/out" && grep -q '3 passed, 0 failed' "$tmp/out"; then
	ok "run without a path runs \$FORKSCOPE_DATADIR/scenarios"
else
	not_ok "run without a path runs \$FORKSCOPE_DATADIR/scenarios"
	sed 's/^/# /' "$tmp/out" | head -20
fi

# A missing catalogue is an error naming where it was looked for.
if FORKSCOPE_DATADIR="$tmp/none" "$bin" scenarios >"$tmp/out" 2>"$tmp/err"; then
	not_ok "scenarios with a missing catalogue fails"
elif grep -q "$tmp/none/scenarios" "$tmp/err"; then
	ok "scenarios with a missing catalogue fails, naming $tmp/none/scenarios"
else
	not_ok "scenarios with a missing catalogue names the path"
fi

# watch finds the installed probe next to the binary: the shell's fork is
# recorded by the probe inside it.
if "$bin" watch --out "$tmp/watch" -- sh -c 'true & wait' >"$tmp/out" 2>"$tmp/err" &&
	grep -q "\"probe\":\"$probe\"" "$tmp/watch/events.ndjson" &&
	grep -q '"ev":"fork"' "$tmp/watch/events.ndjson"; then
	ok "installed watch preloads the installed probe"
else
	not_ok "installed watch preloads the installed probe"
fi

# Man pages: each renders without groff warnings.
pages=$(find "$tmp/root" -path '*/man/man[15]/*' -type f | sort)
if ! command -v man >/dev/null; then
	skip "man pages render" "man(1) is not installed"
elif [ -z "$pages" ]; then
	skip "man pages render" "none installed (scdoc not found at setup)"
else
	count=0
	for page in $pages; do
		count=$((count + 1))
		name=$(basename "$page")
		if MANWIDTH=80 man --warnings -l "$page" >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/err" ] &&
			grep -q '^NAME' "$tmp/out" && grep -q '^SEE ALSO' "$tmp/out"; then
			ok "man -l $name renders without warnings"
		else
			not_ok "man -l $name renders without warnings"
		fi
	done
	if [ "$count" -eq 8 ]; then ok "8 man pages installed"; else not_ok "8 man pages installed (found $count)"; fi
fi

# Completions.
bash_comp=$(find "$tmp/root" -path '*/bash-completion/completions/forkscope' -type f | head -1)
if [ -n "$bash_comp" ] &&
	[ "$(bash -c "source '$bash_comp'; complete -p forkscope" 2>"$tmp/err")" = "complete -F _forkscope forkscope" ]; then
	ok "bash completion installed and loads"
else
	not_ok "bash completion installed and loads ($bash_comp)"
fi
if [ -n "$bash_comp" ] && [ "$(bash -c "source '$bash_comp'
	COMP_WORDS=(forkscope run --backend ''); COMP_CWORD=3; _forkscope; echo \${COMPREPLY[*]}")" = "mtf fork spawn" ]; then
	ok "bash completion: run --backend offers mtf fork spawn"
else
	not_ok "bash completion: run --backend offers mtf fork spawn"
fi
zsh_comp=$(find "$tmp/root" -path '*/zsh/vendor-completions/_forkscope' -type f | head -1)
if [ -z "$zsh_comp" ]; then
	not_ok "zsh completion installed"
elif command -v zsh >/dev/null; then
	check "zsh completion installed and parses" zsh -n "$zsh_comp"
else
	skip "zsh completion parses" "zsh is not installed"
fi

# Nothing of the installed copy may still run.
left=$(leftovers)
if [ -z "$left" ]; then ok "no leftover processes"; else not_ok "leftover processes: $left"; fi

echo "1..$n"
exit $failed
