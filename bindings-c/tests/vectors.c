/* Replays every conformance vector (tests/vectors, every .json) through the C API and fails on any
 * difference. The format is tests/vectors/README.md; the reference runner is
 * core/tests/vectors (one .rs per kind), whose meaning this file follows op by op. cJSON parses.
 *
 * `sharedRateLimit` vectors, and every `gcra` rate-limit vector a second time, run through
 * tw_shared_limiter, the hiredis adapter (bindings-c/adapters) and the real script on the Redis
 * of TRIPWIRE_REDIS_URL (FLUSHALL before each); `fleet` vectors run N pipelines through the
 * step protocol (tw_call_poll, tw_call_store_request, tw_call_report_store), their store steps
 * answered by the same adapter and Redis. Without TRIPWIRE_REDIS_URL these are skipped, unless
 * TRIPWIRE_REQUIRE_REDIS is set (scripts/ci/test-c.sh sets both). With Redis, the runner also
 * proves it can fail: tampered copies of a fleet vector must be reported at the tampered step.
 *
 * Usage: vectors <dir>
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tripwire.h"
#include "tw_hiredis.h"

/* ---------------------------------------------------------------- helpers */

static char failure_text[2048];

/* Record the first failure of the current vector; always returns -1. */
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(failure_text, sizeof failure_text, fmt, ap);
  va_end(ap);
  return -1;
}

/* Milliseconds (float) to nanoseconds as the core rounds them (NaN and <= 0 give 0). */
static uint64_t ms_to_ns(double ms) {
  double ns = round(ms * 1e6);
  if (!(ns > 0.0)) return 0;
  if (ns >= 18446744073709551615.0) return UINT64_MAX;
  return (uint64_t)ns;
}

/* Nanoseconds to milliseconds as the core does (exact for whole milliseconds past 2^53 ns). */
static double ns_to_ms(uint64_t ns) {
  return (double)(ns / 1000000u) + (double)(ns % 1000000u) / 1000000.0;
}

/* A whole JSON number as u64, saturating (JSON numbers arrive as doubles). */
static uint64_t to_u64(double d) {
  if (!(d > 0.0)) return 0;
  if (d >= 18446744073709551615.0) return UINT64_MAX;
  return (uint64_t)d;
}

static double num(const cJSON *obj, const char *key, double dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *str(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int has_num(const cJSON *obj, const char *key) {
  return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static int boolean(const cJSON *obj, const char *key, int dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static uint64_t at(const cJSON *step) { return ms_to_ns(num(step, "at", 0.0)); }

static uint64_t opt_deadline(const cJSON *step, const char *key) {
  return has_num(step, key) ? ms_to_ns(num(step, key, 0.0)) : TW_NO_DEADLINE;
}

static cJSON *ms_or_null(bool has, uint64_t ns) {
  return has ? cJSON_CreateNumber(ns_to_ms(ns)) : cJSON_CreateNull();
}

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

/* Every field of `expected` must match `actual`; numbers match when equal in rounded ns. */
static int check(const cJSON *expected, const cJSON *actual, const char *ctx) {
  char sub[512];
  if (cJSON_IsObject(expected) && cJSON_IsObject(actual)) {
    const cJSON *e;
    cJSON_ArrayForEach(e, expected) {
      const cJSON *a = cJSON_GetObjectItemCaseSensitive(actual, e->string);
      snprintf(sub, sizeof sub, "%s.%s", ctx, e->string);
      if (a == NULL) {
        if (cJSON_IsNull(e)) continue;
        return fail("%s: expected a value, got nothing", sub);
      }
      if (check(e, a, sub) != 0) return -1;
    }
    return 0;
  }
  if (cJSON_IsArray(expected) && cJSON_IsArray(actual)) {
    int n = cJSON_GetArraySize(expected);
    if (n != cJSON_GetArraySize(actual)) {
      char *es = cJSON_PrintUnformatted(expected), *as = cJSON_PrintUnformatted(actual);
      fail("%s: expected %s, got %s", ctx, es, as);
      free(es);
      free(as);
      return -1;
    }
    for (int i = 0; i < n; i++) {
      snprintf(sub, sizeof sub, "%s[%d]", ctx, i);
      if (check(cJSON_GetArrayItem(expected, i), cJSON_GetArrayItem(actual, i), sub) != 0) return -1;
    }
    return 0;
  }
  if (cJSON_IsNumber(expected) && cJSON_IsNumber(actual)) {
    if (round(expected->valuedouble * 1e6) == round(actual->valuedouble * 1e6)) return 0;
  } else if (cJSON_Compare(expected, actual, 1)) {
    return 0;
  } else if (expected == NULL && actual == NULL) {
    return 0;
  }
  {
    char *es = expected ? cJSON_PrintUnformatted(expected) : NULL;
    char *as = actual ? cJSON_PrintUnformatted(actual) : NULL;
    fail("%s: expected %s, got %s", ctx, es ? es : "nothing", as ? as : "nothing");
    free(es);
    free(as);
  }
  return -1;
}

/* Compare `actual` (consumed) with the step's `expect` when it has one. */
static int expect(const cJSON *step, cJSON *actual, const char *ctx) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(step, "expect");
  int r = 0;
  if (e != NULL && !cJSON_IsNull(e)) r = check(e, actual, ctx);
  cJSON_Delete(actual);
  return r;
}

/* Like expect(), but always compares (events: a missing expect is a difference). */
static int expect_always(const cJSON *step, cJSON *actual, const char *ctx) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(step, "expect");
  int r = check(e, actual, ctx);
  cJSON_Delete(actual);
  return r;
}

/* A status check: on failure, record the error's message. */
static int ok(tw_status st, tw_error *err, const char *ctx) {
  if (st == TW_STATUS_OK) return 0;
  fail("%s: status %s: %s", ctx, tw_status_str(st), err ? tw_error_message(err) : "");
  tw_error_free(err);
  return -1;
}

#define TRY(call, ctx)                        \
  do {                                        \
    tw_error *err_ = NULL;                    \
    tw_status st_ = (call);                   \
    if (ok(st_, err_, ctx) != 0) goto out;    \
  } while (0)
#define ERR (&err_)

/* Labels: names mapped to 64-bit handles (permits keep their own table). */
typedef struct {
  char name[64];
  uint64_t value;
  char policy[64];
} label;

typedef struct {
  label *items;
  int len, cap;
} labels;

static void labels_put(labels *l, const char *name, uint64_t value, const char *policy) {
  for (int i = 0; i < l->len; i++) {
    if (strcmp(l->items[i].name, name) == 0) {
      l->items[i].value = value;
      snprintf(l->items[i].policy, sizeof l->items[i].policy, "%s", policy ? policy : "");
      return;
    }
  }
  if (l->len == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->items = realloc(l->items, (size_t)l->cap * sizeof *l->items);
  }
  snprintf(l->items[l->len].name, sizeof l->items[l->len].name, "%s", name);
  snprintf(l->items[l->len].policy, sizeof l->items[l->len].policy, "%s", policy ? policy : "");
  l->items[l->len++].value = value;
}

static label *labels_get(labels *l, const char *name) {
  if (name == NULL) return NULL;
  for (int i = 0; i < l->len; i++)
    if (strcmp(l->items[i].name, name) == 0) return &l->items[i];
  return NULL;
}

static const char *labels_name_of(labels *l, uint64_t value, const char *policy) {
  for (int i = 0; i < l->len; i++)
    if (l->items[i].value == value && (policy == NULL || strcmp(l->items[i].policy, policy) == 0))
      return l->items[i].name;
  return NULL;
}

static void labels_free(labels *l) { free(l->items); }

/* Step context for messages. */
static void step_ctx(char *buf, size_t n, int i, const cJSON *step) {
  const char *op = str(step, "op");
  snprintf(buf, n, "step %d (%s)", i, op ? op : "?");
}

static cJSON *event_json(const tw_event *e) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", tw_event_type_str(e->type));
  switch (e->type) {
    case TW_EVENT_TYPE_STATE_CHANGED:
    case TW_EVENT_TYPE_STORE_STATE_CHANGED:
      cJSON_AddStringToObject(o, "from", tw_breaker_state_str(e->from));
      cJSON_AddStringToObject(o, "to", tw_breaker_state_str(e->to));
      break;
    case TW_EVENT_TYPE_REJECTED:
      cJSON_AddStringToObject(o, "reason", tw_kind_str(e->reason));
      cJSON_AddItemToObject(o, "retryAfter", ms_or_null(e->has_retry_after, e->retry_after_ns));
      break;
    case TW_EVENT_TYPE_RETRY_SCHEDULED:
      cJSON_AddNumberToObject(o, "attempt", e->attempt);
      cJSON_AddNumberToObject(o, "delay", ns_to_ms(e->delay_ns));
      break;
    case TW_EVENT_TYPE_GAVE_UP:
      cJSON_AddStringToObject(o, "reason", tw_kind_str(e->reason));
      cJSON_AddNumberToObject(o, "attempts", e->attempt);
      break;
    case TW_EVENT_TYPE_QUEUED:
    case TW_EVENT_TYPE_WOKEN:
      cJSON_AddNumberToObject(o, "ticket", (double)e->ticket);
      break;
    default:
      break;
  }
  cJSON_AddNumberToObject(o, "at", ns_to_ms(e->at_ns));
  return o;
}

/* A text the library writes into a caller buffer: ask for the size, then fetch. */
typedef tw_status (*text_fn)(const void *h, char *buf, size_t cap, size_t *needed, tw_error **err);

/* ---------------------------------------------------------------- circuitBreaker */

static cJSON *breaker_metrics_json(const tw_breaker_metrics *m) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "state", tw_breaker_state_str(m->state));
#define F(name, field) cJSON_AddNumberToObject(o, name, (double)m->field)
  F("admitted", admitted);
  F("rejected", rejected);
  F("successes", successes);
  F("failures", failures);
  F("ignored", ignored);
  F("slowCalls", slow_calls);
  F("stale", stale);
  F("transitions", transitions);
  F("inFlight", in_flight);
  F("halfOpenInFlight", half_open_in_flight);
  F("halfOpenSuccesses", half_open_successes);
  F("consecutiveFailures", consecutive_failures);
  F("openStreak", open_streak);
  F("windowCalls", window_calls);
  F("windowFailures", window_failures);
  F("windowSlowCalls", window_slow_calls);
  F("eventsDropped", events_dropped);
