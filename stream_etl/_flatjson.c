/*
 * stream_etl._flatjson: newline-delimited flat JSON objects -> Arrow buffers, in one pass, without the GIL.
 *
 * Arrow's JSON reader (RapidJSON, then a conversion of every value from its text) is the largest
 * cost of a micro-batch of small records. Most streams carry flat objects whose fields have a
 * declared type, and for those this parser writes each value straight into the column's Arrow
 * buffers: validity bitmaps, int64 / float64 / bool values, int32 string offsets and bytes, and lists
 * of those.
 *
 * It is a fast path, not a second JSON reader: it accepts only what it can read exactly as Arrow
 * would (pyarrow.json with an explicit schema), and returns None for anything else, after which
 * the caller hands the same buffer to Arrow. So a malformed or unusual record costs one aborted
 * pass, never a different result. It gives up on: any syntax error; a line that is not one object;
 * a value of another JSON type than its column's (Arrow raises); an integer with a fraction or an
 * exponent, or out of int64's range (or of 19 digits); a float beyond double's range; a duplicate field;
 * a key or ignored value that needs care (escaped keys, nesting deeper than MAX_DEPTH); carriage
 * returns and line breaks inside an object; a field the schema does not name unless asked to ignore
 * it; escapes \u0000 and lone surrogates. The caller checked that the buffer is valid UTF-8.
 *
 * parse(buffer, n, names, kinds, ignore_unexpected) -> list | None
 *   names: tuple of bytes; kinds: tuple of int (INT64 1, FLOAT64 2, STRING 3, BOOL 4; + LIST 16)
 *   one tuple per column: (validity | None, null_count, buffers...) with buffers
 *     INT64/FLOAT64: data; BOOL: bits; STRING: offsets, data;
 *     LIST: offsets, child length, (the child's tuple as above)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define K_INT64 1
#define K_FLOAT64 2
#define K_STRING 3
#define K_BOOL 4
#define K_LIST 16
#define MAX_DEPTH 64
#define MAX_COLUMNS 1024

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

typedef struct {
    int kind;       /* K_INT64 .. K_BOOL */
    int64_t length; /* values so far */
    int64_t nulls;
    Buf validity; /* bitmap */
    Buf data;     /* int64 / double / bits / string bytes */
    Buf offsets;  /* STRING: int32 */
} Values;

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    int is_list;
    int64_t last_row;
    Values top;   /* the column (for a list: the list's validity and offsets) */
    Values child; /* a list's elements */
} Column;

static locale_t c_locale = (locale_t)0;

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* The bit for value `i` (the bitmap grows a byte at a time, zeroed). */
static inline int set_valid(Buf *bitmap, int64_t i, int valid) {
    size_t byte = (size_t)(i >> 3);
    if (byte >= bitmap->len) {
        if (reserve(bitmap, byte + 1 - bitmap->len)) return -1;
        memset(bitmap->p + bitmap->len, 0, byte + 1 - bitmap->len);
        bitmap->len = byte + 1;
    }
    if (valid) bitmap->p[byte] |= (char)(1 << (i & 7));
    return 0;
}

static int values_init(Values *v, int kind) {
    memset(v, 0, sizeof(*v));
    v->kind = kind;
    if (kind == K_STRING) {
        if (reserve(&v->offsets, 4)) return -1;
        memset(v->offsets.p, 0, 4);
        v->offsets.len = 4;
    }
    return 0;
}

static void values_free(Values *v) {
    free(v->validity.p);
    free(v->data.p);
    free(v->offsets.p);
}

static int push_end(Buf *offsets, int64_t at) { /* an int32 offset: where the value just written ends */
    if (at > INT32_MAX || reserve(offsets, 4)) return -1;
    int32_t end = (int32_t)at;
    memcpy(offsets->p + offsets->len, &end, 4);
    offsets->len += 4;
    return 0;
}

static int push_offset(Values *v) { return push_end(&v->offsets, (int64_t)v->data.len); } /* STRING */

static int push_null(Values *v) {
    if (set_valid(&v->validity, v->length, 0)) return -1;
    v->nulls++;
    switch (v->kind) {
    case K_INT64:
    case K_FLOAT64:
        if (reserve(&v->data, 8)) return -1;
        memset(v->data.p + v->data.len, 0, 8);
        v->data.len += 8;
        break;
    case K_BOOL:
        if (set_valid(&v->data, v->length, 0)) return -1;
        break;
    case K_STRING:
        if (push_offset(v)) return -1;
        break;
    }
    v->length++;
    return 0;
}

