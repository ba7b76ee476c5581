/* API tests of tripwire.h as a C user writes them: the step protocol on a fake clock, the
 * blocking helpers, errors (NULL, invalid JSON, zero-length and undersized buffers, stale call
 * handles, bad enum values), events and listeners, stats and Prometheus text, every handle. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tripwire.h"

static int passed, failed;

#define CHECK(cond)                                                  \
  do {                                                               \
    if (cond) {                                                      \
      passed++;                                                      \
    } else {                                                         \
      failed++;                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                \
  } while (0)

#define MS(x) ((uint64_t)(x) * 1000000u)
#define JSON(s) s, strlen(s)

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* ---------------------------------------------------------------- errors */

static void test_statuses_and_names(void) {
  CHECK(strcmp(tw_status_str(TW_STATUS_OK), "ok") == 0);
  CHECK(strcmp(tw_status_str(TW_STATUS_CIRCUIT_OPEN), "circuitOpen") == 0);
  CHECK(strcmp(tw_status_str((tw_status)12345), "unknown") == 0);
  CHECK(TW_STATUS_CIRCUIT_OPEN == 100 + TW_KIND_CIRCUIT_OPEN);
  CHECK(TW_STATUS_FAILURE == 100 + TW_KIND_FAILURE);
  CHECK(strcmp(tw_kind_str(TW_KIND_RETRIES_EXHAUSTED), "retriesExhausted") == 0);
  CHECK(strcmp(tw_breaker_state_str(TW_BREAKER_STATE_HALF_OPEN), "halfOpen") == 0);
  CHECK(strcmp(tw_breaker_state_str(99), "unknown") == 0);
  CHECK(strcmp(tw_event_type_str(TW_EVENT_TYPE_RETRY_SCHEDULED), "retryScheduled") == 0);
  CHECK(strcmp(tw_health_status_str(TW_HEALTH_STATUS_DEGRADED), "degraded") == 0);
  CHECK(strcmp(tw_check_status_str(TW_CHECK_STATUS_PENDING), "pending") == 0);
  CHECK(strcmp(tw_check_status_str(TW_CHECK_STATUS_UNKNOWN), "unknown") == 0);
  uint64_t a = tw_now_ns(), b = tw_now_ns();
  CHECK(b >= a);
}

static void test_null_arguments(void) {
  tw_pipeline *p = NULL;
  tw_error *err = NULL;
  CHECK(tw_pipeline_new(NULL, 0, &p, &err) == TW_STATUS_NULL_ARGUMENT);
  CHECK(p == NULL);
  CHECK(err != NULL && tw_error_status(err) == TW_STATUS_NULL_ARGUMENT);
  CHECK(err != NULL && strstr(tw_error_message(err), "json") != NULL);
  tw_error_free(err);
  err = NULL;
  CHECK(tw_pipeline_new(JSON("{}"), NULL, &err) == TW_STATUS_NULL_ARGUMENT);
  CHECK(err != NULL && strstr(tw_error_message(err), "out") != NULL);
  tw_error_free(err);
  /* The error out-param is optional; the thread-local last error still records. */
  tw_step step;
  CHECK(tw_call_poll(NULL, 1, 0, &step, NULL) == TW_STATUS_NULL_ARGUMENT);
  CHECK(tw_last_error_status() == TW_STATUS_NULL_ARGUMENT);
  CHECK(strstr(tw_last_error_message(), "pipeline") != NULL);
  CHECK(tw_breaker_acquire(NULL, 0, NULL, NULL) == TW_STATUS_NULL_ARGUMENT);
  CHECK(tw_health_report(NULL, 1, true, 0, NULL, 0, NULL) == TW_STATUS_NULL_ARGUMENT);
  CHECK(tw_pipeline_execute(NULL, NULL, NULL, NULL) == TW_STATUS_NULL_ARGUMENT);
  /* Freeing NULL is a no-op, as with free(3); reading a NULL error is harmless. */
  tw_pipeline_free(NULL);
  tw_breaker_free(NULL);
  tw_limiter_free(NULL);
  tw_keyed_limiter_free(NULL);
  tw_bulkhead_free(NULL);
  tw_retry_free(NULL);
  tw_health_free(NULL);
  tw_policies_free(NULL);
  tw_error_free(NULL);
  CHECK(strcmp(tw_error_message(NULL), "") == 0);
  CHECK(tw_error_status(NULL) == TW_STATUS_NULL_ARGUMENT);
}

