/* html: ONE self-contained file that CI artifact viewers can open without a
 * server: inline <style>, hand-written inline SVG (process tree with the
 * verdicts' wait edges, timeline), no network, no fonts to fetch, and the whole
 * document embedded as <script type="application/json" id="forkscope-data">.
 * Every string goes through render_xml() (cleaned: no ANSI, no controls, valid
 * UTF-8; then escaped). The embedded JSON is written with JSON_ESCAPE_SLASH and
 * every '<' as \u003c, so neither "</script>" nor "<!--" in the data can end or
 * confuse the script element. The only script is a few lines that must never
 * throw: expand/collapse all, open a cell on #link, and a check that the
 * embedded data parses (data-cells on <html>, used by the tests). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reports/render_util.h"
#include "reports/verdict_class.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/timeutil.h"

/* Timeline geometry (px). */
#define TL_LABEL_W 230
#define TL_PLOT_W 860
#define TL_RIGHT 30
#define TL_TOP 36
#define TL_ROW_H 22
#define TL_BAR_H 12
#define TL_LEGEND_H 34

#define OUTPUT_MAX (256 * 1024)

static const char *
cell_id(const json_t *cell)
{
	const char *id = json_str(cell, "id", NULL);
	return id ? id : json_str(cell, "name", "(unnamed)");
}

static const char *
status_class(enum cell_status s)
{
	switch (s) {
	case CELL_PASS:
		return "pass";
	case CELL_FAIL:
		return "fail";
	case CELL_ERROR:
		return "error";
	case CELL_SKIP:
		return "skip";
	}
	return "fail";
}

static const char STYLE[] =
	":root{--fg:#1d2330;--muted:#5b6475;--bg:#f6f7f9;--card:#fff;--line:#d9dde5;--pass:#1f8a4c;--fail:#c62828;"
	"--error:#8e24aa;--skip:#b26a00;--mono:ui-monospace,'DejaVu Sans Mono','Liberation Mono',Menlo,monospace}\n"
	"*{box-sizing:border-box}\n"
	"body{margin:0;padding:24px 32px;background:var(--bg);color:var(--fg);"
	"font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}\n"
	"h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:18px 0 6px}"
	"h4{font-size:14px;margin:0 0 6px}\n"
	"code,pre,.mono{font-family:var(--mono);font-size:12.5px}\n"
	"pre{background:#fbfbfc;border:1px solid var(--line);border-radius:6px;padding:10px 12px;overflow:auto;"
	"max-height:520px;white-space:pre-wrap;word-break:break-word;margin:6px 0}\n"
	".meta{color:var(--muted);margin:2px 0}\n"
	".summary{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:14px 0}\n"
	".pill{display:inline-block;padding:3px 10px;border-radius:999px;font-weight:600;font-size:13px;"
	"background:#e8ebf0}\n"
	".pill.pass{background:#dcf3e5;color:var(--pass)}.pill.fail{background:#fde2e2;color:var(--fail)}"
	".pill.error{background:#f3e0f7;color:var(--error)}.pill.skip{background:#fdf0d9;color:var(--skip)}"
	".pill.hang{background:var(--fail);color:#fff}\n"
	".hangs{font-weight:700;color:var(--fail);margin:4px 0}\n"
	"table{border-collapse:collapse;background:var(--card);margin:6px 0}\n"
	"th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}"
	"th{background:#eef0f4;font-weight:600}\n"
	"td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
	".status{font-weight:700;font-family:var(--mono)}.status.pass{color:var(--pass)}.status.fail{color:var(--fail)}"
	".status.error{color:var(--error)}.status.skip{color:var(--skip)}\n"
	"details.cell{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--line);"
	"border-radius:6px;margin:10px 0;padding:0 14px}\n"
	"details.cell.pass{border-left-color:var(--pass)}details.cell.fail{border-left-color:var(--fail)}"
	"details.cell.error{border-left-color:var(--error)}details.cell.skip{border-left-color:var(--skip)}\n"
	"details.cell>summary{cursor:pointer;padding:10px 0;font-size:15px}\n"
	"details.cell[open]>summary{border-bottom:1px solid var(--line);margin-bottom:8px}\n"
	".facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}"
	".facts dt{color:var(--muted)}.facts dd{margin:0}\n"
	".mismatch{color:var(--fail)}\n"
	".verdict{border:1px solid #f0b8b8;background:#fff7f7;border-radius:6px;padding:10px 12px;margin:8px 0}\n"
	".verdict.nohang{border-color:#f0d9a8;background:#fffaf0}\n"
	".verdict .class{font-family:var(--mono);color:var(--fail)}.verdict.nohang .class{color:var(--skip)}\n"
	".remedy{margin:6px 0 0}.remedy b{color:var(--pass)}\n"
	"figure{margin:10px 0;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px;"
	"overflow-x:auto}figcaption{font-weight:600;margin:0 0 4px}\n"
	"svg{display:block;max-width:100%;height:auto;font-family:system-ui,'DejaVu Sans',sans-serif}\n"
	"svg text{font-size:12px;fill:#1d2330}svg text.sub{font-size:10.5px;fill:#4b5363}"
	"svg text.axis{font-size:10.5px;fill:#5b6475}\n"
	".node rect{stroke-width:1.5}.node.leftover rect{stroke-dasharray:5 3}"
	".node.involved rect{stroke:#d50000;stroke-width:3.5}\n"
	".end-ok{fill:#d9f2e3;stroke:#2e9e5b}.end-error{fill:#fde6cf;stroke:#d9822b}"
	".end-signal{fill:#fbd5d5;stroke:#d64545}.end-killed{fill:#f0a8a8;stroke:#a61b1b}"
	".end-zombie{fill:#e5dcf5;stroke:#7c5cc4}.end-running{fill:#dde7f7;stroke:#4a6fa5}"
	".end-unknown{fill:#eeeeee;stroke:#999999}\n"
	".tree-edge{stroke:#8a93a3;stroke-width:1.5;fill:none}"
	".wait-edge{stroke:#d50000;stroke-width:2.2;fill:none}\n"
	".ph-starting{fill:#a9cdf7}.ph-running{fill:#3f7fcf}.ph-zombie{fill:#a58bd3}"
	".unfinished{fill-opacity:.45;stroke:#3f4a5c;stroke-dasharray:3 2}\n"
	".grid{stroke:#e4e7ec;stroke-width:1}.row-alt{fill:#f7f8fa}\n"
	".mk-cancel{fill:#1565c0}.mk-ack{fill:#2e9e5b}.mk-term{fill:#ef6c00}.mk-kill{fill:#b71c1c}"
	".mk-exit{stroke:#1d2330;stroke-width:2}.hang-line{stroke:#d50000;stroke-width:1.5;stroke-dasharray:6 4}\n"
	"tr.unexpected td{background:#fff3cd}tr.unexpected td:first-child{border-left:4px solid #e0a800}\n"
	".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:10px}\n"
	".card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 10px}\n"
	".controls{display:none;margin:8px 0}.js .controls{display:block}\n"
	"button{font:inherit;padding:3px 10px;margin-right:6px;border:1px solid var(--line);border-radius:5px;"
	"background:#fff;cursor:pointer}\n"
	"footer{color:var(--muted);margin:30px 0 10px;font-size:12px}\n"
	"a{color:#1f5fbf}\n";