typedef struct {
    const char *p, *end;
} Cursor;

static inline void skip_ws(Cursor *c) { /* inside a line: spaces and tabs (a line break ends the row) */
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static inline int literal(Cursor *c, const char *word, size_t len) {
    if ((size_t)(c->end - c->p) < len || memcmp(c->p, word, len) != 0) return 0;
    c->p += len;
    return 1;
}

static int hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (uint32_t)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (uint32_t)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (uint32_t)(ch - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* A JSON string after its opening quote; appends its unescaped bytes to `out` (NULL: only checks). */
static int read_string(Cursor *c, Buf *out) {
    for (;;) {
        const char *start = c->p;
        while (c->p < c->end && *c->p != '"' && *c->p != '\\' && (unsigned char)*c->p >= 0x20) c->p++;
        if (c->p >= c->end || (unsigned char)*c->p < 0x20) return -1;
        if (out && c->p > start) {
            size_t len = (size_t)(c->p - start);
            if (reserve(out, len)) return -1;
            memcpy(out->p + out->len, start, len);
            out->len += len;
        }
        if (*c->p == '"') {
            c->p++;
            return 0;
        }
        /* an escape */
        if (c->end - c->p < 2) return -1;
        char e = c->p[1], ch;
        c->p += 2;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp, low;
            if (c->end - c->p < 4 || hex4(c->p, &cp)) return -1;
            c->p += 4;
            if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &low)) return -1;
                if (low < 0xDC00 || low > 0xDFFF) return -1;
                c->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (out) {
                char u[4];
                size_t len;
                if (cp < 0x80) {
                    u[0] = (char)cp;
                    len = 1;
                } else if (cp < 0x800) {
                    u[0] = (char)(0xC0 | (cp >> 6));
                    u[1] = (char)(0x80 | (cp & 0x3F));
                    len = 2;
                } else if (cp < 0x10000) {
                    u[0] = (char)(0xE0 | (cp >> 12));
                    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    u[2] = (char)(0x80 | (cp & 0x3F));
                    len = 3;
                } else {
                    u[0] = (char)(0xF0 | (cp >> 18));
                    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    u[3] = (char)(0x80 | (cp & 0x3F));
                    len = 4;
                }
                if (reserve(out, len)) return -1;
                memcpy(out->p + out->len, u, len);
                out->len += len;
            }
            continue;
        }
        default: return -1;
        }
        if (out) {
            if (reserve(out, 1)) return -1;
            out->p[out->len++] = ch;
        }
    }
}

static inline int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* A JSON number (strict grammar). is_int: no fraction, no exponent. Digits beyond 19 set `long_`. */
typedef struct {
    int neg, is_int, long_;
    uint64_t mantissa; /* significant digits, leading zeros dropped */
    int digits;        /* how many are in `mantissa` */
    int64_t exp10;
    const char *start, *stop;
} Number;

static int read_number(Cursor *c, Number *n) {
    memset(n, 0, sizeof(*n));
    n->start = c->p;
    n->is_int = 1;
    if (c->p < c->end && *c->p == '-') {
        n->neg = 1;
        c->p++;
    }
    if (c->p >= c->end || !is_digit(*c->p)) return -1;
    if (*c->p == '0') {
        c->p++;
        if (c->p < c->end && is_digit(*c->p)) return -1; /* leading zero */
    } else {
        while (c->p < c->end && is_digit(*c->p)) {
            if (n->digits < 19) {
                n->mantissa = n->mantissa * 10 + (uint64_t)(*c->p - '0');
                n->digits++;
            } else {
                n->long_ = 1;
                n->exp10++;
            }
            c->p++;
        }
    }
    if (c->p < c->end && *c->p == '.') {
        n->is_int = 0;
        c->p++;
        if (c->p >= c->end || !is_digit(*c->p)) return -1;
        while (c->p < c->end && is_digit(*c->p)) {
            if (n->digits == 0 && *c->p == '0') {
                n->exp10--; /* leading zeros of 0.000x */
            } else if (n->digits < 19) {
                n->mantissa = n->mantissa * 10 + (uint64_t)(*c->p - '0');
                n->digits++;
                n->exp10--;
            } else {
                n->long_ = 1;
            }
            c->p++;
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        n->is_int = 0;
        c->p++;
        int eneg = 0;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) eneg = *c->p++ == '-';
        if (c->p >= c->end || !is_digit(*c->p)) return -1;
        int64_t e = 0;
        while (c->p < c->end && is_digit(*c->p)) {
            if (e < 100000) e = e * 10 + (*c->p - '0');
            c->p++;
        }
        n->exp10 += eneg ? -e : e;
    }
    n->stop = c->p;
    return 0;
}

