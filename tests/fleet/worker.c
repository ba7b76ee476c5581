/* The C fleet worker (tests/fleet/README.md): C callers (pthreads) on one tw_shared_limiter,
 * each with its own hiredis connection and tw_hiredis adapter, deciding as fast as they may
 * until S seconds have passed. Built by scripts/ci/build-c.sh into target/fleet/worker-c.
 *
 * worker-c --url redis://127.0.0.1:PORT/ --config '<pipeline JSON with rateLimit + store>'
 *          --seconds S --callers C --out FILE [--seed N]
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tripwire.h"
#include "tw_hiredis.h"

typedef struct {
  tw_shared_limiter *limiter;
  char host[256];
  int port;
  uint64_t end_ns;
  /* this caller's output */
  char *lines;
  size_t len, cap;
  uint64_t decisions, admitted;
  tw_hiredis_counters counters;
  int error;
} caller;

static void append(caller *c, const char *line) {
  size_t n = strlen(line);
  if (c->len + n + 1 > c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 1 << 16;
    while (cap < c->len + n + 1) cap *= 2;
    char *grown = realloc(c->lines, cap);
    if (!grown) {
      c->error = 1;
      return;
    }
    c->lines = grown;
    c->cap = cap;
  }
  memcpy(c->lines + c->len, line, n + 1);
  c->len += n;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL);
}

static void *run_caller(void *arg) {
  caller *c = arg;
  struct timeval tv = {1, 0};
  redisContext *conn = redisConnectWithTimeout(c->host, c->port, tv); /* may be down: reconnects */
  const char *why = NULL;
  tw_hiredis *redis = tw_hiredis_new(conn, &why);
  if (!redis) {
    fprintf(stderr, "worker-c: %s\n", why);
    c->error = 1;
    redisFree(conn);
    return NULL;
  }
  char line[160];
  while (tw_now_ns() < c->end_ns) {
    uint64_t t0 = tw_now_ns();
    tw_shared_decision d;
    tw_error *err = NULL;
    long long store_s = 0, store_ns = 0;
    if (tw_shared_limiter_check(c->limiter, NULL, 0, t0, 1, &d, &err) != TW_STATUS_OK) goto failed;
    if (!d.decided) {
      tw_store_request req;
      tw_store_reply reply;
      if (tw_shared_limiter_request(c->limiter, d.request, &req, &err) != TW_STATUS_OK) goto failed;
      tw_hiredis_run(redis, &req, &reply); /* sent once; a reply past req.until_ns is a timeout */
      if (tw_shared_limiter_reply(c->limiter, d.request, &reply, tw_now_ns(), &d, &err) != TW_STATUS_OK) goto failed;
      if (d.source == TW_STORE_SOURCE_STORE && reply.kind == TW_STORE_REPLY_KIND_VALUES && reply.num_values >= 3) {
        store_s = reply.values[1];
        store_ns = reply.values[2];
      }
    }
    uint64_t latency = tw_now_ns() - t0;
    snprintf(line, sizeof line, "%s %d %lld %lld %llu\n", tw_store_source_str(d.source), d.decision.allowed ? 1 : 0,
             store_s, store_ns, (unsigned long long)latency);
    append(c, line);
    c->decisions++;
    if (d.decision.allowed) {
      c->admitted++;
    } else {
      uint64_t pause = 50000000u;
      if (d.decision.has_retry_after && d.decision.retry_after_ns < pause) pause = d.decision.retry_after_ns;
      sleep_ns(pause);
    }
    continue;
  failed:
    fprintf(stderr, "worker-c: %s\n", tw_error_message(err));
    tw_error_free(err);
    c->error = 1;
    break;
  }
  tw_hiredis_get_counters(redis, &c->counters);
  tw_hiredis_free(redis);
  redisFree(conn);
  return NULL;
}