/* Never throws: every lookup is checked, the JSON parse is guarded. */
static const char SCRIPT[] =
	"(function () {\n"
	"  \"use strict\";\n"
	"  var root = document.documentElement;\n"
	"  root.className += \" js\";\n"
	"  function setAll(open) {\n"
	"    var all = document.querySelectorAll(\"details.cell\");\n"
	"    for (var i = 0; i < all.length; i++) all[i].open = open;\n"
	"  }\n"
	"  var e = document.getElementById(\"expand-all\"), c = document.getElementById(\"collapse-all\");\n"
	"  if (e) e.addEventListener(\"click\", function () { setAll(true); });\n"
	"  if (c) c.addEventListener(\"click\", function () { setAll(false); });\n"
	"  function openTarget() {\n"
	"    var id = location.hash ? location.hash.slice(1) : \"\";\n"
	"    var t = id ? document.getElementById(id) : null;\n"
	"    if (t && t.tagName === \"DETAILS\") t.open = true;\n"
	"  }\n"
	"  window.addEventListener(\"hashchange\", openTarget);\n"
	"  openTarget();\n"
	"  try {\n"
	"    var el = document.getElementById(\"forkscope-data\");\n"
	"    var data = JSON.parse(el ? el.textContent : \"null\");\n"
	"    var n = data && Array.isArray(data.scenarios) ? data.scenarios.length : (data ? 1 : 0);\n"
	"    root.setAttribute(\"data-cells\", String(n));\n"
	"  } catch (err) {\n"
	"    root.setAttribute(\"data-cells\", \"unreadable\");\n"
	"  }\n"
	"})();\n";

/* --- timeline -------------------------------------------------------------- */

static uint64_t
tick_step(uint64_t end)
{
	uint64_t raw = end / 8 ? end / 8 : 1, mag = 1;
	while (mag <= raw / 10)
		mag *= 10;
	if (mag >= raw)
		return mag;
	if (2 * mag >= raw)
		return 2 * mag;
	if (5 * mag >= raw)
		return 5 * mag;
	return 10 * mag;
}

struct axis {
	uint64_t end;
};

static double
tx(const struct axis *ax, uint64_t ns)
{
	return TL_LABEL_W + (double) MIN(ns, ax->end) * TL_PLOT_W / (double) ax->end;
}

static void
phase_rect(struct render_writer *h, const struct axis *ax, double y, uint64_t from, uint64_t to, const char *phase,
	   bool unfinished, const json_t *a)
{
	char d1[32], d2[32], d3[32];
	double x0 = tx(ax, from), x1 = tx(ax, to);
	render_putf(h, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" class=\"ph-%s%s\"><title>", x0, y,
	            MAX(x1 - x0, 1.0), TL_BAR_H, phase, unfinished ? " unfinished" : "");
	render_put_xml_str(h, json_str(a, "name", "?"));
	if (json_int(a, "pid", -1) > 0)
		render_putf(h, " (pid %lld)", (long long) json_int(a, "pid", 0));
	render_putf(h, " %s %s ms \xe2\x86\x92 %s ms (%s)%s</title></rect>\n", phase, render_ms(from, d1, sizeof(d1)),
	            render_ms(to, d2, sizeof(d2)), duration_format(to - from, d3, sizeof(d3)),
	            unfinished ? ", unfinished: still there at the end of the cell" : "");
}

static void
marker(struct render_writer *h, double x, double y, const char *cls, const char *what, uint64_t ns)
{
	char d[32];
	render_putf(h, "<path class=\"%s\" d=\"M%.1f %.1fl-5 -8h10z\"><title>%s at %s ms</title></path>\n", cls, x, y, what,
	            render_ms(ns, d, sizeof(d)));
}

/* One actor's row: its name, its phases as bars, the ladder's markers and
 * its exit. Returns whether it has a ready handshake. */
