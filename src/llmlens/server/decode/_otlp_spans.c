/* OTLP ExportTraceServiceRequest bytes -> the span tuples of llmlens.server.decode.spans.
 *
 * Why C: reading a protobuf message from Python builds a wrapper object for every field of
 * every attribute, and that was the largest share of ingest CPU (~15 us a span of ~30).
 * This reads the wire format once and builds only the Python objects the normaliser keeps.
 *
 * It is a fast path, not a second parser of record: on anything it does not take exactly as
 * protobuf's own parser would (malformed bytes, invalid UTF-8, a singular sub-message sent
 * twice, which protobuf merges, a wire type that does not match the schema, AnyValues nested
 * MAX_DEPTH deep) it returns None and the caller parses the body with protobuf. So errors and
 * odd inputs behave exactly as before; tests compare both paths on the corpus, on generated
 * requests and on mutated bytes.
 *
 * Field numbers: the .proto files of opentelemetry/proto: collector/trace, trace, common and resource (v1).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define OK 0
#define FALLBACK 1  /* not taken here: the caller parses with protobuf */
#define ERROR (-1)  /* a Python exception is set */

#define WT_VARINT 0
#define WT_I64 1
#define WT_LEN 2
#define WT_I32 5

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Reader;

/* Set once by configure(): the Python side owns the truncation rule and the JSON form. */
static PyObject *stored_string_fn; /* attributes.stored_string(value) -> str */
static PyObject *cap_fn;           /* attributes.cap_lengths(dict) -> dict */
static PyObject *dropped_key;      /* attributes.DROPPED_KEY */
static Py_ssize_t max_attributes, max_key_chars, max_value_chars;
static int max_depth;
static PyObject *s_true, *s_false, *s_empty, *s_ellipsis;

static int read_varint(Reader *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return FALLBACK;
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1) return FALLBACK;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return OK;
        }
    }
    return FALLBACK;
}

static int read_tag(Reader *r, uint32_t *field, int *wire_type) {
    uint64_t v;
    if (read_varint(r, &v)) return FALLBACK;
    if (v > UINT32_MAX || (v >> 3) == 0) return FALLBACK;
    *field = (uint32_t)(v >> 3);
    *wire_type = (int)(v & 7);
    return OK;
}

static int read_len(Reader *r, Reader *sub) {
    uint64_t n;
    if (read_varint(r, &n)) return FALLBACK;
    if (n > (uint64_t)(r->end - r->p)) return FALLBACK;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return OK;
}

static int read_fixed64(Reader *r, uint64_t *out) {
    if (r->end - r->p < 8) return FALLBACK;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | r->p[i];
    r->p += 8;
    *out = v;
    return OK;
}

/* Skip a field this decoder does not use. Groups (wire types 3, 4) and invalid wire types
 * go to protobuf, which knows what to make of them. */
static int skip_field(Reader *r, int wire_type) {
    uint64_t v;
    Reader sub;
    switch (wire_type) {
    case WT_VARINT: return read_varint(r, &v);
    case WT_I64: return read_fixed64(r, &v);
    case WT_LEN: return read_len(r, &sub);
    case WT_I32:
        if (r->end - r->p < 4) return FALLBACK;
        r->p += 4;
        return OK;
    default: return FALLBACK;
    }
}

/* Short ASCII strings seen before (attribute keys, span names, models, providers repeat in every
 * request): one str object each, found by hashing the bytes. Saves decoding, an allocation and
 * Python's hash of the key (cached on a reused object). Fixed size; a colliding string replaces the
 * old one, so hostile input only costs misses. The GIL is held throughout decode(). */
#define CACHE_SLOTS 4096
#define CACHE_MAX_BYTES 64
static PyObject *str_cache[CACHE_SLOTS];

static PyObject *cached_str(const uint8_t *p, Py_ssize_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    PyObject **slot = &str_cache[h & (CACHE_SLOTS - 1)];
    PyObject *hit = *slot;
    if (hit != NULL && PyUnicode_GET_LENGTH(hit) == n && memcmp(PyUnicode_1BYTE_DATA(hit), p, n) == 0) {
        Py_INCREF(hit);
        return hit;
    }
    PyObject *text = PyUnicode_DecodeUTF8((const char *)p, n, NULL);
    if (text != NULL && PyUnicode_IS_ASCII(text)) { /* ASCII only: its bytes are its characters */
        Py_INCREF(text);
        Py_XSETREF(*slot, text);
    }
    return text;
}

