/* The profiler's stack walk in C: the stacks of the threads a tick must sample, in one call.
 *
 * Why C: walking a stack from Python reads f_code, f_lasti and f_back on every frame, attribute
 * reads CPython 3.11 does not specialise (f_code also calls the audit hooks); on the demo chatbot's
 * ~47-frame stacks that was ~2.4k instructions a frame and most of a busy profiler tick. Here a
 * frame is three calls of CPython's public frame API and two ints.
 *
 * It returns exactly what stack_sampler.walk() returns (that Python walk stays as the fallback
 * and as the reference tests compare this one with): for each thread, innermost frame first, the
 * id() of each frame's code object and its last instruction's offset in bytes (frame.f_lasti), at
 * most max_depth frames; every code object goes into `codes` by id, so ids stay unique while the
 * samples that name them are kept. It holds the GIL throughout (it is called from Python) and keeps
 * no frame object after it returns.
 *
 * fold() walks and folds in one call: each stack becomes one bytes key (code ids, then offsets),
 * counted in the sampler's dict with no Python object made per frame (stack_sampler.fold() is the
 * Python equivalent the tests compare it with). wait_due() is the sampling thread's sleep, which
 * skips the ticks where no thread can have a sample due without taking the GIL.
 *
 * API used, all public in CPython 3.10-3.13: PyFrame_GetCode, PyFrame_GetBack (3.9+),
 * PyFrame_GetLasti (3.11+; before it, the f_lasti attribute).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <time.h>

#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h> /* PyFrame_GetBack: Python.h includes it only from 3.11 */

static int frame_lasti(PyFrameObject *frame) {
    PyObject *value = PyObject_GetAttrString((PyObject *)frame, "f_lasti");
    if (value == NULL) return -2;
    long lasti = PyLong_AsLong(value);
    Py_DECREF(value);
    return (lasti == -1 && PyErr_Occurred()) ? -2 : (int)lasti;
}
#else
static int frame_lasti(PyFrameObject *frame) {
    return PyFrame_GetLasti(frame); /* -1 when the frame has not started, as f_lasti */
}
#endif

/* The stack from `frame` (borrowed) outwards as (code ids, offsets); `ids` and `offsets` are
 * max_depth slots of scratch space. NULL with an exception set on failure. */
static PyObject *walk_one(PyFrameObject *frame, PyObject *codes, Py_ssize_t max_depth, PyObject **ids,
                          PyObject **offsets) {
    Py_ssize_t n = 0;
    PyObject *result = NULL;
    Py_INCREF(frame);
    while (frame != NULL && n < max_depth) {
        PyCodeObject *code = PyFrame_GetCode(frame); /* new reference, never NULL */
        int lasti = frame_lasti(frame);
        PyObject *id = PyLong_FromVoidPtr(code); /* what id(code) is */
        PyObject *offset = lasti == -2 ? NULL : PyLong_FromLong(lasti);
        if (id == NULL || offset == NULL) {
            Py_XDECREF(id);
            Py_XDECREF(offset);
            Py_DECREF(code);
            goto done;
        }
        ids[n] = id;
        offsets[n] = offset;
        n++;
        /* Keep the code alive under its id (usually already there: look before writing). */
        PyObject *known = PyDict_GetItemWithError(codes, id);
        if (known != (PyObject *)code && (PyErr_Occurred() || PyDict_SetItem(codes, id, (PyObject *)code) < 0)) {
            Py_DECREF(code);
            goto done;
        }
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame); /* new reference or NULL */
        Py_DECREF(frame);
        frame = back;
        if (frame == NULL && PyErr_Occurred()) goto done;
    }
    PyObject *id_tuple = PyTuple_New(n);
    PyObject *offset_tuple = PyTuple_New(n);
    if (id_tuple != NULL && offset_tuple != NULL) {
        for (Py_ssize_t i = 0; i < n; i++) { /* the tuples take the references */
            PyTuple_SET_ITEM(id_tuple, i, ids[i]);
            PyTuple_SET_ITEM(offset_tuple, i, offsets[i]);
        }
        n = 0;
        result = PyTuple_Pack(2, id_tuple, offset_tuple);
    }
    Py_XDECREF(id_tuple);
    Py_XDECREF(offset_tuple);
done:
    Py_XDECREF(frame);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(ids[i]);
        Py_DECREF(offsets[i]);
    }
    return result;
}

