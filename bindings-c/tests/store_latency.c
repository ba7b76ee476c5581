/* Prints the round trip per shared decision through the hiredis adapter (median, p99; one
 * process, one caller, 10^4 decisions each): the bare EVALSHA of the same request through
 * hiredis, the raw tw_shared_limiter (check, request, run, reply), and a whole
 * tw_pipeline_execute. A benchmark, not a test: it prints figures and asserts nothing.
 *
 *   source scripts/ci/redis.sh; redis_start; make c
 *   gcc -O2 -Ibindings-c/include -Ibindings-c/adapters bindings-c/tests/store_latency.c \
 *     bindings-c/adapters/tw_hiredis.c target/release/libtripwire.a -lhiredis -lpthread -ldl -lm \
 *     -o /tmp/store_latency && /tmp/store_latency
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tripwire.h"
#include "tw_hiredis.h"

enum { N = 10000, WARMUP = 500 };

static int by_value(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns) {
  qsort(ns, N, sizeof *ns, by_value);
  printf("%-44s median %6.1f us   p99 %6.1f us\n", what, ns[N / 2] / 1e3, ns[N * 99 / 100] / 1e3);
}

static tw_outcome succeed(void *ctx, tw_attempt *a) {
  (void)ctx, (void)a;
  return TW_OUTCOME_SUCCESS;
}

int main(void) {
  const char *url = getenv("TRIPWIRE_REDIS_URL");
  char host[256] = "127.0.0.1";
  int port = 6379;
  if (url) sscanf(url, "redis://%255[^:/]:%d", host, &port);
  struct timeval tv = {1, 0};
  redisContext *c = redisConnectWithTimeout(host, port, tv);
  tw_hiredis *redis = tw_hiredis_new(c, NULL);
  if (!redis || c->err) {
    fprintf(stderr, "store_latency: no Redis at %s:%d\n", host, port);
    return 2;
  }
  const char *config =
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"1000000000/s\", \"burst\": 1000000}, "
      "\"store\": {\"key\": \"latency\", \"timeout\": \"1s\"}}";
  static uint64_t ns[N];
  tw_shared_limiter *l = NULL;
  tw_shared_limiter_new(config, strlen(config), &l, NULL);
  tw_store_request req;
  tw_store_reply reply;
  tw_shared_decision d;

  /* The same request as hiredis alone would send it (EVALSHA, the script already loaded). */
  tw_shared_limiter_check(l, NULL, 0, tw_now_ns(), 1, &d, NULL);
  tw_shared_limiter_request(l, d.request, &req, NULL);
  tw_hiredis_run(redis, &req, &reply); /* loads the script (EVAL after NOSCRIPT) */
  size_t argc = 3 + req.num_keys + req.num_args;
  const char *argv[32];
  size_t lens[32];
  char num_keys[8];
  argv[0] = "EVALSHA", lens[0] = 7;
  argv[1] = req.sha1.ptr, lens[1] = req.sha1.len;
  lens[2] = (size_t)snprintf(num_keys, sizeof num_keys, "%zu", req.num_keys), argv[2] = num_keys;
  for (size_t i = 0; i < req.num_keys; i++) argv[3 + i] = req.keys[i].ptr, lens[3 + i] = req.keys[i].len;
  for (size_t i = 0; i < req.num_args; i++)
    argv[3 + req.num_keys + i] = req.args[i].ptr, lens[3 + req.num_keys + i] = req.args[i].len;
  for (int i = -WARMUP; i < N; i++) {
    uint64_t t0 = tw_now_ns();
    redisReply *r = redisCommandArgv(c, (int)argc, argv, lens);
    if (i >= 0) ns[i] = tw_now_ns() - t0;
    freeReplyObject(r);
  }
  tw_shared_limiter_reply(l, d.request, &reply, tw_now_ns(), &d, NULL);
  report("hiredis EVALSHA alone", ns);

  for (int i = -WARMUP; i < N; i++) {
    uint64_t t0 = tw_now_ns();
    tw_shared_limiter_check(l, NULL, 0, t0, 1, &d, NULL);
    tw_shared_limiter_request(l, d.request, &req, NULL);
    tw_hiredis_run(redis, &req, &reply);
    tw_shared_limiter_reply(l, d.request, &reply, tw_now_ns(), &d, NULL);
    if (i >= 0) ns[i] = tw_now_ns() - t0;
    if (d.source != TW_STORE_SOURCE_STORE || !d.decision.allowed) {
      fprintf(stderr, "store_latency: a decision did not come from the store\n");
      return 1;
    }
  }
  report("tw_shared_limiter + tw_hiredis (decision)", ns);

  tw_pipeline *p = NULL;
  tw_pipeline_new(config, strlen(config), &p, NULL);
  tw_store store = tw_hiredis_store(redis);
  tw_pipeline_set_store(p, &store, NULL);
  for (int i = -WARMUP; i < N; i++) {
    uint64_t t0 = tw_now_ns();
    if (tw_pipeline_execute(p, succeed, NULL, NULL) != TW_STATUS_OK) return 1;
    if (i >= 0) ns[i] = tw_now_ns() - t0;
  }
  report("tw_pipeline_execute with the store", ns);
  tw_pipeline_free(p);
  tw_shared_limiter_free(l);
  tw_hiredis_free(redis);
  redisFree(c);
  return 0;
}
