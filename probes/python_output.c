/* Python frames out: interleaved with the native stack and as JSON. */
#include "probes/python_internal.h"

/* ---- native interleaving ----------------------------------------------- */

char *
py_frame_text(const struct py_frame *f)
{
	char *s = NULL;
	const char *name = f->qualname ? f->qualname : f->function ? f->function : "?";
	if (f->line > 0)
		s = python_errorf("%s (%s:%d)", name, f->file ? f->file : "?", f->line);
	else
		s = python_errorf("%s (%s)", name, f->file ? f->file : "?");
	return s;
}

static bool
is_eval_frame(const struct frame *f)
{
	return f->pc != 0 && !f->inlined && f->function &&
	       strcmp(f->function, "_PyEval_EvalFrameDefault") == 0;
}

static int
attach_thread(const struct py_thread *pt, struct thread_stack *ts)
{
	size_t total = ts->n_frames + pt->n_frames;
	struct frame *out = calloc(total ? total : 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	/* Build the Python entries first so a failure leaves ts untouched. */
	struct frame *pyf = calloc(pt->n_frames ? pt->n_frames : 1, sizeof(*pyf));
	if (!pyf) {
		free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < pt->n_frames; i++) {
		const struct py_frame *p = &pt->frames[i];
		pyf[i] = (struct frame){
		    .file = py_strdup_or_null(p->file), .line = p->line, .python = py_frame_text(p)};
		if (!pyf[i].python || (p->file && !pyf[i].file)) {
			frames_free(pyf, i + 1);
			free(out);
			return -ENOMEM;
		}
	}
	/* Innermost first on both sides: the k-th eval frame from the top runs
	 * the k-th segment of Python frames, a segment ending at an entry frame. */
	size_t n = 0, next_py = 0;
	for (size_t i = 0; i < ts->n_frames; i++) {
		if (is_eval_frame(&ts->frames[i]))
			while (next_py < pt->n_frames) {
				bool entry = pt->frames[next_py].entry;
				out[n++] = pyf[next_py++];
				if (entry)
					break;
			}
		out[n++] = ts->frames[i];
	}
	while (next_py < pt->n_frames)
		out[n++] = pyf[next_py++];
	free(pyf);
	free(ts->frames);
	ts->frames = out;
	ts->n_frames = n;
	if (pt->partial) {
		ts->partial = true;
		char *e = python_errorf("%s%spython: %s", ts->error ? ts->error : "",
				 ts->error ? "; " : "", pt->error ? pt->error : "partial");
		if (e) {
			free(ts->error);
			ts->error = e;
		}
	}
	return (int)pt->n_frames;
}

int
python_attach_frames(const struct py_process *py, struct thread_stack *threads, size_t n)
{
	if (!py || (!threads && n))
		return -EINVAL;
	int total = 0;
	for (size_t i = 0; i < py->n; i++) {
		const struct py_thread *pt = &py->threads[i];
		if (pt->tid <= 0 || pt->n_frames == 0)
			continue;
		for (size_t k = 0; k < n; k++) {
			if (threads[k].tid != pt->tid)
				continue;
			int r = attach_thread(pt, &threads[k]);
			if (r < 0)
				return r;
			total += r;
			break;
		}
	}
	return total;
}

void
python_stacks_frozen(pid_t pid, struct thread_stack *threads, size_t n_threads, void *userdata)
{
	struct py_process **out = userdata;
	struct py_process *py = NULL;
	const struct python_read_options opts = {.frozen = true};
	if (out)
		*out = NULL;
	if (python_read_with(pid, &opts, &py) < 0)
		return;
	(void)python_attach_frames(py, threads, n_threads);
	if (out)
		*out = py;
	else
		py_process_free(py);
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *
jstr(const char *s)
{
	return s ? json_string_lossy(s, strlen(s)) : json_null();
}

json_t *
python_process_to_json(const struct py_process *py)
{
	if (!py)
		return json_null();
	json_t *o = json_object();
	json_t *threads = json_array();
	if (!o || !threads)
		goto fail;
	int e = 0;
	e |= json_object_set_new(o, "pid", json_integer(py->pid));
	e |= json_object_set_new(o, "version", jstr(py->version));
	e |= json_object_set_new(o, "module", jstr(py->module));
	e |= json_object_set_new(o, "partial", json_boolean(py->partial));
	e |= json_object_set_new(o, "error", jstr(py->error));
	e |= json_object_set_new(o, "unsupported_reason", jstr(py->unsupported_reason));
	for (size_t i = 0; i < py->n; i++) {
		const struct py_thread *t = &py->threads[i];
		json_t *to = json_object(), *frames = json_array();
		if (!to || !frames) {
			json_decref(to);
			json_decref(frames);
			goto fail;
		}
		e |= json_object_set_new(to, "tid", json_integer(t->tid));
		e |= json_object_set_new(to, "thread_id", json_u64(t->thread_id));
		e |= json_object_set_new(to, "name", jstr(t->name));
		e |= json_object_set_new(to, "partial", json_boolean(t->partial));
		e |= json_object_set_new(to, "error", jstr(t->error));
		for (size_t k = 0; k < t->n_frames; k++) {
			const struct py_frame *f = &t->frames[k];
			json_t *fo = json_object();
			if (!fo) {
				e = -1;
				break;
			}
			e |= json_object_set_new(fo, "function", jstr(f->function));
			e |= json_object_set_new(fo, "qualname", jstr(f->qualname));
			e |= json_object_set_new(fo, "file", jstr(f->file));
			e |= json_object_set_new(fo, "line", json_integer(f->line));
			e |= json_object_set_new(fo, "entry", json_boolean(f->entry));
			e |= json_array_append_new(frames, fo);
		}
		e |= json_object_set_new(to, "frames", frames);
		e |= json_array_append_new(threads, to);
	}
	e |= json_object_set_new(o, "threads", threads);
	threads = NULL;
	if (e)
		goto fail;
	return o;
fail:
	json_decref(threads);
	json_decref(o);
	return NULL;
}

