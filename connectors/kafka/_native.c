/*
 * connectors.kafka._native: read Kafka records into contiguous buffers, no Python object per record.
 *
 * confluent-kafka hands over one Python Message per record (an object, a bytes copy of the value,
 * ~1 us of GIL-holding work each). This module takes the records of a confluent-kafka Consumer off
 * librdkafka directly, in one call per poll, and returns them column-wise:
 *
 *   values   bytes: v0 \n v1 \n ... v(n-1)   (what Arrow's JSON reader wants)
 *   starts   int64[n + 1]: value i is values[starts[i] : starts[i + 1] - 1]
 *   pids     int32[n], offsets int64[n], and optionally timestamps int64[n], keys (same layout)
 *
 * How the records get here without disturbing confluent-kafka: every partition's fetch queue is
 * forwarded to a queue of our own (rd_kafka_queue_forward, which librdkafka marks as forwarded by
 * the application, so starting a fetch does not re-route it to the consumer queue). The consumer
 * queue then carries only rebalance, error and commit events, which confluent-kafka's own poll
 * serves with its callbacks. A fetch stop (unassign) clears a partition's forwarding; the reader
 * forwards again before each assign and `reforward()` heals a stop that raced with it.
 *
 * librdkafka is not linked at build time: `load()` opens the copy confluent-kafka already loaded
 * (its path from /proc/self/maps), so the two always agree. Only stable public ABI is used:
 * rd_kafka_message_t's layout and functions of rdkafka.h. The rd_kafka_t handle is read from the
 * Consumer object (the first field after PyObject_HEAD in confluent-kafka's Handle since 0.9) and
 * checked: confluent-kafka sets the handle's opaque pointer to the Consumer object itself.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* rdkafka.h, the parts used here (public, stable ABI). */
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_queue_s rd_kafka_queue_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;
typedef int rd_kafka_resp_err_t;
typedef enum { TS_NOT_AVAILABLE, TS_CREATE_TIME, TS_LOG_APPEND_TIME } rd_kafka_timestamp_type_t;
typedef struct {
    rd_kafka_resp_err_t err;
    rd_kafka_topic_t *rkt;
    int32_t partition;
    void *payload;
    size_t len;
    void *key;
    size_t key_len;
    int64_t offset;
    void *_private;
} rd_kafka_message_t;

static ssize_t (*consume_batch_queue)(rd_kafka_queue_t *, int, rd_kafka_message_t **, size_t);
static void (*message_destroy)(rd_kafka_message_t *);
static int64_t (*message_timestamp)(const rd_kafka_message_t *, rd_kafka_timestamp_type_t *);
static const char *(*topic_name)(const rd_kafka_topic_t *);
static const char *(*err2str)(rd_kafka_resp_err_t);
static rd_kafka_queue_t *(*queue_new)(rd_kafka_t *);
static void (*queue_destroy)(rd_kafka_queue_t *);
static rd_kafka_queue_t *(*queue_get_partition)(rd_kafka_t *, const char *, int32_t);
static void (*queue_forward)(rd_kafka_queue_t *, rd_kafka_queue_t *);
static void *(*kafka_opaque)(const rd_kafka_t *);
static int loaded = 0;
static PyObject *consumer_type = NULL; /* confluent_kafka.cimpl.Consumer */

#define MAX_TOPICS 64

typedef struct {
    char *topic;
    int32_t partition;
    rd_kafka_queue_t *queue;
    int active;
} PartitionQueue;

typedef struct {
    PyObject_HEAD
    PyObject *consumer; /* keeps the Consumer (and its rd_kafka_t) alive */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    PartitionQueue *parts;
    Py_ssize_t nparts, capparts;
    char *topics[MAX_TOPICS];
    int32_t *pids[MAX_TOPICS]; /* per topic: the partition id of each partition number, -1 unknown */
    int32_t npids[MAX_TOPICS];
    int ntopics;
    const rd_kafka_topic_t *last_rkt;
    int last_topic;
    rd_kafka_message_t **messages;
    Py_ssize_t capmessages;
} Queue;