/* The config's rateLimit, store and keyed: the shared limiter's part of a pipeline config. */
static char *shared_part(const char *config) {
  cJSON *all = cJSON_Parse(config);
  if (!all) return NULL;
  cJSON *part = cJSON_CreateObject();
  const char *keys[] = {"rateLimit", "store", "keyed"};
  for (int i = 0; i < 3; i++) {
    cJSON *item = cJSON_GetObjectItemCaseSensitive(all, keys[i]);
    if (item) cJSON_AddItemToObject(part, keys[i], cJSON_Duplicate(item, 1));
  }
  char *text = cJSON_PrintUnformatted(part);
  cJSON_Delete(part);
  cJSON_Delete(all);
  return text;
}

static int usage(void) {
  fprintf(stderr,
          "usage: worker-c --url redis://HOST:PORT/ --config JSON --seconds S --callers C --out FILE [--seed N]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *url = NULL, *config = NULL, *out = NULL, *seed = NULL;
  double seconds = 0;
  int callers = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--url") == 0) url = argv[i + 1];
    else if (strcmp(argv[i], "--config") == 0) config = argv[i + 1];
    else if (strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--callers") == 0) callers = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--out") == 0) out = argv[i + 1];
    else if (strcmp(argv[i], "--seed") == 0) seed = argv[i + 1];
    else return usage();
  }
  char host[256] = "127.0.0.1";
  int port = 6379;
  if (!url || !config || !out || seconds <= 0 || callers <= 0 || sscanf(url, "redis://%255[^:/]:%d", host, &port) < 1)
    return usage();
  char *shared = shared_part(config);
  if (!shared) {
    fprintf(stderr, "worker-c: --config is not JSON\n");
    return 2;
  }
  tw_shared_limiter *limiter = NULL;
  tw_error *err = NULL;
  tw_status st = seed ? tw_shared_limiter_new_with_seed(shared, strlen(shared), strtoull(seed, NULL, 10), &limiter, &err)
                      : tw_shared_limiter_new(shared, strlen(shared), &limiter, &err);
  free(shared);
  if (st != TW_STATUS_OK) {
    fprintf(stderr, "worker-c: %s\n", tw_error_message(err));
    tw_error_free(err);
    return 2;
  }
  caller *cs = calloc((size_t)callers, sizeof *cs);
  pthread_t *threads = calloc((size_t)callers, sizeof *threads);
  uint64_t end = tw_now_ns() + (uint64_t)(seconds * 1e9);
  for (int i = 0; i < callers; i++) {
    cs[i].limiter = limiter;
    snprintf(cs[i].host, sizeof cs[i].host, "%s", host);
    cs[i].port = port;
    cs[i].end_ns = end;
    pthread_create(&threads[i], NULL, run_caller, &cs[i]);
  }
  FILE *f = fopen(out, "a");
  int error = f == NULL;
  uint64_t decisions = 0, admitted = 0;
  tw_hiredis_counters total = {0, 0, 0, 0, 0, 0};
  for (int i = 0; i < callers; i++) {
    pthread_join(threads[i], NULL);
    if (f && cs[i].len) fwrite(cs[i].lines, 1, cs[i].len, f);
    free(cs[i].lines);
    error |= cs[i].error;
    decisions += cs[i].decisions;
    admitted += cs[i].admitted;
    total.sent += cs[i].counters.sent;
    total.evals += cs[i].counters.evals;
    total.timeouts += cs[i].counters.timeouts;
    total.unavailable += cs[i].counters.unavailable;
  }
  if (f) fclose(f);
  printf("{\"lang\": \"c\", \"decisions\": %llu, \"admitted\": %llu, \"sent\": %llu, \"evals\": %llu, "
         "\"timeouts\": %llu, \"unavailable\": %llu}\n",
         (unsigned long long)decisions, (unsigned long long)admitted, (unsigned long long)total.sent,
         (unsigned long long)total.evals, (unsigned long long)total.timeouts, (unsigned long long)total.unavailable);
  free(cs);
  free(threads);
  tw_shared_limiter_free(limiter);
  return error ? 1 : 0;
}
