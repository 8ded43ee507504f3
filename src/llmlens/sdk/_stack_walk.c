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
 * API used, all public in CPython 3.10-3.13: PyFrame_GetCode, PyFrame_GetBack (3.9+),
 * PyFrame_GetLasti (3.11+; before it, the f_lasti attribute).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030B0000
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

static PyMethodDef methods[] = {
    {"stacks", (PyCFunction)(void (*)(void))stacks, METH_FASTCALL,
     "stacks(frames, idents, codes, max_depth) -> [(code ids, offsets) or None, ...]\n\n"
     "For each thread ident in the list, the stack of its frame in `frames` (as sys._current_frames()\n"
     "returns them), innermost first, at most max_depth frames; None for an ident not in `frames`.\n"
     "Each frame's code object is stored in `codes` under its id."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_stack_walk", "The profiler's stack walk, in C (a fast path).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__stack_walk(void) { return PyModule_Create(&module_def); }