/* stacks(frames, idents, codes, max_depth) -> [stack or None for each ident] */
static PyObject *stacks(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "stacks(frames, idents, codes, max_depth) takes 4 arguments");
        return NULL;
    }
    PyObject *frames = args[0], *idents = args[1], *codes = args[2];
    if (!PyDict_Check(frames) || !PyList_Check(idents) || !PyDict_Check(codes)) {
        PyErr_SetString(PyExc_TypeError, "stacks() takes a dict of frames, a list of thread idents and a dict of codes");
        return NULL;
    }
    Py_ssize_t max_depth = PyLong_AsSsize_t(args[3]);
    if (max_depth == -1 && PyErr_Occurred()) return NULL;
    if (max_depth < 1 || max_depth > 65536) {
        PyErr_SetString(PyExc_ValueError, "max_depth must be 1..65536");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(idents);
    PyObject *result = PyList_New(count);
    if (result == NULL) return NULL;
    PyObject **scratch = PyMem_Malloc(2 * (size_t)max_depth * sizeof(PyObject *));
    if (scratch == NULL) {
        Py_DECREF(result);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *frame = PyDict_GetItemWithError(frames, PyList_GET_ITEM(idents, i)); /* borrowed */
        PyObject *stack;
        if (frame == NULL) {
            if (PyErr_Occurred()) goto error;
            stack = Py_NewRef(Py_None); /* the thread is gone */
        } else if (!PyFrame_Check(frame)) {
            PyErr_SetString(PyExc_TypeError, "stacks(): frames must map thread idents to frame objects");
            goto error;
        } else {
            stack = walk_one((PyFrameObject *)frame, codes, max_depth, scratch, scratch + max_depth);
            if (stack == NULL) goto error;
        }
        PyList_SET_ITEM(result, i, stack);
    }
    PyMem_Free(scratch);
    return result;
error:
    PyMem_Free(scratch);
    Py_DECREF(result);
    return NULL;
}

/* The stack from `frame` (borrowed) outwards into `codes_out` (new references) and `offsets_out`,
 * at most max_depth frames; the number of frames, or -1 with an exception set. */
static Py_ssize_t walk_raw(PyFrameObject *frame, Py_ssize_t max_depth, PyCodeObject **codes_out,
                           long long *offsets_out) {
    Py_ssize_t n = 0;
    Py_INCREF(frame);
    while (frame != NULL && n < max_depth) {
        int lasti = frame_lasti(frame);
        if (lasti == -2) break;
        codes_out[n] = PyFrame_GetCode(frame); /* new reference, never NULL */
        offsets_out[n] = lasti;
        n++;
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
        if (frame == NULL && PyErr_Occurred()) break;
    }
    if (PyErr_Occurred()) {
        Py_XDECREF(frame);
        for (Py_ssize_t i = 0; i < n; i++) Py_DECREF(codes_out[i]);
        return -1;
    }
    Py_XDECREF(frame);
    return n;
}

/* The stack as one bytes object: n code ids (unsigned long long, what id() gives), then n offsets
 * (long long), native byte order: one hash and one memcmp per look-up, whatever the depth. */
static PyObject *stack_bytes(PyCodeObject **codes, const long long *offsets, Py_ssize_t n) {
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, n * 16);
    if (bytes == NULL) return NULL;
    char *out = PyBytes_AS_STRING(bytes);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long id = (unsigned long long)(uintptr_t)codes[i];
        memcpy(out + 8 * i, &id, 8);
    }
    memcpy(out + 8 * n, offsets, 8 * (size_t)n);
    return bytes;
}

/* fold(frames, due, counts, codes, max_depth) -> frames walked
 *
 * For each (ident, n, thread name, span) in `due` whose thread is in `frames`: its stack as bytes
 * (stack_bytes), counts[(stack, name, span)] += n; the code objects of a stack not yet in `counts`
 * go into `codes` by id (a stack already there put them in when it was added: `counts` and `codes`
 * are drained together). */