static int load_symbol(void *lib, const char *name, void **into) {
    *into = dlsym(lib, name);
    if (*into == NULL) {
        PyErr_Format(PyExc_ImportError, "librdkafka has no %s", name);
        return -1;
    }
    return 0;
}

static PyObject *load(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    if (loaded) Py_RETURN_NONE;
    PyObject *cimpl = PyImport_ImportModule("confluent_kafka.cimpl");
    if (cimpl == NULL) return NULL;
    consumer_type = PyObject_GetAttrString(cimpl, "Consumer");
    Py_DECREF(cimpl);
    if (consumer_type == NULL) return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        PyErr_Format(PyExc_ImportError, "cannot open librdkafka at %s: %s", path, dlerror());
        return NULL;
    }
    if (load_symbol(lib, "rd_kafka_consume_batch_queue", (void **)&consume_batch_queue) ||
        load_symbol(lib, "rd_kafka_message_destroy", (void **)&message_destroy) ||
        load_symbol(lib, "rd_kafka_message_timestamp", (void **)&message_timestamp) ||
        load_symbol(lib, "rd_kafka_topic_name", (void **)&topic_name) ||
        load_symbol(lib, "rd_kafka_err2str", (void **)&err2str) ||
        load_symbol(lib, "rd_kafka_queue_new", (void **)&queue_new) ||
        load_symbol(lib, "rd_kafka_queue_destroy", (void **)&queue_destroy) ||
        load_symbol(lib, "rd_kafka_queue_get_partition", (void **)&queue_get_partition) ||
        load_symbol(lib, "rd_kafka_queue_forward", (void **)&queue_forward) ||
        load_symbol(lib, "rd_kafka_opaque", (void **)&kafka_opaque))
        return NULL;
    loaded = 1;
    Py_RETURN_NONE;
}

/* confluent-kafka's Handle: PyObject_HEAD, then rd_kafka_t *rk. */
typedef struct {
    PyObject_HEAD
    rd_kafka_t *rk;
} HandleHead;

static int Queue_init(Queue *self, PyObject *args, PyObject *kwds) {
    PyObject *consumer;
    if (!PyArg_ParseTuple(args, "O", &consumer)) return -1;
    if (!loaded) {
        PyErr_SetString(PyExc_RuntimeError, "call load() first");
        return -1;
    }
    int is_consumer = PyObject_IsInstance(consumer, consumer_type);
    if (is_consumer < 0) return -1;
    if (!is_consumer) {
        PyErr_SetString(PyExc_TypeError, "expected a confluent_kafka.Consumer");
        return -1;
    }
    rd_kafka_t *rk = ((HandleHead *)consumer)->rk;
    if (rk == NULL || kafka_opaque(rk) != (void *)consumer) {
        PyErr_SetString(PyExc_TypeError, "not an open confluent_kafka.Consumer (its handle does not point back to it)");
        return -1;
    }
    self->queue = queue_new(rk);
    if (self->queue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "rd_kafka_queue_new failed");
        return -1;
    }
    Py_INCREF(consumer);
    self->consumer = consumer;
    self->rk = rk;
    self->last_topic = -1;
    return 0;
}

static void release_queues(Queue *self) {
    for (Py_ssize_t i = 0; i < self->nparts; i++) {
        if (self->parts[i].queue != NULL) {
            queue_forward(self->parts[i].queue, NULL);
            queue_destroy(self->parts[i].queue);
            self->parts[i].queue = NULL;
        }
        free(self->parts[i].topic);
        self->parts[i].topic = NULL;
    }
    self->nparts = 0;
    if (self->queue != NULL) {
        queue_destroy(self->queue);
        self->queue = NULL;
    }
}