/* A field this decoder does not keep (dropped counts, flags, string-table indexes): its wire type
 * must still be the schema's, or protobuf would read it differently. */
static int skip_as(Reader *r, int wire_type, int expected) {
    return wire_type == expected ? skip_field(r, wire_type) : FALLBACK;
}

/* A proto3 string field: must be valid UTF-8, as protobuf checks. */
static int take_str(Reader *r, PyObject **out) {
    Reader s;
    if (read_len(r, &s)) return FALLBACK;
    Py_ssize_t n = s.end - s.p;
    if (n == 0) {
        Py_INCREF(s_empty);
        *out = s_empty;
        return OK;
    }
    PyObject *text = n <= CACHE_MAX_BYTES ? cached_str(s.p, n) : PyUnicode_DecodeUTF8((const char *)s.p, n, NULL);
    if (text == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            return FALLBACK;
        }
        return ERROR;
    }
    *out = text;
    return OK;
}

/* Replace *slot with a new reference (a scalar field sent twice: the last one wins). */
static void set_slot(PyObject **slot, PyObject *value) {
    Py_XSETREF(*slot, value);
}

static int take_str_into(Reader *r, PyObject **slot) {
    PyObject *text;
    int rc = take_str(r, &text);
    if (rc == OK) set_slot(slot, text);
    return rc;
}

static PyObject *hex_of(const uint8_t *p, Py_ssize_t n) {
    static const char digits[] = "0123456789abcdef";
    PyObject *out = PyUnicode_New(2 * n, 127);
    if (out == NULL) return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        d[2 * i] = digits[p[i] >> 4];
        d[2 * i + 1] = digits[p[i] & 15];
    }
    return out;
}

/* A bytes field (ids) as lowercase hex text, as bytes.hex() gives it. */
static int take_hex_into(Reader *r, PyObject **slot) {
    Reader s;
    if (read_len(r, &s)) return FALLBACK;
    PyObject *text = hex_of(s.p, s.end - s.p);
    if (text == NULL) return ERROR;
    set_slot(slot, text);
    return OK;
}

/* ---- AnyValue ------------------------------------------------------------------------ */

/* The one member of AnyValue's oneof that is set, as read off the wire. */
typedef struct {
    int which; /* field number of the member, 0 if none */
    Reader data;
    uint64_t scalar;
} AnyValue;

static int read_any_value(Reader r, AnyValue *value, PyObject **string) {
    uint32_t field;
    int wt, members = 0;
    value->which = 0;
    *string = NULL;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto fallback;
        if (field >= 1 && field <= 8) {
            /* A oneof sent more than once: protobuf keeps the last and merges messages;
               rare enough to leave to it. */
            if (++members > 1) goto fallback;
            value->which = (int)field;
        }
        switch (field) {
        case 1: /* string_value */
            if (wt != WT_LEN) goto fallback;
            {
                int rc = take_str(&r, string);
                if (rc) return rc;
            }
            break;
        case 2: /* bool_value */
        case 3: /* int_value */
        case 8: /* string_value_strindex (profiles' dictionary; no text here) */
            if (wt != WT_VARINT || read_varint(&r, &value->scalar)) goto fallback;
            break;
        case 4: /* double_value */
            if (wt != WT_I64 || read_fixed64(&r, &value->scalar)) goto fallback;
            break;
        case 5: /* array_value */
        case 6: /* kvlist_value */
        case 7: /* bytes_value */
            if (wt != WT_LEN || read_len(&r, &value->data)) goto fallback;
            break;
        default:
            if (skip_field(&r, wt)) goto fallback;
        }
    }
    return OK;
fallback:
    Py_CLEAR(*string);
    return FALLBACK;
}

static PyObject *int_text(uint64_t v) {
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)(int64_t)v);
    return PyUnicode_FromStringAndSize(buf, n);
}

static double as_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static int any_object(Reader r, int depth, PyObject **out);

/* A KeyValue's key (new reference, "" if absent) and its value's bytes (empty if absent: an unset
 * AnyValue, read as protobuf's default would be). */