static int number_to_int64(const Number *n, int64_t *out) {
    if (!n->is_int || n->long_ || n->exp10 != 0 || n->digits > 18) return -1; /* 19 digits: let Arrow decide */
    *out = n->neg ? -(int64_t)n->mantissa : (int64_t)n->mantissa;
    return 0;
}

static int number_to_double(const Number *n, double *out) {
    if (!n->long_ && n->mantissa <= (1ULL << 53) && n->exp10 >= -22 && n->exp10 <= 22) {
        double d = (double)n->mantissa; /* exact, as is 10^|exp10|: one correctly rounded operation */
        d = n->exp10 < 0 ? d / POW10[-n->exp10] : d * POW10[n->exp10];
        *out = n->neg ? -d : d;
        return 0;
    }
    char text[128];
    size_t len = (size_t)(n->stop - n->start);
    if (len >= sizeof(text) || c_locale == (locale_t)0) return -1;
    memcpy(text, n->start, len);
    text[len] = 0;
    char *stop;
    double d = strtod_l(text, &stop, c_locale); /* correctly rounded, to a subnormal or zero too */
    if (stop != text + len || isinf(d)) return -1; /* Arrow reads some overflows as inf, refuses others */
    *out = d;
    return 0;
}

/* One value into `v` (null included); -1: not one this column can hold exactly. */
static int read_value(Cursor *c, Values *v) {
    if (c->p >= c->end) return -1;
    char ch = *c->p;
    if (ch == 'n') return literal(c, "null", 4) ? push_null(v) : -1;
    switch (v->kind) {
    case K_STRING:
        if (ch != '"') return -1;
        c->p++;
        if (read_string(c, &v->data) || push_offset(v)) return -1;
        break;
    case K_INT64:
    case K_FLOAT64: {
        if (ch != '-' && !is_digit(ch)) return -1;
        Number n;
        if (read_number(c, &n) || reserve(&v->data, 8)) return -1;
        if (v->kind == K_INT64) {
            int64_t x;
            if (number_to_int64(&n, &x)) return -1;
            memcpy(v->data.p + v->data.len, &x, 8);
        } else {
            double x;
            if (number_to_double(&n, &x)) return -1;
            memcpy(v->data.p + v->data.len, &x, 8);
        }
        v->data.len += 8;
        break;
    }
    case K_BOOL: {
        int truth;
        if (literal(c, "true", 4)) truth = 1;
        else if (literal(c, "false", 5)) truth = 0;
        else return -1;
        if (set_valid(&v->data, v->length, truth)) return -1;
        break;
    }
    default: return -1;
    }
    if (set_valid(&v->validity, v->length, 1)) return -1;
    v->length++;
    return 0;
}

/* After an item of a container closed by `close`: 1 when another item follows (past the comma),
 * 0 when the container ended (past `close`), -1 otherwise. */
static int next_item(Cursor *c, char close) {
    skip_ws(c);
    if (c->p >= c->end) return -1;
    if (*c->p == ',') {
        c->p++;
        skip_ws(c);
        return 1;
    }
    if (*c->p == close) {
        c->p++;
        return 0;
    }
    return -1;
}

static int push_list_end(Column *col) { return push_end(&col->top.offsets, col->child.length); }

static int column_null(Column *col) {
    if (!col->is_list) return push_null(&col->top);
    if (set_valid(&col->top.validity, col->top.length, 0) || push_list_end(col)) return -1;
    col->top.nulls++;
    col->top.length++;
    return 0;
}

static int read_column(Cursor *c, Column *col) {
    if (!col->is_list) return read_value(c, &col->top);
    if (c->p < c->end && *c->p == 'n') return literal(c, "null", 4) ? column_null(col) : -1;
    if (c->p >= c->end || *c->p != '[') return -1;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
    } else {
        int more;
        do {
            if (read_value(c, &col->child) || (more = next_item(c, ']')) < 0) return -1;
        } while (more);
    }
    if (set_valid(&col->top.validity, col->top.length, 1) || push_list_end(col)) return -1;
    col->top.length++;
    return 0;
}