static bool
timeline_row(struct render_writer *h, const struct axis *ax, const json_t *a, size_t row)
{
	char d[32];
	double y = TL_TOP + (double) row * TL_ROW_H + (TL_ROW_H - TL_BAR_H) / 2.0;
	int64_t depth = json_int(a, "depth", 0);
	depth = depth < 0 ? 0 : depth > 10 ? 10 : depth;
	render_putf(h, "<text x=\"%lld\" y=\"%.1f\">", (long long) (8 + 14 * depth), y + TL_BAR_H - 2);
	render_put_xml_short(h, json_str(a, "name", "?"), 22);
	if (json_int(a, "pid", -1) > 0)
		render_putf(h, " <tspan class=\"sub\">%lld</tspan>", (long long) json_int(a, "pid", 0));
	render_put(h, "</text>\n");

	uint64_t start = 0, ready = 0, ex = 0, end = ax->end, v;
	if (json_ns(a, "spawn_ns", &v) || json_ns(a, "fork_ns", &v) || json_ns(a, "ready_ns", &v))
		start = MIN(v, ax->end);
	bool reaped = json_ns(a, "reap_ns", &v);
	if (reaped)
		end = MAX(MIN(v, ax->end), start);
	bool has_ready = json_ns(a, "ready_ns", &ready);
	bool has_exit = json_ns(a, "exit_ns", &ex);
	bool handshake = render_actor_has_handshake(a);
	if (!handshake && !has_ready) {
		/* No handshake to wait for: it runs from its spawn. */
		has_ready = true;
		ready = start;
	}
		/* Clamped so that start <= ready <= exit <= end; an exit without a
	 * ready ends the starting phase at the exit, not at the cell end. */
	uint64_t exit_at = has_exit ? MAX(start, MIN(ex, end)) : end;
	ready = has_ready ? MAX(start, MIN(ready, exit_at)) : exit_at;
	ex = MAX(ready, exit_at);
	if (handshake)
		phase_rect(h, ax, y, start, ready, "starting", !has_ready && !has_exit, a);
	if (has_ready)
		phase_rect(h, ax, y, ready, ex, "running", !has_exit, a);
	if (has_exit)
		phase_rect(h, ax, y, ex, end, "zombie", !reaped, a);

	const json_t *ladder = json_object_get(a, "ladder");
	double my = y - 1;
	if (json_is_object(ladder)) {
		if (json_ns(ladder, "cancel_sent_ns", &v))
			marker(h, tx(ax, v), my, "mk-cancel", "cancel sent", v);
		if (json_ns(ladder, "cancel_ack_ns", &v))
			marker(h, tx(ax, v), my, "mk-ack", "cancel acknowledged", v);
		if (json_ns(ladder, "sigterm_ns", &v))
			marker(h, tx(ax, v), my, "mk-term", "SIGTERM sent", v);
		if (json_ns(ladder, "sigkill_ns", &v))
			marker(h, tx(ax, v), my, "mk-kill", "SIGKILL sent", v);
	} else if (json_ns(a, "cancel_ns", &v))
		marker(h, tx(ax, v), my, "mk-cancel", "cancel sent", v);
	if (has_exit) {
		char label[64];
		render_actor_end_label(a, label, sizeof(label));
		render_putf(h, "<line class=\"mk-exit\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"><title>exit (",
		            tx(ax, ex), y - 2, tx(ax, ex), y + TL_BAR_H + 2);
		render_put_xml_str(h, label);
		render_putf(h, ") at %s ms</title></line>\n", render_ms(ex, d, sizeof(d)));
	}
	return handshake;
}

/* The legend under the rows; without a handshake actor, no "starting". */
static void
timeline_legend(struct render_writer *h, double plot_bottom, bool any_handshake, size_t n)
{
	size_t i;
	double ly = plot_bottom + 12, lx = 8;
	static const struct {
		const char *cls, *label;
	} phases[] = { { "ph-starting", "starting (spawn \xe2\x86\x92 ready)" },
		       { "ph-running", "running (ready \xe2\x86\x92 exit)" },
		       { "ph-zombie", "zombie (exit \xe2\x86\x92 reap)" },
		       { "ph-running unfinished", "unfinished" } };
	/* Plain processes only (watch): nothing is ever "starting". */
	static const char running_from_spawn[] = "running (spawn \xe2\x86\x92 exit)";
	for (i = any_handshake || n == 0 ? 0 : 1; i < ARRAY_SIZE(phases); i++) {
		render_putf(h, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"10\" class=\"%s\"/>", lx, ly, phases[i].cls);
		render_putf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"sub\">%s</text>\n", lx + 23, ly + 9,
		            i == 1 && !any_handshake && n > 0 ? running_from_spawn : phases[i].label);
		lx += i < 3 ? 178 : 96;
	}
	static const struct {
		const char *cls, *label;
	} marks[] = { { "mk-cancel", "cancel" }, { "mk-term", "SIGTERM" }, { "mk-kill", "SIGKILL" } };
	for (i = 0; i < ARRAY_SIZE(marks); i++) {
		render_putf(h, "<path class=\"%s\" d=\"M%.1f %.1fl-5 -8h10z\"/>", marks[i].cls, lx + 5, ly + 10);
		render_putf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"sub\">%s</text>\n", lx + 14, ly + 9, marks[i].label);
		lx += 76;
	}
	render_putf(h, "<line class=\"mk-exit\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", lx + 3, ly - 1, lx + 3,
	            ly + 11);
	render_putf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"sub\">exit</text>\n", lx + 10, ly + 9);
}

