/* 8 pthreads share one pipeline. Phase 1: every thread calls tw_pipeline_execute (bulkhead
 * queueing on the condition variable, retries, a listener counting events); phase 2: every
 * thread drives the step protocol by hand on one shared pipeline. The counts are exact. Built
 * plain, under ASan+UBSan, under valgrind and under TSan by scripts/ci/test-c.sh. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tripwire.h"

#define THREADS 8
#ifndef CALLS
#define CALLS 300 /* per thread */
#endif

static int passed, failed;
#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (cond) passed++;                                                              \
    else {                                                                           \
      failed++;                                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
    }                                                                                \
  } while (0)

static atomic_int running, max_running, attempts_run, retries_seen, listener_calls;
static atomic_int statuses[256];

typedef struct {
  int thread;
  int call;
} work;

/* Fails the first attempt of every third call (retryable), succeeds otherwise. Tracks how many
 * attempts run at once: the bulkhead allows 2. */
static tw_outcome attempt(void *ctx, tw_attempt *a) {
  work *w = ctx;
  int now = atomic_fetch_add(&running, 1) + 1;
  int seen = atomic_load(&max_running);
  while (now > seen && !atomic_compare_exchange_weak(&max_running, &seen, now)) {
  }
  atomic_fetch_add(&attempts_run, 1);
  for (volatile int spin = 0; spin < 20000; spin++) {
  }
  atomic_fetch_sub(&running, 1);
  return (w->call % 3 == 0 && a->number == 1) ? TW_OUTCOME_FAILURE : TW_OUTCOME_SUCCESS;
}

static void on_event(void *ctx, const tw_event *e) {
  (void)ctx;
  atomic_fetch_add(&listener_calls, 1);
  if (e->type == TW_EVENT_TYPE_RETRY_SCHEDULED) atomic_fetch_add(&retries_seen, 1);
}

static tw_pipeline *shared;

static void *execute_thread(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int i = 0; i < CALLS; i++) {
    work w = {t, i};
    tw_status st = tw_pipeline_execute(shared, attempt, &w, NULL);
    atomic_fetch_add(&statuses[st & 0xff], 1);
  }
  return NULL;
}

/* The step protocol by hand, on the real clock, no bulkhead (so no parking). */
static void *step_thread(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int i = 0; i < CALLS; i++) {
    tw_call call;
    if (tw_call_begin(shared, tw_now_ns(), TW_NO_DEADLINE, &call, NULL) != TW_STATUS_OK) {
      atomic_fetch_add(&statuses[255], 1);
      continue;
    }
    for (;;) {
      tw_step s;
      tw_status st = tw_call_poll(shared, call, tw_now_ns(), &s, NULL);
      if (st != TW_STATUS_OK) {
        atomic_fetch_add(&statuses[255], 1);
        break;
      }
      if (s.kind == TW_STEP_KIND_ATTEMPT) {
        work w = {t, i};
        tw_report r = {.outcome = attempt(&w, &(tw_attempt){.number = s.attempt}), .retryable = true};
        if (tw_call_report(shared, call, &r, tw_now_ns(), NULL) != TW_STATUS_OK) atomic_fetch_add(&statuses[255], 1);
      } else if (s.kind == TW_STEP_KIND_DONE) {
        atomic_fetch_add(&statuses[TW_STATUS_OK], 1);
        break;
      } else if (s.kind == TW_STEP_KIND_FAIL) {
        atomic_fetch_add(&statuses[100 + s.failure.kind], 1);
        break;
      }
      /* SLEEP: the backoff is 0, so the next poll goes on at once. */
    }
  }
  return NULL;
}

static void reset_counters(void) {
  atomic_store(&running, 0);
  atomic_store(&max_running, 0);
  atomic_store(&attempts_run, 0);
  atomic_store(&retries_seen, 0);
  atomic_store(&listener_calls, 0);
  for (int i = 0; i < 256; i++) atomic_store(&statuses[i], 0);
}

static void run(void *(*fn)(void *)) {
  pthread_t threads[THREADS];
  for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, fn, (void *)(intptr_t)t);
  for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
}