#undef F
  return o;
}

typedef struct {
  char name[64];
  tw_permit permit;
} permit_label;

static int run_breaker(const cJSON *v) {
  int rc = -1;
  char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_breaker *b = NULL;
  permit_label permits[64];
  int npermits = 0;
  char *snap = NULL;
  char ctx[64];
  TRY(tw_breaker_new(config, strlen(config), &b, ERR), "config");
  const cJSON *steps = cJSON_GetObjectItemCaseSensitive(v, "steps");
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, steps) {
    step_ctx(ctx, sizeof ctx, i++, step);
    const char *op = str(step, "op");
    uint64_t now = at(step);
    cJSON *actual = NULL;
    tw_permit *permit = NULL;
    const char *pname = str(step, "permit");
    if (pname) {
      for (int k = 0; k < npermits; k++)
        if (strcmp(permits[k].name, pname) == 0) permit = &permits[k].permit;
    }
    if (strcmp(op, "acquire") == 0) {
      tw_admission a;
      TRY(tw_breaker_acquire(b, now, &a, ERR), ctx);
      actual = cJSON_CreateObject();
      cJSON_AddBoolToObject(actual, "admitted", a.admitted);
      if (a.admitted) {
        const char *as = str(step, "as");
        if (as) {
          int k = 0;
          while (k < npermits && strcmp(permits[k].name, as) != 0) k++;
          if (k == npermits) {
            if (npermits == 64) { fail("%s: too many permits", ctx); goto out; }
            npermits++;
          }
          snprintf(permits[k].name, sizeof permits[k].name, "%s", as);
          permits[k].permit = a.permit;
        }
        cJSON_AddNullToObject(actual, "retryAfter");
      } else {
        cJSON_AddItemToObject(actual, "retryAfter", ms_or_null(a.has_retry_after, a.retry_after_ns));
      }
    } else if (strcmp(op, "record") == 0 || strcmp(op, "release") == 0) {
      if (!permit) { fail("%s: no permit labelled %s", ctx, pname ? pname : "?"); goto out; }
      if (op[2] == 'c') {
        const char *o = str(step, "outcome");
        tw_breaker_outcome outcome = TW_BREAKER_OUTCOME_SUCCESS;
        if (o && strcmp(o, "failure") == 0) outcome = TW_BREAKER_OUTCOME_FAILURE;
        else if (o && strcmp(o, "ignored") == 0) outcome = TW_BREAKER_OUTCOME_IGNORED;
        else if (!o || strcmp(o, "success") != 0) { fail("%s: unknown outcome", ctx); goto out; }
        TRY(tw_breaker_record(b, *permit, outcome, now, ERR), ctx);
      } else {
        TRY(tw_breaker_release(b, *permit, now, ERR), ctx);
      }
    } else if (strcmp(op, "state") == 0) {
      tw_breaker_state s;
      TRY(tw_breaker_get_state(b, &s, ERR), ctx);
      actual = cJSON_CreateString(tw_breaker_state_str(s));
    } else if (strcmp(op, "forceOpen") == 0) {
      TRY(tw_breaker_force_open(b, now, ERR), ctx);
    } else if (strcmp(op, "disable") == 0) {
      TRY(tw_breaker_disable(b, now, ERR), ctx);
    } else if (strcmp(op, "reset") == 0) {
      TRY(tw_breaker_reset(b, now, ERR), ctx);
    } else if (strcmp(op, "pollTimeout") == 0) {
      bool has;
      uint64_t t;
      TRY(tw_breaker_poll_timeout(b, &has, &t, ERR), ctx);
      actual = ms_or_null(has, t);
    } else if (strcmp(op, "snapshotRestore") == 0) {
      size_t need = 0;
      TRY(tw_breaker_snapshot(b, NULL, 0, &need, ERR), ctx);
      snap = malloc(need);
      TRY(tw_breaker_snapshot(b, snap, need, &need, ERR), ctx);
      tw_breaker *fresh = NULL;
      TRY(tw_breaker_new(config, strlen(config), &fresh, ERR), ctx);
      tw_error *err = NULL;
      tw_status st = tw_breaker_restore(fresh, snap, strlen(snap), now, &err);
      if (st != TW_STATUS_OK) {
        tw_breaker_free(fresh);
        ok(st, err, ctx);
        goto out;
      }
      tw_breaker_free(b);
      b = fresh;
      free(snap);
      snap = NULL;
    } else if (strcmp(op, "metrics") == 0) {
      tw_breaker_metrics m;
      TRY(tw_breaker_get_metrics(b, &m, ERR), ctx);
      actual = breaker_metrics_json(&m);
    } else if (strcmp(op, "events") == 0) {
      cJSON *list = cJSON_CreateArray();
      for (;;) {
        tw_event e;
        tw_error *err = NULL;
        tw_status st = tw_breaker_poll_event(b, &e, &err);
        if (st != TW_STATUS_OK) { cJSON_Delete(list); ok(st, err, ctx); goto out; }
        if (e.type == TW_EVENT_TYPE_NONE) break;
        cJSON_AddItemToArray(list, event_json(&e));
      }
      if (expect_always(step, list, ctx) != 0) goto out;
      continue;
    } else {
      fail("%s: unknown circuitBreaker op", ctx);
      goto out;
    }
    if (actual == NULL) actual = cJSON_CreateNull();
    if (expect(step, actual, ctx) != 0) goto out;
  }
  rc = 0;
out:
  free(snap);
  tw_breaker_free(b);
  free(config);
  return rc;
}

/* ---------------------------------------------------------------- rateLimit, keyedRateLimit */

static cJSON *decision_json(const tw_rate_decision *d) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "allowed", d->allowed);
  cJSON_AddNumberToObject(o, "wait", ns_to_ms(d->wait_ns));
  if (d->allowed) cJSON_AddNullToObject(o, "retryAfter");
  else cJSON_AddItemToObject(o, "retryAfter", ms_or_null(d->has_retry_after, d->retry_after_ns));
  return o;
}

static int run_rate_limit(const cJSON *v, int keyed) {
  int rc = -1;
  char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_limiter *l = NULL;
  tw_keyed_limiter *k = NULL;
  char ctx[64];
  if (keyed) {
    uint64_t seed = to_u64(num(v, "seed", 0.0));
    TRY(tw_keyed_limiter_new_with_seed(config, strlen(config), seed, &k, ERR), "config");
  } else {
    TRY(tw_limiter_new(config, strlen(config), &l, ERR), "config");
  }
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(v, "steps")) {
    step_ctx(ctx, sizeof ctx, i++, step);
    const char *op = str(step, "op");
    uint64_t now = at(step);
    cJSON *actual = NULL;
    if (strcmp(op, "check") == 0) {
      uint64_t cost = to_u64(num(step, "cost", 1.0));
      tw_rate_decision d;
      if (keyed) {
        const char *key = str(step, "key");
        if (!key) { fail("%s: a keyed check needs a key", ctx); goto out; }
        TRY(tw_keyed_limiter_check(k, key, strlen(key), now, cost, &d, ERR), ctx);
      } else {
        TRY(tw_limiter_check(l, now, cost, &d, ERR), ctx);
      }
      actual = decision_json(&d);
    } else if (strcmp(op, "events") == 0) {
      cJSON *list = cJSON_CreateArray();
      for (;;) {
        tw_event e;
        tw_error *err = NULL;
        tw_status st = keyed ? tw_keyed_limiter_poll_event(k, &e, &err) : tw_limiter_poll_event(l, &e, &err);
        if (st != TW_STATUS_OK) { cJSON_Delete(list); ok(st, err, ctx); goto out; }
        if (e.type == TW_EVENT_TYPE_NONE) break;
        cJSON_AddItemToArray(list, event_json(&e));
      }
      if (expect_always(step, list, ctx) != 0) goto out;
      continue;
    } else if (keyed && strcmp(op, "keys") == 0) {
      tw_keyed_limiter_metrics m;
      TRY(tw_keyed_limiter_get_metrics(k, &m, ERR), ctx);
      actual = cJSON_CreateNumber((double)m.keys);
    } else {
      fail("%s: unknown rate limit op", ctx);
      goto out;
    }
    if (expect(step, actual, ctx) != 0) goto out;
  }
  rc = 0;
