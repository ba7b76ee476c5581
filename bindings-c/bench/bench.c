/* ns per protected call through the C API, on one shared handle, from 1 thread and from 2
 * threads contending for it (each thread's ns per call; the two run at the same time). The
 * configs are the core benchmark's (core/benches/core.rs). Prints figures; not a test.
 * Run by scripts/ci/bench-c.sh. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tripwire.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static tw_breaker *breaker;
static tw_limiter *limiter;
static tw_pipeline *pipeline;
static volatile uint64_t sink;

typedef void (*op_fn)(uint64_t i);

static void op_bare(uint64_t i) { sink += i; }

static void op_breaker(uint64_t i) {
  tw_admission a;
  tw_breaker_acquire(breaker, i, &a, NULL);
  if (a.admitted) tw_breaker_record(breaker, a.permit, TW_BREAKER_OUTCOME_SUCCESS, i, NULL);
}

static void op_limiter(uint64_t i) {
  tw_rate_decision d;
  tw_limiter_check(limiter, i * 1000, 1, &d, NULL);
  sink += d.allowed;
}

static void op_pipeline(uint64_t i) {
  tw_call call;
  tw_step step;
  static const tw_report ok = {.outcome = TW_OUTCOME_SUCCESS};
  tw_call_begin(pipeline, i, TW_NO_DEADLINE, &call, NULL);
  tw_call_poll(pipeline, call, i, &step, NULL); /* ATTEMPT */
  tw_call_report(pipeline, call, &ok, i, NULL);
  tw_call_poll(pipeline, call, i, &step, NULL); /* DONE */
  sink += step.kind;
}

static tw_outcome succeed(void *ctx, tw_attempt *a) {
  (void)ctx;
  (void)a;
  return TW_OUTCOME_SUCCESS;
}

static void op_execute(uint64_t i) {
  (void)i;
  tw_pipeline_execute(pipeline, succeed, NULL, NULL);
}

typedef struct {
  op_fn op;
  uint64_t n, offset;
  double ns;
} job;

static void *worker(void *arg) {
  job *j = arg;
  double t0 = now_s();
  for (uint64_t i = 0; i < j->n; i++) j->op(j->offset + i);
  j->ns = (now_s() - t0) * 1e9 / (double)j->n;
  return NULL;
}

/* Best of 3 runs of n calls on one thread. */
static double one_thread(op_fn op, uint64_t n) {
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    job j = {op, n, (uint64_t)r * n * 4, 0};
    worker(&j);
    if (j.ns < best) best = j.ns;
  }
  return best;
}

/* Two threads at once on the same handle: the mean of their ns per call, best of 3. */
static double two_threads(op_fn op, uint64_t n) {
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    job j[2] = {{op, n, (uint64_t)(r + 10) * n * 4, 0}, {op, n, (uint64_t)(r + 10) * n * 4 + n, 0}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++) pthread_create(&t[k], NULL, worker, &j[k]);
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    double mean = (j[0].ns + j[1].ns) / 2;
    if (mean < best) best = mean;
  }
  return best;
}

static int must(tw_status st, const char *what) {
  if (st != TW_STATUS_OK) {
    fprintf(stderr, "bench: %s: %s\n", what, tw_last_error_message());
    exit(1);
  }
  return 0;
}

int main(int argc, char **argv) {
  uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  const char *b = "{\"trip\": {\"consecutiveFailures\": 5}}";
  const char *l = "{\"algorithm\": \"tokenBucket\", \"rate\": \"1000000/s\"}";
  const char *p = "{\"bulkhead\": {\"maxConcurrent\": 10}, \"circuitBreaker\": {}, \"retry\": {}, \"timeout\": {\"perAttempt\": \"1s\"}}";
  must(tw_breaker_new(b, strlen(b), &breaker, NULL), "breaker");
  must(tw_limiter_new(l, strlen(l), &limiter, NULL), "limiter");
  must(tw_pipeline_new(p, strlen(p), &pipeline, NULL), "pipeline");

  struct {
    const char *name;
    op_fn op;
    uint64_t n;
  } rows[] = {
      {"bare C call (baseline)", op_bare, n},
      {"breaker acquire + record", op_breaker, n},
      {"limiter check", op_limiter, n},
      {"pipeline begin/poll/report/poll", op_pipeline, n / 2},
      {"tw_pipeline_execute (blocking)", op_execute, n / 4},
  };
  printf("C API, ns per protected call through one shared handle (best of 3; %llu calls):\n", (unsigned long long)n);
  printf("| operation | 1 thread | 2 threads contending |\n|---|---:|---:|\n");
  double breaker_ns = 0;
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    double one = one_thread(rows[r].op, rows[r].n);
    double two = two_threads(rows[r].op, rows[r].n);
    if (rows[r].op == op_breaker) breaker_ns = one;
    printf("| %s | %.1f ns | %.1f ns |\n", rows[r].name, one, two);
  }
  printf("budget (DESIGN.md 6): C <= 60 ns per breaker call through a shared handle: %.1f ns, %s (%.2fx the budget)\n",
         breaker_ns, breaker_ns <= 60.0 ? "within" : "OVER", breaker_ns / 60.0);
  tw_breaker_free(breaker);
  tw_limiter_free(limiter);
  tw_pipeline_free(pipeline);
  return 0;
}