int main(void) {
  const int total = THREADS * CALLS;
  const int failing = THREADS * ((CALLS + 2) / 3); /* calls with call % 3 == 0 */
  const char *cfg =
      "{\"bulkhead\": {\"maxConcurrent\": 2, \"maxQueue\": 100},"
      " \"retry\": {\"maxRetries\": 2, \"backoff\": {\"type\": \"constant\", \"base\": 0, \"jitter\": \"none\"}},"
      " \"circuitBreaker\": {\"trip\": {\"consecutiveFailures\": 1000000}}}";

  /* Phase 1: blocking execute. */
  reset_counters();
  CHECK(tw_pipeline_new(cfg, strlen(cfg), &shared, NULL) == TW_STATUS_OK);
  CHECK(tw_pipeline_set_listener(shared, on_event, NULL, NULL) == TW_STATUS_OK);
  run(execute_thread);
  tw_pipeline_stats s;
  CHECK(tw_pipeline_get_stats(shared, &s, NULL) == TW_STATUS_OK);
  CHECK(atomic_load(&statuses[TW_STATUS_OK]) == total);
  CHECK(s.calls == (uint64_t)total && s.succeeded == (uint64_t)total && s.in_flight == 0);
  CHECK(s.attempts == (uint64_t)(total + failing) && atomic_load(&attempts_run) == total + failing);
  CHECK(atomic_load(&retries_seen) == failing);
  CHECK(atomic_load(&max_running) <= 2 && atomic_load(&max_running) >= 1);
  size_t need = 0;
  CHECK(tw_pipeline_stats_json(shared, NULL, 0, &need, NULL) == TW_STATUS_OK);
  char *json = malloc(need);
  CHECK(tw_pipeline_stats_json(shared, json, need, NULL, NULL) == TW_STATUS_OK);
  CHECK(strstr(json, "\"inFlight\":0,\"queueDepth\":0") != NULL);
  /* Threads did queue in the bulkhead and were woken through the condition variable. */
  const char *queued = strstr(json, "\"queued\":");
  unsigned long long nqueued = queued ? strtoull(queued + 9, NULL, 10) : 0;
  CHECK(nqueued > 0);
  free(json);
  tw_pipeline_free(shared);
  printf("stress: execute: %d calls on %d threads, %d attempts, at most %d at once, %llu queued\n", total, THREADS,
         atomic_load(&attempts_run), atomic_load(&max_running), nqueued);

  /* Phase 2: the step protocol by hand. */
  reset_counters();
  const char *cfg2 =
      "{\"retry\": {\"maxRetries\": 2, \"backoff\": {\"type\": \"constant\", \"base\": 0, \"jitter\": \"none\"}},"
      " \"circuitBreaker\": {\"trip\": {\"consecutiveFailures\": 1000000}}, \"rateLimit\": {\"rate\": \"1000000/s\", \"burst\": 1000000}}";
  CHECK(tw_pipeline_new(cfg2, strlen(cfg2), &shared, NULL) == TW_STATUS_OK);
  run(step_thread);
  CHECK(tw_pipeline_get_stats(shared, &s, NULL) == TW_STATUS_OK);
  CHECK(atomic_load(&statuses[TW_STATUS_OK]) == total && atomic_load(&statuses[255]) == 0);
  CHECK(s.calls == (uint64_t)total && s.succeeded == (uint64_t)total && s.in_flight == 0);
  CHECK(s.attempts == (uint64_t)(total + failing));
  int events = 0;
  tw_event e;
  while (tw_pipeline_poll_event(shared, &e, NULL) == TW_STATUS_OK && e.type != TW_EVENT_TYPE_NONE) events++;
  /* The queue is bounded: it keeps the newest 256 and counts the rest as dropped. */
  CHECK(tw_pipeline_get_stats(shared, &s, NULL) == TW_STATUS_OK);
  CHECK((uint64_t)events + s.events_dropped == (uint64_t)failing);
  tw_pipeline_free(shared);
  printf("stress: step protocol: %d calls on %d threads, %d attempts\n", total, THREADS, atomic_load(&attempts_run));

  printf("stress: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
