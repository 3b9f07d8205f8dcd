#!/bin/bash
# The Python-frame checks of tests/test_python.c against CPython 3.13: Debian 13
# (trixie)'s python3.13 in a debootstrap chroot, built on first use and cached
# outside the repository (FORKSCOPE_PY313_CACHE, default /var/cache/forkscope-py313).
# The targets run inside the chroot (`chroot DIR python3.13 ...`); the reader
# runs outside and sees them by pid, as it would any process.
#
#   python313_chroot.sh TEST_PYTHON FIXTURES_DIR   run the checks (meson does this)
#   python313_chroot.sh --build                    only build the cache
#
# Exit 77 (meson: SKIP) with "SKIP: <reason>" whenever the chroot cannot be
# had: never a silent pass.
set -u

CACHE=${FORKSCOPE_PY313_CACHE:-/var/cache/forkscope-py313}
ROOT=$CACHE/root
PARTIAL=$CACHE/root.partial
SUITE=trixie
PY=/usr/bin/python3.13

skip() {
	echo "SKIP: $*"
	exit 77
}

# The Debian mirror apt already uses (deb822 .sources or one-line .list),
# skipping the security archive: debootstrap wants the main archive.
apt_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		uri=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f" |
			grep -v -- '-security' | grep -m1 '/debian/\?$')
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f" |
			grep -v -- '-security' | grep -m1 '/debian/\?$')
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
}

# debootstrap mounts /proc (and more) inside the target; never leave them
# behind, and never rm -rf across one.
unmount_under() {
	local dir=$1 m
	[ -d "$dir" ] || return 0
	dir=$(readlink -f "$dir")
	for m in $(awk -v d="$dir" 'index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount -l "$m" 2>/dev/null
	done
}

build() {
	[ -x "$ROOT$PY" ] && return 0
	[ "$(id -u)" = 0 ] || skip "no cached chroot at $ROOT and not root (debootstrap needs root)"
	mkdir -p "$CACHE" || skip "cannot create $CACHE"
	exec 9>"$CACHE/lock" || skip "cannot lock $CACHE/lock"
	flock 9
	[ -x "$ROOT$PY" ] && return 0 # built by a concurrent run

	if ! command -v debootstrap >/dev/null; then
		echo "# installing debootstrap" >&2
		apt-get install -y debootstrap >"$CACHE/apt.log" 2>&1 ||
			skip "debootstrap is not installed and apt-get install failed (see $CACHE/apt.log)"
	fi
	local mirror
	mirror=${FORKSCOPE_DEBIAN_MIRROR:-$(apt_mirror)}
	[ -n "$mirror" ] || skip "no Debian mirror found in /etc/apt/sources.list*"

	unmount_under "$PARTIAL"
	rm -rf --one-file-system "$PARTIAL"
	echo "# building $SUITE chroot with python3.13 from $mirror into $ROOT (several minutes, once)" >&2
	if ! debootstrap --variant=minbase --include=python3.13 "$SUITE" "$PARTIAL" "$mirror" \
		>"$CACHE/debootstrap.log" 2>&1; then
		unmount_under "$PARTIAL"
		skip "debootstrap $SUITE from $mirror failed: $(grep -m1 -E '^[EW]:' "$CACHE/debootstrap.log" ||
			tail -n1 "$CACHE/debootstrap.log") (log: $CACHE/debootstrap.log)"
	fi
	unmount_under "$PARTIAL"
	[ -x "$PARTIAL$PY" ] || skip "debootstrap finished but $PY is missing in the chroot"
	# Renamed only when complete: a half-built tree is never taken for a cache.
	mv "$PARTIAL" "$ROOT" || skip "cannot move $PARTIAL to $ROOT"
}

if [ "${1:-}" = --build ]; then
	build
	echo "chroot ready: $ROOT"
	exit 0
fi

[ $# -eq 2 ] || { echo "usage: $0 TEST_PYTHON FIXTURES_DIR | --build" >&2; exit 2; }
test_bin=$1
fixtures=$2

build
version=$(chroot "$ROOT" "$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>&1) ||
	skip "cannot run $PY in the chroot: $version"
[ "$version" = 3.13 ] || skip "the chroot's $PY reports version $version"

# Fresh copy of the fixtures at every run: the cached chroot may be older
# than the checkout.
rm -rf "$ROOT/forkscope-fixtures" && cp -r "$fixtures" "$ROOT/forkscope-fixtures" ||
	skip "cannot copy the fixtures into $ROOT"

FORKSCOPE_PYTHON_ROOT=$ROOT FORKSCOPE_PYTHON=$PY FORKSCOPE_PYTHON_FIXTURES=/forkscope-fixtures \
	FORKSCOPE_PYTHON_VERSION=3.13 "$test_bin"
status=$?
rm -rf "$ROOT/forkscope-fixtures"
exit $status