static void
timeline_svg(struct render_writer *h, const json_t *cell)
{
	const json_t *actors = json_object_get(cell, "actors");
	size_t n = json_array_size(actors), i;
	json_t *a;
	struct axis ax = { .end = render_cell_end_ns(cell) };
	char d[32];
	bool any_handshake = false;
	if (ax.end == 0)
		ax.end = NSEC_PER_MSEC;
	double width = TL_LABEL_W + TL_PLOT_W + TL_RIGHT;
	double plot_bottom = TL_TOP + (double) (n ? n : 1) * TL_ROW_H;
	double height = plot_bottom + TL_LEGEND_H;
	render_putf(h,
	            "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
	            "height=\"%.0f\" role=\"img\" aria-label=\"timeline\">\n",
	            width, height, width, height);
	for (i = 0; i < n; i += 2)
		render_putf(h, "<rect class=\"row-alt\" x=\"0\" y=\"%.1f\" width=\"%.0f\" height=\"%d\"/>\n",
		            TL_TOP + (double) i * TL_ROW_H, width, TL_ROW_H);
	/* Axis in ms, C-locale numbers. */
	uint64_t step = tick_step(ax.end);
	for (uint64_t t = 0; t <= ax.end; t += step) {
		double x = tx(&ax, t);
		render_putf(h, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\"/>", x, TL_TOP - 6, x,
		            plot_bottom);
		render_putf(h, "<text class=\"axis\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, TL_TOP - 10,
		            render_ms(t, d, sizeof(d)));
		if (t > UINT64_MAX - step)
			break;
	}
	render_putf(h, "<text class=\"axis\" x=\"8\" y=\"%d\">time (ms)</text>\n", TL_TOP - 10);
	if (n == 0)
		render_putf(h, "<text x=\"8\" y=\"%d\" class=\"sub\">no processes recorded</text>\n", TL_TOP + 15);

	json_array_foreach(actors, i, a)
		any_handshake |= timeline_row(h, &ax, a, i);

	if (strcmp(json_str(cell, "outcome", ""), "hang") == 0) {
		uint64_t when = ax.end, v;
		if (json_ns(json_object_get(cell, "timeouts"), "run_ns", &v) && v <= ax.end)
			when = v;
		double x = tx(&ax, when);
		render_putf(h,
		            "<line class=\"hang-line\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\"><title>hang detected at %s "
		            "ms</title></line>",
		            x, TL_TOP - 4, x, plot_bottom, render_ms(when, d, sizeof(d)));
		render_putf(h, "<text class=\"axis\" x=\"%.1f\" y=\"%d\" text-anchor=\"end\" style=\"fill:#d50000\">hang detected</text>\n",
		            x - 4, TL_TOP - 22);
	}

	timeline_legend(h, plot_bottom, any_handshake, n);
	render_put(h, "</svg>\n");
}

/* --- tables ---------------------------------------------------------------- */

static void
td_text(struct render_writer *h, const char *s)
{
	render_put(h, "<td>");
	render_put_xml_str(h, s ? s : "-");
	render_put(h, "</td>");
}

static void
td_duration(struct render_writer *h, const json_t *obj, const char *key)
{
	char d[32];
	render_putf(h, "<td class=\"num\">%s</td>", render_duration_field(obj, key, d, sizeof(d)));
}

static void
td_int(struct render_writer *h, const json_t *obj, const char *key)
{
	if (json_has_int(obj, key))
		render_putf(h, "<td class=\"num\">%lld</td>", (long long) json_int(obj, key, 0));
	else
		render_put(h, "<td class=\"num\">-</td>");
}

static void
stdio_text(struct render_writer *h, const json_t *stdio)
{
	static const char *const fds[] = { "0", "1", "2" };
	bool any = false;
	for (size_t k = 0; k < 3; k++) {
		const char *kind = json_str(stdio, fds[k], NULL);
		if (!kind)
			continue;
		render_putf(h, "%s%s=", any ? " " : "", fds[k]);
		render_put_xml_str(h, kind);
		any = true;
	}
	if (!any)
		render_put(h, "-");
}

static void
actors_table(struct render_writer *h, const json_t *cell)
{
	const json_t *actors = json_object_get(cell, "actors");
	size_t i;
	json_t *a;
	if (json_array_size(actors) == 0)
		return;
	render_put(h, "<h3>Actors</h3>\n<table class=\"actors\"><thead><tr><th>actor</th><th>pid</th><th>ppid</th>"
	              "<th>kind</th><th>ended</th><th>spawn</th><th>fork</th><th>ready</th><th>cancel</th><th>exit</th>"
	              "<th>reap</th><th>fds</th><th>threads at fork</th><th>stdio</th><th>blocked signals</th></tr></thead>"
	              "<tbody>\n");
	json_array_foreach(actors, i, a) {
		char label[64];
		int64_t depth = json_int(a, "depth", 0);
		depth = depth < 0 ? 0 : depth > 10 ? 10 : depth;
		render_actor_end_label(a, label, sizeof(label));
		render_putf(h, "<tr><td style=\"padding-left:%lldpx\">", (long long) (8 + 16 * depth));
		render_put_xml_str(h, json_str(a, "name", "?"));
		render_put(h, "</td>");
		td_int(h, a, "pid");
		td_int(h, a, "ppid");
		td_text(h, json_str(a, "kind", NULL));
		render_putf(h, "<td><span class=\"end-%s\" style=\"padding:0 5px;border-radius:3px;border:1px solid\">",
		            render_actor_end_key(render_actor_end(a)));
		render_put_xml_str(h, label);
		render_put(h, "</span></td>");
		td_duration(h, a, "spawn_ns");
		td_duration(h, a, "fork_ns");
		td_duration(h, a, "ready_ns");
		td_duration(h, a, "cancel_ns");
		td_duration(h, a, "exit_ns");
		td_duration(h, a, "reap_ns");
		td_int(h, a, "fds_inherited");
		render_put(h, "<td class=\"num\">");
		if (json_has_int(a, "threads_at_fork")) {
			render_putf(h, "%lld", (long long) json_int(a, "threads_at_fork", 0));
			if (json_is_boolean(json_object_get(a, "forking_thread_is_main")))
				render_put(h, json_bool(a, "forking_thread_is_main", 0) ? " (main)" : " (not main)");
		} else
			render_put(h, "-");
		render_put(h, "</td><td class=\"mono\">");
		stdio_text(h, json_object_get(a, "stdio"));
		render_put(h, "</td>");
		const char *mask = json_str(a, "sigmask_blocked", NULL);
		td_text(h, mask && *mask ? mask : "-");
		render_put(h, "</tr>\n");
	}
	render_put(h, "</tbody></table>\n");
}

static void
fd_row(struct render_writer *h, const json_t *fd, bool unexpected, const char *note)
{
	render_putf(h, "<tr%s>", unexpected ? " class=\"unexpected\"" : "");
	if (json_is_integer(fd))
		render_putf(h, "<td class=\"num\">%lld</td><td>-</td><td>-</td><td>", (long long) json_integer_value(fd));
	else {
		td_int(h, fd, "fd");
		td_text(h, json_str(fd, "kind", NULL));
		render_put(h, "<td class=\"mono\">");
		render_put_xml_str(h, json_str(fd, "target", "-"));
		render_put(h, "</td><td>");
		render_put_xml_str(h, json_str(fd, "detail", NULL));
		if (json_str(fd, "detail", NULL) && note)
			render_put(h, "; ");
	}
	render_put_xml_str(h, note);
	render_put(h, "</td></tr>\n");
}