out:
  tw_limiter_free(l);
  tw_keyed_limiter_free(k);
  free(config);
  return rc;
}

/* ---------------------------------------------------------------- bulkhead */

static int run_bulkhead(const cJSON *v) {
  int rc = -1;
  char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_bulkhead *b = NULL;
  labels tickets = {0};
  char ctx[64];
  TRY(tw_bulkhead_new(config, strlen(config), &b, ERR), "config");
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(v, "steps")) {
    step_ctx(ctx, sizeof ctx, i++, step);
    const char *op = str(step, "op");
    uint64_t now = at(step);
    cJSON *actual = NULL;
    if (strcmp(op, "enter") == 0) {
      tw_entry e;
      TRY(tw_bulkhead_enter(b, now, opt_deadline(step, "deadline"), &e, ERR), ctx);
      actual = cJSON_CreateObject();
      switch (e.result) {
        case TW_ENTRY_RESULT_ADMITTED:
          cJSON_AddStringToObject(actual, "result", "admitted");
          cJSON_AddNullToObject(actual, "until");
          cJSON_AddNullToObject(actual, "reason");
          break;
        case TW_ENTRY_RESULT_QUEUED:
          if (str(step, "as")) labels_put(&tickets, str(step, "as"), e.ticket, NULL);
          cJSON_AddStringToObject(actual, "result", "queued");
          cJSON_AddItemToObject(actual, "until", ms_or_null(e.has_until, e.until_ns));
          cJSON_AddNullToObject(actual, "reason");
          break;
        default:
          cJSON_AddStringToObject(actual, "result", "rejected");
          cJSON_AddNullToObject(actual, "until");
          cJSON_AddStringToObject(actual, "reason", tw_kind_str(e.reason));
          break;
      }
    } else if (strcmp(op, "release") == 0) {
      bool woke;
      uint64_t ticket;
      TRY(tw_bulkhead_release(b, now, &woke, &ticket, ERR), ctx);
      actual = cJSON_CreateObject();
      if (woke) {
        const char *name = labels_name_of(&tickets, ticket, NULL);
        char anon[32];
        if (!name) {
          snprintf(anon, sizeof anon, "#%llu", (unsigned long long)ticket);
          name = anon;
        }
        cJSON_AddStringToObject(actual, "woke", name);
      } else {
        cJSON_AddNullToObject(actual, "woke");
      }
    } else if (strcmp(op, "cancel") == 0) {
      label *t = labels_get(&tickets, str(step, "ticket"));
      if (!t) { fail("%s: no ticket labelled %s", ctx, str(step, "ticket")); goto out; }
      bool left;
      TRY(tw_bulkhead_cancel(b, t->value, now, boolean(step, "timedOut", 0), &left, ERR), ctx);
      actual = cJSON_CreateBool(left);
    } else if (strcmp(op, "stats") == 0) {
      tw_bulkhead_metrics m;
      TRY(tw_bulkhead_get_metrics(b, &m, ERR), ctx);
      actual = cJSON_CreateObject();
#define F(name, value) cJSON_AddNumberToObject(actual, name, (double)(value))
      F("inFlight", m.in_flight);
      F("queued", m.queue_depth);
      F("queueDepth", m.queue_depth);
      F("queuedTotal", m.queued);
      F("admitted", m.admitted);
      F("woken", m.woken);
      F("rejectedFull", m.rejected_full);
      F("queueTimeouts", m.queue_timeouts);
      F("cancelled", m.cancelled);
      F("unmatchedReleases", m.unmatched_releases);
      F("maxConcurrent", m.max_concurrent);
      F("maxQueue", m.max_queue);
#undef F
    } else if (strcmp(op, "events") == 0) {
      cJSON *list = cJSON_CreateArray();
      for (;;) {
        tw_event e;
        tw_error *err = NULL;
        tw_status st = tw_bulkhead_poll_event(b, &e, &err);
        if (st != TW_STATUS_OK) { cJSON_Delete(list); ok(st, err, ctx); goto out; }
        if (e.type == TW_EVENT_TYPE_NONE) break;
        cJSON_AddItemToArray(list, event_json(&e));
      }
      if (expect_always(step, list, ctx) != 0) goto out;
      continue;
    } else {
      fail("%s: unknown bulkhead op", ctx);
      goto out;
    }
    if (expect(step, actual, ctx) != 0) goto out;
  }
  rc = 0;
out:
  labels_free(&tickets);
  tw_bulkhead_free(b);
  free(config);
  return rc;
}

/* ---------------------------------------------------------------- pipeline, policyFile */

static cJSON *step_json(const tw_step *s) {
  cJSON *o = cJSON_CreateObject();
  switch (s->kind) {
    case TW_STEP_KIND_ATTEMPT:
      cJSON_AddStringToObject(o, "step", "attempt");
      cJSON_AddNumberToObject(o, "attempt", s->attempt);
      cJSON_AddItemToObject(o, "deadline", ms_or_null(s->has_deadline, s->deadline_ns));
      break;
    case TW_STEP_KIND_SLEEP:
      cJSON_AddStringToObject(o, "step", "sleep");
      cJSON_AddNumberToObject(o, "until", ns_to_ms(s->until_ns));
      break;
    case TW_STEP_KIND_PARK:
      cJSON_AddStringToObject(o, "step", "park");
      cJSON_AddItemToObject(o, "until", ms_or_null(s->has_until, s->until_ns));
      break;
    case TW_STEP_KIND_DONE:
      cJSON_AddStringToObject(o, "step", "done");
      cJSON_AddNumberToObject(o, "attempts", s->attempt);
      break;
    case TW_STEP_KIND_FAIL:
      cJSON_AddStringToObject(o, "step", "fail");
      cJSON_AddStringToObject(o, "kind", tw_kind_str(s->failure.kind));
      cJSON_AddItemToObject(o, "retryAfter", ms_or_null(s->failure.has_retry_after, s->failure.retry_after_ns));
      cJSON_AddNumberToObject(o, "attempts", s->failure.attempts);
      cJSON_AddBoolToObject(o, "fallback", s->failure.fallback);
      cJSON_AddItemToObject(o, "cause", s->failure.cause == TW_KIND_NONE ? cJSON_CreateNull()
                                                                          : cJSON_CreateString(tw_kind_str(s->failure.cause)));
      break;
    default:
      cJSON_AddStringToObject(o, "step", "unknown");
      break;
  }
  return o;
}

static cJSON *stats_json(tw_pipeline *p) {
  tw_pipeline_stats s;
  if (tw_pipeline_get_stats(p, &s, NULL) != TW_STATUS_OK) return cJSON_CreateString("stats failed");
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "calls", (double)s.calls);
  cJSON_AddNumberToObject(o, "succeeded", (double)s.succeeded);
  cJSON *failed = cJSON_AddObjectToObject(o, "failed");
  for (unsigned k = TW_KIND_CIRCUIT_OPEN; k <= TW_KIND_INVALID_CONFIG; k++)
    cJSON_AddNumberToObject(failed, tw_kind_str(k), (double)s.failed[k]);
  cJSON_AddNumberToObject(o, "cancelled", (double)s.cancelled);
  cJSON_AddNumberToObject(o, "attempts", (double)s.attempts);
  cJSON_AddNumberToObject(o, "inFlight", (double)s.in_flight);
  cJSON_AddItemToObject(o, "state", s.has_breaker ? cJSON_CreateString(tw_breaker_state_str(s.breaker_state)) : cJSON_CreateNull());
  cJSON_AddItemToObject(o, "budgetTokens", s.has_budget ? cJSON_CreateNumber(s.budget_tokens) : cJSON_CreateNull());
  cJSON_AddItemToObject(o, "keys", s.has_keys ? cJSON_CreateNumber((double)s.keys) : cJSON_CreateNull());
  /* The JSON stats must agree with the struct. */
  size_t need = 0;
  if (tw_pipeline_stats_json(p, NULL, 0, &need, NULL) == TW_STATUS_OK) {
    char *text = malloc(need);
    if (tw_pipeline_stats_json(p, text, need, NULL, NULL) == TW_STATUS_OK) {
      cJSON *j = cJSON_Parse(text);
      const cJSON *calls = cJSON_GetObjectItemCaseSensitive(j, "calls");
      if (!cJSON_IsNumber(calls) || calls->valuedouble != (double)s.calls)
        cJSON_AddStringToObject(o, "jsonMismatch", text);
      cJSON_Delete(j);
    }
    free(text);
  }
  return o;
}

typedef struct {
  char name[64];
  tw_pipeline *p;
} named_pipeline;