static int read_key_value(Reader r, PyObject **key, Reader *value) {
    uint32_t field;
    int wt, values = 0, rc;
    *key = NULL;
    value->p = value->end = NULL;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto fallback;
        if (field == 1) {
            if (wt != WT_LEN) goto fallback;
            if ((rc = take_str_into(&r, key))) goto fail;
        } else if (field == 2) {
            if (wt != WT_LEN || ++values > 1 || read_len(&r, value)) goto fallback;
        } else if (field == 3) { /* key_strindex */
            if (skip_as(&r, wt, WT_VARINT)) goto fallback;
        } else if (skip_field(&r, wt)) {
            goto fallback;
        }
    }
    if (*key == NULL) {
        Py_INCREF(s_empty);
        *key = s_empty;
    }
    return OK;
fallback:
    rc = FALLBACK;
fail:
    Py_CLEAR(*key);
    return rc;
}

static int key_value_object(Reader r, int depth, PyObject **key, PyObject **value) {
    Reader data;
    int rc = read_key_value(r, key, &data);
    if (rc) return rc;
    if ((rc = any_object(data, depth, value))) Py_CLEAR(*key);
    return rc;
}

/* An AnyValue as a plain Python value: attributes.any_value, in C. */
static int any_object(Reader r, int depth, PyObject **out) {
    AnyValue v;
    PyObject *string;
    int rc = read_any_value(r, &v, &string);
    if (rc) return rc;
    *out = NULL;
    switch (v.which) {
    case 1: *out = string; return OK;
    case 2: *out = PyBool_FromLong(v.scalar != 0); return OK;
    case 3: *out = PyLong_FromLongLong((long long)(int64_t)v.scalar); return *out ? OK : ERROR;
    case 4: *out = PyFloat_FromDouble(as_double(v.scalar)); return *out ? OK : ERROR;
    }
    if (depth >= max_depth) {
        if (v.which == 5 || v.which == 6) return FALLBACK; /* protobuf still checks what lies below */
        Py_INCREF(s_ellipsis);
        *out = s_ellipsis;
        return OK;
    }
    if (v.which == 5 || v.which == 6) {
        int is_list = v.which == 5;
        PyObject *container = is_list ? PyList_New(0) : PyDict_New();
        if (container == NULL) return ERROR;
        Reader items = v.data;
        uint32_t field;
        int wt;
        while (items.p < items.end) {
            Reader item;
            if (read_tag(&items, &field, &wt)) { rc = FALLBACK; goto done; }
            if (field != 1) {
                if (skip_field(&items, wt)) { rc = FALLBACK; goto done; }
                continue;
            }
            if (wt != WT_LEN || read_len(&items, &item)) { rc = FALLBACK; goto done; }
            if (is_list) {
                PyObject *element;
                if ((rc = any_object(item, depth + 1, &element))) goto done;
                rc = PyList_Append(container, element) ? ERROR : OK;
                Py_DECREF(element);
            } else {
                PyObject *key, *element;
                if ((rc = key_value_object(item, depth + 1, &key, &element))) goto done;
                rc = PyDict_SetItem(container, key, element) ? ERROR : OK;
                Py_DECREF(key);
                Py_DECREF(element);
            }
            if (rc) goto done;
        }
        rc = OK;
    done:
        if (rc) {
            Py_DECREF(container);
            return rc;
        }
        *out = container;
        return OK;
    }
    if (v.which == 7) {
        *out = hex_of(v.data.p, v.data.end - v.data.p);
        return *out ? OK : ERROR;
    }
    Py_INCREF(Py_None); /* no member set, or string_value_strindex */
    *out = Py_None;
    return OK;
}

/* An AnyValue as its stored string: attributes.key_values' per-value rule, in C. */
static int any_text(Reader r, PyObject **out) {
    AnyValue v;
    PyObject *string;
    int rc = read_any_value(r, &v, &string);
    if (rc) return rc;
    switch (v.which) {
    case 1: *out = string; return OK;
    case 2:
        *out = v.scalar ? s_true : s_false;
        Py_INCREF(*out);
        return OK;
    case 3: *out = int_text(v.scalar); return *out ? OK : ERROR;
    case 4: {
        PyObject *number = PyFloat_FromDouble(as_double(v.scalar));
        if (number == NULL) return ERROR;
        *out = PyObject_Repr(number);
        Py_DECREF(number);
        return *out ? OK : ERROR;
    }
    }
    /* Arrays, maps, bytes and unset values: build the Python value and let the Python
       side give its JSON form, so both paths share one rule. */
    PyObject *value;
    if ((rc = any_object(r, 0, &value))) return rc;
    *out = PyObject_CallOneArg(stored_string_fn, value);
    Py_DECREF(value);
    return *out ? OK : ERROR;
}