static void
thread_names(struct render_writer *h, const json_t *threads)
{
	size_t i;
	json_t *t;
	json_array_foreach(threads, i, t) {
		render_put(h, i ? ", " : "");
		if (json_is_string(t))
			render_put_xml_str(h, json_string_value(t));
		else {
			render_put_xml_str(h, json_str(t, "name", json_str(t, "comm", "?")));
			if (json_int(t, "tid", -1) > 0)
				render_putf(h, " (tid %lld)", (long long) json_int(t, "tid", 0));
		}
	}
}

/* Something beyond what the actors table shows: unexpected or scrubbed fds. */
static bool
actor_has_fd_news(const json_t *a)
{
	return json_array_size(json_object_get(a, "fds_unexpected")) > 0 ||
	       json_array_size(json_object_get(a, "fds_closed_by_scrub")) > 0;
}

/* Per actor with unexpected fds: its fd table, the unexpected ones highlighted. */
static void
actor_cards(struct render_writer *h, const json_t *cell)
{
	const json_t *actors = json_object_get(cell, "actors");
	size_t i, k;
	json_t *a, *fd;
	bool any = false;
	json_array_foreach(actors, i, a)
		if (actor_has_fd_news(a))
			any = true;
	if (!any) {
		if (json_array_size(actors) > 0)
			render_put(h, "<p class=\"meta\">No unexpected fd crossed a fork.</p>\n");
		return;
	}
	render_put(h, "<h3>What crossed the fork</h3>\n<div class=\"cards\">\n");
	json_array_foreach(actors, i, a) {
		const json_t *stdio = json_object_get(a, "stdio");
		const json_t *unexpected = json_object_get(a, "fds_unexpected");
		const json_t *closed = json_object_get(a, "fds_closed_by_scrub");
		if (!actor_has_fd_news(a))
			continue;
		render_put(h, "<div class=\"card\"><h4>");
		render_put_xml_str(h, json_str(a, "name", "?"));
		if (json_int(a, "pid", -1) > 0)
			render_putf(h, " <span class=\"meta\">pid %lld</span>", (long long) json_int(a, "pid", 0));
		render_put(h, "</h4>\n");
		if (json_has_int(a, "fds_inherited"))
			render_putf(h, "<div>%lld fds open at child start, %zu unexpected</div>\n",
			            (long long) json_int(a, "fds_inherited", 0), json_array_size(unexpected));
		if (json_has_int(a, "threads_at_fork")) {
			render_putf(h, "<div>threads in the parent at fork: %lld", (long long) json_int(a, "threads_at_fork", 0));
			if (json_is_boolean(json_object_get(a, "forking_thread_is_main")))
				render_put(h, json_bool(a, "forking_thread_is_main", 0) ? ", forked from the main thread"
										               : ", forked from a non-main thread");
			if (json_array_size(json_object_get(a, "parent_threads")) > 0) {
				render_put(h, " (");
				thread_names(h, json_object_get(a, "parent_threads"));
				render_put(h, ")");
			}
			render_put(h, "</div>\n");
		}
		render_put(h, "<table><thead><tr><th>fd</th><th>kind</th><th>target</th><th>detail</th></tr></thead><tbody>\n");
		static const char *const std_fds[] = { "0", "1", "2" };
		for (k = 0; k < 3; k++) {
			const char *kind = json_str(stdio, std_fds[k], NULL);
			if (!kind)
				continue;
			render_putf(h, "<tr><td class=\"num\">%s</td>", std_fds[k]);
			td_text(h, kind);
			render_put(h, "<td>-</td><td>stdio</td></tr>\n");
		}
		json_array_foreach(unexpected, k, fd)
			fd_row(h, fd, true, "unexpected: inherited across fork");
		json_array_foreach(closed, k, fd)
			fd_row(h, fd, false, "closed by fd_scrub");
		render_put(h, "</tbody></table></div>\n");
	}
	render_put(h, "</div>\n");
}

static void
teardown_table(struct render_writer *h, const json_t *cell)
{
	const json_t *td = json_object_get(cell, "teardown");
	char a[32], b[32];
	size_t i;
	json_t *p;
	if (!json_is_object(td))
		return;
	render_putf(h, "<h3>Teardown</h3>\n<p>%s", render_duration_field(td, "duration_ns", a, sizeof(a)));
	if (json_ns(td, "budget_ns", &(uint64_t){ 0 }))
		render_putf(h, " against a budget of %s", render_duration_field(td, "budget_ns", b, sizeof(b)));
	if (json_bool(td, "over_budget", 0))
		render_put(h, " \xe2\x80\x94 <b class=\"mismatch\">over budget</b>");
	render_put(h, "</p>\n");
	if (json_array_size(json_object_get(td, "phases")) > 0) {
		render_put(h, "<table><thead><tr><th>depth</th><th>actor</th><th>cancel wait</th><th>SIGTERM wait</th>"
		              "<th>SIGKILL \xe2\x86\x92 reap</th><th>total</th><th>ended by</th></tr></thead><tbody>\n");
		json_array_foreach(json_object_get(td, "phases"), i, p) {
			render_put(h, "<tr>");
			td_int(h, p, "depth");
			td_text(h, json_str(p, "actor", NULL));
			td_duration(h, p, "cancel_wait_ns");
			td_duration(h, p, "sigterm_wait_ns");
			td_duration(h, p, "sigkill_to_reap_ns");
			td_duration(h, p, "total_ns");
			td_text(h, json_str(p, "ended_by", NULL));
			render_put(h, "</tr>\n");
		}
		render_put(h, "</tbody></table>\n");
	}
	if (json_array_size(json_object_get(td, "levels")) > 0) {
		render_put(h, "<table><thead><tr><th>level (depth)</th><th>duration</th></tr></thead><tbody>\n");
		json_array_foreach(json_object_get(td, "levels"), i, p) {
			render_put(h, "<tr>");
			td_int(h, p, "depth");
			td_duration(h, p, "duration_ns");
			render_put(h, "</tr>\n");
		}
		render_put(h, "</tbody></table>\n");
	}
}