/* Checks and passes over any JSON value (a field the schema does not name). */
static int skip_value(Cursor *c, int depth) {
    if (c->p >= c->end) return -1;
    char ch = *c->p;
    if (ch == '"') {
        c->p++;
        return read_string(c, NULL);
    }
    if (ch == '-' || is_digit(ch)) {
        Number n;
        return read_number(c, &n);
    }
    if (ch == 't') return literal(c, "true", 4) ? 0 : -1;
    if (ch == 'f') return literal(c, "false", 5) ? 0 : -1;
    if (ch == 'n') return literal(c, "null", 4) ? 0 : -1;
    if (depth >= MAX_DEPTH || (ch != '[' && ch != '{')) return -1;
    char close = ch == '[' ? ']' : '}';
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (c->p >= c->end || *c->p != '"') return -1;
            c->p++;
            if (read_string(c, NULL)) return -1;
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':') return -1;
            c->p++;
            skip_ws(c);
        }
        int more;
        if (skip_value(c, depth + 1) || (more = next_item(c, close)) < 0) return -1;
        if (!more) return 0;
    }
}

static Column *find_column(Column *cols, int ncols, int *guess, const char *key, size_t len) {
    int g = *guess < ncols ? *guess : 0;
    for (int k = 0; k < ncols; k++) {
        int i = (g + k) % ncols;
        if ((size_t)cols[i].name_len == len && memcmp(cols[i].name, key, len) == 0) {
            *guess = i + 1;
            return &cols[i];
        }
    }
    return NULL;
}

/* The whole buffer; 0 when every one of its `n` lines was read exactly. */
static int parse_rows(const char *data, size_t size, int64_t n, Column *cols, int ncols, int ignore) {
    Cursor c = {data, data + size};
    int64_t row = 0;
    for (;;) {
        if (row >= n) return -1;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != '{') return -1;
        c.p++;
        skip_ws(&c);
        int guess = 0;
        if (c.p < c.end && *c.p == '}') {
            c.p++;
        } else {
            for (;;) {
                if (c.p >= c.end || *c.p != '"') return -1;
                const char *key = ++c.p;
                while (c.p < c.end && *c.p != '"' && *c.p != '\\' && (unsigned char)*c.p >= 0x20) c.p++;
                if (c.p >= c.end || *c.p != '"') return -1; /* escaped keys: Arrow decides */
                size_t key_len = (size_t)(c.p - key);
                c.p++;
                skip_ws(&c);
                if (c.p >= c.end || *c.p != ':') return -1;
                c.p++;
                skip_ws(&c);
                Column *col = find_column(cols, ncols, &guess, key, key_len);
                if (col) {
                    if (col->last_row == row) return -1; /* specified twice */
                    col->last_row = row;
                    if (read_column(&c, col)) return -1;
                } else if (!ignore || skip_value(&c, 0)) {
                    return -1;
                }
                int more = next_item(&c, '}');
                if (more < 0) return -1;
                if (!more) break;
            }
        }
        for (int i = 0; i < ncols; i++)
            if (cols[i].last_row != row && column_null(&cols[i])) return -1;
        row++;
        skip_ws(&c);
        if (c.p >= c.end) break;
        if (*c.p != '\n') return -1;
        c.p++;
        if (c.p >= c.end) break; /* a trailing newline */
    }
    return row == n ? 0 : -1;
}

static PyObject *bytes_of(const Buf *b, size_t want) {
    /* `want`: the size Arrow expects (bitmaps: whole bytes for every value, zero-padded) */
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)want);
    if (!out) return NULL;
    size_t have = b->len < want ? b->len : want;
    if (have) memcpy(PyBytes_AS_STRING(out), b->p, have);
    if (want > have) memset(PyBytes_AS_STRING(out) + have, 0, want - have);
    return out;
}