/* ---- attributes ---------------------------------------------------------------------- */

typedef struct {
    PyObject *dict;
    Py_ssize_t count;  /* KeyValues seen, kept or not */
    int over_length;   /* a key or value longer than the caps */
} Attributes;

static int attributes_add(Attributes *a, Reader r) {
    PyObject *key, *text;
    Reader data;
    int rc = read_key_value(r, &key, &data);
    if (rc) return rc;
    if ((rc = any_text(data, &text))) {
        Py_DECREF(key);
        return rc;
    }
    /* Past the cap the KeyValue is still read (protobuf checks it too) but not kept. */
    if (++a->count <= max_attributes) {
        if ((a->dict == NULL && (a->dict = PyDict_New()) == NULL) || PyDict_SetItem(a->dict, key, text)) rc = ERROR;
        else if (PyUnicode_GET_LENGTH(key) > max_key_chars || PyUnicode_GET_LENGTH(text) > max_value_chars)
            a->over_length = 1;
    }
    Py_DECREF(key);
    Py_DECREF(text);
    return rc;
}

/* The finished {key: stored string} dict (new reference), with the caps applied. */
static PyObject *attributes_finish(Attributes *a) {
    PyObject *dict = a->dict ? a->dict : PyDict_New();
    a->dict = NULL;
    if (dict == NULL) return NULL;
    if (a->over_length) {
        PyObject *capped = PyObject_CallOneArg(cap_fn, dict);
        Py_DECREF(dict);
        if (capped == NULL) return NULL;
        dict = capped;
    }
    if (a->count > max_attributes) {
        PyObject *dropped = PyUnicode_FromFormat("%zd", a->count - max_attributes);
        if (dropped == NULL || PyDict_SetItem(dict, dropped_key, dropped)) {
            Py_XDECREF(dropped);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(dropped);
    }
    return dict;
}

/* ---- spans ----------------------------------------------------------------------------- */

static PyObject *append_new(PyObject **list, PyObject *item) {
    /* Appends and releases item; creates the list on first use. Returns NULL on error. */
    if (item == NULL) return NULL;
    if (*list == NULL && (*list = PyList_New(0)) == NULL) {
        Py_DECREF(item);
        return NULL;
    }
    int failed = PyList_Append(*list, item);
    Py_DECREF(item);
    return failed ? NULL : *list;
}

static int decode_event(Reader r, PyObject **events) {
    uint32_t field;
    int wt, rc = FALLBACK;
    uint64_t time = 0;
    PyObject *name = NULL;
    Attributes attributes = {NULL, 0, 0};
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto done;
        if (field == 1) {
            if (wt != WT_I64 || read_fixed64(&r, &time)) goto done;
        } else if (field == 2) {
            if (wt != WT_LEN) goto done;
            if ((rc = take_str_into(&r, &name))) goto done;
            rc = FALLBACK;
        } else if (field == 3) {
            Reader kv;
            if (wt != WT_LEN || read_len(&r, &kv)) goto done;
            if ((rc = attributes_add(&attributes, kv))) goto done;
            rc = FALLBACK;
        } else if (field == 4) {
            if (skip_as(&r, wt, WT_VARINT)) goto done;
        } else if (skip_field(&r, wt)) {
            goto done;
        }
    }
    PyObject *dict = attributes_finish(&attributes);
    if (dict == NULL) { rc = ERROR; goto done; }
    PyObject *event = Py_BuildValue("(KON)", (unsigned long long)time, name ? name : s_empty, dict);
    rc = append_new(events, event) ? OK : ERROR;
done:
    Py_XDECREF(name);
    Py_XDECREF(attributes.dict);
    return rc;
}