static void
leftovers_table(struct render_writer *h, const json_t *cell)
{
	const json_t *left = json_object_get(cell, "leftovers");
	size_t i;
	json_t *l;
	if (json_array_size(left) == 0)
		return;
	render_put(h, "<h3>Leftovers</h3>\n<table><thead><tr><th>pid</th><th>name</th><th>ppid</th><th>state</th>"
	              "<th>how</th><th>ended by</th></tr></thead><tbody>\n");
	json_array_foreach(left, i, l) {
		render_put(h, "<tr class=\"unexpected\">");
		td_int(h, l, "pid");
		td_text(h, json_str(l, "name", NULL));
		td_int(h, l, "ppid");
		td_text(h, json_str(l, "state", NULL));
		td_text(h, json_str(l, "how", NULL));
		td_text(h, json_str(l, "ended_by", NULL));
		render_put(h, "</tr>\n");
	}
	render_put(h, "</tbody></table>\n");
}

static void
error_list(struct render_writer *h, const json_t *errors, int level)
{
	size_t i, k;
	json_t *e, *frame;
	if (json_array_size(errors) == 0 || level > 16)
		return;
	render_put(h, "<ul>\n");
	json_array_foreach(errors, i, e) {
		render_put(h, "<li><b>");
		render_put_xml_str(h, json_str(e, "actor", "?"));
		render_put(h, "</b>");
		if (json_int(e, "pid", -1) > 0)
			render_putf(h, " (pid %lld)", (long long) json_int(e, "pid", 0));
		render_put(h, ": ");
		render_put_xml_str(h, json_str(e, "message", ""));
		const json_t *bt = json_object_get(e, "backtrace");
		if (json_array_size(bt) > 0) {
			render_put(h, "<pre>");
			json_array_foreach(bt, k, frame) {
				render_put_xml_str(h, json_string_value(frame));
				render_put(h, "\n");
			}
			render_put(h, "</pre>");
		}
		error_list(h, json_object_get(e, "children"), level + 1);
		render_put(h, "</li>\n");
	}
	render_put(h, "</ul>\n");
}

static void
verdicts_section(struct render_writer *h, const json_t *cell)
{
	size_t i;
	json_t *v;
	const json_t *verdicts = json_object_get(cell, "verdicts");
	if (json_array_size(verdicts) == 0)
		return;
	render_put(h, "<h3>Verdicts</h3>\n");
	json_array_foreach(verdicts, i, v) {
		const char *cls = json_str(v, "class", "?");
		const struct verdict_class_info *info = verdict_class_lookup(cls);
		struct strbuf text = STRBUF_INIT;
		render_putf(h, "<div class=\"verdict%s\"><h4><span class=\"class\">", info && !info->is_hang ? " nohang" : "");
		render_put_xml_str(h, cls);
		render_put(h, "</span>");
		if (info) {
			render_put(h, " \xe2\x80\x94 ");
			render_put_xml_str(h, info->title);
		}
		render_put(h, "</h4>\n");
		if (json_str(v, "summary", NULL)) {
			render_put(h, "<p>");
			render_put_xml_str(h, json_str(v, "summary", ""));
			render_put(h, "</p>\n");
		}
		if (h->r == 0)
			h->r = render_verdict_plain(v, false, &text);
		render_put(h, "<pre>");
		render_put_xml(h, text.data, text.len, false);
		render_put(h, "</pre>\n");
		strbuf_free(&text);
		const char *remedy = json_str(v, "remedy", info ? info->remedy : NULL);
		if (remedy) {
			render_put(h, "<p class=\"remedy\"><b>Remedy:</b> ");
			render_put_xml_str(h, remedy);
			render_put(h, "</p>\n");
		}
		render_put(h, "</div>\n");
	}
}

static void
fixes_text(struct render_writer *h, const json_t *fixes)
{
	const char *key;
	json_t *v;
	bool first = true;
	json_object_foreach((json_t *) fixes, key, v) {
		render_put(h, first ? "" : ", ");
		first = false;
		render_put_xml_str(h, key);
		render_put(h, "=");
		if (json_is_boolean(v))
			render_put(h, json_is_true(v) ? "on" : "<b class=\"mismatch\">off</b>");
		else if (json_is_string(v))
			render_put_xml_str(h, json_string_value(v));
		else
			render_put(h, "?");
	}
	if (first)
		render_put(h, "-");
}

