/* html, the process tree: one SVG per cell with a box per actor and per
 * leftover (coloured by how it ended), the parent -> child edges, and the
 * verdicts' wait edges routed around the boxes (docs/reports.md, HTML).
 * Split from render_html.c, which calls render_html_tree() per cell. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/render_util.h"
#include "reports/verdict_class.h"
#include "util/jsonutil.h"
#include "util/macro.h"

/* Process tree geometry (px). */
#define NODE_W 150
#define NODE_H 40
#define SLOT_W 172
#define LEVEL_H 86
#define TREE_MARGIN 20
#define NODE_NAME_MAX 20

struct node {
	const json_t *obj;
	const json_t *left; /* its LEFTOVER record, if the runner had to end it */
	bool leftover;
	long parent;
	int level;
	double x; /* slot units */
	int64_t pid;
	bool involved;
};

static long
node_by_pid(const struct node *nodes, size_t n, int64_t pid)
{
	if (pid <= 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (nodes[i].pid == pid)
			return (long) i;
	return -1;
}

static double
layout(struct node *nodes, size_t n, size_t i, double *next_slot)
{
	double first = -1, last = -1;
	for (size_t k = 0; k < n; k++) {
		if (nodes[k].parent != (long) i)
			continue;
		double x = layout(nodes, n, k, next_slot);
		if (first < 0)
			first = x;
		last = x;
	}
	nodes[i].x = first < 0 ? (*next_slot)++ : (first + last) / 2;
	return nodes[i].x;
}

static void
node_center(const struct node *nd, double *ret_x, double *ret_y)
{
	*ret_x = TREE_MARGIN + nd->x * SLOT_W + NODE_W / 2.0;
	*ret_y = TREE_MARGIN + nd->level * LEVEL_H + NODE_H / 2.0;
}

static void
legend_item(struct render_writer *h, double x, double y, const char *cls, const char *label)
{
	render_putf(h, "<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"12\" rx=\"3\" class=\"%s\"/>", x, y, cls);
	render_putf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"sub\">%s</text>\n", x + 21, y + 10, label);
}

/* The nodes of the tree: every actor, then the leftovers the runner swept
 * that are not actors, with their levels; a parent chain longer than n is a
 * cycle in bad data: cut there. Returns the count or -ENOMEM. */