static int decode_link(Reader r, PyObject **links) {
    uint32_t field;
    int wt, rc = FALLBACK;
    PyObject *trace_id = NULL, *span_id = NULL, *trace_state = NULL;
    Attributes attributes = {NULL, 0, 0};
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto done;
        switch (field) {
        case 1:
        case 2:
            if (wt != WT_LEN) goto done;
            if ((rc = take_hex_into(&r, field == 1 ? &trace_id : &span_id))) goto done;
            break;
        case 3:
            if (wt != WT_LEN) goto done;
            if ((rc = take_str_into(&r, &trace_state))) goto done;
            break;
        case 4: {
            Reader kv;
            if (wt != WT_LEN || read_len(&r, &kv)) goto done;
            if ((rc = attributes_add(&attributes, kv))) goto done;
            break;
        }
        case 5:
            if (skip_as(&r, wt, WT_VARINT)) goto done;
            break;
        case 6:
            if (skip_as(&r, wt, WT_I32)) goto done;
            break;
        default:
            if (skip_field(&r, wt)) goto done;
        }
        rc = FALLBACK;
    }
    PyObject *dict = attributes_finish(&attributes);
    if (dict == NULL) { rc = ERROR; goto done; }
    PyObject *link = Py_BuildValue("(OOON)", trace_id ? trace_id : s_empty, span_id ? span_id : s_empty,
                                   trace_state ? trace_state : s_empty, dict);
    rc = append_new(links, link) ? OK : ERROR;
done:
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(trace_state);
    Py_XDECREF(attributes.dict);
    return rc;
}

static int decode_status(Reader r, PyObject **message, int32_t *code) {
    uint32_t field;
    int wt, rc;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) return FALLBACK;
        if (field == 2) {
            if (wt != WT_LEN) return FALLBACK;
            if ((rc = take_str_into(&r, message))) return rc;
        } else if (field == 3) {
            uint64_t v;
            if (wt != WT_VARINT || read_varint(&r, &v)) return FALLBACK;
            *code = (int32_t)v;
        } else if (skip_field(&r, wt)) {
            return FALLBACK;
        }
    }
    return OK;
}

enum { ID_TRACE, ID_SPAN, ID_PARENT, TRACE_STATE, NAME, STATUS_MESSAGE, SPAN_STRINGS };

static int decode_span(Reader r, PyObject *spans) {
    uint32_t field;
    int wt, rc = FALLBACK, statuses = 0;
    int32_t kind = 0, code = 0;
    uint64_t start = 0, end = 0, varint;
    PyObject *text[SPAN_STRINGS] = {NULL};
    PyObject *events = NULL, *links = NULL;
    Attributes attributes = {NULL, 0, 0};
    Reader sub;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto done;
        switch (field) {
        case 1: case 2: case 4:
            if (wt != WT_LEN) goto done;
            if ((rc = take_hex_into(&r, &text[field == 1 ? ID_TRACE : field == 2 ? ID_SPAN : ID_PARENT]))) goto done;
            break;
        case 3: case 5:
            if (wt != WT_LEN) goto done;
            if ((rc = take_str_into(&r, &text[field == 3 ? TRACE_STATE : NAME]))) goto done;
            break;
        case 6:
            if (wt != WT_VARINT || read_varint(&r, &varint)) goto done;
            kind = (int32_t)varint;
            break;
        case 7:
            if (wt != WT_I64 || read_fixed64(&r, &start)) goto done;
            break;
        case 8:
            if (wt != WT_I64 || read_fixed64(&r, &end)) goto done;
            break;
        case 9:
            if (wt != WT_LEN || read_len(&r, &sub)) goto done;
            if ((rc = attributes_add(&attributes, sub))) goto done;
            break;
        case 10: case 12: case 14:
            if (skip_as(&r, wt, WT_VARINT)) goto done;
            break;
        case 11:
            if (wt != WT_LEN || read_len(&r, &sub)) goto done;
            if ((rc = decode_event(sub, &events))) goto done;
            break;
        case 13:
            if (wt != WT_LEN || read_len(&r, &sub)) goto done;
            if ((rc = decode_link(sub, &links))) goto done;
            break;
        case 15: /* status: a second one would be merged into the first by protobuf */
            if (wt != WT_LEN || ++statuses > 1 || read_len(&r, &sub)) goto done;
            if ((rc = decode_status(sub, &text[STATUS_MESSAGE], &code))) goto done;
            break;
        case 16:
            if (skip_as(&r, wt, WT_I32)) goto done;
            break;
        default:
            if (skip_field(&r, wt)) goto done;
        }
        rc = FALLBACK;
    }
    PyObject *dict = attributes_finish(&attributes);
    if (dict == NULL) { rc = ERROR; goto done; }
    for (int i = 0; i < SPAN_STRINGS; i++) {
        if (text[i] == NULL) {
            Py_INCREF(s_empty);
            text[i] = s_empty;
        }
    }
    PyObject *span = Py_BuildValue(
        "(OOOOOiKKiONOO)", text[ID_TRACE], text[ID_SPAN], text[ID_PARENT], text[TRACE_STATE], text[NAME], kind,
        (unsigned long long)start, (unsigned long long)end, code, text[STATUS_MESSAGE], dict,
        events ? events : Py_None, links ? links : Py_None);
    rc = (span != NULL && PyList_Append(spans, span) == 0) ? OK : ERROR;
    Py_XDECREF(span);