static PyObject *fold(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "fold(frames, due, counts, codes, max_depth) takes 5 arguments");
        return NULL;
    }
    PyObject *frames = args[0], *due = args[1], *counts = args[2], *codes = args[3];
    if (!PyDict_Check(frames) || !PyList_Check(due) || !PyDict_Check(counts) || !PyDict_Check(codes)) {
        PyErr_SetString(PyExc_TypeError, "fold() takes a dict of frames, a list of (ident, n, name, span), a dict of "
                                         "counts and a dict of codes");
        return NULL;
    }
    Py_ssize_t max_depth = PyLong_AsSsize_t(args[4]);
    if (max_depth == -1 && PyErr_Occurred()) return NULL;
    if (max_depth < 1 || max_depth > 65536) {
        PyErr_SetString(PyExc_ValueError, "max_depth must be 1..65536");
        return NULL;
    }
    void *scratch = PyMem_Malloc((size_t)max_depth * (sizeof(PyCodeObject *) + sizeof(long long)));
    if (scratch == NULL) return PyErr_NoMemory();
    PyCodeObject **stack_codes = scratch;
    long long *offsets = (long long *)(stack_codes + max_depth);
    Py_ssize_t walked = 0, depth = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(due); i++) {
        PyObject *item = PyList_GET_ITEM(due, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4) {
            PyErr_SetString(PyExc_TypeError, "fold(): due must hold (ident, n, name, span) tuples");
            goto error;
        }
        PyObject *frame = PyDict_GetItemWithError(frames, PyTuple_GET_ITEM(item, 0)); /* borrowed */
        if (frame == NULL) {
            if (PyErr_Occurred()) goto error;
            continue; /* the thread is gone */
        }
        if (!PyFrame_Check(frame)) {
            PyErr_SetString(PyExc_TypeError, "fold(): frames must map thread idents to frame objects");
            goto error;
        }
        depth = walk_raw((PyFrameObject *)frame, max_depth, stack_codes, offsets);
        if (depth < 0) goto error;
        PyObject *stack = stack_bytes(stack_codes, offsets, depth);
        PyObject *key = stack == NULL ? NULL : PyTuple_Pack(3, stack, PyTuple_GET_ITEM(item, 2), PyTuple_GET_ITEM(item, 3));
        Py_XDECREF(stack);
        if (key == NULL) goto error_codes;
        PyObject *known = PyDict_GetItemWithError(counts, key); /* borrowed */
        PyObject *count = NULL;
        if (known != NULL) {
            count = PyNumber_Add(known, PyTuple_GET_ITEM(item, 1));
        } else if (!PyErr_Occurred()) {
            count = Py_NewRef(PyTuple_GET_ITEM(item, 1));
            for (Py_ssize_t f = 0; f < depth && count != NULL; f++) {
                PyObject *id = PyLong_FromVoidPtr(stack_codes[f]);
                if (id == NULL || PyDict_SetItem(codes, id, (PyObject *)stack_codes[f]) < 0) Py_CLEAR(count);
                Py_XDECREF(id);
            }
        }
        int failed = count == NULL || PyDict_SetItem(counts, key, count) < 0;
        Py_XDECREF(count);
        Py_DECREF(key);
        if (failed) goto error_codes;
        for (Py_ssize_t f = 0; f < depth; f++) Py_DECREF(stack_codes[f]);
        walked += depth;
    }
    PyMem_Free(scratch);
    return PyLong_FromSsize_t(walked);
error_codes:
    for (Py_ssize_t f = 0; f < depth; f++) Py_DECREF(stack_codes[f]);
error:
    PyMem_Free(scratch);
    return NULL;
}

#ifdef __linux__ /* clock_nanosleep; on-CPU mode is Linux's only */
static long long clock_ns(clockid_t clock, int *failed) {
    struct timespec t;
    if (clock_gettime(clock, &t) != 0) {
        *failed = 1;
        return 0;
    }
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Whether a tick may have a sample due (1), cannot (0), or a clock failed (-1, errno set). */
static int maybe_due(long long since, long long need, Py_ssize_t n, const clockid_t *clocks, const long long *due_at,
                     long long clocks_at_since, long long period) {
    int failed = 0;
    if (clock_ns(CLOCK_PROCESS_CPUTIME_ID, &failed) - since < need) return failed ? -1 : 0;
    if (n == 0) return 1;
    long long sum = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long now = clock_ns(clocks[i], &failed);
        if (failed) return 1; /* the thread exited: the sampler refreshes its threads */
        if (now >= due_at[i]) return 1;
        sum += now;
    }
    /* CPU of threads the sampler does not know yet (started since), read after theirs: an over-estimate */
    long long untracked = clock_ns(CLOCK_PROCESS_CPUTIME_ID, &failed) - since - (sum - clocks_at_since);
    return failed ? -1 : untracked >= period;
}

/* wait_due(deadline_ns, period_ns, max_ticks, since_cpu_ns, need_cpu_ns, clocks, due_at, clocks_at_since)
 *     -> (deadline_ns, ticks skipped)
 *
 * The sampling thread's sleep between on-CPU ticks, with the idle test moved before the GIL is
 * taken. A Python thread that wakes must take the GIL from the busy thread holding it (two or
 * three context switches, most of what a tick costs on a VM); here, without the GIL: sleep until
 * `deadline_ns` (CLOCK_MONOTONIC), then skip the tick and sleep a period more (at most
 * max_ticks - 1 times) while no thread can have a sample due:
 *   - the process's CPU clock is under since_cpu_ns + need_cpu_ns (its CPU since the last full
 *     tick completes no sample even on the thread carrying the most), or
 *   - no thread's CPU clock (`clocks`, clock ids) has reached its `due_at` reading (its last
 *     reading plus a period less its carry), and the process's CPU not on those threads since the
 *     last full tick (when their clocks summed to clocks_at_since) is under a period: a thread
 *     started since has not used one yet.
 * Returns the deadline of the tick to run and how many were skipped; the caller checks for stop
 * between calls. */