static long
tree_nodes(const json_t *cell, struct node **ret_nodes)
{
	const json_t *actors = json_object_get(cell, "actors");
	const json_t *left = json_object_get(cell, "leftovers");
	size_t na = json_array_size(actors), n = 0, i;
	json_t *v;
	struct node *nodes = calloc(na + json_array_size(left) + 1, sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	for (i = 0; i < na; i++) {
		const json_t *a = json_array_get(actors, i);
		nodes[n++] = (struct node){ .obj = a, .parent = render_actor_parent_index(actors, i),
					    .pid = json_int(a, "pid", -1) };
	}
	json_array_foreach(left, i, v) {
		int64_t pid = json_int(v, "pid", -1);
		long known = node_by_pid(nodes, n, pid);
		if (known >= 0) {
			/* An actor the runner had to end: drawn as a leftover. */
			nodes[known].leftover = true;
			nodes[known].left = v;
			continue;
		}
		nodes[n] = (struct node){ .obj = v, .left = v, .leftover = true,
					  .parent = node_by_pid(nodes, n, json_int(v, "ppid", -1)), .pid = pid };
		n++;
	}
	for (i = 0; i < n; i++) {
		long p = nodes[i].parent;
		int level = 0;
		while (p >= 0 && (size_t) level <= n) {
			level++;
			p = nodes[p].parent;
		}
		if ((size_t) level > n) {
			nodes[i].parent = -1;
			level = 0;
		}
		nodes[i].level = level;
	}
	/* Again, now that every cycle is cut. */
	for (i = 0; i < n; i++) {
		long p = nodes[i].parent;
		int level = 0;
		while (p >= 0) {
			level++;
			p = nodes[p].parent;
		}
		nodes[i].level = level;
	}
	*ret_nodes = nodes;
	return (long) n;
}

/* Mark the processes a hang verdict names. */
static void
tree_mark_involved(struct node *nodes, size_t n, const json_t *verdicts)
{
	size_t k, m;
	json_t *v, *e;
	json_array_foreach(verdicts, k, v) {
		const struct verdict_class_info *info = verdict_class_lookup(json_str(v, "class", NULL));
		if (info && !info->is_hang)
			continue;
		json_array_foreach(json_object_get(v, "pids"), m, e) {
			long idx = node_by_pid(nodes, n, json_integer_value(e));
			if (idx >= 0)
				nodes[idx].involved = true;
		}
		json_array_foreach(json_object_get(v, "chain"), m, e) {
			long idx = node_by_pid(nodes, n, json_int(e, "pid", -1));
			if (idx >= 0)
				nodes[idx].involved = true;
		}
	}
}

/* One process box with its tooltip, name and end label. */
static void
tree_node(struct render_writer *h, const struct node *nd)
{
	double cx, cy;
	char label[64];
	const char *endkey;
	node_center(nd, &cx, &cy);
	if (nd->left == nd->obj) {
		endkey = "running";
		(void) snprintf(label, sizeof(label), "leftover");
	} else {
		endkey = render_actor_end_key(render_actor_end(nd->obj));
		render_actor_end_label(nd->obj, label, sizeof(label));
	}
	if (nd->left) {
		/* What ended it is the runner's sweep, not its own exit. */
		(void) snprintf(label, sizeof(label), "leftover, %s", json_str(nd->left, "ended_by", "?"));
	}
	render_putf(h, "<g class=\"node%s%s\">", nd->leftover ? " leftover" : "", nd->involved ? " involved" : "");
	render_put(h, "<title>");
	render_put_xml_str(h, json_str(nd->obj, "name", "?"));
	if (nd->pid > 0)
		render_putf(h, " (pid %lld)", (long long) nd->pid);
	render_put(h, ": ");
	if (nd->left) {
		render_put(h, "left over after teardown");
		if (json_str(nd->left, "how", NULL)) {
			render_put(h, ", ");
			render_put_xml_str(h, json_str(nd->left, "how", ""));
		}
		render_put(h, "; ended by ");
		render_put_xml_str(h, json_str(nd->left, "ended_by", "?"));
	} else
		render_put_xml_str(h, label);
	if (nd->involved)
		render_put(h, "; named by a hang verdict");
	render_put(h, "</title>");
	render_putf(h, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" rx=\"7\" class=\"end-%s\"/>",
	            cx - NODE_W / 2.0, cy - NODE_H / 2.0, NODE_W, NODE_H, endkey);
	render_putf(h, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", cx, cy - 3);
	render_put_xml_short(h, json_str(nd->obj, "name", "?"), NODE_NAME_MAX);
	render_putf(h, "</text><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"sub\">", cx, cy + 12);
	if (nd->pid > 0)
		render_putf(h, "pid %lld \xc2\xb7 ", (long long) nd->pid);
	render_put_xml_str(h, label);
	render_put(h, "</text></g>\n");
}

/* Wait edges are routed orthogonally through the free space of the layout,
 * so that they never cross a process box: out of the source's top or bottom
 * edge into the channel between two rows (no boxes there), along it, down
 * or up a column that is free in every row crossed, and into the target's
 * facing edge. Each edge gets a lane: its own offsets in the channel and on
 * the box edges, so that A->B and B->A (a cycle) are two distinct arrows and
 * stay off the tree edges (centred). */
#define WAIT_LANES 4
#define COLUMN_CLEARANCE 5.0
/* The arrow tip overshoots the path end by about 1.5 px. */
#define ARROW_GAP 2.0

static double
row_top(int level)
{
	return TREE_MARGIN + (double) level * LEVEL_H;
}

/* The y of a lane in the free band above row level (level 0: the margin). */
static double
channel_y(int level, unsigned lane)
{
	double top = level > 0 ? row_top(level - 1) + NODE_H : 0;
	double height = row_top(level) - top;
	double step = MIN(8.0, (height - 8) / WAIT_LANES);
	return top + height / 2 + ((double) (lane % WAIT_LANES) - 1.5) * step;
}

/* Whether a vertical line at x meets no box of a row strictly between lo and hi. */
static bool
column_free(const struct node *nodes, size_t n, double x, int lo, int hi)
{
	for (size_t i = 0; i < n; i++) {
		double cx, cy;
		if (nodes[i].level <= lo || nodes[i].level >= hi)
			continue;
		node_center(&nodes[i], &cx, &cy);
		if (fabs(x - cx) < NODE_W / 2.0 + COLUMN_CLEARANCE)
			return false;
	}
	return true;
}

/* A free column between rows lo and hi, as close as possible to from and to. */
static double
free_column(const struct node *nodes, size_t n, int lo, int hi, double from, double to)
{
	double best = TREE_MARGIN / 2.0, best_cost = INFINITY;
	double gap = (SLOT_W - NODE_W) / 2.0;
	for (size_t i = 0; i <= n + 1; i++) {
		for (int side = -1; side <= 1; side += 2) {
			double x;
			if (i < n) {
				double cx, cy;
				node_center(&nodes[i], &cx, &cy);
				x = cx + side * (NODE_W / 2.0 + gap);
			} else
				x = i == n ? from : to;
			if (x < TREE_MARGIN / 2.0 || !column_free(nodes, n, x, lo, hi))
				continue;
			double cost = fabs(x - from) + fabs(x - to);
			if (cost < best_cost) {
				best = x;
				best_cost = cost;
			}
		}
	}
	return best;
}

/* Where the k-th edge leaving (side 1) or entering (side -1) a box touches
 * its edge: right of the centre for leaving, left for entering, spread so
 * that edges of one box do not share a segment. */
static double
edge_port(double cx, unsigned k, int side)
{
	return cx + side * (10 + 13 * (double) (k % 5));
}

/* The d attribute of a wait edge from box a to box b: lane is its lane in
 * the channels, out and in its rank among the edges leaving a and entering b. */
static void
wait_edge_path(struct render_writer *h, const struct node *nodes, size_t n, const struct node *a, const struct node *b,
	       unsigned lane, unsigned out, unsigned in)
{
	double ax, ay, bx, by;
	node_center(a, &ax, &ay);
	node_center(b, &bx, &by);
	double sx = edge_port(ax, out, 1), ex = edge_port(bx, in, -1);
	if (a == b) {
		/* Waits on itself (a lock its own process holds): a loop over its top. */
		double top = row_top(a->level), y = channel_y(a->level, lane);
		render_putf(h, " d=\"M%.1f %.1fV%.1fH%.1fV%.1f\"", sx, top, y, ex, top - ARROW_GAP);
		return;
	}
	if (b->level > a->level) {
		/* Down: out of a's bottom, into b's top. */
		double y1 = channel_y(a->level + 1, lane), y2 = channel_y(b->level, lane);
		render_putf(h, " d=\"M%.1f %.1fV%.1f", sx, ay + NODE_H / 2.0, y1);
		if (b->level > a->level + 1) {
			double x = free_column(nodes, n, a->level, b->level, sx, ex);
			render_putf(h, "H%.1fV%.1f", x, y2);
		}
		render_putf(h, "H%.1fV%.1f\"", ex, by - NODE_H / 2.0 - ARROW_GAP);
	} else if (b->level < a->level) {
		/* Up: out of a's top, into b's bottom. */
		double y1 = channel_y(a->level, lane), y2 = channel_y(b->level + 1, lane);
		render_putf(h, " d=\"M%.1f %.1fV%.1f", sx, ay - NODE_H / 2.0, y1);
		if (a->level > b->level + 1) {
			double x = free_column(nodes, n, b->level, a->level, sx, ex);
			render_putf(h, "H%.1fV%.1f", x, y2);
		}
		render_putf(h, "H%.1fV%.1f\"", ex, by + NODE_H / 2.0 + ARROW_GAP);
	} else {
		/* Same row: over the top, through the band above it. */
		double y = channel_y(a->level, lane);
		render_putf(h, " d=\"M%.1f %.1fV%.1fH%.1fV%.1f\"", sx, ay - NODE_H / 2.0, y, ex,
			           by - NODE_H / 2.0 - ARROW_GAP);
	}
}

/* The wait edges of the verdicts: each chain entry -> the pids holding what it waits on. */
static void
wait_edges(struct render_writer *h, const struct node *nodes, size_t n, const json_t *verdicts, size_t cell_index)
{
	size_t k, m, q;
	json_t *v, *e, *held;
	unsigned lane = 0;
	unsigned *outs = calloc(n ? n : 1, sizeof(*outs)), *ins = calloc(n ? n : 1, sizeof(*ins));
	if (!outs || !ins) {
		render_fail(h, -ENOMEM);
		goto out;
	}
	json_array_foreach(verdicts, k, v) {
		json_array_foreach(json_object_get(v, "chain"), m, e) {
			long from = node_by_pid(nodes, n, json_int(e, "pid", -1));
			if (from < 0)
				continue;
			json_array_foreach(json_object_get(e, "held_by"), q, held) {
				long to = node_by_pid(nodes, n, json_integer_value(held));
				if (to < 0)
					continue;
				render_put(h, "<path class=\"wait-edge\"");
				wait_edge_path(h, nodes, n, &nodes[from], &nodes[to], lane++, outs[from]++, ins[to]++);
				render_putf(h, " marker-end=\"url(#wait-arrow-%zu)\"><title>", cell_index);
				render_put_xml_str(h, json_str(e, "actor", "?"));
				render_putf(h, " (pid %lld) waits on ", (long long) json_int(e, "pid", 0));
				render_put_xml_str(h, json_str(e, "waits_on", "?"));
				render_putf(h, ", held by pid %lld [", (long long) json_integer_value(held));
				render_put_xml_str(h, json_str(v, "class", "?"));
				render_put(h, "]</title></path>\n");
			}
		}
	}
out:
	free(outs);
	free(ins);
}

static void
tree_legend(struct render_writer *h, double legend_y, size_t cell_index)
{
	static const struct {
		const char *cls, *label;
	} items[] = {
		{ "end-ok", "exit 0" },		 { "end-error", "exit \xe2\x89\xa0 0" }, { "end-signal", "signal" },
		{ "end-killed", "SIGKILL" },	 { "end-zombie", "zombie" },		 { "end-running", "never ended" },
	};
	double x = TREE_MARGIN;
	for (size_t i = 0; i < ARRAY_SIZE(items); i++, x += 98)
		legend_item(h, x, legend_y, items[i].cls, items[i].label);
	render_putf(h,
	            "<g class=\"node leftover\"><rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"12\" rx=\"3\" "
	            "class=\"end-running\"/></g><text x=\"%.1f\" y=\"%.1f\" class=\"sub\">leftover</text>\n",
	            (double) TREE_MARGIN, legend_y + 20, TREE_MARGIN + 21.0, legend_y + 30);
	render_putf(h,
	            "<g class=\"node involved\"><rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"12\" rx=\"3\" "
	            "class=\"end-unknown\"/></g><text x=\"%.1f\" y=\"%.1f\" class=\"sub\">named by a hang verdict</text>\n",
	            TREE_MARGIN + 98.0, legend_y + 20, TREE_MARGIN + 119.0, legend_y + 30);
	render_putf(h,
	            "<path class=\"wait-edge\" d=\"M%.1f %.1fH%.1f\" marker-end=\"url(#wait-arrow-%zu)\"/>"
	            "<text x=\"%.1f\" y=\"%.1f\" class=\"sub\">waits on (held by)</text>\n",
	            TREE_MARGIN + 294.0, legend_y + 26, TREE_MARGIN + 330.0, cell_index, TREE_MARGIN + 338.0, legend_y + 30);
}

void
render_html_tree(struct render_writer *h, const json_t *cell, size_t cell_index)
{
	struct node *nodes = NULL;
	long r = tree_nodes(cell, &nodes);
	if (r < 0) {
		render_fail(h, (int) r);
		return;
	}
	size_t n = (size_t) r, i;
	double slots = 0;
	for (i = 0; i < n; i++)
		if (nodes[i].parent < 0)
			(void) layout(nodes, n, i, &slots);
	int levels = 0;
	for (i = 0; i < n; i++)
		levels = MAX(levels, nodes[i].level + 1);
	const json_t *verdicts = json_object_get(cell, "verdicts");
	tree_mark_involved(nodes, n, verdicts);

	double width = MAX(TREE_MARGIN * 2 + (slots > 0 ? slots : 1) * SLOT_W - (SLOT_W - NODE_W), 760.0);
	double legend_y = TREE_MARGIN + levels * LEVEL_H - (LEVEL_H - NODE_H) + 24;
	double height = legend_y + 46;
	render_putf(h,
	            "<svg class=\"tree\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
	            "height=\"%.0f\" role=\"img\" aria-label=\"process tree\">\n",
	            width, height, width, height);
	render_putf(h,
	            "<defs><marker id=\"wait-arrow-%zu\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
	            "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0 0L10 5L0 10z\" fill=\"#d50000\"/></marker>"
	            "</defs>\n",
	            cell_index);
	if (n == 0)
		render_putf(h, "<text x=\"%d\" y=\"%d\" class=\"sub\">no processes recorded</text>\n", TREE_MARGIN,
		            TREE_MARGIN + 14);

	/* Parent -> child edges under the nodes. */
	for (i = 0; i < n; i++) {
		if (nodes[i].parent < 0)
			continue;
		double px, py, cx, cy;
		node_center(&nodes[nodes[i].parent], &px, &py);
		node_center(&nodes[i], &cx, &cy);
		double midy = (py + NODE_H / 2.0 + cy - NODE_H / 2.0) / 2;
		render_putf(h, "<path class=\"tree-edge\" d=\"M%.1f %.1fV%.1fH%.1fV%.1f\"/>\n", px, py + NODE_H / 2.0, midy, cx,
		            cy - NODE_H / 2.0);
	}

	for (i = 0; i < n; i++)
		tree_node(h, &nodes[i]);
	wait_edges(h, nodes, n, verdicts, cell_index);
	tree_legend(h, legend_y, cell_index);
	render_put(h, "</svg>\n");
	free(nodes);
}