done:
    for (int i = 0; i < SPAN_STRINGS; i++) Py_XDECREF(text[i]);
    Py_XDECREF(events);
    Py_XDECREF(links);
    Py_XDECREF(attributes.dict);
    return rc;
}

/* ---- resource and scope ---------------------------------------------------------------- */

/* Strings protobuf checks even though llmlens does not keep them (EntityRef, schema URLs). */
static int check_strings(Reader r, uint32_t first, uint32_t last) {
    uint32_t field;
    int wt, rc;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) return FALLBACK;
        if (field >= first && field <= last) {
            PyObject *text;
            if (wt != WT_LEN) return FALLBACK;
            if ((rc = take_str(&r, &text))) return rc;
            Py_DECREF(text);
        } else if (skip_field(&r, wt)) {
            return FALLBACK;
        }
    }
    return OK;
}

static int decode_resource(Reader r, PyObject **out) {
    uint32_t field;
    int wt, rc = FALLBACK;
    Attributes attributes = {NULL, 0, 0};
    Reader sub;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto done;
        if (field == 1) {
            if (wt != WT_LEN || read_len(&r, &sub)) goto done;
            if ((rc = attributes_add(&attributes, sub))) goto done;
        } else if (field == 2) {
            if (skip_as(&r, wt, WT_VARINT)) goto done;
        } else if (field == 3) { /* entity_refs: schema_url, type, id_keys, description_keys */
            if (wt != WT_LEN || read_len(&r, &sub)) goto done;
            if ((rc = check_strings(sub, 1, 4))) goto done;
        } else if (skip_field(&r, wt)) {
            goto done;
        }
        rc = FALLBACK;
    }
    *out = attributes_finish(&attributes);
    rc = *out ? OK : ERROR;
done:
    Py_XDECREF(attributes.dict);
    return rc;
}

static int decode_scope(Reader r, PyObject **name, PyObject **version) {
    uint32_t field;
    int wt, rc;
    Attributes attributes = {NULL, 0, 0}; /* read for protobuf's checks, not kept */
    Reader sub;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto fallback;
        if (field == 1 || field == 2) {
            if (wt != WT_LEN) goto fallback;
            if ((rc = take_str_into(&r, field == 1 ? name : version))) goto fail;
        } else if (field == 3) {
            if (wt != WT_LEN || read_len(&r, &sub)) goto fallback;
            if ((rc = attributes_add(&attributes, sub))) goto fail;
        } else if (field == 4) {
            if (skip_as(&r, wt, WT_VARINT)) goto fallback;
        } else if (skip_field(&r, wt)) {
            goto fallback;
        }
    }
    Py_XDECREF(attributes.dict);
    return OK;
fallback:
    rc = FALLBACK;
fail:
    Py_XDECREF(attributes.dict);
    return rc;
}

static int decode_scope_spans(Reader r, PyObject *scopes) {
    uint32_t field;
    int wt, rc = FALLBACK, scopes_seen = 0;
    PyObject *name = NULL, *version = NULL, *spans = PyList_New(0);
    Reader sub;
    if (spans == NULL) return ERROR;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto done;
        if (field == 1) {
            if (wt != WT_LEN || ++scopes_seen > 1 || read_len(&r, &sub)) goto done;
            if ((rc = decode_scope(sub, &name, &version))) goto done;
        } else if (field == 2) {
            if (wt != WT_LEN || read_len(&r, &sub)) goto done;
            if ((rc = decode_span(sub, spans))) goto done;
        } else if (field == 3) {
            PyObject *url;
            if (wt != WT_LEN) goto done;
            if ((rc = take_str(&r, &url))) goto done;
            Py_DECREF(url);
        } else if (skip_field(&r, wt)) {
            goto done;
        }
        rc = FALLBACK;
    }
    PyObject *scope = Py_BuildValue("(OOO)", name ? name : s_empty, version ? version : s_empty, spans);
    rc = (scope != NULL && PyList_Append(scopes, scope) == 0) ? OK : ERROR;
    Py_XDECREF(scope);