static void Queue_dealloc(Queue *self) {
    /* After the consumer's close, its rd_kafka_t is gone (confluent-kafka clears the pointer): leave
     * librdkafka alone then. The reader closes this queue first. */
    if (self->consumer != NULL && ((HandleHead *)self->consumer)->rk == self->rk) release_queues(self);
    free(self->parts);
    for (int i = 0; i < self->ntopics; i++) {
        free(self->topics[i]);
        free(self->pids[i]);
    }
    free(self->messages);
    Py_XDECREF(self->consumer);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Queue_close(Queue *self, PyObject *unused) {
    release_queues(self);
    Py_RETURN_NONE;
}

static int find_topic(Queue *self, const char *topic) {
    for (int i = 0; i < self->ntopics; i++)
        if (strcmp(self->topics[i], topic) == 0) return i;
    return -1;
}

/* Partition ids are the engine's (PartitionRegistry): set for each partition before its records come. */
static int set_pid(Queue *self, const char *topic, int partition, int pid) {
    int t = find_topic(self, topic);
    if (t < 0) {
        if (self->ntopics == MAX_TOPICS) {
            PyErr_SetString(PyExc_ValueError, "too many topics for the native reader");
            return -1;
        }
        t = self->ntopics++;
        self->topics[t] = strdup(topic);
        self->pids[t] = NULL;
        self->npids[t] = 0;
    }
    if (partition >= self->npids[t]) {
        int32_t n = partition + 16;
        int32_t *grown = realloc(self->pids[t], n * sizeof(int32_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (int32_t i = self->npids[t]; i < n; i++) grown[i] = -1;
        self->pids[t] = grown;
        self->npids[t] = n;
    }
    self->pids[t][partition] = pid;
    return 0;
}

static PyObject *Queue_forward(Queue *self, PyObject *args) {
    const char *topic;
    int partition, pid;
    if (!PyArg_ParseTuple(args, "sii", &topic, &partition, &pid)) return NULL;
    if (partition < 0 || pid < 0) {
        PyErr_SetString(PyExc_ValueError, "partition and id must be >= 0");
        return NULL;
    }
    if (self->queue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "queue closed");
        return NULL;
    }
    PartitionQueue *found = NULL;
    for (Py_ssize_t i = 0; i < self->nparts; i++)
        if (self->parts[i].partition == partition && strcmp(self->parts[i].topic, topic) == 0) found = &self->parts[i];
    if (found == NULL) {
        rd_kafka_queue_t *q = queue_get_partition(self->rk, topic, partition);
        if (q == NULL) {
            PyErr_Format(PyExc_KeyError, "librdkafka does not know %s [%d]", topic, partition);
            return NULL;
        }
        if (self->nparts == self->capparts) {
            Py_ssize_t cap = self->capparts ? 2 * self->capparts : 16;
            PartitionQueue *grown = realloc(self->parts, cap * sizeof(PartitionQueue));
            if (grown == NULL) {
                queue_destroy(q);
                return PyErr_NoMemory();
            }
            self->parts = grown;
            self->capparts = cap;
        }
        found = &self->parts[self->nparts++];
        found->topic = strdup(topic);
        found->partition = partition;
        found->queue = q;
    }
    if (set_pid(self, topic, partition, pid) < 0) return NULL;
    found->active = 1;
    queue_forward(found->queue, self->queue);
    Py_RETURN_NONE;
}

static PyObject *Queue_reforward(Queue *self, PyObject *unused) {
    /* Forward again every partition forwarded before: heals a fetch stop that cleared it. Records a
     * partition queue held meanwhile are handed over by the forward itself. */
    if (self->queue == NULL) Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < self->nparts; i++)
        if (self->parts[i].active) queue_forward(self->parts[i].queue, self->queue);
    Py_RETURN_NONE;
}

static int32_t pid_of(Queue *self, const rd_kafka_message_t *m) {
    int t = self->last_topic;
    if (m->rkt != self->last_rkt) {
        t = find_topic(self, topic_name(m->rkt));
        self->last_rkt = m->rkt;
        self->last_topic = t;
    }
    if (t < 0 || m->partition < 0 || m->partition >= self->npids[t]) return -1;
    return self->pids[t][m->partition];
}

static PyObject *new_bytes(Py_ssize_t size, char **data) {
    PyObject *b = PyBytes_FromStringAndSize(NULL, size);
    if (b != NULL) *data = PyBytes_AS_STRING(b);
    return b;
}

/* consume(max_messages, timeout_ms, timestamps, keys) ->
 *   None (nothing arrived) or
 *   (n, values, starts, pids, offsets, max_len, nbytes, null_rows, stamps, keys, key_starts, key_validity, errors,
 *    objects)
 * key_validity: an Arrow validity bitmap of the keys, None when no key is null.
 * objects: 1 when every value starts with '{' and ends with '}' (the JSON decoder's fast path
 * needs that; found during the copy, so it never reads the joined buffer again).
 */
static PyObject *Queue_consume(Queue *self, PyObject *args) {
    Py_ssize_t max_messages;
    int timeout_ms, want_stamps, want_keys;
    if (!PyArg_ParseTuple(args, "nipp", &max_messages, &timeout_ms, &want_stamps, &want_keys)) return NULL;
    if (self->queue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "queue closed");
        return NULL;
    }
    if (max_messages < 1) max_messages = 1;
    if (max_messages > self->capmessages) {
        rd_kafka_message_t **grown = realloc(self->messages, max_messages * sizeof(rd_kafka_message_t *));
        if (grown == NULL) return PyErr_NoMemory();
        self->messages = grown;
        self->capmessages = max_messages;
    }
    rd_kafka_message_t **msgs = self->messages;
    ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    got = consume_batch_queue(self->queue, timeout_ms, msgs, (size_t)max_messages);
    Py_END_ALLOW_THREADS
    if (got <= 0) Py_RETURN_NONE;

    /* Sizes first, errors out. */
    Py_ssize_t n = 0, total = 0, key_total = 0, max_len = 0, null_key_count = 0, null_value_count = 0;
    PyObject *errors = PyList_New(0), *null_rows = PyList_New(0);
    PyObject *result = NULL, *values = NULL, *starts = NULL, *pids = NULL, *offsets = NULL;
    PyObject *stamps = NULL, *keys = NULL, *key_starts = NULL, *key_valid = NULL;
    if (errors == NULL || null_rows == NULL) goto done;
    for (ssize_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = msgs[i];
        if (m->err) {
            const char *topic = m->rkt ? topic_name(m->rkt) : NULL;
            PyObject *text = (m->payload && m->len) ? PyUnicode_DecodeUTF8(m->payload, (Py_ssize_t)m->len, "replace")
                                                    : PyUnicode_FromString(err2str(m->err));
            if (text == NULL) goto done;
            PyObject *item = Py_BuildValue("(izinN)", m->err, topic, m->partition, (Py_ssize_t)m->offset, text);
            if (item == NULL || PyList_Append(errors, item) < 0) {
                Py_XDECREF(item);
                goto done;
            }
            Py_DECREF(item);
            continue;
        }
        if (m->payload != NULL) {
            total += (Py_ssize_t)m->len;
            if ((Py_ssize_t)m->len > max_len) max_len = (Py_ssize_t)m->len;
        } else {
            null_value_count++;
        }
        if (want_keys) {
            if (m->key != NULL) key_total += (Py_ssize_t)m->key_len;
            else null_key_count++;
        }
        n++;
    }
    char *vdata = NULL, *kdata = NULL;
    int64_t *vstarts = NULL, *voffsets = NULL, *vstamps = NULL, *kstarts = NULL;
    int32_t *vpids = NULL;
    unsigned char *kvalid = NULL;
    Py_ssize_t joined = total + (n > 0 ? n - 1 : 0);
    if (!(values = new_bytes(joined, &vdata)) || !(starts = new_bytes(8 * (n + 1), (char **)&vstarts)) ||
        !(pids = new_bytes(4 * n, (char **)&vpids)) || !(offsets = new_bytes(8 * n, (char **)&voffsets)))
        goto done;
    if (want_stamps && !(stamps = new_bytes(8 * n, (char **)&vstamps))) goto done;
    if (want_keys && (!(keys = new_bytes(key_total, &kdata)) || !(key_starts = new_bytes(8 * (n + 1), (char **)&kstarts))))
        goto done;
    if (null_key_count > 0) {
        if (!(key_valid = new_bytes((n + 7) / 8, (char **)&kvalid))) goto done;
        memset(kvalid, 0, (n + 7) / 8);
    }

    Py_ssize_t row = 0, at = 0, kat = 0, nnull = 0;
    int unknown_topic = 0, objects = 1;
    Py_ssize_t *nullbuf = null_value_count ? malloc(null_value_count * sizeof(Py_ssize_t)) : NULL;
    if (null_value_count && nullbuf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The copy runs without the GIL: it touches no Python object. */
    Py_BEGIN_ALLOW_THREADS
    for (ssize_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = msgs[i];
        if (m->err) continue;
        if (row > 0) vdata[at++] = '\n';
        vstarts[row] = at;
        if (m->payload != NULL) {
            const char *p = (const char *)m->payload;
            if (m->len < 2 || p[0] != '{' || p[m->len - 1] != '}') objects = 0;
            memcpy(vdata + at, m->payload, m->len);
            at += (Py_ssize_t)m->len;
        } else {
            objects = 0;
            nullbuf[nnull++] = row;
        }
        int32_t pid = pid_of(self, m);
        if (pid < 0) unknown_topic = 1;
        vpids[row] = pid;
        voffsets[row] = m->offset;
        if (want_stamps) {
            rd_kafka_timestamp_type_t kind;
            vstamps[row] = message_timestamp(m, &kind);
        }
        if (want_keys) {
            kstarts[row] = kat;
            if (m->key != NULL) {
                memcpy(kdata + kat, m->key, m->key_len);
                kat += (Py_ssize_t)m->key_len;
                if (kvalid) kvalid[row >> 3] |= (unsigned char)(1u << (row & 7));
            }
        }
        row++;
    }
    vstarts[n] = joined + 1;
    if (want_keys) kstarts[n] = kat;
    Py_END_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nnull; i++) {
        PyObject *r = PyLong_FromSsize_t(nullbuf[i]);
        if (r == NULL || PyList_Append(null_rows, r) < 0) {
            Py_XDECREF(r);
            free(nullbuf);
            goto done;
        }
        Py_DECREF(r);
    }
    free(nullbuf);
    if (unknown_topic) {
        PyErr_SetString(PyExc_RuntimeError, "a record of a partition the native reader was not told about");
        goto done;
    }
    result = Py_BuildValue("(nOOOOnnOOOOOOO)", n, values, starts, pids, offsets, max_len, total, null_rows,
                           stamps ? stamps : Py_None, keys ? keys : Py_None, key_starts ? key_starts : Py_None,
                           key_valid ? key_valid : Py_None, errors, (objects && n > 0) ? Py_True : Py_False);
done:
    Py_BEGIN_ALLOW_THREADS
    for (ssize_t i = 0; i < got; i++) message_destroy(msgs[i]);
    Py_END_ALLOW_THREADS
    Py_XDECREF(values);
    Py_XDECREF(starts);
    Py_XDECREF(pids);
    Py_XDECREF(offsets);
    Py_XDECREF(stamps);
    Py_XDECREF(keys);
    Py_XDECREF(key_starts);
    Py_XDECREF(null_rows);
    Py_XDECREF(key_valid);
    Py_XDECREF(errors);
    return result;
}

static PyMethodDef Queue_methods[] = {
    {"forward", (PyCFunction)Queue_forward, METH_VARARGS, "forward(topic, partition, pid): route that partition's records here, as partition id pid"},
    {"reforward", (PyCFunction)Queue_reforward, METH_NOARGS, "forward every known partition again"},
    {"consume", (PyCFunction)Queue_consume, METH_VARARGS, "consume(max_messages, timeout_ms, timestamps, keys)"},
    {"close", (PyCFunction)Queue_close, METH_NOARGS, "stop forwarding and free the queues (before the consumer's close)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject QueueType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "connectors.kafka._native.Queue",
    .tp_basicsize = sizeof(Queue),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The records of a confluent_kafka.Consumer, column-wise.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Queue_init,
    .tp_dealloc = (destructor)Queue_dealloc,
    .tp_methods = Queue_methods,
};

static PyMethodDef module_methods[] = {
    {"load", load, METH_VARARGS, "load(path): use the librdkafka already loaded from path"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, module_methods};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&QueueType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&QueueType);
    if (PyModule_AddObject(m, "Queue", (PyObject *)&QueueType) < 0) {
        Py_DECREF(&QueueType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