static int run_pipeline(const cJSON *v) {
  int rc = -1;
  const int is_file = strcmp(str(v, "kind"), "policyFile") == 0;
  uint64_t seed = to_u64(num(v, "seed", 0.0));
  char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_policies *file = NULL;
  named_pipeline pipes[16];
  int npipes = 0;
  labels calls = {0};
  char last_policy[64] = "";
  char ctx[64];
  if (is_file) {
    TRY(tw_policies_new(config, strlen(config), &file, ERR), "config");
  } else {
    pipes[0].name[0] = 0;
    pipes[0].p = NULL;
    TRY(tw_pipeline_new_with_seed(config, strlen(config), seed, &pipes[0].p, ERR), "config");
    npipes = 1;
  }
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(v, "steps")) {
    step_ctx(ctx, sizeof ctx, i++, step);
    const char *op = str(step, "op");
    uint64_t now = at(step);
    char policy[64];
    snprintf(policy, sizeof policy, "%s", str(step, "policy") ? str(step, "policy") : last_policy);
    tw_pipeline *p = NULL;
    for (int k = 0; k < npipes; k++)
      if (strcmp(pipes[k].name, policy) == 0) p = pipes[k].p;
    if (p == NULL && is_file) {
      if (npipes == 16) { fail("%s: too many pipelines", ctx); goto out; }
      TRY(tw_policies_pipeline_with_seed(file, policy, seed, &p, ERR), ctx);
      snprintf(pipes[npipes].name, sizeof pipes[npipes].name, "%s", policy);
      pipes[npipes++].p = p;
    }
    snprintf(last_policy, sizeof last_policy, "%s", policy);
    if (p == NULL) { fail("%s: no pipeline", ctx); goto out; }
    label *call = labels_get(&calls, str(step, "call"));
    if (strcmp(op, "begin") == 0) {
      tw_call id;
      const char *key = str(step, "key");
      if (key) TRY(tw_call_begin_keyed(p, key, strlen(key), now, opt_deadline(step, "deadline"), &id, ERR), ctx);
      else TRY(tw_call_begin(p, now, opt_deadline(step, "deadline"), &id, ERR), ctx);
      if (!str(step, "as")) { fail("%s: begin lacks \"as\"", ctx); goto out; }
      labels_put(&calls, str(step, "as"), id, policy);
      continue;
    }
    if (strcmp(op, "poll") == 0 || strcmp(op, "report") == 0 || strcmp(op, "cancel") == 0) {
      if (!call) { fail("%s: unknown call label %s", ctx, str(step, "call")); goto out; }
      for (int k = 0; k < npipes; k++)
        if (strcmp(pipes[k].name, call->policy) == 0) p = pipes[k].p;
    }
    if (strcmp(op, "poll") == 0) {
      tw_step s;
      tw_error *err = NULL;
      tw_status st = tw_call_poll(p, call->value, now, &s, &err);
      const char *want = str(step, "expectError");
      if (want) {
        int match = st != TW_STATUS_OK && strcmp(tw_error_message(err), want) == 0;
        if (!match) fail("%s: expected error \"%s\", got status %s (%s)", ctx, want, tw_status_str(st),
                         err ? tw_error_message(err) : "");
        tw_error_free(err);
        if (!match) goto out;
        continue;
      }
      if (ok(st, err, ctx) != 0) goto out;
      if (expect_always(step, step_json(&s), ctx) != 0) goto out;
    } else if (strcmp(op, "report") == 0) {
      const char *o = str(step, "outcome");
      tw_report r = {0};
      if (o && strcmp(o, "success") == 0) r.outcome = TW_OUTCOME_SUCCESS;
      else if (o && strcmp(o, "failure") == 0) r.outcome = TW_OUTCOME_FAILURE;
      else if (o && strcmp(o, "timeout") == 0) r.outcome = TW_OUTCOME_TIMEOUT;
      else if (o && strcmp(o, "ignored") == 0) r.outcome = TW_OUTCOME_IGNORED;
      else { fail("%s: unknown outcome", ctx); goto out; }
      r.retryable = boolean(step, "retryable", 1);
      r.has_retry_after = has_num(step, "retryAfter");
      r.retry_after_ns = ms_to_ns(num(step, "retryAfter", 0.0));
      TRY(tw_call_report(p, call->value, &r, now, ERR), ctx);
    } else if (strcmp(op, "cancel") == 0) {
      TRY(tw_call_end(p, call->value, now, ERR), ctx);
    } else if (strcmp(op, "wakes") == 0) {
      cJSON *woke = cJSON_CreateArray();
      for (;;) {
        tw_call id;
        bool w;
        tw_error *err = NULL;
        tw_status st = tw_pipeline_poll_wake(p, &id, &w, &err);
        if (st != TW_STATUS_OK) { cJSON_Delete(woke); ok(st, err, ctx); goto out; }
        if (!w) break;
        cJSON_AddItemToArray(woke, str_or_null(labels_name_of(&calls, id, policy)));
      }
      if (expect_always(step, woke, ctx) != 0) goto out;
    } else if (strcmp(op, "events") == 0) {
      cJSON *list = cJSON_CreateArray();
      for (;;) {
        tw_event e;
        tw_error *err = NULL;
        tw_status st = tw_pipeline_poll_event(p, &e, &err);
        if (st != TW_STATUS_OK) { cJSON_Delete(list); ok(st, err, ctx); goto out; }
        if (e.type == TW_EVENT_TYPE_NONE) break;
        cJSON_AddItemToArray(list, event_json(&e));
      }
      if (expect_always(step, list, ctx) != 0) goto out;
    } else if (strcmp(op, "pollTimeout") == 0) {
      bool has;
      uint64_t t;
      TRY(tw_pipeline_poll_timeout(p, &has, &t, ERR), ctx);
      if (expect_always(step, ms_or_null(has, t), ctx) != 0) goto out;
    } else if (strcmp(op, "stats") == 0) {
      if (expect_always(step, stats_json(p), ctx) != 0) goto out;
    } else if (strcmp(op, "reconfigure") == 0) {
      char *text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(step, "config"));
      tw_error *err = NULL;
      tw_status st = tw_pipeline_reconfigure(p, text, strlen(text), now, &err);
      free(text);
      const cJSON *e = cJSON_GetObjectItemCaseSensitive(step, "expect");
      const char *prefix = str(e, "error");
      int r = 0;
      if (prefix) {
        const char *got = st == TW_STATUS_OK ? "" : tw_error_message(err);
        if (strncmp(got, prefix, strlen(prefix)) != 0) r = fail("%s: expected error starting \"%s\", got \"%s\"", ctx, prefix, got);
      }
      if (r == 0 && boolean(e, "ok", 0) != (st == TW_STATUS_OK))
        r = fail("%s: expected ok=%d, got status %s (%s)", ctx, boolean(e, "ok", 0), tw_status_str(st),
                 err ? tw_error_message(err) : "");
      if (r == 0 && st != TW_STATUS_OK && st != TW_STATUS_INVALID_CONFIG)
        r = fail("%s: a refused config must be TW_STATUS_INVALID_CONFIG, got %s", ctx, tw_status_str(st));
      tw_error_free(err);
      if (r != 0) goto out;
    } else {
      fail("%s: unknown pipeline op", ctx);
      goto out;
    }
  }
  rc = 0;
out:
  for (int k = 0; k < npipes; k++) tw_pipeline_free(pipes[k].p);
  tw_policies_free(file);
  labels_free(&calls);
  free(config);
  return rc;
}

/* ---------------------------------------------------------------- retry */

static const char *give_up_name(tw_give_up g) {
  switch (g) {
    case TW_GIVE_UP_EXHAUSTED: return "exhausted";
    case TW_GIVE_UP_NOT_RETRYABLE: return "notRetryable";
    case TW_GIVE_UP_BUDGET_EXHAUSTED: return "budgetExhausted";
    case TW_GIVE_UP_DEADLINE_EXCEEDED: return "deadlineExceeded";
    default: return "none";
  }
}