done:
    Py_XDECREF(name);
    Py_XDECREF(version);
    Py_DECREF(spans);
    return rc;
}

static int decode_resource_spans(Reader r, PyObject *resources) {
    uint32_t field;
    int wt, rc = FALLBACK, resources_seen = 0;
    PyObject *resource = NULL, *scopes = PyList_New(0);
    Reader sub;
    if (scopes == NULL) return ERROR;
    while (r.p < r.end) {
        if (read_tag(&r, &field, &wt)) goto done;
        if (field == 1) {
            if (wt != WT_LEN || ++resources_seen > 1 || read_len(&r, &sub)) goto done;
            if ((rc = decode_resource(sub, &resource))) goto done;
        } else if (field == 2) {
            if (wt != WT_LEN || read_len(&r, &sub)) goto done;
            if ((rc = decode_scope_spans(sub, scopes))) goto done;
        } else if (field == 3) {
            PyObject *url;
            if (wt != WT_LEN) goto done;
            if ((rc = take_str(&r, &url))) goto done;
            Py_DECREF(url);
        } else if (skip_field(&r, wt)) {
            goto done;
        }
        rc = FALLBACK;
    }
    if (resource == NULL && (resource = PyDict_New()) == NULL) { rc = ERROR; goto done; }
    PyObject *group = Py_BuildValue("(OO)", resource, scopes);
    rc = (group != NULL && PyList_Append(resources, group) == 0) ? OK : ERROR;
    Py_XDECREF(group);
done:
    Py_XDECREF(resource);
    Py_DECREF(scopes);
    return rc;
}

/* ---- module ------------------------------------------------------------------------------ */

static PyObject *decode(PyObject *module, PyObject *arg) {
    if (stored_string_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_otlp_spans.configure() was not called");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE)) return NULL;
    Reader r = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    PyObject *resources = PyList_New(0);
    int rc = resources ? OK : ERROR;
    uint32_t field;
    int wt;
    while (rc == OK && r.p < r.end) {
        if (read_tag(&r, &field, &wt)) {
            rc = FALLBACK;
        } else if (field == 1) {
            Reader sub;
            rc = (wt != WT_LEN || read_len(&r, &sub)) ? FALLBACK : decode_resource_spans(sub, resources);
        } else {
            rc = skip_field(&r, wt);
        }
    }
    PyBuffer_Release(&view);
    if (rc == OK) return resources;
    Py_XDECREF(resources);
    if (rc == ERROR) return NULL;
    Py_RETURN_NONE;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *stored_string, *cap, *dropped;
    Py_ssize_t attributes, key_chars, value_chars;
    int depth;
    if (!PyArg_ParseTuple(args, "OOUnnni", &stored_string, &cap, &dropped, &attributes, &key_chars, &value_chars,
                          &depth))
        return NULL;
    Py_INCREF(stored_string);
    Py_INCREF(cap);
    Py_INCREF(dropped);
    Py_XSETREF(stored_string_fn, stored_string);
    Py_XSETREF(cap_fn, cap);
    Py_XSETREF(dropped_key, dropped);
    max_attributes = attributes;
    max_key_chars = key_chars;
    max_value_chars = value_chars;
    max_depth = depth;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_O,
     "decode(body) -> [(resource, [(scope_name, scope_version, [span, ...]), ...]), ...], or None when the\n"
     "body should be parsed by protobuf instead (malformed, or a construct this fast path leaves to it)."},
    {"configure", configure, METH_VARARGS,
     "configure(stored_string, cap_lengths, dropped_key, max_attributes, max_key_chars, max_value_chars, "
     "max_depth)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_otlp_spans", "OTLP trace requests to span tuples, in C (a fast path).", -1, methods,
};

PyMODINIT_FUNC PyInit__otlp_spans(void) {
    s_true = PyUnicode_InternFromString("true");
    s_false = PyUnicode_InternFromString("false");
    s_empty = PyUnicode_InternFromString("");
    s_ellipsis = PyUnicode_FromString("\xe2\x80\xa6");
    if (!s_true || !s_false || !s_empty || !s_ellipsis) return NULL;
    return PyModule_Create(&module_def);
}