static void test_invalid_config(void) {
  tw_pipeline *p = NULL;
  tw_error *err = NULL;
  CHECK(tw_pipeline_new(JSON("{not json"), &p, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(err != NULL && starts_with(tw_error_message(err), "invalid JSON"));
  tw_error_free(err);
  err = NULL;
  /* Zero length: not a document. */
  CHECK(tw_pipeline_new("{}", 0, &p, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(p == NULL);
  tw_error_free(err);
  err = NULL;
  const char *bad = "{\"circuitBreaker\": {\"halfOpen\": {\"permittedCalls\": 0}}}";
  CHECK(tw_pipeline_new(JSON(bad), &p, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(err != NULL && strcmp(tw_error_path(err), "circuitBreaker.halfOpen.permittedCalls") == 0);
  CHECK(err != NULL && strstr(tw_error_message(err), "must be >= 1, got 0") != NULL);
  tw_error_free(err);
  err = NULL;
  CHECK(tw_pipeline_new(JSON("{\"retry\": {\"maxRetriez\": 3}}"), &p, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(err != NULL && strstr(tw_error_message(err), "maxRetriez") != NULL);
  tw_error_free(err);
  err = NULL;
  const char not_utf8[] = "{\"seed\": \"\xff\"}";
  CHECK(tw_pipeline_new(not_utf8, sizeof not_utf8 - 1, &p, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(err != NULL && strstr(tw_error_message(err), "UTF-8") != NULL);
  tw_error_free(err);
  /* The first error wins: an unreleased error is never overwritten. */
  err = NULL;
  tw_breaker *b = NULL;
  CHECK(tw_breaker_new(JSON("42"), &b, &err) == TW_STATUS_INVALID_CONFIG);
  tw_error *first = err;
  CHECK(tw_breaker_new(NULL, 0, &b, &err) == TW_STATUS_NULL_ARGUMENT);
  CHECK(err == first && tw_error_status(err) == TW_STATUS_INVALID_CONFIG);
  tw_error_free(err);
  /* Validation without building. */
  err = NULL;
  CHECK(tw_config_validate(TW_CONFIG_TARGET_RETRY, JSON("{\"maxRetries\": 2}"), NULL) == TW_STATUS_OK);
  CHECK(tw_config_validate(TW_CONFIG_TARGET_TIMEOUT, JSON("{\"perAttempt\": 0}"), &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(err != NULL && starts_with(tw_error_message(err), "perAttempt"));
  tw_error_free(err);
  CHECK(tw_config_validate((tw_config_target)42, JSON("{}"), NULL) == TW_STATUS_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- step protocol */

static void test_step_protocol_on_a_fake_clock(void) {
  const char *cfg =
      "{\"retry\": {\"maxRetries\": 2, \"backoff\": {\"type\": \"constant\", \"base\": \"100ms\", \"jitter\": \"none\"}},"
      " \"timeout\": {\"perAttempt\": \"1s\"}, \"seed\": 7}";
  tw_pipeline *p = NULL;
  CHECK(tw_pipeline_new(JSON(cfg), &p, NULL) == TW_STATUS_OK);
  tw_call call;
  tw_step s;
  CHECK(tw_call_begin(p, MS(0), TW_NO_DEADLINE, &call, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, call, MS(0), &s, NULL) == TW_STATUS_OK);
  CHECK(s.kind == TW_STEP_KIND_ATTEMPT && s.attempt == 1);
  CHECK(s.has_deadline && s.deadline_ns == MS(1000));
  /* Polling again while the attempt runs is misuse. */
  CHECK(tw_call_poll(p, call, MS(1), &s, NULL) == TW_STATUS_ATTEMPT_IN_FLIGHT);
  tw_report fail = {.outcome = TW_OUTCOME_FAILURE, .retryable = true};
  CHECK(tw_call_report(p, call, &fail, MS(10), NULL) == TW_STATUS_OK);
  CHECK(tw_call_report(p, call, &fail, MS(10), NULL) == TW_STATUS_NO_ATTEMPT_IN_FLIGHT);
  CHECK(tw_call_poll(p, call, MS(10), &s, NULL) == TW_STATUS_OK);
  CHECK(s.kind == TW_STEP_KIND_SLEEP && s.has_until && s.until_ns == MS(110));
  CHECK(tw_call_poll(p, call, MS(110), &s, NULL) == TW_STATUS_OK);
  CHECK(s.kind == TW_STEP_KIND_ATTEMPT && s.attempt == 2);
  tw_report ok = {.outcome = TW_OUTCOME_SUCCESS};
  CHECK(tw_call_report(p, call, &ok, MS(120), NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, call, MS(120), &s, NULL) == TW_STATUS_OK);
  CHECK(s.kind == TW_STEP_KIND_DONE && s.attempt == 2);
  /* The call is over: its handle is stale, whatever is asked of it. */
  tw_error *err = NULL;
  CHECK(tw_call_poll(p, call, MS(121), &s, &err) == TW_STATUS_UNKNOWN_CALL);
  CHECK(err != NULL && strcmp(tw_error_message(err), "unknown or finished call handle") == 0);
  tw_error_free(err);
  CHECK(tw_call_report(p, call, &ok, MS(121), NULL) == TW_STATUS_UNKNOWN_CALL);
  CHECK(tw_call_end(p, call, MS(121), NULL) == TW_STATUS_UNKNOWN_CALL);
  CHECK(tw_call_poll(p, 0xdeadbeef12345ull, MS(121), &s, NULL) == TW_STATUS_UNKNOWN_CALL);
  /* A new call reuses the slot with a new generation: the old handle stays stale. */
  tw_call again;
  CHECK(tw_call_begin(p, MS(200), TW_NO_DEADLINE, &again, NULL) == TW_STATUS_OK);
  CHECK(again != call);
  CHECK(tw_call_poll(p, call, MS(200), &s, NULL) == TW_STATUS_UNKNOWN_CALL);
  /* An outcome that is not a tw_outcome is refused, and the call is still usable. */
  CHECK(tw_call_poll(p, again, MS(200), &s, NULL) == TW_STATUS_OK && s.kind == TW_STEP_KIND_ATTEMPT);
  tw_report bogus = {.outcome = (tw_outcome)77};
  CHECK(tw_call_report(p, again, &bogus, MS(201), NULL) == TW_STATUS_INVALID_ARGUMENT);
  CHECK(tw_call_report(p, again, NULL, MS(201), NULL) == TW_STATUS_NULL_ARGUMENT);
  CHECK(tw_call_end(p, again, MS(202), NULL) == TW_STATUS_OK);
  /* Events: one retry scheduled. */
  tw_event e;
  int retries = 0, n = 0;
  while (tw_pipeline_poll_event(p, &e, NULL) == TW_STATUS_OK && e.type != TW_EVENT_TYPE_NONE) {
    n++;
    if (e.type == TW_EVENT_TYPE_RETRY_SCHEDULED) {
      retries++;
      CHECK(e.attempt == 2 && e.delay_ns == MS(100) && e.at_ns == MS(10));
    }
  }
  CHECK(retries == 1 && n == 1);
  tw_pipeline_stats st;
  CHECK(tw_pipeline_get_stats(p, &st, NULL) == TW_STATUS_OK);
  CHECK(st.calls == 2 && st.succeeded == 1 && st.cancelled == 1 && st.attempts == 3 && st.in_flight == 0);
  CHECK(!st.has_breaker);
  tw_breaker_state bs;
  CHECK(tw_pipeline_get_breaker_state(p, &bs, NULL) == TW_STATUS_NOT_CONFIGURED);
  CHECK(tw_pipeline_breaker_reset(p, 0, NULL) == TW_STATUS_NOT_CONFIGURED);
  tw_pipeline_free(p);
}

static void test_rejections_carry_retry_after(void) {
  const char *cfg = "{\"circuitBreaker\": {\"trip\": {\"consecutiveFailures\": 1}, \"openDuration\": \"5s\"}}";
  tw_pipeline *p = NULL;
  CHECK(tw_pipeline_new(JSON(cfg), &p, NULL) == TW_STATUS_OK);
  tw_call c;
  tw_step s;
  tw_report fail = {.outcome = TW_OUTCOME_FAILURE, .retryable = true};
  CHECK(tw_call_begin(p, MS(0), TW_NO_DEADLINE, &c, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, c, MS(0), &s, NULL) == TW_STATUS_OK && s.kind == TW_STEP_KIND_ATTEMPT);
  CHECK(tw_call_report(p, c, &fail, MS(1), NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, c, MS(1), &s, NULL) == TW_STATUS_OK);
  CHECK(s.kind == TW_STEP_KIND_FAIL && s.failure.kind == TW_KIND_FAILURE && s.failure.fallback);
  CHECK(tw_call_begin(p, MS(1000), TW_NO_DEADLINE, &c, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, c, MS(1000), &s, NULL) == TW_STATUS_OK);
  CHECK(s.kind == TW_STEP_KIND_FAIL && s.failure.kind == TW_KIND_CIRCUIT_OPEN);
  CHECK(s.failure.has_retry_after && s.failure.retry_after_ns == MS(4001));
  CHECK(s.failure.attempts == 0 && s.failure.cause == TW_KIND_NONE);
  tw_breaker_state bs;
  CHECK(tw_pipeline_get_breaker_state(p, &bs, NULL) == TW_STATUS_OK && bs == TW_BREAKER_STATE_OPEN);
  bool has;
  uint64_t when;
  CHECK(tw_pipeline_poll_timeout(p, &has, &when, NULL) == TW_STATUS_OK && has && when == MS(5001));
  /* Prometheus text and JSON stats, through caller buffers. */
  size_t need = 0;
  CHECK(tw_pipeline_prometheus(p, "api", NULL, 0, &need, NULL) == TW_STATUS_OK);
  CHECK(need > 100);
  char *text = malloc(need);
  CHECK(tw_pipeline_prometheus(p, "api", text, need, NULL, NULL) == TW_STATUS_OK);
  CHECK(strlen(text) + 1 == need);
  CHECK(strstr(text, "tripwire_calls_total{pipeline=\"api\"} 2\n") != NULL);
  CHECK(strstr(text, "tripwire_calls_failed_total{pipeline=\"api\",kind=\"circuitOpen\"} 1\n") != NULL);
  CHECK(strstr(text, "tripwire_breaker_state{pipeline=\"api\",state=\"open\"} 1\n") != NULL);
  free(text);
  char small[8] = "xxxxxxx";
  tw_error *err = NULL;
  CHECK(tw_pipeline_stats_json(p, small, sizeof small, &need, &err) == TW_STATUS_BUFFER_TOO_SMALL);
  CHECK(small[0] == '\0' && need > sizeof small);
  CHECK(err != NULL && strstr(tw_error_message(err), "too few") != NULL);
  tw_error_free(err);
  CHECK(tw_pipeline_stats_json(p, small, 0, &need, NULL) == TW_STATUS_BUFFER_TOO_SMALL);
  CHECK(small[0] == '\0');
  CHECK(tw_pipeline_stats_json(p, NULL, 16, &need, NULL) == TW_STATUS_NULL_ARGUMENT);
  CHECK(tw_pipeline_stats_json(p, NULL, 0, NULL, NULL) == TW_STATUS_NULL_ARGUMENT);
  char *json = malloc(need);
  size_t again = 0;
  CHECK(tw_pipeline_stats_json(p, json, need, &again, NULL) == TW_STATUS_OK && again == need);
  CHECK(strstr(json, "\"calls\":2") != NULL && strstr(json, "\"circuitOpen\":1") != NULL);
  free(json);
  CHECK(tw_pipeline_prometheus(p, NULL, NULL, 0, &need, NULL) == TW_STATUS_NULL_ARGUMENT);
  CHECK(tw_pipeline_breaker_reset(p, MS(1001), NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_get_breaker_state(p, &bs, NULL) == TW_STATUS_OK && bs == TW_BREAKER_STATE_CLOSED);
  tw_pipeline_free(p);
}

/* ---------------------------------------------------------------- blocking execute */

typedef struct {
  int calls;
  int fail_first; /* attempts that fail before one succeeds */
  int result;
} job;

static tw_outcome flaky(void *ctx, tw_attempt *a) {
  job *j = ctx;
  j->calls++;
  if (a->number <= (uint32_t)j->fail_first) {
    a->retryable = true;
    return TW_OUTCOME_FAILURE;
  }
  j->result = 42;
  return TW_OUTCOME_SUCCESS;
}

static tw_status cached(void *fallback_ctx, void *call_ctx, const tw_failure *f) {
  (void)f;
  job *j = call_ctx;
  j->result = *(int *)fallback_ctx;
  return TW_STATUS_OK;
}

static tw_status declines(void *fallback_ctx, void *call_ctx, const tw_failure *f) {
  (void)call_ctx;
  (void)f;
  ++*(int *)fallback_ctx;
  return TW_STATUS_FAILURE;
}

static int state_changes;
static void count_state_changes(void *ctx, const tw_event *e) {
  (void)ctx;
  if (e->type == TW_EVENT_TYPE_STATE_CHANGED) state_changes++;
}

static void test_execute(void) {
  const char *cfg =
      "{\"retry\": {\"maxRetries\": 3, \"backoff\": {\"type\": \"constant\", \"base\": \"1ms\", \"jitter\": \"none\"}},"
      " \"circuitBreaker\": {\"trip\": {\"consecutiveFailures\": 2}, \"openDuration\": \"1h\"},"
      " \"order\": [\"circuitBreaker\", \"retry\"]}";
  tw_pipeline *p = NULL;
  CHECK(tw_pipeline_new(JSON(cfg), &p, NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_set_listener(p, count_state_changes, NULL, NULL) == TW_STATUS_OK);
  job j = {0, 2, 0};
  CHECK(tw_pipeline_execute(p, flaky, &j, NULL) == TW_STATUS_OK);
  CHECK(j.calls == 3 && j.result == 42);
  /* Exhausted: 4 attempts; the breaker (outside retry) sees one failure per call. */
  job k = {0, 100, 0};
  tw_failure f;
  tw_error *err = NULL;
  CHECK(tw_pipeline_execute_ex(p, flaky, &k, TW_NO_DEADLINE, &f, &err) == TW_STATUS_RETRIES_EXHAUSTED);
  CHECK(k.calls == 4 && f.kind == TW_KIND_RETRIES_EXHAUSTED && f.attempts == 4 && f.cause == TW_KIND_FAILURE);
  CHECK(err != NULL && starts_with(tw_error_message(err), "retriesExhausted after 4 attempt"));
  tw_error_free(err);
  k.calls = 0;
  CHECK(tw_pipeline_execute(p, flaky, &k, NULL) == TW_STATUS_RETRIES_EXHAUSTED);
  CHECK(state_changes == 1);
  /* Open: refused without running; fallbacks tried in order. */
  job l = {0, 0, 0};
  CHECK(tw_pipeline_execute(p, flaky, &l, NULL) == TW_STATUS_CIRCUIT_OPEN && l.calls == 0);
  int declined = 0, cached_value = 7;
  CHECK(tw_pipeline_add_fallback(p, declines, &declined, NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_add_fallback(p, cached, &cached_value, NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_add_fallback(p, NULL, NULL, NULL) == TW_STATUS_NULL_ARGUMENT);
  CHECK(tw_pipeline_execute(p, flaky, &l, NULL) == TW_STATUS_OK);
  CHECK(l.calls == 0 && l.result == 7 && declined == 1);
  CHECK(tw_pipeline_clear_fallbacks(p, NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_execute(p, flaky, &l, NULL) == TW_STATUS_CIRCUIT_OPEN);
  CHECK(tw_pipeline_execute(p, NULL, &l, NULL) == TW_STATUS_NULL_ARGUMENT);
  tw_pipeline_free(p);

  /* An attempt that returns after its deadline is a timeout. */
  const char *slow_cfg = "{\"timeout\": {\"perAttempt\": \"1ns\"}}";
  CHECK(tw_pipeline_new(JSON(slow_cfg), &p, NULL) == TW_STATUS_OK);
  job m = {0, 0, 0};
  CHECK(tw_pipeline_execute_ex(p, flaky, &m, TW_NO_DEADLINE, &f, NULL) == TW_STATUS_TIMEOUT);
  CHECK(m.calls == 1 && f.kind == TW_KIND_TIMEOUT);
  tw_pipeline_free(p);
}

/* ---------------------------------------------------------------- breaker, limiters, bulkhead, retry */

static tw_outcome always(void *ctx, tw_attempt *a) {
  (void)a;
  return *(tw_outcome *)ctx;
}

static void test_breaker(void) {
  tw_breaker *b = NULL;
  CHECK(tw_breaker_new(JSON("{\"trip\": {\"consecutiveFailures\": 2}, \"openDuration\": \"30s\"}"), &b, NULL) == TW_STATUS_OK);
  tw_admission a;
  CHECK(tw_breaker_acquire(b, MS(0), &a, NULL) == TW_STATUS_OK && a.admitted);
  CHECK(tw_breaker_record(b, a.permit, TW_BREAKER_OUTCOME_FAILURE, MS(1), NULL) == TW_STATUS_OK);
  CHECK(tw_breaker_record(b, a.permit, (tw_breaker_outcome)9, MS(1), NULL) == TW_STATUS_INVALID_ARGUMENT);
  tw_outcome failure = TW_OUTCOME_FAILURE;
  CHECK(tw_breaker_execute(b, always, &failure, NULL) == TW_STATUS_FAILURE);
  tw_breaker_state s;
  CHECK(tw_breaker_get_state(b, &s, NULL) == TW_STATUS_OK && s == TW_BREAKER_STATE_OPEN);
  CHECK(tw_breaker_execute(b, always, &failure, NULL) == TW_STATUS_CIRCUIT_OPEN);
  uint64_t now = tw_now_ns();
  CHECK(tw_breaker_acquire(b, now, &a, NULL) == TW_STATUS_OK && !a.admitted && a.has_retry_after);
  CHECK(a.retry_after_ns > MS(29000) && a.retry_after_ns <= MS(30000));
  size_t need = 0;
  CHECK(tw_breaker_snapshot(b, NULL, 0, &need, NULL) == TW_STATUS_OK);
  char *snap = malloc(need);
  CHECK(tw_breaker_snapshot(b, snap, need, NULL, NULL) == TW_STATUS_OK);
  CHECK(strstr(snap, "\"open\"") != NULL);
  tw_breaker *copy = NULL;
  CHECK(tw_breaker_new(JSON("{\"trip\": {\"consecutiveFailures\": 2}, \"openDuration\": \"30s\"}"), &copy, NULL) == TW_STATUS_OK);
  CHECK(tw_breaker_restore(copy, snap, strlen(snap), now, NULL) == TW_STATUS_OK);
  CHECK(tw_breaker_get_state(copy, &s, NULL) == TW_STATUS_OK && s == TW_BREAKER_STATE_OPEN);
  CHECK(tw_breaker_restore(copy, JSON("{\"state\": \"sideways\"}"), now, NULL) == TW_STATUS_INVALID_CONFIG);
  free(snap);
  tw_breaker_free(copy);
  tw_breaker_metrics m;
  CHECK(tw_breaker_get_metrics(b, &m, NULL) == TW_STATUS_OK);
  CHECK(m.failures == 2 && m.rejected == 2 && m.transitions == 1 && m.state == TW_BREAKER_STATE_OPEN);
  tw_event e;
  CHECK(tw_breaker_poll_event(b, &e, NULL) == TW_STATUS_OK && e.type == TW_EVENT_TYPE_STATE_CHANGED);
  CHECK(e.from == TW_BREAKER_STATE_CLOSED && e.to == TW_BREAKER_STATE_OPEN);
  CHECK(tw_breaker_reset(b, now, NULL) == TW_STATUS_OK);
  tw_outcome success = TW_OUTCOME_SUCCESS;
  CHECK(tw_breaker_execute(b, always, &success, NULL) == TW_STATUS_OK);
  tw_breaker_free(b);
}

static void test_limiters(void) {
  tw_limiter *l = NULL;
  CHECK(tw_limiter_new(JSON("{\"rate\": \"10/s\", \"burst\": 2}"), &l, NULL) == TW_STATUS_OK);
  tw_rate_decision d;
  CHECK(tw_limiter_check(l, 0, 1, &d, NULL) == TW_STATUS_OK && d.allowed && d.wait_ns == 0);
  CHECK(tw_limiter_check(l, 0, 1, &d, NULL) == TW_STATUS_OK && d.allowed);
  CHECK(tw_limiter_check(l, 0, 1, &d, NULL) == TW_STATUS_OK && !d.allowed);
  CHECK(d.has_retry_after && d.retry_after_ns == MS(100));
  CHECK(tw_limiter_check(l, 0, 1, NULL, NULL) == TW_STATUS_NULL_ARGUMENT);
  tw_limiter_metrics m;
  CHECK(tw_limiter_get_metrics(l, &m, NULL) == TW_STATUS_OK && m.allowed == 2 && m.denied == 1);
  tw_limiter_free(l);

  tw_keyed_limiter *k = NULL;
  CHECK(tw_keyed_limiter_new(JSON("{\"limit\": {\"rate\": \"1/s\", \"burst\": 1}, \"maxKeys\": 100}"), &k, NULL) == TW_STATUS_OK);
  CHECK(tw_keyed_limiter_check(k, "alice", 5, 0, 1, &d, NULL) == TW_STATUS_OK && d.allowed);
  CHECK(tw_keyed_limiter_check(k, "alice", 5, 0, 1, &d, NULL) == TW_STATUS_OK && !d.allowed);
  CHECK(tw_keyed_limiter_check(k, "bob", 3, 0, 1, &d, NULL) == TW_STATUS_OK && d.allowed);
  CHECK(tw_keyed_limiter_check(k, "\xc3", 1, 0, 1, &d, NULL) == TW_STATUS_INVALID_ARGUMENT);
  CHECK(tw_keyed_limiter_check(k, NULL, 0, 0, 1, &d, NULL) == TW_STATUS_NULL_ARGUMENT);
  tw_keyed_limiter_metrics km;
  CHECK(tw_keyed_limiter_get_metrics(k, &km, NULL) == TW_STATUS_OK && km.keys == 2 && km.denied == 1);
  tw_keyed_limiter_free(k);
}

static void test_bulkhead_and_retry(void) {
  tw_bulkhead *b = NULL;
  CHECK(tw_bulkhead_new(JSON("{\"maxConcurrent\": 1, \"maxQueue\": 1, \"maxWait\": \"1s\"}"), &b, NULL) == TW_STATUS_OK);
  tw_entry e1, e2, e3;
  CHECK(tw_bulkhead_enter(b, 0, TW_NO_DEADLINE, &e1, NULL) == TW_STATUS_OK && e1.result == TW_ENTRY_RESULT_ADMITTED);
  CHECK(tw_bulkhead_enter(b, 0, TW_NO_DEADLINE, &e2, NULL) == TW_STATUS_OK && e2.result == TW_ENTRY_RESULT_QUEUED);
  CHECK(e2.ticket != 0 && e2.has_until && e2.until_ns == MS(1000));
  CHECK(tw_bulkhead_enter(b, 0, TW_NO_DEADLINE, &e3, NULL) == TW_STATUS_OK && e3.result == TW_ENTRY_RESULT_REJECTED);
  CHECK(e3.reason == TW_KIND_BULKHEAD_FULL);
  bool woke;
  uint64_t ticket;
  CHECK(tw_bulkhead_release(b, 1, &woke, &ticket, NULL) == TW_STATUS_OK && woke && ticket == e2.ticket);
  tw_bulkhead_metrics m;
  CHECK(tw_bulkhead_get_metrics(b, &m, NULL) == TW_STATUS_OK && m.in_flight == 1 && m.queue_depth == 0 && m.woken == 1);
  tw_bulkhead_free(b);

  tw_retry *r = NULL;
  CHECK(tw_retry_new_with_seed(JSON("{\"maxRetries\": 1, \"backoff\": {\"type\": \"constant\", \"base\": 50, \"jitter\": \"none\"}}"), 1, &r,
                               NULL) == TW_STATUS_OK);
  tw_retry_call c;
  uint32_t n;
  tw_retry_decision d;
  CHECK(tw_retry_begin(r, 0, &c, NULL) == TW_STATUS_OK);
  CHECK(tw_retry_attempt(r, c, &n, NULL) == TW_STATUS_OK && n == 1);
  CHECK(tw_retry_on_failure(r, c, true, false, 0, 0, TW_NO_DEADLINE, &d, NULL) == TW_STATUS_OK);
  CHECK(d.retry && d.attempt == 2 && d.delay_ns == MS(50));
  CHECK(tw_retry_attempt(r, c, &n, NULL) == TW_STATUS_OK && n == 2);
  CHECK(tw_retry_on_failure(r, c, true, false, 0, MS(60), TW_NO_DEADLINE, &d, NULL) == TW_STATUS_OK);
  CHECK(!d.retry && d.give_up == TW_GIVE_UP_EXHAUSTED);
  CHECK(tw_retry_end(r, c, NULL) == TW_STATUS_OK);
  CHECK(tw_retry_end(r, c, NULL) == TW_STATUS_UNKNOWN_CALL);
  CHECK(tw_retry_attempt(r, c, &n, NULL) == TW_STATUS_UNKNOWN_CALL);
  tw_retry_free(r);
}

/* ---------------------------------------------------------------- health, policy files */

static void test_health(void) {
  tw_health *h = NULL;
  CHECK(tw_health_new(JSON("{\"checks\": {\"db\": {\"timeout\": \"1s\"}}}"), &h, NULL) == TW_STATUS_OK);
  uint32_t cache_id;
  CHECK(tw_health_register(h, "cache", JSON("{\"critical\": false}"), &cache_id, NULL) == TW_STATUS_OK);
  tw_error *err = NULL;
  CHECK(tw_health_register(h, "cache", JSON("{}"), NULL, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(err != NULL && strcmp(tw_error_path(err), "checks.cache") == 0);
  tw_error_free(err);
  err = NULL;
  CHECK(tw_health_register(h, "q", JSON("{\"interval\": 0}"), NULL, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(err != NULL && strcmp(tw_error_path(err), "checks.q.interval") == 0);
  tw_error_free(err);
  tw_due_check due[1];
  size_t count = 0, remaining = 0;
  CHECK(tw_health_due(h, MS(0), due, 1, &count, &remaining, NULL) == TW_STATUS_OK);
  CHECK(count == 1 && remaining == 1 && due[0].id == cache_id); /* name order: cache, db */
  uint32_t first = due[0].id;
  CHECK(tw_health_due(h, MS(0), due, 1, &count, &remaining, NULL) == TW_STATUS_OK && count == 1 && remaining == 0);
  CHECK(due[0].deadline_ns == MS(1000));
  char name[8];
  size_t need = 0;
  CHECK(tw_health_name(h, due[0].id, name, sizeof name, &need, NULL) == TW_STATUS_OK && strcmp(name, "db") == 0);
  CHECK(tw_health_name(h, due[0].id, name, 2, &need, NULL) == TW_STATUS_BUFFER_TOO_SMALL && need == 3);
  CHECK(tw_health_report(h, due[0].id, false, MS(3), "connection refused", MS(3), NULL) == TW_STATUS_OK);
  CHECK(tw_health_report(h, first, true, MS(2), NULL, MS(3), NULL) == TW_STATUS_OK);
  CHECK(tw_health_report(h, 999, true, 0, NULL, MS(3), NULL) == TW_STATUS_UNKNOWN_CHECK);
  tw_health_status s;
  uint16_t http = 0;
  CHECK(tw_health_get_status(h, &s, &http, NULL) == TW_STATUS_OK && s == TW_HEALTH_STATUS_UNHEALTHY && http == 503);
  tw_check_status cs;
  CHECK(tw_health_get_check_status(h, "cache", &cs, NULL) == TW_STATUS_OK && cs == TW_CHECK_STATUS_HEALTHY);
  CHECK(tw_health_get_check_status(h, "nope", &cs, NULL) == TW_STATUS_OK && cs == TW_CHECK_STATUS_UNKNOWN);
  CHECK(tw_health_set_breaker(h, "payments", (tw_breaker_state)17, NULL) == TW_STATUS_INVALID_ARGUMENT);
  CHECK(tw_health_set_breaker(h, "payments", TW_BREAKER_STATE_OPEN, NULL) == TW_STATUS_OK);
  CHECK(tw_health_report_json(h, NULL, NULL, 0, &need, NULL) == TW_STATUS_OK);
  char *report = malloc(need);
  CHECK(tw_health_report_json(h, NULL, report, need, NULL, NULL) == TW_STATUS_OK);
  CHECK(strstr(report, "\"status\":\"unhealthy\"") != NULL);
  CHECK(strstr(report, "\"error\":\"connection refused\"") != NULL);
  CHECK(strstr(report, "\"payments\":{\"state\":\"open\"}") != NULL);
  const char *stamp = strstr(report, "\"timestamp\":\"");
  CHECK(stamp != NULL && strlen(stamp) > 38 && stamp[13 + 4] == '-' && stamp[13 + 23] == 'Z');
  free(report);
  tw_health_metrics m;
  CHECK(tw_health_get_metrics(h, &m, NULL) == TW_STATUS_OK && m.checks == 2 && m.runs == 2 && m.failures == 1);
  tw_health_event e;
  int changes = 0;
  while (tw_health_poll_event(h, &e, NULL) == TW_STATUS_OK && e.type != TW_HEALTH_EVENT_TYPE_NONE)
    if (e.type == TW_HEALTH_EVENT_TYPE_CHECK_CHANGED) changes++;
  CHECK(changes == 2);
  tw_health_free(h);
}

static void test_policy_file(void) {
  const char *file =
      "{\"seed\": 1, \"policies\": {\"payments\": {\"retry\": {\"maxRetries\": 1}}, \"search\": {\"bulkhead\": {\"maxConcurrent\": 2}}}}";
  tw_policies *pf = NULL;
  CHECK(tw_policies_new(JSON(file), &pf, NULL) == TW_STATUS_OK);
  size_t n = 0;
  CHECK(tw_policies_count(pf, &n, NULL) == TW_STATUS_OK && n == 2);
  char name[16];
  CHECK(tw_policies_name(pf, 1, name, sizeof name, NULL, NULL) == TW_STATUS_OK && strcmp(name, "search") == 0);
  CHECK(tw_policies_name(pf, 2, name, sizeof name, NULL, NULL) == TW_STATUS_INVALID_ARGUMENT);
  tw_pipeline *p = NULL;
  CHECK(tw_policies_pipeline(pf, "payments", &p, NULL) == TW_STATUS_OK && p != NULL);
  tw_pipeline *q = NULL;
  tw_error *err = NULL;
  CHECK(tw_policies_pipeline(pf, "nope", &q, &err) == TW_STATUS_UNKNOWN_POLICY && q == NULL);
  CHECK(err != NULL && strstr(tw_error_message(err), "nope") != NULL);
  tw_error_free(err);
  tw_policies_free(pf); /* pipelines outlive their file */
  job j = {0, 1, 0};
  CHECK(tw_pipeline_execute(p, flaky, &j, NULL) == TW_STATUS_OK && j.calls == 2);
  tw_pipeline_free(p);
  err = NULL;
  CHECK(tw_policies_new(JSON("{\"policies\": {\"api\": {\"circuitBreaker\": {\"halfOpen\": {\"permittedCalls\": 0}}}}}"), &pf, &err) ==
        TW_STATUS_INVALID_CONFIG);
  CHECK(err != NULL && strcmp(tw_error_path(err), "policies.api.circuitBreaker.halfOpen.permittedCalls") == 0);
  tw_error_free(err);
}

static void test_keyed_pipeline(void) {
  const char *cfg = "{\"circuitBreaker\": {\"trip\": {\"consecutiveFailures\": 1}, \"openDuration\": \"10s\"}, \"keyed\": {\"maxKeys\": 8}}";
  tw_pipeline *p = NULL;
  CHECK(tw_pipeline_new(JSON(cfg), &p, NULL) == TW_STATUS_OK);
  tw_outcome failure = TW_OUTCOME_FAILURE, success = TW_OUTCOME_SUCCESS;
  tw_failure f;
  CHECK(tw_pipeline_execute_keyed(p, "a.example", 9, always, &failure, TW_NO_DEADLINE, &f, NULL) == TW_STATUS_FAILURE);
  CHECK(tw_pipeline_execute_keyed(p, "a.example", 9, always, &success, TW_NO_DEADLINE, &f, NULL) == TW_STATUS_CIRCUIT_OPEN);
  CHECK(f.kind == TW_KIND_CIRCUIT_OPEN && f.has_retry_after);
  /* Another key has its own breaker. */
  CHECK(tw_pipeline_execute_keyed(p, "b.example", 9, always, &success, TW_NO_DEADLINE, NULL, NULL) == TW_STATUS_OK);
  tw_breaker_state s;
  CHECK(tw_pipeline_get_keyed_breaker_state(p, "a.example", 9, &s, NULL) == TW_STATUS_OK && s == TW_BREAKER_STATE_OPEN);
  CHECK(tw_pipeline_get_keyed_breaker_state(p, "b.example", 9, &s, NULL) == TW_STATUS_OK && s == TW_BREAKER_STATE_CLOSED);
  CHECK(tw_pipeline_get_keyed_breaker_state(p, "c.example", 9, &s, NULL) == TW_STATUS_NOT_CONFIGURED);
  CHECK(tw_pipeline_execute_keyed(p, "\xff", 1, always, &success, TW_NO_DEADLINE, NULL, NULL) == TW_STATUS_INVALID_ARGUMENT);
  tw_pipeline_stats st;
  CHECK(tw_pipeline_get_stats(p, &st, NULL) == TW_STATUS_OK && st.has_keys && st.keys == 2);
  tw_pipeline_free(p);

  /* handle_timeout: open -> halfOpen when due, with its event, without a call. */
  CHECK(tw_pipeline_new(JSON("{\"circuitBreaker\": {\"trip\": {\"consecutiveFailures\": 1}, \"openDuration\": \"1s\"}}"), &p, NULL) == TW_STATUS_OK);
  tw_call c;
  tw_step step;
  tw_report fail = {.outcome = TW_OUTCOME_FAILURE, .retryable = true};
  CHECK(tw_call_begin(p, MS(0), TW_NO_DEADLINE, &c, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, c, MS(0), &step, NULL) == TW_STATUS_OK);
  CHECK(tw_call_report(p, c, &fail, MS(0), NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, c, MS(0), &step, NULL) == TW_STATUS_OK && step.kind == TW_STEP_KIND_FAIL);
  CHECK(tw_pipeline_handle_timeout(p, MS(999), NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_get_breaker_state(p, &s, NULL) == TW_STATUS_OK && s == TW_BREAKER_STATE_OPEN);
  CHECK(tw_pipeline_handle_timeout(p, MS(1000), NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_get_breaker_state(p, &s, NULL) == TW_STATUS_OK && s == TW_BREAKER_STATE_HALF_OPEN);
  tw_pipeline_free(p);
}

/* ---------------------------------------------------------------- found by the c_api fuzz target */

/* A name with a NUL byte could never be named from C, and would be read cut short: refused
 * (fuzz input: tw_health_new of {"checks": {"a\u0000b": {}}}). */
static void test_fuzz_nul_in_names(void) {
  tw_error *err = NULL;
  tw_health *h = NULL;
  CHECK(tw_health_new(JSON("{\"checks\": {\"a\\u0000b\": {}}}"), &h, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(h == NULL && err != NULL);
  CHECK(err != NULL && strcmp(tw_error_path(err), "checks.a\\0b") == 0);
  CHECK(err != NULL && starts_with(tw_error_message(err), tw_error_path(err)));
  tw_error_free(err);
  err = NULL;
  tw_policies *pf = NULL;
  CHECK(tw_policies_new(JSON("{\"policies\": {\"ok\": {}, \"a\\u0000b\": {}}}"), &pf, &err) == TW_STATUS_INVALID_CONFIG);
  CHECK(pf == NULL && err != NULL && strcmp(tw_error_path(err), "policies.a\\0b") == 0);
  tw_error_free(err);
  /* Validation says what construction says. */
  CHECK(tw_config_validate(TW_CONFIG_TARGET_HEALTH, JSON("{\"checks\": {\"a\\u0000b\": {}}}"), NULL) == TW_STATUS_INVALID_CONFIG);
  CHECK(tw_config_validate(TW_CONFIG_TARGET_POLICY_FILE, JSON("{\"policies\": {\"a\\u0000b\": {}}}"), NULL) == TW_STATUS_INVALID_CONFIG);
  CHECK(tw_config_validate(TW_CONFIG_TARGET_HEALTH, JSON("{\"checks\": {\"a\": {}}}"), NULL) == TW_STATUS_OK);
}

/* tw_health_due hands out only runs that are still running: not one queued (cap too small)
 * whose check was unregistered or reported since. */
static void test_fuzz_due_only_running_checks(void) {
  tw_health *h = NULL;
  CHECK(tw_health_new(JSON("{\"checks\": {\"a\": {}, \"b\": {}, \"c\": {}}}"), &h, NULL) == TW_STATUS_OK);
  size_t count = 9, remaining = 9;
  CHECK(tw_health_due(h, 0, NULL, 0, &count, &remaining, NULL) == TW_STATUS_OK && count == 0 && remaining == 3);
  bool removed = false;
  CHECK(tw_health_unregister(h, "a", &removed, NULL) == TW_STATUS_OK && removed);
  uint32_t b_id = 0, c_id = 0;
  CHECK(tw_health_id(h, "b", &b_id, NULL) == TW_STATUS_OK && tw_health_id(h, "c", &c_id, NULL) == TW_STATUS_OK);
  CHECK(tw_health_report(h, b_id, true, 0, NULL, 1, NULL) == TW_STATUS_OK);
  tw_due_check due[4];
  CHECK(tw_health_due(h, 1, due, 4, &count, &remaining, NULL) == TW_STATUS_OK);
  CHECK(count == 1 && remaining == 0 && due[0].id == c_id);
  tw_health_free(h);
}

/* tw_pipeline_poll_wake never names a call the host ended or polled since its wake. */
static void test_fuzz_no_stale_wakes(void) {
  tw_pipeline *p = NULL;
  CHECK(tw_pipeline_new(JSON("{\"bulkhead\": {\"maxConcurrent\": 1, \"maxQueue\": 2}}"), &p, NULL) == TW_STATUS_OK);
  tw_call a, b, c, woken = 7;
  tw_step step;
  bool woke = true;
  CHECK(tw_call_begin(p, 0, TW_NO_DEADLINE, &a, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, a, 0, &step, NULL) == TW_STATUS_OK && step.kind == TW_STEP_KIND_ATTEMPT);
  CHECK(tw_call_begin(p, 0, TW_NO_DEADLINE, &b, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, b, 0, &step, NULL) == TW_STATUS_OK && step.kind == TW_STEP_KIND_PARK);
  /* Ended after its wake. */
  CHECK(tw_call_end(p, a, 1, NULL) == TW_STATUS_OK);
  CHECK(tw_call_end(p, b, 2, NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_poll_wake(p, &woken, &woke, NULL) == TW_STATUS_OK && !woke && woken == 0);
  /* Polled after its wake (a host timer got there first). */
  CHECK(tw_call_begin(p, 3, TW_NO_DEADLINE, &a, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, a, 3, &step, NULL) == TW_STATUS_OK && step.kind == TW_STEP_KIND_ATTEMPT);
  CHECK(tw_call_begin(p, 3, TW_NO_DEADLINE, &c, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, c, 3, &step, NULL) == TW_STATUS_OK && step.kind == TW_STEP_KIND_PARK);
  CHECK(tw_call_end(p, a, 4, NULL) == TW_STATUS_OK);
  CHECK(tw_call_poll(p, c, 5, &step, NULL) == TW_STATUS_OK && step.kind == TW_STEP_KIND_ATTEMPT);
  CHECK(tw_pipeline_poll_wake(p, &woken, &woke, NULL) == TW_STATUS_OK && !woke);
  CHECK(tw_call_end(p, c, 6, NULL) == TW_STATUS_OK);
  tw_pipeline_free(p);
}

int main(void) {
  test_statuses_and_names();
  test_null_arguments();
  test_invalid_config();
  test_step_protocol_on_a_fake_clock();
  test_rejections_carry_retry_after();
  test_execute();
  test_breaker();
  test_limiters();
  test_bulkhead_and_retry();
  test_health();
  test_policy_file();
  test_keyed_pipeline();
  test_fuzz_nul_in_names();
  test_fuzz_due_only_running_checks();
  test_fuzz_no_stale_wakes();
  printf("api: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
