/* tripwire's store requests over hiredis: see tw_hiredis.h for the rules this file keeps.
 * Builds with hiredis 0.14 (Debian 12) and 1.x. */
#define _POSIX_C_SOURCE 200809L
#include "tw_hiredis.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if HIREDIS_MAJOR >= 1
#define TWH_CONNECT_TIMEOUT(c) ((c)->connect_timeout)
#else
#define TWH_CONNECT_TIMEOUT(c) ((c)->timeout)
#endif

struct tw_hiredis {
  redisContext *c;
  pthread_mutex_t lock;
  int dead;  /* a timeout or an I/O error left the connection unusable: reconnect first */
  int epipe; /* the last request wrote to a closed connection (and raised SIGPIPE) */
  tw_hiredis_counters n;
};

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t left_ns(uint64_t deadline) {
  uint64_t now = clock_ns(CLOCK_MONOTONIC);
  return deadline > now ? deadline - now : 0;
}

static struct timeval timeval_of(uint64_t ns) {
  if (ns < 1000) ns = 1000; /* a zero timeval means "no timeout" to the socket */
  struct timeval tv = {(time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000u)};
  return tv;
}

static void count(uint64_t *counter) { __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

static void answer(tw_store_reply *out, tw_store_reply_kind kind) {
  out->kind = kind;
  out->num_values = 0;
  out->message[0] = 0;
}

/* FAILED with `text[0..len)` as the message (cut to fit). */
static void failed(tw_hiredis *h, tw_store_reply *out, const char *text, size_t len) {
  answer(out, TW_STORE_REPLY_KIND_FAILED);
  snprintf(out->message, sizeof out->message, "%.*s", (int)len, text);
  count(&h->n.failed);
}

static void failed_with(tw_hiredis *h, tw_store_reply *out, const char *text) {
  failed(h, out, text, strlen(text));
}

tw_hiredis *tw_hiredis_new(redisContext *c, const char **why) {
  const char *reason = NULL;
  if (c == NULL) {
    reason = "tw_hiredis_new: the redisContext is NULL";
  } else if (!(c->flags & REDIS_BLOCK)) {
    reason = "tw_hiredis_new: not a blocking redisContext (the adapter sends one command and "
             "waits for its reply; use redisConnectWithTimeout, not the async API)";
  } else if (TWH_CONNECT_TIMEOUT(c) == NULL) {
    reason = "tw_hiredis_new: the redisContext has no connect timeout: create it with "
             "redisConnectWithTimeout() so that a reconnect is bounded by the store timeout";
  }
  tw_hiredis *h = reason ? NULL : calloc(1, sizeof *h);
  if (h == NULL && reason == NULL) reason = "tw_hiredis_new: out of memory";
  if (h != NULL && pthread_mutex_init(&h->lock, NULL) != 0) {
    free(h);
    h = NULL;
    reason = "tw_hiredis_new: pthread_mutex_init failed";
  }
  if (h == NULL) {
    if (why) *why = reason;
    return NULL;
  }
  h->c = c;
  h->dead = c->err != 0;
  return h;
}

void tw_hiredis_free(tw_hiredis *h) {
  if (h == NULL) return;
  pthread_mutex_destroy(&h->lock);
  free(h);
}

tw_store tw_hiredis_store(tw_hiredis *h) {
  tw_store s = {h, tw_hiredis_run};
  return s;
}

void tw_hiredis_get_counters(tw_hiredis *h, tw_hiredis_counters *out) {
  if (h == NULL || out == NULL) return;
  out->sent = __atomic_load_n(&h->n.sent, __ATOMIC_RELAXED);
  out->evals = __atomic_load_n(&h->n.evals, __ATOMIC_RELAXED);
  out->timeouts = __atomic_load_n(&h->n.timeouts, __ATOMIC_RELAXED);
  out->unavailable = __atomic_load_n(&h->n.unavailable, __ATOMIC_RELAXED);
  out->failed = __atomic_load_n(&h->n.failed, __ATOMIC_RELAXED);
  out->reconnects = __atomic_load_n(&h->n.reconnects, __ATOMIC_RELAXED);
}

/* pthread_mutex_timedlock takes a CLOCK_REALTIME instant. */
static int lock_within(tw_hiredis *h, uint64_t ns) {
  if (pthread_mutex_trylock(&h->lock) == 0) return 0;
  uint64_t at = clock_ns(CLOCK_REALTIME) + ns;
  struct timespec ts = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)};
  return pthread_mutex_timedlock(&h->lock, &ts);
}

/* EVALSHA (or EVAL) with the request's keys and args, within the time left. NULL on an I/O
 * error or a timeout (then h->c->err is set). */
static redisReply *command(tw_hiredis *h, const tw_store_request *req, int by_sha, uint64_t deadline,
                           int *no_memory) {
  enum { ON_STACK = 48 };
  const char *argv_stack[ON_STACK];
  size_t len_stack[ON_STACK];
  size_t argc = 3 + req->num_keys + req->num_args;
  const char **argv = argc <= ON_STACK ? argv_stack : malloc(argc * sizeof *argv);
  size_t *lens = argc <= ON_STACK ? len_stack : malloc(argc * sizeof *lens);
  redisReply *r = NULL;
  *no_memory = argv == NULL || lens == NULL;
  if (!*no_memory) {
    char num_keys[24];
    argv[0] = by_sha ? "EVALSHA" : "EVAL";
    lens[0] = strlen(argv[0]);
    argv[1] = by_sha ? req->sha1.ptr : req->source.ptr;
    lens[1] = by_sha ? req->sha1.len : req->source.len;
    argv[2] = num_keys;
    lens[2] = (size_t)snprintf(num_keys, sizeof num_keys, "%zu", req->num_keys);
    for (size_t i = 0; i < req->num_keys; i++) {
      argv[3 + i] = req->keys[i].ptr;
      lens[3 + i] = req->keys[i].len;
    }
    for (size_t i = 0; i < req->num_args; i++) {
      argv[3 + req->num_keys + i] = req->args[i].ptr;
      lens[3 + req->num_keys + i] = req->args[i].len;
    }
    redisSetTimeout(h->c, timeval_of(left_ns(deadline)));
    r = redisCommandArgv(h->c, (int)argc, argv, lens);
  }
  if (argv != argv_stack) free(argv);
  if (lens != len_stack) free(lens);
  return r;
}