static int run_retry(const cJSON *v) {
  int rc = -1;
  char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_retry *r = NULL;
  labels calls = {0};
  char ctx[64];
  TRY(tw_retry_new_with_seed(config, strlen(config), to_u64(num(v, "seed", 0.0)), &r, ERR), "config");
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(v, "steps")) {
    step_ctx(ctx, sizeof ctx, i++, step);
    const char *op = str(step, "op");
    uint64_t now = at(step);
    cJSON *actual = NULL;
    label *call = labels_get(&calls, str(step, "call"));
    if (strcmp(op, "begin") == 0) {
      tw_retry_call c;
      TRY(tw_retry_begin(r, now, &c, ERR), ctx);
      labels_put(&calls, str(step, "as"), c, NULL);
    } else if (strcmp(op, "budget") == 0) {
      bool has;
      double tokens;
      TRY(tw_retry_budget(r, &has, &tokens, ERR), ctx);
      actual = has ? cJSON_CreateNumber(tokens) : cJSON_CreateNull();
    } else {
      if (!call) { fail("%s: unknown call %s", ctx, str(step, "call")); goto out; }
      if (strcmp(op, "attempt") == 0) {
        uint32_t n;
        TRY(tw_retry_attempt(r, call->value, &n, ERR), ctx);
        actual = cJSON_CreateNumber(n);
      } else if (strcmp(op, "failure") == 0) {
        tw_retry_decision d;
        TRY(tw_retry_on_failure(r, call->value, boolean(step, "retryable", 1), has_num(step, "retryAfter"),
                                ms_to_ns(num(step, "retryAfter", 0.0)), now, opt_deadline(step, "deadline"), &d, ERR),
            ctx);
        actual = cJSON_CreateObject();
        if (d.retry) {
          cJSON_AddStringToObject(actual, "decision", "retry");
          cJSON_AddNumberToObject(actual, "attempt", d.attempt);
          cJSON_AddNumberToObject(actual, "delay", ns_to_ms(d.delay_ns));
        } else {
          cJSON_AddStringToObject(actual, "decision", "giveUp");
          cJSON_AddStringToObject(actual, "reason", give_up_name(d.give_up));
        }
      } else if (strcmp(op, "success") == 0) {
        TRY(tw_retry_on_success(r, call->value, ERR), ctx);
      } else {
        fail("%s: unknown retry op", ctx);
        goto out;
      }
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(step, "expect");
    if (e != NULL && actual == NULL) { fail("%s: this op has no result to expect", ctx); goto out; }
    if (actual != NULL && expect(step, actual, ctx) != 0) goto out;
  }
  rc = 0;
out:
  labels_free(&calls);
  tw_retry_free(r);
  free(config);
  return rc;
}

/* ---------------------------------------------------------------- health */

static const char *health_name(tw_health *h, uint32_t id, char *buf, size_t cap) {
  if (tw_health_name(h, id, buf, cap, NULL, NULL) != TW_STATUS_OK) return NULL;
  return buf;
}

static int starts_with_error(tw_status st, tw_error *err, const char *want, const char *ctx) {
  int r = 0;
  if (st == TW_STATUS_OK) r = fail("%s: accepted, expected error \"%s\"", ctx, want);
  else if (st != TW_STATUS_INVALID_CONFIG) r = fail("%s: status %s, expected invalidConfig", ctx, tw_status_str(st));
  else if (strncmp(tw_error_message(err), want, strlen(want)) != 0)
    r = fail("%s: expected error starting \"%s\", got \"%s\"", ctx, want, tw_error_message(err));
  tw_error_free(err);
  return r;
}

static int run_health(const cJSON *v) {
  int rc = -1;
  char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_health *h = NULL;
  labels ids = {0};
  char ctx[64], name[128];
  {
    tw_error *err = NULL;
    tw_status st = tw_health_new(config, strlen(config), &h, &err);
    const char *want = str(v, "expectError");
    if (want) {
      rc = starts_with_error(st, err, want, "config");
      goto out;
    }
    if (ok(st, err, "config") != 0) goto out;
  }
  /* Every id ever handed out, by name, so a step can report on an unregistered check. */
  const cJSON *checks = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "config"), "checks");
  const cJSON *c;
  cJSON_ArrayForEach(c, checks) {
    uint32_t id;
    TRY(tw_health_id(h, c->string, &id, ERR), "config");
    labels_put(&ids, c->string, id, NULL);
  }
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(v, "steps")) {
    step_ctx(ctx, sizeof ctx, i++, step);
    const char *op = str(step, "op");
    uint64_t now = at(step);
    const char *nm = str(step, "name");
    cJSON *actual = NULL;
    if (strcmp(op, "register") == 0) {
      const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(step, "config");
      char *text = (cfg && !cJSON_IsNull(cfg)) ? cJSON_PrintUnformatted(cfg) : NULL;
      uint32_t id;
      tw_error *err = NULL;
      tw_status st = tw_health_register(h, nm, text ? text : "{}", text ? strlen(text) : 2, &id, &err);
      free(text);
      if (st == TW_STATUS_OK) {
        labels_put(&ids, nm, id, NULL);
        actual = cJSON_CreateObject();
        cJSON_AddBoolToObject(actual, "ok", 1);
        cJSON_AddNullToObject(actual, "error");
      } else {
        const char *want = str(cJSON_GetObjectItemCaseSensitive(step, "expect"), "error");
        if (want) {
          if (starts_with_error(st, err, want, ctx) != 0) goto out;
          continue;
        }
        actual = cJSON_CreateObject();
        cJSON_AddBoolToObject(actual, "ok", 0);
        cJSON_AddStringToObject(actual, "error", tw_error_message(err));
        tw_error_free(err);
      }
    } else if (strcmp(op, "unregister") == 0) {
      bool removed;
      TRY(tw_health_unregister(h, nm, &removed, ERR), ctx);
      actual = cJSON_CreateBool(removed);
    } else if (strcmp(op, "due") == 0 || strcmp(op, "dueAll") == 0) {
      tw_due_check due[4];
      size_t count = 0, remaining = 1;
      actual = cJSON_CreateArray();
      /* A small array on purpose: the rest must come from the next call, in order. */
      int first = 1;
      while (remaining > 0) {
        tw_error *err = NULL;
        tw_status st;
        if (first && strcmp(op, "dueAll") == 0) st = tw_health_due_all(h, now, due, 4, &count, &remaining, &err);
        else st = tw_health_due(h, now, due, 4, &count, &remaining, &err);
        if (st != TW_STATUS_OK) { cJSON_Delete(actual); ok(st, err, ctx); goto out; }
        first = 0;
        for (size_t k = 0; k < count; k++) {
          cJSON *d = cJSON_CreateObject();
          cJSON_AddItemToObject(d, "name", str_or_null(health_name(h, due[k].id, name, sizeof name)));
          cJSON_AddNumberToObject(d, "deadline", ns_to_ms(due[k].deadline_ns));
          cJSON_AddItemToArray(actual, d);
        }
      }
    } else if (strcmp(op, "report") == 0) {
      label *id = labels_get(&ids, nm);
      if (!id) { fail("%s: no check %s was ever registered", ctx, nm); goto out; }
      const cJSON *okv = cJSON_GetObjectItemCaseSensitive(step, "ok");
      if (!cJSON_IsBool(okv)) { fail("%s: lacks \"ok\"", ctx); goto out; }
      tw_error *err = NULL;
      tw_status st = tw_health_report(h, (uint32_t)id->value, cJSON_IsTrue(okv), ms_to_ns(num(step, "latency", 0.0)),
                                      str(step, "error"), now, &err);
      actual = cJSON_CreateObject();
      if (st == TW_STATUS_OK) cJSON_AddNullToObject(actual, "error");
      else if (st == TW_STATUS_UNKNOWN_CHECK) cJSON_AddStringToObject(actual, "error", "unknownCheck");
      else cJSON_AddStringToObject(actual, "error", tw_error_message(err));
      tw_error_free(err);
    } else if (strcmp(op, "expire") == 0) {
      TRY(tw_health_expire(h, now, ERR), ctx);
    } else if (strcmp(op, "status") == 0 || strcmp(op, "httpStatus") == 0) {
      tw_health_status s;
      uint16_t http;
      TRY(tw_health_get_status(h, &s, &http, ERR), ctx);
      actual = op[0] == 's' ? cJSON_CreateString(tw_health_status_str(s)) : cJSON_CreateNumber(http);
    } else if (strcmp(op, "checkStatus") == 0) {
      tw_check_status s;
      TRY(tw_health_get_check_status(h, nm, &s, ERR), ctx);
      actual = s == TW_CHECK_STATUS_UNKNOWN ? cJSON_CreateNull() : cJSON_CreateString(tw_check_status_str(s));
    } else if (strcmp(op, "pollTimeout") == 0) {
      bool has;
      uint64_t t;
      TRY(tw_health_poll_timeout(h, &has, &t, ERR), ctx);
      actual = ms_or_null(has, t);
    } else if (strcmp(op, "setBreaker") == 0) {
      const char *state = str(step, "state");
      unsigned s = 0;
      while (s < 5 && strcmp(tw_breaker_state_str(s), state) != 0) s++;
      if (s == 5) { fail("%s: unknown breaker state %s", ctx, state); goto out; }
      TRY(tw_health_set_breaker(h, nm, s, ERR), ctx);
    } else if (strcmp(op, "removeBreaker") == 0) {
      bool removed;
      TRY(tw_health_remove_breaker(h, nm, &removed, ERR), ctx);
      actual = cJSON_CreateBool(removed);
    } else if (strcmp(op, "reportJson") == 0) {
      const char *stamp = str(step, "timestamp") ? str(step, "timestamp") : "1970-01-01T00:00:00.000Z";
      size_t need = 0;
      TRY(tw_health_report_json(h, stamp, NULL, 0, &need, ERR), ctx);
      char *text = malloc(need);
      tw_error *err = NULL;
      tw_status st = tw_health_report_json(h, stamp, text, need, NULL, &err);
      if (st != TW_STATUS_OK) { free(text); ok(st, err, ctx); goto out; }
      actual = cJSON_Parse(text);
      free(text);
    } else if (strcmp(op, "metrics") == 0) {
      tw_health_metrics m;
      TRY(tw_health_get_metrics(h, &m, ERR), ctx);
      actual = cJSON_CreateObject();
#define F(n, f) cJSON_AddNumberToObject(actual, n, (double)m.f)
      F("checks", checks);
      F("pending", pending);
      F("healthy", healthy);
      F("unhealthy", unhealthy);
      F("running", running);
      F("runs", runs);
      F("successes", successes);
      F("failures", failures);
      F("timeouts", timeouts);
      F("ignoredReports", ignored_reports);
      F("transitions", transitions);
      F("statusChanges", status_changes);
#undef F
    } else if (strcmp(op, "events") == 0) {
      actual = cJSON_CreateArray();
      for (;;) {
        tw_health_event e;
        tw_error *err = NULL;
        tw_status st = tw_health_poll_event(h, &e, &err);
        if (st != TW_STATUS_OK) { cJSON_Delete(actual); ok(st, err, ctx); goto out; }
        if (e.type == TW_HEALTH_EVENT_TYPE_NONE) break;
        cJSON *o = cJSON_CreateObject();
        const char *check_name = labels_name_of(&ids, e.check, NULL);
        switch (e.type) {
          case TW_HEALTH_EVENT_TYPE_CHECK_CHANGED:
            cJSON_AddStringToObject(o, "type", "checkChanged");
            cJSON_AddItemToObject(o, "check", str_or_null(check_name));
            cJSON_AddStringToObject(o, "from", tw_check_status_str(e.check_from));
            cJSON_AddStringToObject(o, "to", tw_check_status_str(e.check_to));
            break;
          case TW_HEALTH_EVENT_TYPE_TIMED_OUT:
            cJSON_AddStringToObject(o, "type", "timedOut");
            cJSON_AddItemToObject(o, "check", str_or_null(check_name));
            break;
          case TW_HEALTH_EVENT_TYPE_STATUS_CHANGED:
            cJSON_AddStringToObject(o, "type", "statusChanged");
            cJSON_AddStringToObject(o, "from", tw_health_status_str(e.status_from));
            cJSON_AddStringToObject(o, "to", tw_health_status_str(e.status_to));
            break;
          default:
            cJSON_AddStringToObject(o, "type", "other");
        }
        cJSON_AddNumberToObject(o, "at", ns_to_ms(e.at_ns));
        cJSON_AddItemToArray(actual, o);
      }
      if (expect_always(step, actual, ctx) != 0) goto out;
      continue;
    } else {
      fail("%s: unknown health op", ctx);
      goto out;
    }
    if (actual == NULL) actual = cJSON_CreateNull();
    if (expect(step, actual, ctx) != 0) goto out;
  }
  rc = 0;