static PyObject *values_tuple(const Values *v) {
    size_t bitmap = (size_t)((v->length + 7) / 8);
    PyObject *validity = v->nulls ? bytes_of(&v->validity, bitmap) : Py_NewRef(Py_None);
    if (!validity) return NULL;
    PyObject *result = NULL;
    switch (v->kind) {
    case K_INT64:
    case K_FLOAT64: {
        PyObject *data = bytes_of(&v->data, (size_t)v->length * 8);
        if (data) result = Py_BuildValue("(NLN)", validity, (long long)v->nulls, data);
        else Py_DECREF(validity);
        return result;
    }
    case K_BOOL: {
        PyObject *data = bytes_of(&v->data, bitmap);
        if (data) result = Py_BuildValue("(NLN)", validity, (long long)v->nulls, data);
        else Py_DECREF(validity);
        return result;
    }
    default: {
        PyObject *offsets = bytes_of(&v->offsets, v->offsets.len);
        PyObject *data = offsets ? bytes_of(&v->data, v->data.len) : NULL;
        if (data) return Py_BuildValue("(NLNN)", validity, (long long)v->nulls, offsets, data);
        Py_XDECREF(offsets);
        Py_DECREF(validity);
        return NULL;
    }
    }
}

static PyObject *column_tuple(const Column *col) {
    if (!col->is_list) return values_tuple(&col->top);
    const Values *top = &col->top;
    size_t bitmap = (size_t)((top->length + 7) / 8);
    PyObject *validity = top->nulls ? bytes_of(&top->validity, bitmap) : Py_NewRef(Py_None);
    PyObject *offsets = validity ? bytes_of(&top->offsets, top->offsets.len) : NULL;
    PyObject *child = offsets ? values_tuple(&col->child) : NULL;
    if (!child) {
        Py_XDECREF(offsets);
        Py_XDECREF(validity);
        return NULL;
    }
    return Py_BuildValue("(NLNLN)", validity, (long long)top->nulls, offsets, (long long)col->child.length, child);
}

static PyObject *parse(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t n;
    PyObject *names, *kinds;
    int ignore;
    if (!PyArg_ParseTuple(args, "y*nO!O!p", &view, &n, &PyTuple_Type, &names, &PyTuple_Type, &kinds, &ignore))
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(names);
    if (ncols == 0 || ncols > MAX_COLUMNS || PyTuple_GET_SIZE(kinds) != ncols || n <= 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "parse: 1 to 1024 columns, one kind each, and n >= 1");
        return NULL;
    }
    Column *cols = calloc((size_t)ncols, sizeof(Column));
    if (!cols) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    int bad = 0;
    for (Py_ssize_t i = 0; i < ncols && !bad; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(kinds, i));
        long base = kind & ~K_LIST;
        if (!PyBytes_Check(name) || base < K_INT64 || base > K_BOOL || (kind & ~(K_LIST | 7))) {
            bad = 1;
            break;
        }
        cols[i].name = PyBytes_AS_STRING(name);
        cols[i].name_len = PyBytes_GET_SIZE(name);
        cols[i].is_list = (kind & K_LIST) != 0;
        cols[i].last_row = -1;
        if (cols[i].is_list) {
            if (values_init(&cols[i].top, 0) || values_init(&cols[i].child, (int)base) ||
                reserve(&cols[i].top.offsets, 4))
                bad = 2;
            else {
                memset(cols[i].top.offsets.p, 0, 4);
                cols[i].top.offsets.len = 4;
            }
        } else if (values_init(&cols[i].top, (int)base)) {
            bad = 2;
        }
    }
    int failed = 1;
    if (!bad) {
        Py_BEGIN_ALLOW_THREADS;
        failed = parse_rows(view.buf, (size_t)view.len, n, cols, (int)ncols, ignore);
        Py_END_ALLOW_THREADS;
    }
    PyObject *result = NULL;
    if (bad == 1) {
        PyErr_SetString(PyExc_ValueError, "parse: names must be bytes and kinds 1-4, optionally + 16 (a list)");
    } else if (bad == 2) {
        PyErr_NoMemory();
    } else if (failed) {
        result = Py_NewRef(Py_None);
    } else {
        result = PyList_New(ncols);
        for (Py_ssize_t i = 0; result && i < ncols; i++) {
            PyObject *col = column_tuple(&cols[i]);
            if (!col) Py_CLEAR(result);
            else PyList_SET_ITEM(result, i, col);
        }
    }
    for (Py_ssize_t i = 0; i < ncols; i++) {
        values_free(&cols[i].top);
        values_free(&cols[i].child);
    }
    free(cols);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS, "parse(buffer, n, names, kinds, ignore_unexpected) -> list | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_flatjson", NULL, -1, methods};

PyMODINIT_FUNC PyInit__flatjson(void) {
    if (c_locale == (locale_t)0) c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    return PyModule_Create(&module);
}