static void
cell_section(struct render_writer *h, const json_t *cell, size_t index)
{
	enum cell_status st = render_cell_status(cell);
	const json_t *expected = json_object_get(cell, "expected");
	char d[32];
	size_t i;
	json_t *v;
	bool open = st != CELL_PASS || json_array_size(json_object_get(cell, "verdicts")) > 0;

	render_putf(h, "<details class=\"cell %s\" id=\"cell-%zu\"%s>\n<summary><span class=\"status %s\">%s</span> <code>",
	            status_class(st), index + 1, open ? " open" : "", status_class(st), render_cell_status_word(st));
	render_put_xml_str(h, cell_id(cell));
	render_put(h, "</code> \xe2\x80\x94 ");
	render_put_xml_str(h, json_str(cell, "outcome", "?"));
	render_putf(h, ", %s", render_duration_field(cell, "duration_ns", d, sizeof(d)));
	json_array_foreach(json_object_get(cell, "verdicts"), i, v) {
		render_put(h, i ? ", " : ", verdict ");
		render_put(h, "<b>");
		render_put_xml_str(h, json_str(v, "class", "?"));
		render_put(h, "</b>");
	}
	if (json_int(cell, "leaked", 0) > 0)
		render_putf(h, ", <b class=\"mismatch\">%lld leaked</b>", (long long) json_int(cell, "leaked", 0));
	render_put(h, "</summary>\n");

	render_put(h, "<dl class=\"facts\">\n<dt>outcome</dt><dd>");
	render_put_xml_str(h, json_str(cell, "outcome", "?"));
	if (json_is_object(expected)) {
		render_put(h, " (expected");
		if (json_str(expected, "outcome", NULL)) {
			render_put(h, " ");
			render_put_xml_str(h, json_str(expected, "outcome", ""));
		}
		if (json_str(expected, "verdict", NULL)) {
			render_put(h, ", verdict ");
			render_put_xml_str(h, json_str(expected, "verdict", ""));
		}
		if (json_has_int(expected, "leaked"))
			render_putf(h, ", leaked %lld", (long long) json_int(expected, "leaked", 0));
		render_put(h, ")");
	}
	render_put(h, "</dd>\n");
	static const char *const plain[] = { "description", "file", "backend", "capture" };
	for (i = 0; i < ARRAY_SIZE(plain); i++) {
		if (!json_str(cell, plain[i], NULL))
			continue;
		render_putf(h, "<dt>%s</dt><dd>", plain[i]);
		render_put_xml_str(h, json_str(cell, plain[i], ""));
		render_put(h, "</dd>\n");
	}
	if (json_is_object(json_object_get(cell, "fixes"))) {
		render_put(h, "<dt>fixes</dt><dd class=\"mono\">");
		fixes_text(h, json_object_get(cell, "fixes"));
		render_put(h, "</dd>\n");
	}
	const json_t *exit = json_object_get(cell, "exit");
	if (json_is_object(exit)) {
		render_put(h, "<dt>root exit</dt><dd>");
		if (json_str(exit, "signal", NULL))
			render_put_xml_str(h, json_str(exit, "signal", ""));
		else
			render_putf(h, "code %lld", (long long) json_int(exit, "code", 0));
		render_put(h, "</dd>\n");
	}
	render_putf(h, "<dt>duration</dt><dd>%s</dd>\n", render_duration_field(cell, "duration_ns", d, sizeof(d)));
	if (json_has_int(cell, "leaked"))
		render_putf(h, "<dt>leaked</dt><dd>%lld</dd>\n", (long long) json_int(cell, "leaked", 0));
	render_put(h, "</dl>\n");

	if (json_str(cell, "infra_error", NULL)) {
		render_put(h, "<p class=\"mismatch\"><b>Could not run:</b> ");
		render_put_xml_str(h, json_str(cell, "infra_error", ""));
		render_put(h, "</p>\n");
	}
	const json_t *mism = json_object_get(cell, "mismatches");
	if (json_array_size(mism) > 0) {
		render_put(h, "<h3>Mismatches</h3>\n<ul>\n");
		json_array_foreach(mism, i, v) {
			if (!json_is_string(v))
				continue;
			render_put(h, "<li class=\"mismatch\">");
			render_put_xml_str(h, json_string_value(v));
			render_put(h, "</li>\n");
		}
		render_put(h, "</ul>\n");
	}
	verdicts_section(h, cell);
	render_put(h, "<figure><figcaption>Process tree</figcaption>\n");
	render_html_tree(h, cell, index + 1);
	render_put(h, "</figure>\n<figure><figcaption>Timeline</figcaption>\n");
	timeline_svg(h, cell);
	render_put(h, "</figure>\n");
	actors_table(h, cell);
	actor_cards(h, cell);
	teardown_table(h, cell);
	leftovers_table(h, cell);
	if (json_array_size(json_object_get(cell, "errors")) > 0) {
		render_put(h, "<h3>Errors</h3>\n");
		error_list(h, json_object_get(cell, "errors"), 0);
	}
	size_t len;
	const char *tail = json_strn(cell, "output_tail", &len);
	if (tail && len > 0) {
		struct strbuf clean = STRBUF_INIT, clipped = STRBUF_INIT;
		if (h->r == 0)
			h->r = render_clean(&clean, tail, len, 0);
		if (h->r == 0 && clean.len > 0)
			h->r = render_clip(&clipped, clean.data, clean.len, OUTPUT_MAX, true);
		render_put(h, "<h3>Output (tail)</h3>\n<pre>");
		render_put_xml(h, clipped.data, clipped.len, false);
		render_put(h, "</pre>\n");
		strbuf_free(&clean);
		strbuf_free(&clipped);
	}
	render_put(h, "</details>\n");
}

static void
summary(struct render_writer *h, const json_t *doc, const json_t *cells)
{
	struct render_counts c;
	char d[32];
	size_t i;
	json_t *cell;
	render_count(cells, &c);
	render_put(h, "<div class=\"summary\">");
	render_putf(h, "<span class=\"pill pass\">%zu passed</span><span class=\"pill fail\">%zu failed</span>", c.passed,
	            c.failed);
	if (c.errors)
		render_putf(h, "<span class=\"pill error\">%zu errors</span>", c.errors);
	if (c.skipped)
		render_putf(h, "<span class=\"pill skip\">%zu skipped</span>", c.skipped);
	if (c.hangs)
		render_putf(h, "<span class=\"pill hang\">%zu hang%s</span>", c.hangs, c.hangs == 1 ? "" : "s");
	render_putf(h, "<span class=\"pill\">%zu leaked</span><span class=\"pill\">%s total</span></div>\n", c.leaked,
	            duration_format(c.duration_ns, d, sizeof(d)));
	if (c.hangs)
		render_putf(h, "<p class=\"hangs\">Found %zu hang%s.</p>\n", c.hangs, c.hangs == 1 ? "" : "s");
	if (c.unexplained)
		render_putf(h, "<p class=\"mismatch\">%zu cell%s timed out with no hang verdict (no knot found).</p>\n",
			    c.unexplained, c.unexplained == 1 ? "" : "s");
	if (render_doc_infra_error(doc)) {
		render_put(h, "<p class=\"mismatch\"><b>Run failed:</b> ");
		render_put_xml_str(h, render_doc_infra_error(doc));
		render_put(h, "</p>\n");
	}
	if (json_array_size(cells) == 0)
		return;
	render_put(h, "<table class=\"index\"><thead><tr><th>status</th><th>cell</th><th>outcome</th><th>duration</th>"
	              "<th>verdicts</th><th>leaked</th></tr></thead><tbody>\n");
	json_array_foreach(cells, i, cell) {
		enum cell_status st = render_cell_status(cell);
		size_t k;
		json_t *v;
		render_putf(h, "<tr><td class=\"status %s\">%s</td><td><a href=\"#cell-%zu\"><code>", status_class(st),
		            render_cell_status_word(st), i + 1);
		render_put_xml_str(h, cell_id(cell));
		render_put(h, "</code></a></td>");
		td_text(h, json_str(cell, "outcome", NULL));
		td_duration(h, cell, "duration_ns");
		render_put(h, "<td>");
		json_array_foreach(json_object_get(cell, "verdicts"), k, v) {
			render_put(h, k ? ", " : "");
			render_put_xml_str(h, json_str(v, "class", "?"));
		}
		render_put(h, "</td>");
		td_int(h, cell, "leaked");
		render_put(h, "</tr>\n");
	}
	render_put(h, "</tbody></table>\n");
}