out:
  labels_free(&ids);
  tw_health_free(h);
  free(config);
  return rc;
}

/* ---------------------------------------------------------------- sharedRateLimit */

static redisContext *redis_conn, *redis_admin;
static tw_hiredis *redis_store; /* NULL without TRIPWIRE_REDIS_URL: shared vectors are skipped */

static redisContext *redis_connect(const char *url) {
  char host[256] = "127.0.0.1";
  int port = 6379;
  if (sscanf(url, "redis://%255[^:/]:%d", host, &port) < 1) return NULL;
  struct timeval tv = {1, 0};
  return redisConnectWithTimeout(host, port, tv);
}

/* The scripts (by SHA1) of every request sent to Redis: each is EVALed once, the first time. */
static char scripts_seen[8][41];
static size_t nscripts_seen;

static void note_script(const tw_store_request *r) {
  char sha[41];
  snprintf(sha, sizeof sha, "%.*s", (int)(r->sha1.len < 40 ? r->sha1.len : 40), r->sha1.ptr);
  for (size_t i = 0; i < nscripts_seen; i++)
    if (strcmp(scripts_seen[i], sha) == 0) return;
  if (nscripts_seen < sizeof scripts_seen / sizeof scripts_seen[0]) memcpy(scripts_seen[nscripts_seen++], sha, 41);
}

static cJSON *shared_decision_json(const tw_shared_decision *d, bool sent) {
  cJSON *o = decision_json(&d->decision);
  cJSON_AddStringToObject(o, "source", tw_store_source_str(d->source));
  cJSON_AddBoolToObject(o, "sent", sent);
  return o;
}

/* One shared check at the step's time: a request is run on Redis, or answered as the step's
 * `reply` says (timeout, unavailable, failed). */
static int shared_check(tw_shared_limiter *l, const cJSON *step, const char *key, cJSON **actual,
                        const char *ctx) {
  uint64_t now = at(step);
  tw_shared_decision d;
  TRY(tw_shared_limiter_check(l, key, strlen(key), now, to_u64(num(step, "cost", 1.0)), &d, ERR), ctx);
  bool sent = !d.decided;
  if (sent) {
    tw_store_request req;
    TRY(tw_shared_limiter_request(l, d.request, &req, ERR), ctx);
    tw_store_reply reply;
    memset(&reply, 0, sizeof reply);
    const char *how = str(step, "reply");
    if (how == NULL || strcmp(how, "store") == 0) {
      note_script(&req);
      tw_hiredis_run(redis_store, &req, &reply);
      if (reply.kind != TW_STORE_REPLY_KIND_VALUES) {
        fail("%s: Redis did not answer the script (kind %u: %s)", ctx, reply.kind, reply.message);
        goto out;
      }
    } else if (strcmp(how, "timeout") == 0) {
      reply.kind = TW_STORE_REPLY_KIND_TIMEOUT;
    } else if (strcmp(how, "unavailable") == 0) {
      reply.kind = TW_STORE_REPLY_KIND_UNAVAILABLE;
    } else if (strcmp(how, "failed") == 0) {
      reply.kind = TW_STORE_REPLY_KIND_FAILED;
      snprintf(reply.message, sizeof reply.message, "WRONGTYPE Operation against a key");
    } else {
      fail("%s: unknown reply %s", ctx, how);
      goto out;
    }
    TRY(tw_shared_limiter_reply(l, d.request, &reply, now, &d, ERR), ctx);
  }
  *actual = shared_decision_json(&d, sent);
  return 0;
out:
  return -1;
}

static int run_shared(const cJSON *v) {
  int rc = -1;
  char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_shared_limiter *l = NULL;
  char ctx[64];
  TRY(tw_shared_limiter_new_with_seed(config, strlen(config), to_u64(num(v, "seed", 0.0)), &l, ERR), "config");
  TRY(tw_shared_limiter_use_host_clock(l, true, ERR), "config");
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(v, "steps")) {
    step_ctx(ctx, sizeof ctx, i++, step);
    const char *op = str(step, "op");
    cJSON *actual = NULL;
    if (strcmp(op, "check") == 0) {
      const char *key = str(step, "key");
      if (shared_check(l, step, key ? key : "", &actual, ctx) != 0) goto out;
    } else if (strcmp(op, "storeState") == 0) {
      tw_breaker_state s;
      TRY(tw_shared_limiter_store_state(l, &s, ERR), ctx);
      actual = cJSON_CreateString(tw_breaker_state_str(s));
    } else if (strcmp(op, "metrics") == 0) {
      char buf[1024];
      TRY(tw_shared_limiter_metrics_json(l, buf, sizeof buf, NULL, ERR), ctx);
      actual = cJSON_Parse(buf);
    } else if (strcmp(op, "events") == 0) {
      cJSON *list = cJSON_CreateArray();
      for (;;) {
        tw_event e;
        tw_error *err = NULL;
        tw_status st = tw_shared_limiter_poll_event(l, &e, &err);
        if (st != TW_STATUS_OK) { cJSON_Delete(list); ok(st, err, ctx); goto out; }
        if (e.type == TW_EVENT_TYPE_NONE) break;
        cJSON_AddItemToArray(list, event_json(&e));
      }
      if (expect_always(step, list, ctx) != 0) goto out;
      continue;
    } else {
      fail("%s: unknown sharedRateLimit op", ctx);
      goto out;
    }
    if (expect(step, actual, ctx) != 0) goto out;
  }
  rc = 0;
out:
  tw_shared_limiter_free(l);
  free(config);
  return rc;
}

/* Whether a rateLimit vector replays through the shared path: every limit gcra. */
static int is_gcra(const cJSON *v) {
  const char *kind = str(v, "kind");
  if (!kind || strcmp(kind, "rateLimit") != 0) return 0;
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "config");
  if (cJSON_IsArray(c)) {
    const cJSON *limit;
    cJSON_ArrayForEach(limit, c) {
      const char *a = str(limit, "algorithm");
      if (!a || strcmp(a, "gcra") != 0) return 0;
    }
    return 1;
  }
  const char *a = str(c, "algorithm");
  return a && strcmp(a, "gcra") == 0;
}