static PyObject *wait_due(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "wait_due(deadline_ns, period_ns, max_ticks, since_cpu_ns, need_cpu_ns, clocks, "
                                         "due_at, clocks_at_since) takes 8 arguments");
        return NULL;
    }
    long long values[5];
    for (int i = 0; i < 5; i++) {
        values[i] = PyLong_AsLongLong(args[i]);
        if (values[i] == -1 && PyErr_Occurred()) return NULL;
    }
    long long deadline = values[0], period = values[1], max_ticks = values[2], since = values[3], need = values[4];
    long long clocks_at_since = PyLong_AsLongLong(args[7]);
    if (clocks_at_since == -1 && PyErr_Occurred()) return NULL;
    if (period < 1 || max_ticks < 1) {
        PyErr_SetString(PyExc_ValueError, "wait_due(): period_ns and max_ticks must be positive");
        return NULL;
    }
    if (!PyList_Check(args[5]) || !PyList_Check(args[6]) || PyList_GET_SIZE(args[5]) != PyList_GET_SIZE(args[6])) {
        PyErr_SetString(PyExc_TypeError, "wait_due(): clocks and due_at must be lists of the same length");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(args[5]);
    clockid_t *clocks = PyMem_Malloc((size_t)(n + 1) * sizeof(clockid_t));
    long long *due_at = PyMem_Malloc((size_t)(n + 1) * sizeof(long long));
    if (clocks == NULL || due_at == NULL) {
        PyMem_Free(clocks);
        PyMem_Free(due_at);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long clock = PyLong_AsLong(PyList_GET_ITEM(args[5], i));
        due_at[i] = PyLong_AsLongLong(PyList_GET_ITEM(args[6], i));
        if (PyErr_Occurred()) {
            PyMem_Free(clocks);
            PyMem_Free(due_at);
            return NULL;
        }
        clocks[i] = (clockid_t)clock;
    }
    long long skipped = 0;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        struct timespec until = {(time_t)(deadline / 1000000000LL), (long)(deadline % 1000000000LL)};
        int rc;
        while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL)) == EINTR) {
        }
        if (rc != 0) {
            errno = rc; /* clock_nanosleep returns its error */
            failed = 1;
            break;
        }
        int due = maybe_due(since, need, n, clocks, due_at, clocks_at_since, period);
        if (due < 0) {
            failed = 1;
            break;
        }
        if (due || skipped + 1 >= max_ticks) break;
        skipped++;
        deadline += period;
        long long now = clock_ns(CLOCK_MONOTONIC, &failed);
        if (deadline < now) deadline = now; /* woke late: the missed ticks are gone, the clocks count the time */
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(clocks);
    PyMem_Free(due_at);
    if (failed) return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("(LL)", deadline, skipped);
}
#endif

static PyMethodDef methods[] = {
    {"stacks", (PyCFunction)(void (*)(void))stacks, METH_FASTCALL,
     "stacks(frames, idents, codes, max_depth) -> [(code ids, offsets) or None, ...]\n\n"
     "For each thread ident in the list, the stack of its frame in `frames` (as sys._current_frames()\n"
     "returns them), innermost first, at most max_depth frames; None for an ident not in `frames`.\n"
     "Each frame's code object is stored in `codes` under its id."},
#ifdef __linux__
    {"wait_due", (PyCFunction)(void (*)(void))wait_due, METH_FASTCALL,
     "wait_due(deadline_ns, period_ns, max_ticks, since_cpu_ns, need_cpu_ns, clocks, due_at, clocks_at_since)\n"
     "    -> (deadline_ns, ticks skipped)\n\n"
     "Without the GIL: sleep until the CLOCK_MONOTONIC deadline; while no thread can have a sample due\n"
     "(see _stack_walk.c), skip the tick and sleep a period more (at most max_ticks - 1 times)."},
#endif
    {"fold", (PyCFunction)(void (*)(void))fold, METH_FASTCALL,
     "fold(frames, due, counts, codes, max_depth) -> frames walked\n\n"
     "For each (ident, n, name, span) in `due` whose thread has a frame in `frames`: its stack as bytes\n"
     "(the code ids as unsigned long long, then the offsets as long long, innermost first, at most\n"
     "max_depth frames), and counts[(stack, name, span)] += n. The code objects of a stack new to\n"
     "`counts` are stored in `codes` under their ids."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_stack_walk", "The profiler's stack walk, in C (a fast path).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__stack_walk(void) { return PyModule_Create(&module_def); }