static int is_noscript(const redisReply *r) {
  return r->type == REDIS_REPLY_ERROR && r->len >= 8 && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* The script's reply (an array of integers) into `out`; anything else is FAILED. */
static void convert(tw_hiredis *h, const redisReply *r, tw_store_reply *out) {
  if (r->type == REDIS_REPLY_ERROR) {
    failed(h, out, r->str, r->len);
    return;
  }
  if (r->type != REDIS_REPLY_ARRAY) {
    failed_with(h, out, "unexpected reply: not an array of integers");
    return;
  }
  if (r->elements > TW_STORE_MAX_VALUES) {
    failed_with(h, out, "unexpected reply: more than TW_STORE_MAX_VALUES integers");
    return;
  }
  for (size_t i = 0; i < r->elements; i++) {
    if (r->element[i]->type != REDIS_REPLY_INTEGER) {
      failed_with(h, out, "unexpected reply: an element is not an integer");
      return;
    }
    out->values[i] = (int64_t)r->element[i]->integer;
  }
  answer(out, TW_STORE_REPLY_KIND_VALUES);
  out->num_values = r->elements;
}

/* No reply: a timeout, or the connection failed. Either way it is dead now (never resend). */
static void io_error(tw_hiredis *h, int saved_errno, tw_store_reply *out) {
  int timed_out = h->c->err == REDIS_ERR_IO &&
                  (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT);
#ifdef REDIS_ERR_TIMEOUT
  timed_out = timed_out || h->c->err == REDIS_ERR_TIMEOUT;
#endif
  h->dead = 1;
  h->epipe = saved_errno == EPIPE;
  if (timed_out) {
    answer(out, TW_STORE_REPLY_KIND_TIMEOUT);
    count(&h->n.timeouts);
  } else {
    answer(out, TW_STORE_REPLY_KIND_UNAVAILABLE);
    count(&h->n.unavailable);
  }
}

/* Reopen a dead connection on the same context, the connect bounded by the time left. */
static int reconnect(tw_hiredis *h, uint64_t deadline) {
  *TWH_CONNECT_TIMEOUT(h->c) = timeval_of(left_ns(deadline));
  count(&h->n.reconnects);
  if (redisReconnect(h->c) != REDIS_OK || h->c->err) return -1;
  h->dead = 0;
  return 0;
}

/* Run the request with the adapter locked. */
static void run_locked(tw_hiredis *h, const tw_store_request *req, tw_store_reply *out, uint64_t deadline) {
  if (left_ns(deadline) == 0) {
    answer(out, TW_STORE_REPLY_KIND_TIMEOUT); /* nothing sent: the connection stays usable */
    count(&h->n.timeouts);
    return;
  }
  if ((h->dead || h->c->err) && reconnect(h, deadline) != 0) {
    answer(out, TW_STORE_REPLY_KIND_UNAVAILABLE);
    count(&h->n.unavailable);
    return;
  }
  int no_memory = 0;
  count(&h->n.sent);
  redisReply *r = command(h, req, 1, deadline, &no_memory);
  int saved_errno = errno;
  if (r != NULL && is_noscript(r)) {
    freeReplyObject(r);
    r = NULL;
    if (left_ns(deadline) == 0) {
      answer(out, TW_STORE_REPLY_KIND_TIMEOUT);
      count(&h->n.timeouts);
      return;
    }
    count(&h->n.evals);
    r = command(h, req, 0, deadline, &no_memory);
    saved_errno = errno;
    if (r != NULL && is_noscript(r)) {
      answer(out, TW_STORE_REPLY_KIND_NO_SCRIPT);
      count(&h->n.failed);
      freeReplyObject(r);
      return;
    }
  }
  if (no_memory) {
    failed_with(h, out, "tw_hiredis: out of memory");
  } else if (r == NULL) {
    io_error(h, saved_errno, out);
  } else {
    convert(h, r, out);
    freeReplyObject(r);
  }
}

void tw_hiredis_run(void *ctx, const tw_store_request *req, tw_store_reply *out) {
  tw_hiredis *h = ctx;
  if (out == NULL) return;
  if (h == NULL || req == NULL) {
    answer(out, TW_STORE_REPLY_KIND_FAILED);
    snprintf(out->message, sizeof out->message, "tw_hiredis_run: %s is NULL", h ? "request" : "ctx");
    return;
  }
  uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + req->timeout_ns;
  /* The mutex wait counts against the request's timeout too. */
  if (lock_within(h, req->timeout_ns) != 0) {
    answer(out, TW_STORE_REPLY_KIND_TIMEOUT); /* the connection stayed busy: never sent */
    count(&h->n.timeouts);
    return;
  }
  /* Talk to the server with SIGPIPE blocked for this thread; discard one we caused (unless the
   * caller had it blocked already: then it is theirs to handle). */
  sigset_t pipe, old;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, &old);
  h->epipe = 0;
  run_locked(h, req, out, deadline);
  if (h->epipe && !sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe, NULL, &zero) == -1 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_mutex_unlock(&h->lock);
}