/* A gcra rate-limit vector's checks through the shared path: the same answers. */
static int replay_gcra(const cJSON *v) {
  int rc = -1;
  cJSON *shared = cJSON_CreateObject();
  cJSON_AddItemToObject(shared, "rateLimit", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(v, "config"), 1));
  char key[256];
  snprintf(key, sizeof key, "vectors:%s", str(v, "name") ? str(v, "name") : "vector");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(shared, "store"), "key", key);
  char *config = cJSON_PrintUnformatted(shared);
  cJSON_Delete(shared);
  tw_shared_limiter *l = NULL;
  char ctx[80];
  TRY(tw_shared_limiter_new_with_seed(config, strlen(config), 0, &l, ERR), "shared config");
  TRY(tw_shared_limiter_use_host_clock(l, true, ERR), "shared config");
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(v, "steps")) {
    char sub[64];
    step_ctx(sub, sizeof sub, i++, step);
    snprintf(ctx, sizeof ctx, "shared %s", sub);
    if (strcmp(str(step, "op"), "check") != 0) continue;
    cJSON *actual = NULL;
    if (shared_check(l, step, "", &actual, ctx) != 0) goto out;
    if (expect(step, actual, ctx) != 0) goto out;
  }
  rc = 0;
out:
  tw_shared_limiter_free(l);
  free(config);
  return rc;
}

static void redis_flushall(void) {
  redisReply *r = redisCommand(redis_admin, "FLUSHALL");
  if (r) freeReplyObject(r);
}

/* ---------------------------------------------------------------- fleet */

/* One call through `p` at the step's time, its attempt (if one runs) ending with the step's
 * `outcome`; every STORE step is run on Redis through the adapter. `*actual` is
 * {"result": "ok" | "failed" | <error kind>, "requests": <STORE steps the call carried>}. */
static int fleet_call(tw_pipeline *p, const cJSON *step, cJSON **actual, const char *ctx) {
  uint64_t now = at(step);
  const char *outcome = str(step, "outcome") ? str(step, "outcome") : "success";
  bool success = strcmp(outcome, "success") == 0;
  if (!success && strcmp(outcome, "failure") != 0) return fail("%s: unknown outcome \"%s\"", ctx, outcome);
  tw_call call;
  TRY(tw_call_begin(p, now, TW_NO_DEADLINE, &call, ERR), ctx);
  int requests = 0;
  for (int n = 0; n < 16; n++) {
    tw_step s;
    TRY(tw_call_poll(p, call, now, &s, ERR), ctx);
    if (s.kind == TW_STEP_KIND_STORE) {
      requests++;
      tw_store_request req;
      TRY(tw_call_store_request(p, call, &req, ERR), ctx);
      if (req.id != s.request) return fail("%s: the STORE step names request %llu, the copy %llu", ctx,
                                           (unsigned long long)s.request, (unsigned long long)req.id);
      note_script(&req);
      tw_store_reply reply;
      memset(&reply, 0, sizeof reply);
      tw_hiredis_run(redis_store, &req, &reply);
      if (reply.kind != TW_STORE_REPLY_KIND_VALUES)
        return fail("%s: Redis did not answer the %.*s script (kind %u: %s)", ctx, (int)req.script_name.len,
                    req.script_name.ptr, reply.kind, reply.message);
      TRY(tw_call_report_store(p, call, &reply, now, ERR), ctx);
    } else if (s.kind == TW_STEP_KIND_ATTEMPT) {
      tw_report r = {0};
      r.outcome = success ? TW_OUTCOME_SUCCESS : TW_OUTCOME_FAILURE;
      r.retryable = false;
      TRY(tw_call_report(p, call, &r, now, ERR), ctx);
    } else if (s.kind == TW_STEP_KIND_DONE || s.kind == TW_STEP_KIND_FAIL) {
      const char *result = s.kind == TW_STEP_KIND_DONE          ? "ok"
                           : s.failure.kind == TW_KIND_FAILURE ? "failed"
                                                                : tw_kind_str(s.failure.kind);
      *actual = cJSON_CreateObject();
      cJSON_AddStringToObject(*actual, "result", result);
      cJSON_AddNumberToObject(*actual, "requests", requests);
      return 0;
    } else {
      cJSON *j = step_json(&s);
      char *t = cJSON_PrintUnformatted(j);
      fail("%s: unexpected step %s", ctx, t);
      free(t);
      cJSON_Delete(j);
      return -1;
    }
  }
  return fail("%s: a call did not end within 16 steps", ctx);
out:
  return -1;
}

/* The `share` object of the stats JSON (null without one); it must agree with the struct of
 * tw_pipeline_get_share_metrics(). */
static int fleet_share(tw_pipeline *p, cJSON **actual, const char *ctx) {
  size_t need = 0;
  TRY(tw_pipeline_stats_json(p, NULL, 0, &need, ERR), ctx);
  char *text = malloc(need);
  tw_error *err = NULL;
  tw_status st = tw_pipeline_stats_json(p, text, need, NULL, &err);
  if (st != TW_STATUS_OK) {
    free(text);
    return ok(st, err, ctx);
  }
  cJSON *stats = cJSON_Parse(text);
  free(text);
  cJSON *share = cJSON_DetachItemFromObjectCaseSensitive(stats, "share");
  cJSON_Delete(stats);
  tw_share_metrics m;
  err = NULL;
  st = tw_pipeline_get_share_metrics(p, &m, &err);
  if (share == NULL) {
    *actual = cJSON_CreateNull();
    tw_error_free(err);
    if (st != TW_STATUS_NOT_CONFIGURED)
      return fail("%s: no share in the stats JSON, but tw_pipeline_get_share_metrics gave %s", ctx, tw_status_str(st));
    return 0;
  }
  *actual = share;
  if (ok(st, err, ctx) != 0) return -1;
  cJSON *typed = cJSON_CreateObject();
#define F(name, field) cJSON_AddNumberToObject(typed, name, (double)m.field)
  F("requests", requests);
  F("votes", votes);
  F("probesGranted", probes_granted);
  F("probesDenied", probes_denied);
  F("adoptedOpen", adopted_open);
  F("adoptedClosed", adopted_closed);
  F("epochChanges", epoch_changes);
  F("failed", failed);
  F("fleetCalls", fleet_calls);
  F("fleetFailures", fleet_failures);
  F("fleetReporters", fleet_reporters);
#undef F
  cJSON_AddStringToObject(typed, "fleetState", tw_breaker_state_str(m.fleet_state));
  int same = cJSON_Compare(typed, share, 1);
  if (!same) {
    char *a = cJSON_PrintUnformatted(share), *b = cJSON_PrintUnformatted(typed);
    fail("%s: the stats JSON's share %s differs from tw_pipeline_get_share_metrics %s", ctx, a, b);
    free(a);
    free(b);
  }
  cJSON_Delete(typed);
  return same ? 0 : -1;
out:
  return -1;
}

/* `instances` pipelines (seeds 1..N, the store scripts on the vector's clock) share one Redis. */
static int run_fleet(const cJSON *v) {
  int rc = -1;
  const char *description = str(v, "description");
  if (!description || !*description) return fail("a vector needs a description");
  const cJSON *instances = cJSON_GetObjectItemCaseSensitive(v, "instances");
  if (!cJSON_IsNumber(instances) || instances->valuedouble < 1 || instances->valuedouble > 64)
    return fail("instances: a number of pipelines from 1 to 64");
  int n = (int)instances->valuedouble;
  char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_pipeline **fleet = calloc((size_t)n, sizeof *fleet);
  char ctx[96];
  for (int k = 0; k < n; k++) {
    snprintf(ctx, sizeof ctx, "config (instance %d)", k);
    TRY(tw_pipeline_new_with_seed(config, strlen(config), (uint64_t)k + 1, &fleet[k], ERR), ctx);
    TRY(tw_pipeline_use_store_host_clock(fleet[k], true, ERR), ctx);
  }
  const cJSON *step;
  int i = 0;
  cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(v, "steps")) {
    char sub[64];
    step_ctx(sub, sizeof sub, i++, step);
    const cJSON *inst = cJSON_GetObjectItemCaseSensitive(step, "instance");
    if (!cJSON_IsNumber(inst)) { fail("%s: instance", sub); goto out; }
    int k = (int)inst->valuedouble;
    if (k < 0 || k >= n || (double)k != inst->valuedouble) { fail("%s: no instance %g", sub, inst->valuedouble); goto out; }
    snprintf(ctx, sizeof ctx, "%s (instance %d)", sub, k);
    tw_pipeline *p = fleet[k];
    const char *op = str(step, "op") ? str(step, "op") : "";
    cJSON *actual = NULL;
    if (strcmp(op, "call") == 0) {
      if (fleet_call(p, step, &actual, ctx) != 0) goto out;
    } else if (strcmp(op, "state") == 0) {
      tw_breaker_state s;
      TRY(tw_pipeline_get_breaker_state(p, &s, ERR), ctx);
      actual = cJSON_CreateString(tw_breaker_state_str(s));
    } else if (strcmp(op, "share") == 0) {
      if (fleet_share(p, &actual, ctx) != 0) {
        cJSON_Delete(actual);
        goto out;
      }
    } else {
      fail("%s: unknown fleet op \"%s\"", ctx, op);
      goto out;
    }
    if (expect_always(step, actual, ctx) != 0) goto out;
  }
  rc = 0;
