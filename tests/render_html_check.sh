#!/bin/sh
# Load every golden HTML report in headless Chromium and check that it renders
# without script errors: a copy of each page gets a tiny error hook first in
# <head> (uncaught errors, unhandled rejections and console.error leave a
# marker attribute on <html>), Chromium dumps the DOM after the scripts ran, and
# we look for the marker, for the page script's own check that the embedded
# JSON parsed (data-cells on <html>), and for the process tree SVG.
# A second injected script, last in <body>, measures the tree in the browser:
# it walks every wait arrow (getPointAtLength, one sample a pixel) and counts
# the points that fall inside a process box; any such point fails the page
# (arrows must go around boxes, never across them).
#
#   render_html_check.sh GOLDEN_DIR                 check every *.html there
#   render_html_check.sh --screenshot OUT.png FILE.html [W,H]
#                                                   picture for docs/img
#
# Exit 0 when every page passed, 1 on a failure, 77 (meson: SKIP) when no
# Chromium is installed (Debian: apt-get install chromium).
set -u

browser=
for b in chromium chromium-browser google-chrome; do
	if command -v "$b" >/dev/null 2>&1; then
		browser=$b
		break
	fi
done
if [ -z "$browser" ]; then
	echo "SKIP: no chromium in PATH (Debian: apt-get install chromium); the HTML report was not checked in a browser"
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/forkscope-html-check.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

# Flags for a quiet, offline, throw-away browser (running as root needs --no-sandbox).
run_browser() {
	profile=$(mktemp -d "$work/profile.XXXXXX") || return 1
	timeout -k 10 90 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
		--disable-quic --no-first-run --disable-background-networking --disable-component-update \
		--disable-sync --disable-extensions --disable-default-apps --mute-audio \
		--user-data-dir="$profile" --enable-logging=stderr --v=0 "$@"
}

if [ "${1:-}" = "--screenshot" ]; then
	out=$2
	page=$3
	size=${4:-1400,1000}
	case $page in /*) ;; *) page=$(pwd)/$page ;; esac
	case $out in /*) ;; *) out=$(pwd)/$out ;; esac
	run_browser --hide-scrollbars --window-size="$size" --screenshot="$out" "file://$page" \
		>"$work/shot.out" 2>"$work/shot.err"
	status=$?
	if [ $status -ne 0 ] || [ ! -s "$out" ]; then
		echo "screenshot failed (status $status):"
		tail -20 "$work/shot.err"
		exit 1
	fi
	echo "wrote $out"
	exit 0
fi

dir=${1:?usage: render_html_check.sh GOLDEN_DIR}
# No '#' or '&' in the hook: it goes through sed.
hook='<script>(function(){var h=document.documentElement;function mark(m){h.setAttribute("data-js-error",String(m));}window.addEventListener("error",function(e){mark(e.message ? e.message : "error");});window.addEventListener("unhandledrejection",function(e){mark("unhandled rejection: "+e.reason);});var ce=console.error;console.error=function(){mark(Array.prototype.join.call(arguments," "));return ce.apply(console,arguments);};})();</script>'

# No '#', '&' or backslash either: it goes through sed as well.
geometry='<script>(function(){var edges=0,inside=0;var trees=document.querySelectorAll("svg.tree");for(var t=0;t<trees.length;t++){var boxes=[];var rs=trees[t].querySelectorAll("g.node rect");for(var i=0;i<rs.length;i++){boxes.push([Number(rs[i].getAttribute("x")),Number(rs[i].getAttribute("y")),Number(rs[i].getAttribute("width")),Number(rs[i].getAttribute("height"))]);}var ps=trees[t].querySelectorAll("path.wait-edge");for(var p=0;p<ps.length;p++){if(!ps[p].querySelector("title"))continue;edges++;var len=ps[p].getTotalLength();for(var s=0;s<=len;s+=1){var pt=ps[p].getPointAtLength(s);for(var b=0;b<boxes.length;b++){var q=boxes[b];if(pt.x>q[0]+1)if(pt.x<q[0]+q[2]-1)if(pt.y>q[1]+1)if(pt.y<q[1]+q[3]-1)inside++;}}}}document.documentElement.setAttribute("data-wait-edges",edges+" "+inside);})();</script>'

failed=0
checked=0
for page in "$dir"/*.html; do
	[ -e "$page" ] || continue
	name=$(basename "$page")
	copy="$work/$name"
	# The hook goes right after <head>, before any of the page's own scripts.
	sed -e "0,/<head>/s#<head>#<head>$hook#" -e "s#</body>#$geometry</body>#" "$page" >"$copy"
	run_browser --dump-dom "file://$copy" >"$work/$name.dom" 2>"$work/$name.err"
	status=$?
	checked=$((checked + 1))
	problem=
	if [ $status -ne 0 ]; then
		problem="chromium exited with status $status"
	elif grep -Eq '<html[^>]* data-js-error=' "$work/$name.dom"; then
		problem="script error: $(grep -Eo '<html[^>]* data-js-error="[^"]*"' "$work/$name.dom" | head -1)"
	elif grep -Eq 'Uncaught|CONSOLE.*[Ee]rror' "$work/$name.err"; then
		problem="console error: $(grep -E 'Uncaught|CONSOLE.*[Ee]rror' "$work/$name.err" | head -1)"
	elif ! grep -Eq '<html[^>]* data-cells="[0-9]+"' "$work/$name.dom"; then
		problem="the page script did not read the embedded JSON (no data-cells on <html>)"
	elif ! grep -Eq '<html[^>]* class="[^"]*js' "$work/$name.dom"; then
		problem="the page script did not run"
	elif ! grep -q '<svg class="tree"' "$work/$name.dom" && ! grep -q 'data-cells="0"' "$work/$name.dom"; then
		problem="no process tree SVG in the DOM"
	elif ! grep -Eq '<html[^>]* data-wait-edges="[0-9]+ [0-9]+"' "$work/$name.dom"; then
		problem="the geometry check did not run"
	elif ! grep -Eq '<html[^>]* data-wait-edges="[0-9]+ 0"' "$work/$name.dom"; then
		problem="wait arrows cross process boxes: $(grep -Eo 'data-wait-edges="[^"]*"' "$work/$name.dom" | head -1) (arrows, points inside boxes)"
	fi
	if [ -n "$problem" ]; then
		failed=$((failed + 1))
		echo "FAIL $name: $problem"
		tail -5 "$work/$name.err" | sed 's/^/    /'
	else
		echo "ok   $name: $(grep -o '<svg class="tree"' "$work/$name.dom" | wc -l) tree SVG(s), $(grep -o 'data-cells="[0-9]*"' "$work/$name.dom"), $(grep -Eo 'data-wait-edges="[0-9]+' "$work/$name.dom" | sed 's/.*"//') wait arrow(s) clear of the boxes"
	fi
done
if [ $checked -eq 0 ]; then
	echo "no *.html under $dir"
	exit 1
fi
echo "$((checked - failed)) passed, $failed failed"
[ $failed -eq 0 ]