/* The document for the page's script: every '<' as \u003c so no "</script>"
 * or "<!--" can appear inside the element. */
static void
embedded_json(struct render_writer *h, const json_t *doc)
{
	/* ASCII only: no raw control or bidi characters in the page source either. */
	size_t flags = JSON_COMPACT | JSON_ESCAPE_SLASH | JSON_ENSURE_ASCII;
	char *text = json_dumps(doc, flags);
	if (!text) {
		json_t *clean = render_sanitized_copy(doc);
		text = clean ? json_dumps(clean, flags) : NULL;
		json_decref(clean);
	}
	if (!text) {
		render_fail(h, -ENOMEM);
		return;
	}
	render_put(h, "<script type=\"application/json\" id=\"forkscope-data\">");
	size_t start = 0, i;
	for (i = 0; text[i] && h->r == 0; i++) {
		if (text[i] != '<')
			continue;
		render_putn(h, text + start, i - start);
		render_put(h, "\\u003c");
		start = i + 1;
	}
	render_putn(h, text + start, i - start);
	render_put(h, "</script>\n");
	free(text);
}

int
render_html_doc(const json_t *doc, const struct render_options *o, struct strbuf *out)
{
	struct render_writer h = RENDER_WRITER(out);
	json_t *cells = render_cells(doc);
	const char *title = o->title ? o->title : "forkscope report";
	size_t i;
	json_t *cell, *arg;
	if (!cells)
		return -ENOMEM;

	render_put(&h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		"<meta name=\"generator\" content=\"forkscope\">\n<title>");
	render_put_xml_str(&h, title);
	render_put(&h, "</title>\n<style>\n");
	render_put(&h, STYLE);
	render_put(&h, "</style>\n</head>\n<body>\n<header>\n<h1>");
	render_put_xml_str(&h, title);
	render_put(&h, "</h1>\n<p class=\"meta\">");
	render_put_xml_str(&h, json_str(doc, "command", "run"));
	if (json_array_size(json_object_get(doc, "argv")) > 0) {
		/* Quoted as a shell would read it back: copy, paste, run. */
		struct strbuf line = STRBUF_INIT;
		json_array_foreach(json_object_get(doc, "argv"), i, arg) {
			if (h.r == 0 && i)
				h.r = strbuf_append(&line, " ");
			if (h.r == 0)
				h.r = render_shell_word(&line, json_string_value(arg), json_string_length(arg));
		}
		render_put(&h, ": <code class=\"cmdline\">");
		render_put_xml(&h, line.data ? line.data : "", line.len, false);
		render_put(&h, "</code>");
		strbuf_free(&line);
	}
	render_put(&h, "</p>\n<p class=\"meta\">");
	if (json_str(doc, "started_at", NULL)) {
		render_put(&h, "started ");
		render_put_xml_str(&h, json_str(doc, "started_at", ""));
	}
	const json_t *host = json_object_get(doc, "host");
	if (json_is_object(host)) {
		render_put(&h, " \xc2\xb7 kernel ");
		render_put_xml_str(&h, json_str(host, "kernel", "?"));
		render_put(&h, " ");
		render_put_xml_str(&h, json_str(host, "machine", ""));
		if (json_has_int(host, "nproc"))
			render_putf(&h, ", %lld CPUs", (long long) json_int(host, "nproc", 0));
	}
	if (json_str(doc, "tool", NULL)) {
		render_put(&h, " \xc2\xb7 ");
		render_put_xml_str(&h, json_str(doc, "tool", ""));
	}
	render_put(&h, "</p>\n");
	int64_t version = json_int(doc, "schema_version", RENDER_SCHEMA_VERSION);
	if (version > RENDER_SCHEMA_VERSION)
		render_putf(&h, "<p class=\"mismatch\">schema_version %lld is newer than this renderer (%d); some fields may be "
			               "missing.</p>\n",
		            (long long) version, RENDER_SCHEMA_VERSION);
	summary(&h, doc, cells);
	render_put(&h, "<div class=\"controls\"><button type=\"button\" id=\"expand-all\">Expand all</button>"
		"<button type=\"button\" id=\"collapse-all\">Collapse all</button></div>\n</header>\n<main>\n");
	json_array_foreach(cells, i, cell)
		cell_section(&h, cell, i);
	render_put(&h, "</main>\n<footer>Rendered by forkscope from result.json");
	if (json_str(doc, "run_dir", NULL)) {
		render_put(&h, " in <code>");
		render_put_xml_str(&h, json_str(doc, "run_dir", ""));
		render_put(&h, "</code>");
	}
	render_put(&h, ". The whole document is embedded below as JSON (id <code>forkscope-data</code>).</footer>\n");
	embedded_json(&h, doc);
	render_put(&h, "<script>\n");
	render_put(&h, SCRIPT);
	render_put(&h, "</script>\n</body>\n</html>\n");
	json_decref(cells);
	return h.r;
}