out:
  for (int k = 0; k < n; k++) tw_pipeline_free(fleet[k]);
  free(fleet);
  free(config);
  return rc;
}

/* The runner can fail: copies of a fleet vector, each with one expectation changed (a call's
 * result, its store requests, a breaker state, a share counter, a missing instance), must each
 * be reported at that step. Returns the number of tamperings that went unnoticed. */
static int fleet_runner_fails_on_tampering(const cJSON *v) {
  static const struct {
    const char *op, *field, *to; /* field NULL: the whole expect; "instance": the step's instance */
  } cases[] = {
      {"call", "result", "\"rateLimited\""}, {"call", "requests", "7"}, {"state", NULL, "\"halfOpen\""},
      {"share", "probesGranted", "9"},        {"share", "fleetState", "\"forcedOpen\""},
      {"call", "instance", "99"},
  };
  int unnoticed = 0;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    cJSON *copy = cJSON_Duplicate(v, 1);
    cJSON *steps = cJSON_GetObjectItemCaseSensitive(copy, "steps");
    int n = cJSON_GetArraySize(steps), at_step = -1;
    /* The last step with this op whose expectation has the field. */
    for (int i = n - 1; i >= 0 && at_step < 0; i--) {
      cJSON *st = cJSON_GetArrayItem(steps, i);
      if (strcmp(str(st, "op") ? str(st, "op") : "", cases[c].op) != 0) continue;
      cJSON *e = cJSON_GetObjectItemCaseSensitive(st, "expect");
      cJSON *to = cJSON_Parse(cases[c].to);
      if (cases[c].field == NULL) {
        cJSON_ReplaceItemInObjectCaseSensitive(st, "expect", to);
      } else if (strcmp(cases[c].field, "instance") == 0) {
        cJSON_ReplaceItemInObjectCaseSensitive(st, "instance", to);
      } else if (cJSON_GetObjectItemCaseSensitive(e, cases[c].field)) {
        cJSON_ReplaceItemInObjectCaseSensitive(e, cases[c].field, to);
      } else {
        cJSON_AddItemToObject(e, cases[c].field, to);
      }
      at_step = i;
    }
    char want[32];
    snprintf(want, sizeof want, "step %d (", at_step);
    redis_flushall();
    failure_text[0] = 0;
    int r = at_step < 0 ? 0 : run_fleet(copy);
    if (r == 0 || strstr(failure_text, want) != failure_text) {
      printf("FAIL runner self-test: %s %s -> %s at step %d of %s went unnoticed or misreported: \"%s\"\n",
             cases[c].op, cases[c].field ? cases[c].field : "expect", cases[c].to, at_step, str(v, "name"),
             failure_text);
      unnoticed++;
    }
    cJSON_Delete(copy);
  }
  return unnoticed;
}

/* ---------------------------------------------------------------- config */

static int run_config(const cJSON *v) {
  const char *target = str(v, "target");
  const char *want = str(v, "expectError");
  if (!want) return fail("config vector lacks expectError");
  static const struct {
    const char *name;
    tw_config_target target;
  } targets[] = {
      {"policyFile", TW_CONFIG_TARGET_POLICY_FILE}, {"pipeline", TW_CONFIG_TARGET_PIPELINE},
      {"circuitBreaker", TW_CONFIG_TARGET_CIRCUIT_BREAKER}, {"retry", TW_CONFIG_TARGET_RETRY},
      {"timeout", TW_CONFIG_TARGET_TIMEOUT}, {"bulkhead", TW_CONFIG_TARGET_BULKHEAD},
      {"rateLimit", TW_CONFIG_TARGET_RATE_LIMIT},
  };
  size_t k = 0;
  while (k < sizeof targets / sizeof targets[0] && (!target || strcmp(targets[k].name, target) != 0)) k++;
  if (k == sizeof targets / sizeof targets[0]) return fail("unknown target %s", target ? target : "(none)");
  char *text = NULL;
  const char *config_text = str(v, "configText");
  if (!config_text) config_text = text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(v, "config"));
  tw_error *err = NULL;
  tw_status st = tw_config_validate(targets[k].target, config_text, strlen(config_text), &err);
  int r = starts_with_error(st, err, want, "config");
  free(text);
  return r;
}

/* ---------------------------------------------------------------- main */

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  buf[got] = 0;
  fclose(f);
  return buf;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "tests/vectors";
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "vectors: cannot open %s\n", dir);
    return 2;
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
      names = realloc(names, (n + 1) * sizeof *names);
      names[n++] = strdup(e->d_name);
    }
  }
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  const char *url = getenv("TRIPWIRE_REDIS_URL");
  if (url && *url) {
    redis_conn = redis_connect(url);
    redis_admin = redis_connect(url);
    const char *why = NULL;
    redis_store = tw_hiredis_new(redis_conn, &why);
    if (!redis_store || !redis_admin || redis_admin->err) {
      fprintf(stderr, "vectors: cannot use Redis at %s: %s\n", url, why ? why : redis_admin ? redis_admin->errstr : "?");
      return 2;
    }
    redisReply *flushed = redisCommand(redis_admin, "SCRIPT FLUSH"); /* the first request meets NOSCRIPT */
    if (flushed) freeReplyObject(flushed);
  } else if (getenv("TRIPWIRE_REQUIRE_REDIS")) {
    fprintf(stderr, "vectors: TRIPWIRE_REQUIRE_REDIS is set but TRIPWIRE_REDIS_URL is not\n");
    return 2;
  }
  size_t failed = 0, skipped = 0, through_redis = 0, fleet_vectors = 0;
  cJSON *tamper_with = NULL; /* the first fleet vector that passed */
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    char *text = read_file(path);
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    free(text);
    failure_text[0] = 0;
    int r;
    const char *kind = v ? str(v, "kind") : NULL;
    if (!v) r = fail("not JSON");
    else if (!kind) r = fail("no kind");
    else if (strcmp(kind, "circuitBreaker") == 0) r = run_breaker(v);
    else if (strcmp(kind, "rateLimit") == 0) r = run_rate_limit(v, 0);
    else if (strcmp(kind, "keyedRateLimit") == 0) r = run_rate_limit(v, 1);
    else if (strcmp(kind, "bulkhead") == 0) r = run_bulkhead(v);
    else if (strcmp(kind, "pipeline") == 0 || strcmp(kind, "policyFile") == 0) r = run_pipeline(v);
    else if (strcmp(kind, "retry") == 0) r = run_retry(v);
    else if (strcmp(kind, "health") == 0) r = run_health(v);
    else if (strcmp(kind, "config") == 0) r = run_config(v);
    else if (strcmp(kind, "sharedRateLimit") == 0) {
      if (redis_store) {
        redis_flushall();
        through_redis++;
        r = run_shared(v);
      } else {
        skipped++;
        r = 0;
      }
    } else if (strcmp(kind, "fleet") == 0) {
      if (redis_store) {
        redis_flushall();
        through_redis++;
        fleet_vectors++;
        r = run_fleet(v);
        if (r == 0 && tamper_with == NULL) tamper_with = cJSON_Duplicate(v, 1);
      } else {
        skipped++;
        r = 0;
      }
    } else r = fail("unknown kind %s", kind);
    if (r == 0 && redis_store && is_gcra(v)) {
      redis_flushall();
      through_redis++;
      r = replay_gcra(v);
    }
    if (r != 0) {
      failed++;
      printf("FAIL %s: %s\n", names[i], failure_text);
    }
    cJSON_Delete(v);
    free(names[i]);
  }
  free(names);
  size_t passed = n - failed - skipped;
  int self_test = -1;
  if (tamper_with) {
    self_test = fleet_runner_fails_on_tampering(tamper_with);
    cJSON_Delete(tamper_with);
    if (self_test != 0) failed++;
  } else if (redis_store) {
    printf("FAIL runner self-test: no fleet vector passed to tamper with\n");
    failed++;
  }
  printf("vectors: %zu passed, %zu failed", passed, failed);
  if (self_test == 0) printf("; 6 tampered fleet expectations each reported at their step");
  if (redis_store) {
    /* Each script was loaded once, by the EVAL after its first NOSCRIPT (FLUSHALL keeps it). */
    tw_hiredis_counters c;
    tw_hiredis_get_counters(redis_store, &c);
    printf("; %zu replayed through Redis (%zu fleet; %llu requests, %llu EVAL for %zu scripts)", through_redis,
           fleet_vectors, (unsigned long long)c.sent, (unsigned long long)c.evals, nscripts_seen);
    if (c.evals != nscripts_seen || nscripts_seen < 2 || through_redis < 4 || fleet_vectors < 3) {
      printf("\nFAIL: expected one EVAL per script (gcra and breaker), at least 4 vectors through Redis, 3 of them fleet");
      failed++;
    }
    tw_hiredis_free(redis_store);
    redisFree(redis_conn);
    redisFree(redis_admin);
  } else if (skipped) {
    printf("; %zu sharedRateLimit and fleet vectors SKIPPED (no TRIPWIRE_REDIS_URL)", skipped);
  }
  printf("\n");
  return failed == 0 && n > 0 ? 0 : 1;
}
