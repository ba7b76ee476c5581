/* A rate limit shared through Redis, as C users write it: pipelines with the hiredis adapter
 * (bindings-c/adapters), the step protocol's STORE step, the raw tw_shared_limiter, the store
 * down (a closed port; the server frozen with SIGSTOP), a WRONGTYPE reply, and bad input.
 *
 * Needs a private redis-server: TRIPWIRE_REDIS_URL and TRIPWIRE_REDIS_PID (scripts/ci/redis.sh,
 * run by scripts/ci/test-c.sh). TW_TEST_SLACK_MS widens the latency bounds (valgrind).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "tripwire.h"
#include "tw_hiredis.h"

static int failures;
static const char *url;
static pid_t redis_pid;
static uint64_t slack_ns = 15000000; /* what a call may take beyond its store timeout */
static int test_no; /* makes each test's store key unique */

#define CHECK(cond, ...)                                            \
  do {                                                              \
    if (!(cond)) {                                                  \
      failures++;                                                   \
      fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, __func__); \
      fprintf(stderr, __VA_ARGS__);                                 \
      fprintf(stderr, "\n");                                        \
    }                                                               \
  } while (0)

#define OK(call)                                                                                     \
  do {                                                                                               \
    tw_error *e_ = NULL;                                                                             \
    tw_status s_ = (call);                                                                           \
    CHECK(s_ == TW_STATUS_OK, "%s -> %s: %s", #call, tw_status_str(s_), e_ ? tw_error_message(e_) : ""); \
    tw_error_free(e_);                                                                               \
  } while (0)
#define E (&e_)

/* ------------------------------------------------------------------------- helpers */

static redisContext *connect_to(const char *host, int port) {
  struct timeval tv = {0, 200000};
  return redisConnectWithTimeout(host, port, tv);
}

static redisContext *connect_url(void) {
  char host[256] = "127.0.0.1";
  int port = 6379;
  sscanf(url, "redis://%255[^:/]:%d", host, &port);
  return connect_to(host, port);
}

static redisContext *admin;

static void admin_do(const char *cmd) {
  redisReply *r = redisCommand(admin, cmd);
  CHECK(r && r->type != REDIS_REPLY_ERROR, "%s: %s", cmd, r ? r->str : admin->errstr);
  if (r) freeReplyObject(r);
}

/* `calls=` of a command in INFO commandstats (how often the server ran it). */
static long long server_calls(const char *command) {
  redisReply *r = redisCommand(admin, "INFO commandstats");
  long long calls = 0;
  char needle[64];
  snprintf(needle, sizeof needle, "cmdstat_%s:calls=", command);
  if (r && r->type == REDIS_REPLY_STRING) {
    const char *at = strstr(r->str, needle);
    if (at) calls = atoll(at + strlen(needle));
  }
  if (r) freeReplyObject(r);
  return calls;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A store client: one context and its adapter. */
typedef struct {
  redisContext *c;
  tw_hiredis *h;
  tw_store store;
} client;

static client client_at(redisContext *c) {
  client cl = {c, NULL, {NULL, NULL}};
  const char *why = NULL;
  cl.h = tw_hiredis_new(c, &why);
  CHECK(cl.h != NULL, "tw_hiredis_new: %s", why ? why : "?");
  cl.store = tw_hiredis_store(cl.h);
  return cl;
}

static client client_new(void) { return client_at(connect_url()); }

static void client_free(client *cl) {
  tw_hiredis_free(cl->h);
  redisFree(cl->c);
}

static tw_hiredis_counters counters(const client *cl) {
  tw_hiredis_counters n;
  tw_hiredis_get_counters(cl->h, &n);
  return n;
}

/* A pipeline from a config with `%d` (the test number) in its store key. */
static tw_pipeline *pipeline(const char *fmt, const client *cl) {
  char json[1024];
  snprintf(json, sizeof json, fmt, test_no);
  tw_pipeline *p = NULL;
  tw_error *err = NULL;
  tw_status st = tw_pipeline_new_with_seed(json, strlen(json), 7, &p, &err);
  CHECK(st == TW_STATUS_OK, "%s: %s", json, err ? tw_error_message(err) : "");
  tw_error_free(err);
  if (p && cl) OK(tw_pipeline_set_store(p, &cl->store, E));
  return p;
}

static tw_outcome succeed(void *ctx, tw_attempt *a) {
  (void)a;
  if (ctx) ++*(int *)ctx;
  return TW_OUTCOME_SUCCESS;
}

/* One call through tw_pipeline_execute; its status, failure and duration. */
typedef struct {
  tw_status status;
  tw_failure failure;
  uint64_t took_ns;
} result;

static result run(tw_pipeline *p) {
  result r;
  memset(&r, 0, sizeof r);
  uint64_t t0 = tw_now_ns();
  r.status = tw_pipeline_execute_ex(p, succeed, NULL, TW_NO_DEADLINE, &r.failure, NULL);
  r.took_ns = tw_now_ns() - t0;
  return r;
}

/* The pipeline's `store` stats: the number after `"<field>":` in its stats JSON. */
static long long store_stat(tw_pipeline *p, const char *field) {
  char buf[4096], needle[64];
  OK(tw_pipeline_stats_json(p, buf, sizeof buf, NULL, E));
  const char *store = strstr(buf, "\"store\":");
  snprintf(needle, sizeof needle, "\"%s\":", field);
  const char *at = store ? strstr(store, needle) : NULL;
  if (!at) return -1;
  at += strlen(needle);
  if (*at == '"') return at[1] == 'c' ? 0 : at[1] == 'o' ? 1 : 2; /* storeState: closed/open/half */
  return atoll(at);
}

static int store_events(tw_pipeline *p, tw_breaker_state to) {
  int seen = 0;
  for (;;) {
    tw_event e;
    OK(tw_pipeline_poll_event(p, &e, E));
    if (e.type == TW_EVENT_TYPE_NONE) return seen;
    if (e.type == TW_EVENT_TYPE_STORE_STATE_CHANGED && e.to == to) seen++;
  }
}

/* ------------------------------------------------------------------------- tests */

/* The scripts the core lists are the ones Redis hashes to the same SHA1. */
static void test_scripts(void) {
  size_t n = 0;
  OK(tw_store_scripts(NULL, 0, &n, E));
  CHECK(n == 2, "two scripts (gcra, breaker), got %zu", n);
  tw_store_script s[4];
  size_t none = 0;
  CHECK(tw_store_scripts(s, 1, &none, NULL) == TW_STATUS_BUFFER_TOO_SMALL && none == 2, "cap 1");
  OK(tw_store_scripts(s, 4, &n, E));
  static const char *names[] = {"gcra", "breaker"};
  for (size_t i = 0; i < 2 && i < n; i++) {
    CHECK(s[i].name.len == strlen(names[i]) && memcmp(s[i].name.ptr, names[i], s[i].name.len) == 0, "name %.*s",
          (int)s[i].name.len, s[i].name.ptr);
    CHECK(s[i].sha1.len == 40, "sha1 is 40 hex digits");
    const char *argv[] = {"SCRIPT", "LOAD", s[i].source.ptr};
    size_t lens[] = {6, 4, s[i].source.len};
    redisReply *r = redisCommandArgv(admin, 3, argv, lens);
    CHECK(r && r->type == REDIS_REPLY_STRING && r->len == 40 && memcmp(r->str, s[i].sha1.ptr, 40) == 0,
          "SCRIPT LOAD of %s gives the listed SHA1", names[i]);
    if (r) freeReplyObject(r);
  }
  admin_do("SCRIPT FLUSH"); /* so the next test's first request meets NOSCRIPT */
}

/* The burst passes through the store, then rateLimited with a retry-after; the next denial is
 * answered from the cache without a round trip. */
static void test_burst_then_rate_limited(void) {
  client cl = client_new();
  tw_pipeline *p = pipeline(
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"5/s\", \"burst\": 5}, "
      "\"store\": {\"key\": \"burst%d\", \"timeout\": \"1s\"}}", &cl);
  for (int i = 0; i < 5; i++) {
    result r = run(p);
    CHECK(r.status == TW_STATUS_OK, "call %d: %s", i, tw_status_str(r.status));
  }
  result r = run(p);
  CHECK(r.status == TW_STATUS_RATE_LIMITED, "6th: %s", tw_status_str(r.status));
  CHECK(r.failure.kind == TW_KIND_RATE_LIMITED && r.failure.has_retry_after &&
            r.failure.retry_after_ns > 0 && r.failure.retry_after_ns <= 200000000,
        "retry after %llu ns", (unsigned long long)r.failure.retry_after_ns);
  r = run(p);
  CHECK(r.status == TW_STATUS_RATE_LIMITED && r.failure.has_retry_after, "7th: %s", tw_status_str(r.status));
  tw_hiredis_counters n = counters(&cl);
  CHECK(n.sent == 6 && n.evals == 1, "sent %llu evals %llu", (unsigned long long)n.sent, (unsigned long long)n.evals);
  CHECK(store_stat(p, "storeAllowed") == 5 && store_stat(p, "storeDenied") == 1 && store_stat(p, "cacheDenied") == 1,
        "stats: allowed %lld denied %lld cache %lld", store_stat(p, "storeAllowed"), store_stat(p, "storeDenied"),
        store_stat(p, "cacheDenied"));
  tw_pipeline_free(p);
  client_free(&cl);
}

/* Two pipelines ("instances", each with its own connection) on one key share the limit. */
static void test_two_instances_share_the_limit(void) {
  client a = client_new(), b = client_new();
  const char *config =
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"10/s\", \"burst\": 10}, "
      "\"store\": {\"key\": \"shared%d\", \"timeout\": \"1s\"}}";
  tw_pipeline *pa = pipeline(config, &a), *pb = pipeline(config, &b);
  int admitted_a = 0, admitted_b = 0;
  for (int i = 0; i < 20; i++) {
    if (tw_pipeline_execute(pa, succeed, &admitted_a, NULL) != TW_STATUS_OK) {
    }
    if (tw_pipeline_execute(pb, succeed, &admitted_b, NULL) != TW_STATUS_OK) {
    }
  }
  int total = admitted_a + admitted_b;
  CHECK(total >= 10 && total <= 11 && admitted_a > 0 && admitted_b > 0, "admitted %d + %d", admitted_a, admitted_b);
  tw_pipeline_free(pa);
  tw_pipeline_free(pb);
  client_free(&a);
  client_free(&b);
}

/* Threads executing through one pipeline share one adapter (its mutex): every call is decided
 * once, by the store. */
typedef struct {
  tw_pipeline *p;
  int admitted, refused;
} worker;

static void *execute_many(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 50; i++) {
    tw_status st = tw_pipeline_execute(w->p, succeed, &w->admitted, NULL);
    w->refused += st == TW_STATUS_RATE_LIMITED;
  }
  return NULL;
}

static void test_threads_share_one_adapter(void) {
  client cl = client_new();
  tw_pipeline *p = pipeline(
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"1/m\", \"burst\": 120}, "
      "\"store\": {\"key\": \"threads%d\", \"timeout\": \"2s\"}}", &cl);
  worker w[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){p, 0, 0};
    pthread_create(&t[i], NULL, execute_many, &w[i]);
  }
  int admitted = 0, refused = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    admitted += w[i].admitted;
    refused += w[i].refused;
  }
  tw_hiredis_counters n = counters(&cl);
  CHECK(admitted == 120 && refused == 80, "admitted %d refused %d", admitted, refused);
  CHECK(store_stat(p, "storeAllowed") == 120 && (long long)n.sent == store_stat(p, "requests") && n.timeouts == 0,
        "sent %llu, requests %lld", (unsigned long long)n.sent, store_stat(p, "requests"));
  tw_pipeline_free(p);
  client_free(&cl);
}

/* The step protocol: poll -> STORE, read the request, run it, report, poll -> ATTEMPT. */
static void test_step_protocol(void) {
  client cl = client_new();
  tw_pipeline *p = pipeline(
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"100/s\", \"burst\": 2}, "
      "\"store\": {\"key\": \"steps%d\", \"timeout\": \"300ms\"}}", NULL);
  tw_call call;
  tw_step step;
  uint64_t now = tw_now_ns();
  OK(tw_call_begin(p, now, TW_NO_DEADLINE, &call, E));
  tw_store_request req;
  CHECK(tw_call_store_request(p, call, &req, NULL) == TW_STATUS_INVALID_ARGUMENT, "no STORE step polled yet");
  OK(tw_call_poll(p, call, now, &step, E));
  CHECK(step.kind == TW_STEP_KIND_STORE && step.has_until && step.until_ns == now + 300000000 && step.request > 0,
        "kind %u until %llu", step.kind, (unsigned long long)step.until_ns);
  OK(tw_call_store_request(p, call, &req, E));
  char key[64];
  int klen = snprintf(key, sizeof key, "tw:{rl:steps%d:}:0", test_no);
  CHECK(req.id == step.request && req.num_keys == 1 && req.keys[0].len == (size_t)klen &&
            memcmp(req.keys[0].ptr, key, (size_t)klen) == 0 && req.timeout_ns == 300000000 &&
            req.until_ns == step.until_ns && !req.resend_safe && req.num_args == 7,
        "request %.*s", (int)req.keys[0].len, req.keys[0].ptr);
  /* Polling again before the reply gives the same step and keeps the request readable. */
  OK(tw_call_poll(p, call, now + 1, &step, E));
  CHECK(step.kind == TW_STEP_KIND_STORE && step.request == req.id, "same STORE step");
  tw_store_reply reply;
  memset(&reply, 0, sizeof reply);
  CHECK(tw_call_report_store(p, call, &reply, now, NULL) == TW_STATUS_INVALID_ARGUMENT, "kind NONE is refused");
  tw_hiredis_run(cl.h, &req, &reply);
  CHECK(reply.kind == TW_STORE_REPLY_KIND_VALUES && reply.num_values == 8 && reply.values[0] == 0,
        "kind %u values %zu", reply.kind, reply.num_values);
  OK(tw_call_report_store(p, call, &reply, tw_now_ns(), E));
  CHECK(tw_call_report_store(p, call, &reply, tw_now_ns(), NULL) == TW_STATUS_INVALID_ARGUMENT, "reported twice");
  OK(tw_call_poll(p, call, tw_now_ns(), &step, E));
  CHECK(step.kind == TW_STEP_KIND_ATTEMPT, "kind %u", step.kind);
  tw_report ok = {TW_OUTCOME_SUCCESS, true, false, 0};
  OK(tw_call_report(p, call, &ok, tw_now_ns(), E));
  OK(tw_call_poll(p, call, tw_now_ns(), &step, E));
  CHECK(step.kind == TW_STEP_KIND_DONE, "done");

  /* A reply reported at the step's until is a timeout: dropped, the fallback decides. */
  now = tw_now_ns();
  OK(tw_call_begin(p, now, TW_NO_DEADLINE, &call, E));
  OK(tw_call_poll(p, call, now, &step, E));
  OK(tw_call_store_request(p, call, &req, E));
  tw_hiredis_run(cl.h, &req, &reply);
  OK(tw_call_report_store(p, call, &reply, step.until_ns, E));
  CHECK(store_stat(p, "timeouts") == 1 && store_stat(p, "fallbackAllowed") == 1, "late reply: timeouts %lld",
        store_stat(p, "timeouts"));
  OK(tw_call_poll(p, call, step.until_ns, &step, E));
  CHECK(step.kind == TW_STEP_KIND_ATTEMPT, "the fallback admitted it");
  OK(tw_call_end(p, call, tw_now_ns(), E));

  /* Ending a call at its STORE step abandons the request. */
  now = tw_now_ns();
  OK(tw_call_begin(p, now, TW_NO_DEADLINE, &call, E));
  OK(tw_call_poll(p, call, now, &step, E));
  CHECK(step.kind == TW_STEP_KIND_STORE && store_stat(p, "inFlight") == 1, "in flight");
  OK(tw_call_end(p, call, now, E));
  CHECK(store_stat(p, "inFlight") == 0, "abandoned");
  CHECK(tw_call_store_request(p, call, &req, NULL) == TW_STATUS_INVALID_ARGUMENT, "forgotten");
  CHECK(tw_call_report_store(p, call, &reply, now, NULL) == TW_STATUS_UNKNOWN_CALL, "ended call");

  /* A reconfigure at a STORE step: the request copy stays readable (it names the old key);
   * its reply is then ignored and the call asks again under the new config. */
  now = tw_now_ns();
  OK(tw_call_begin(p, now, TW_NO_DEADLINE, &call, E));
  OK(tw_call_poll(p, call, now, &step, E));
  const char *moved = "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"100/s\"}, \"store\": {\"key\": \"moved\"}}";
  OK(tw_pipeline_reconfigure(p, moved, strlen(moved), now, E));
  OK(tw_call_poll(p, call, now, &step, E));
  OK(tw_call_store_request(p, call, &req, E));
  CHECK(step.kind == TW_STEP_KIND_STORE && req.keys[0].len == (size_t)klen &&
            memcmp(req.keys[0].ptr, key, (size_t)klen) == 0,
        "the old request: %.*s", (int)req.keys[0].len, req.keys[0].ptr);
  memset(&reply, 0, sizeof reply);
  reply.kind = TW_STORE_REPLY_KIND_UNAVAILABLE;
  OK(tw_call_report_store(p, call, &reply, now, E));
  OK(tw_call_poll(p, call, now, &step, E));
  OK(tw_call_store_request(p, call, &req, E));
  CHECK(step.kind == TW_STEP_KIND_STORE && req.keys[0].len == 16 && memcmp(req.keys[0].ptr, "tw:{rl:moved:}:0", 16) == 0,
        "asked again under the new key: %.*s", (int)req.keys[0].len, req.keys[0].ptr);
  CHECK(store_stat(p, "unavailable") == 0, "the stale reply was not counted");
  OK(tw_call_end(p, call, now, E));
  tw_pipeline_free(p);
  client_free(&cl);
}

/* A store config without a store client: every request is "unavailable"; the fallback decides. */
static void test_no_store_client(void) {
  tw_pipeline *deny = pipeline(
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"10/s\"}, "
      "\"store\": {\"key\": \"none%d\", \"onUnavailable\": \"deny\"}}", NULL);
  result r = run(deny);
  CHECK(r.status == TW_STATUS_RATE_LIMITED, "deny: %s", tw_status_str(r.status));
  CHECK(store_stat(deny, "unavailable") == 1 && store_stat(deny, "fallbackDenied") == 1, "counted");
  tw_pipeline_free(deny);
  tw_pipeline *local = pipeline(
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"10/s\", \"burst\": 4}, "
      "\"store\": {\"key\": \"none%d\", \"expectedInstances\": 2}}", NULL);
  int admitted = 0;
  for (int i = 0; i < 5; i++) admitted += run(local).status == TW_STATUS_OK;
  CHECK(admitted == 2, "local: burst 4 over 2 instances admits 2, got %d", admitted);
  tw_pipeline_free(local);
}

/* The store on a closed port: calls complete at once through the fallback; after 3 failures
 * the store breaker opens (an event) and no more requests are tried. */
static void test_store_on_a_closed_port(void) {
  redisContext *c = connect_to("127.0.0.1", 1); /* nothing listens on port 1 */
  CHECK(c != NULL && c->err != 0, "port 1 refuses");
  client cl = client_at(c);
  const char *modes[] = {"local", "allow", "deny"};
  int want[] = {2, 6, 0};
  for (int m = 0; m < 3; m++) {
    char config[512];
    snprintf(config, sizeof config,
             "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"10/s\", \"burst\": 4}, "
             "\"store\": {\"key\": \"down%%d\", \"timeout\": \"50ms\", \"onUnavailable\": \"%s\", "
             "\"expectedInstances\": 2}}", modes[m]);
    tw_pipeline *p = pipeline(config, &cl);
    tw_hiredis_counters before = counters(&cl);
    int admitted = 0;
    for (int i = 0; i < 6; i++) {
      result r = run(p);
      admitted += r.status == TW_STATUS_OK;
      CHECK(r.status == TW_STATUS_OK || r.status == TW_STATUS_RATE_LIMITED, "%s", tw_status_str(r.status));
      CHECK(r.took_ns < 50000000 + slack_ns, "%s: a call took %llu ms", modes[m], (unsigned long long)(r.took_ns / 1000000));
    }
    tw_hiredis_counters after = counters(&cl);
    CHECK(admitted == want[m], "%s: admitted %d, want %d", modes[m], admitted, want[m]);
    CHECK(after.unavailable - before.unavailable == 3 && after.sent == 0,
          "%s: 3 unavailable, then the breaker stops asking (got %llu, sent %llu)", modes[m],
          (unsigned long long)(after.unavailable - before.unavailable), (unsigned long long)after.sent);
    CHECK(store_stat(p, "storeState") == 1 && store_events(p, TW_BREAKER_STATE_OPEN) == 1, "%s: store breaker open",
          modes[m]);
    tw_pipeline_free(p);
  }
  client_free(&cl);
}

/* The server frozen longer than the timeout: each call ends within timeout + slack through the
 * fallback, nothing is resent (the server runs each EVALSHA once when it wakes), and after
 * the breaker's open period the store decides again. */
static void test_store_frozen(void) {
  client cl = client_new();
  tw_pipeline *p = pipeline(
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"100/s\", \"burst\": 50}, "
      "\"store\": {\"key\": \"frozen%d\", \"timeout\": \"40ms\"}}", &cl);
  CHECK(run(p).status == TW_STATUS_OK, "warm-up");
  admin_do("CONFIG RESETSTAT");
  CHECK(kill(redis_pid, SIGSTOP) == 0, "SIGSTOP");
  uint64_t worst = 0;
  for (int i = 0; i < 6; i++) {
    result r = run(p);
    CHECK(r.status == TW_STATUS_OK, "fallback admits: %s", tw_status_str(r.status));
    if (r.took_ns > worst) worst = r.took_ns;
  }
  tw_hiredis_counters frozen = counters(&cl);
  CHECK(kill(redis_pid, SIGCONT) == 0, "SIGCONT");
  CHECK(worst <= 40000000 + slack_ns, "worst call %llu ms (timeout 40 ms)", (unsigned long long)(worst / 1000000));
  CHECK(frozen.timeouts == 3, "3 timeouts open the store breaker, got %llu", (unsigned long long)frozen.timeouts);
  CHECK(store_stat(p, "timeouts") == 3 && store_stat(p, "storeState") == 1, "pipeline saw 3 timeouts");
  /* The server wakes and runs what it had received: each request exactly once. */
  long long ran = 0;
  for (int i = 0; i < 100 && ran < 3; i++) {
    sleep_ms(10);
    ran = server_calls("evalsha");
  }
  sleep_ms(520); /* the store breaker's open period (500 ms) */
  result r = run(p);
  CHECK(r.status == TW_STATUS_OK, "after recovery: %s", tw_status_str(r.status));
  CHECK(store_stat(p, "storeAllowed") == 2 && store_stat(p, "storeState") == 0, "the store decides again");
  tw_hiredis_counters n = counters(&cl);
  long long evalsha = server_calls("evalsha"), eval = server_calls("eval");
  CHECK(evalsha == (long long)(n.sent - 1) && eval == 0,
        "never resent: the server ran EVALSHA %lld times and EVAL %lld times for %llu requests", evalsha, eval,
        (unsigned long long)(n.sent - 1));
  CHECK(n.reconnects >= 3, "each timeout reconnects lazily (%llu)", (unsigned long long)n.reconnects);
  tw_pipeline_free(p);
  client_free(&cl);
}

/* A WRONGTYPE reply is a deployment mistake: FAILED, the fallback decides, the store breaker
 * stays closed. */
static void test_wrongtype_does_not_open_the_store_breaker(void) {
  client cl = client_new();
  tw_pipeline *p = pipeline(
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"100/s\", \"burst\": 10}, "
      "\"store\": {\"key\": \"wrongtype%d\", \"timeout\": \"1s\"}}", &cl);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "HSET tw:{rl:wrongtype%d:}:0 field value", test_no);
  admin_do(cmd);
  for (int i = 0; i < 5; i++) CHECK(run(p).status == TW_STATUS_OK, "the fallback admits");
  tw_hiredis_counters n = counters(&cl);
  CHECK(n.failed == 5 && n.sent == 5 && n.timeouts == 0 && n.unavailable == 0, "failed %llu", (unsigned long long)n.failed);
  CHECK(store_stat(p, "errors") == 5 && store_stat(p, "storeState") == 0 && store_events(p, TW_BREAKER_STATE_OPEN) == 0,
        "errors %lld, store breaker closed", store_stat(p, "errors"));
  /* The pipeline keeps the server's message too: a size query, a short buffer, the text. */
  size_t need = 0;
  char pmsg[256], tiny[4] = "xyz";
  OK(tw_pipeline_store_last_error(p, NULL, 0, &need, E));
  CHECK(need > 10 && need < sizeof pmsg, "needed %zu", need);
  CHECK(tw_pipeline_store_last_error(p, tiny, sizeof tiny, NULL, NULL) == TW_STATUS_BUFFER_TOO_SMALL && tiny[0] == 0,
        "a short buffer is refused and left empty");
  OK(tw_pipeline_store_last_error(p, pmsg, sizeof pmsg, NULL, E));
  CHECK(strncmp(pmsg, "WRONGTYPE", 9) == 0 && strlen(pmsg) + 1 == need, "pipeline last error %s", pmsg);
  tw_pipeline_free(p);
  /* None yet: empty. */
  p = pipeline("{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"100/s\"}, \"store\": {\"key\": \"fine%d\"}}", &cl);
  CHECK(run(p).status == TW_STATUS_OK, "a fine call");
  OK(tw_pipeline_store_last_error(p, pmsg, sizeof pmsg, &need, E));
  CHECK(pmsg[0] == 0 && need == 1, "no error: \"%s\"", pmsg);
  tw_pipeline_free(p);

  /* The raw limiter keeps the server's message. */
  char json[256];
  snprintf(json, sizeof json,
           "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"100/s\"}, \"store\": {\"key\": \"wrongtype%d\"}}", test_no);
  tw_shared_limiter *l = NULL;
  OK(tw_shared_limiter_new(json, strlen(json), &l, E));
  tw_shared_decision d;
  OK(tw_shared_limiter_check(l, NULL, 0, tw_now_ns(), 1, &d, E));
  tw_store_request req;
  OK(tw_shared_limiter_request(l, d.request, &req, E));
  tw_store_reply reply;
  tw_hiredis_run(cl.h, &req, &reply);
  OK(tw_shared_limiter_reply(l, d.request, &reply, tw_now_ns(), &d, E));
  char msg[256];
  OK(tw_shared_limiter_last_error(l, msg, sizeof msg, NULL, E));
  CHECK(d.decided && d.source == TW_STORE_SOURCE_FALLBACK && strncmp(msg, "WRONGTYPE", 9) == 0, "last error %s", msg);
  tw_shared_limiter_free(l);
  client_free(&cl);
}

static tw_outcome fail_attempt(void *ctx, tw_attempt *a) {
  (void)ctx;
  (void)a;
  return TW_OUTCOME_FAILURE;
}

/* The shared breaker through tw_pipeline_execute on the store's clock: A trips (2 failures) and
 * votes; with quorum 1 the fleet opens, and B adopts the open at its first sync without having
 * failed once. The share metrics, typed and JSON, count it; a breaker that is not shared has
 * none. The store timeout is generous: under valgrind on a busy machine a round trip can
 * pass the default 25 ms, and a timed-out request counts as failed. */
static void test_shared_breaker(void) {
  client cl = client_new();
  const char *fmt =
      "{\"circuitBreaker\": {\"trip\": {\"consecutiveFailures\": 2}, \"openDuration\": \"30s\", "
      "\"share\": {\"mode\": \"signal\", \"quorum\": 1, \"flush\": \"10s\"}}, "
      "\"store\": {\"key\": \"fleet%d\", \"timeout\": \"2s\"}}";
  tw_pipeline *a = pipeline(fmt, &cl), *b = pipeline(fmt, &cl);
  tw_failure f;
  CHECK(tw_pipeline_execute_ex(a, fail_attempt, NULL, TW_NO_DEADLINE, &f, NULL) == TW_STATUS_FAILURE, "A fails once");
  CHECK(tw_pipeline_execute_ex(a, fail_attempt, NULL, TW_NO_DEADLINE, &f, NULL) == TW_STATUS_FAILURE, "A fails twice");
  tw_breaker_state st = TW_BREAKER_STATE_CLOSED;
  OK(tw_pipeline_get_breaker_state(a, &st, E));
  CHECK(st == TW_BREAKER_STATE_OPEN, "A tripped locally: %s", tw_breaker_state_str(st));
  result r = run(a); /* carries A's vote */
  CHECK(r.status == TW_STATUS_CIRCUIT_OPEN, "A open: %s", tw_status_str(r.status));
  tw_share_metrics m;
  OK(tw_pipeline_get_share_metrics(a, &m, E));
  CHECK(m.votes == 1 && m.fleet_state == TW_BREAKER_STATE_OPEN && m.failed == 0, "A: votes %llu, fleet %s, failed %llu",
        (unsigned long long)m.votes, tw_breaker_state_str(m.fleet_state), (unsigned long long)m.failed);
  r = run(b);
  CHECK(r.status == TW_STATUS_CIRCUIT_OPEN, "B adopted the open: %s", tw_status_str(r.status));
  OK(tw_pipeline_get_breaker_state(b, &st, E));
  tw_share_metrics mb;
  OK(tw_pipeline_get_share_metrics(b, &mb, E));
  CHECK(st == TW_BREAKER_STATE_OPEN && mb.adopted_open == 1 && mb.votes == 0 && mb.requests >= 1,
        "B: %s, adoptedOpen %llu, votes %llu, requests %llu", tw_breaker_state_str(st),
        (unsigned long long)mb.adopted_open, (unsigned long long)mb.votes, (unsigned long long)mb.requests);
  OK(tw_pipeline_get_share_metrics(a, &m, E));
  tw_hiredis_counters n = counters(&cl);
  CHECK(m.requests + mb.requests == n.sent, "share requests %llu + %llu, sent %llu", (unsigned long long)m.requests,
        (unsigned long long)mb.requests, (unsigned long long)n.sent);
  /* The stats JSON carries the same object. */
  char buf[4096];
  OK(tw_pipeline_stats_json(b, buf, sizeof buf, NULL, E));
  CHECK(strstr(buf, "\"share\":{") && strstr(buf, "\"adoptedOpen\":1") && strstr(buf, "\"fleetState\":\"open\""),
        "stats JSON: %s", buf);
  /* Vectors only: the scripts on the host's clock; any pipeline takes it. */
  OK(tw_pipeline_use_store_host_clock(a, true, E));
  OK(tw_pipeline_use_store_host_clock(a, false, E));
  tw_pipeline_free(a);
  tw_pipeline_free(b);

  tw_pipeline *plain = pipeline("{\"circuitBreaker\": {}, \"store\": {\"key\": \"plain%d\"}, "
                                "\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"10/s\"}}", &cl);
  tw_error *err = NULL;
  CHECK(tw_pipeline_get_share_metrics(plain, &m, &err) == TW_STATUS_NOT_CONFIGURED, "no share: not configured");
  CHECK(err && strstr(tw_error_message(err), "circuitBreaker.share"), "%s", err ? tw_error_message(err) : "");
  tw_error_free(err);
  OK(tw_pipeline_stats_json(plain, buf, sizeof buf, NULL, E));
  CHECK(strstr(buf, "\"share\"") == NULL, "no share object: %s", buf);
  OK(tw_pipeline_use_store_host_clock(plain, true, E));
  tw_pipeline_free(plain);
  client_free(&cl);
}

/* The raw layer: check -> request -> run -> reply; a cached denial; abandon; events. */
static void test_raw_shared_limiter(void) {
  client cl = client_new();
  char json[256];
  snprintf(json, sizeof json,
           "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"1/s\", \"burst\": 1}, "
           "\"store\": {\"key\": \"raw%d\", \"timeout\": \"1s\"}, \"keyed\": {\"maxKeys\": 10}}", test_no);
  tw_shared_limiter *l = NULL;
  OK(tw_shared_limiter_new_with_seed(json, strlen(json), 3, &l, E));
  int sources[3] = {0};
  for (int i = 0; i < 3; i++) {
    tw_shared_decision d;
    OK(tw_shared_limiter_check(l, "alice", 5, tw_now_ns(), 1, &d, E));
    if (!d.decided) {
      tw_store_request req;
      OK(tw_shared_limiter_request(l, d.request, &req, E));
      CHECK(req.keys[0].len > 6 && memcmp(req.keys[0].ptr + req.keys[0].len - 9, ":alice}:0", 9) == 0, "keyed: %.*s",
            (int)req.keys[0].len, req.keys[0].ptr);
      tw_store_reply reply;
      tw_hiredis_run(cl.h, &req, &reply);
      OK(tw_shared_limiter_reply(l, d.request, &reply, tw_now_ns(), &d, E));
    }
    sources[i] = d.source * 10 + d.decision.allowed;
  }
  CHECK(sources[0] == TW_STORE_SOURCE_STORE * 10 + 1 && sources[1] == TW_STORE_SOURCE_STORE * 10 &&
            sources[2] == TW_STORE_SOURCE_CACHE * 10,
        "store admits, store denies, cache denies: %d %d %d", sources[0], sources[1], sources[2]);
  /* Abandon: the reply then names an unknown request. */
  tw_shared_decision d;
  OK(tw_shared_limiter_check(l, "bob", 3, tw_now_ns(), 1, &d, E));
  CHECK(!d.decided && d.source == TW_STORE_SOURCE_NONE, "a request for bob");
  OK(tw_shared_limiter_abandon(l, d.request, tw_now_ns(), E));
  tw_store_request req;
  CHECK(tw_shared_limiter_request(l, d.request, &req, NULL) == TW_STATUS_UNKNOWN_CALL, "abandoned");
  tw_store_reply reply;
  memset(&reply, 0, sizeof reply);
  reply.kind = TW_STORE_REPLY_KIND_TIMEOUT;
  CHECK(tw_shared_limiter_reply(l, d.request, &reply, tw_now_ns(), &d, NULL) == TW_STATUS_UNKNOWN_CALL, "unknown id");
  reply.kind = 42;
  CHECK(tw_shared_limiter_reply(l, 1, &reply, tw_now_ns(), &d, NULL) == TW_STATUS_INVALID_ARGUMENT, "kind 42");
  /* Three timeouts open the store breaker: an event, and decisions without requests. */
  reply.kind = TW_STORE_REPLY_KIND_TIMEOUT;
  for (int i = 0; i < 3; i++) {
    OK(tw_shared_limiter_check(l, "carol", 5, tw_now_ns(), 1, &d, E));
    OK(tw_shared_limiter_reply(l, d.request, &reply, tw_now_ns(), &d, E));
  }
  tw_breaker_state state;
  OK(tw_shared_limiter_store_state(l, &state, E));
  tw_event e;
  OK(tw_shared_limiter_poll_event(l, &e, E));
  CHECK(state == TW_BREAKER_STATE_OPEN && e.type == TW_EVENT_TYPE_STORE_STATE_CHANGED && e.to == TW_BREAKER_STATE_OPEN &&
            strcmp(tw_event_type_str(e.type), "storeStateChanged") == 0,
        "store breaker open, event %u", e.type);
  OK(tw_shared_limiter_check(l, "dave", 4, tw_now_ns(), 1, &d, E));
  CHECK(d.decided && d.source == TW_STORE_SOURCE_FALLBACK, "fallback while open");
  char metrics[1024];
  OK(tw_shared_limiter_metrics_json(l, metrics, sizeof metrics, NULL, E));
  CHECK(strstr(metrics, "\"timeouts\":3") && strstr(metrics, "\"storeState\":\"open\"") && strstr(metrics, "\"inFlight\":0"),
        "%s", metrics);
  tw_shared_limiter_free(l);
  client_free(&cl);
}

/* A run callback that fills nothing, or too much, is a failed request (not a crash, not an
 * outage); one that answers after the timeout is a timeout. */
static int slow_calls;
static void run_nothing(void *ctx, const tw_store_request *req, tw_store_reply *out) {
  (void)ctx, (void)req, (void)out;
}
static void run_too_much(void *ctx, const tw_store_request *req, tw_store_reply *out) {
  (void)ctx, (void)req;
  out->kind = TW_STORE_REPLY_KIND_VALUES;
  out->num_values = TW_STORE_MAX_VALUES + 1;
}
static void run_late(void *ctx, const tw_store_request *req, tw_store_reply *out) {
  tw_hiredis_run(ctx, req, out);
  slow_calls++;
  sleep_ms((long)(req->timeout_ns / 1000000) + 5);
}

static void test_callbacks_that_misbehave(void) {
  tw_store nothing = {NULL, run_nothing}, too_much = {NULL, run_too_much};
  tw_pipeline *p = pipeline(
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"100/s\"}, \"store\": {\"key\": \"cb%d\"}}", NULL);
  OK(tw_pipeline_set_store(p, &nothing, E));
  CHECK(run(p).status == TW_STATUS_OK, "the fallback decides");
  OK(tw_pipeline_set_store(p, &too_much, E));
  CHECK(run(p).status == TW_STATUS_OK, "the fallback decides");
  CHECK(store_stat(p, "errors") == 2 && store_stat(p, "storeState") == 0, "2 errors, breaker closed");
  client cl = client_new();
  tw_store late = {cl.h, run_late};
  OK(tw_pipeline_set_store(p, &late, E));
  CHECK(run(p).status == TW_STATUS_OK && slow_calls == 1, "the fallback decides");
  CHECK(store_stat(p, "timeouts") == 1 && store_stat(p, "storeAllowed") == 0, "a late reply is a timeout, not applied");
  OK(tw_pipeline_set_store(p, NULL, E));
  CHECK(run(p).status == TW_STATUS_OK && store_stat(p, "unavailable") == 1, "no store: unavailable");
  tw_pipeline_free(p);
  client_free(&cl);
}

/* Bad input: config errors name their field; a store without a run function, a NULL or async
 * client, NULL handles. */
static void test_bad_input(void) {
  const char *bad = "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"1/s\"}, \"store\": {\"key\": \"k\", \"timeout\": 0}}";
  tw_pipeline *p = NULL;
  tw_error *err = NULL;
  CHECK(tw_pipeline_new(bad, strlen(bad), &p, &err) == TW_STATUS_INVALID_CONFIG && p == NULL, "refused");
  CHECK(err && strncmp(tw_error_message(err), "store.timeout: must be > 0", 26) == 0 &&
            strcmp(tw_error_path(err), "store.timeout") == 0,
        "%s", err ? tw_error_message(err) : "");
  tw_error_free(err);
  err = NULL;
  tw_shared_limiter *l = NULL;
  CHECK(tw_shared_limiter_new(bad, strlen(bad), &l, &err) == TW_STATUS_INVALID_CONFIG && l == NULL, "refused");
  CHECK(err && strncmp(tw_error_message(err), "store.timeout: must be > 0", 26) == 0, "%s", err ? tw_error_message(err) : "");
  tw_error_free(err);
  err = NULL;
  const char *fixed = "{\"rateLimit\": {\"algorithm\": \"fixedWindow\", \"rate\": \"1/s\"}, \"store\": {\"key\": \"k\"}}";
  CHECK(tw_shared_limiter_new(fixed, strlen(fixed), &l, &err) == TW_STATUS_INVALID_CONFIG, "fixedWindow refused");
  CHECK(err && strncmp(tw_error_message(err), "rateLimit.algorithm: must be \"gcra\"", 35) == 0, "%s",
        err ? tw_error_message(err) : "");
  tw_error_free(err);
  err = NULL;

  p = pipeline("{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"1/s\"}, \"store\": {\"key\": \"bad%d\"}}", NULL);
  tw_store no_run = {NULL, NULL};
  CHECK(tw_pipeline_set_store(p, &no_run, &err) == TW_STATUS_NULL_ARGUMENT, "run NULL");
  CHECK(err && strcmp(tw_error_message(err), "store.run: must not be NULL") == 0, "%s", err ? tw_error_message(err) : "");
  tw_error_free(err);
  tw_pipeline_free(p);

  const char *why = NULL;
  CHECK(tw_hiredis_new(NULL, &why) == NULL && why && strstr(why, "NULL"), "NULL context");
  redisContext *async = redisConnectNonBlock("127.0.0.1", 1);
  why = NULL;
  CHECK(tw_hiredis_new(async, &why) == NULL && why && strstr(why, "not a blocking"), "non-blocking context: %s",
        why ? why : "");
  redisFree(async);
  redisContext *unbounded = redisConnect("127.0.0.1", 1);
  why = NULL;
  CHECK(tw_hiredis_new(unbounded, &why) == NULL && why && strstr(why, "connect timeout"), "no connect timeout: %s",
        why ? why : "");
  redisFree(unbounded);
  tw_store_reply reply;
  tw_hiredis_run(NULL, NULL, &reply);
  CHECK(reply.kind == TW_STORE_REPLY_KIND_FAILED, "NULL adapter");

  /* NULL everywhere: a status, never a crash. */
  tw_shared_decision d;
  tw_store_request req;
  tw_breaker_state s;
  tw_event e;
  size_t n;
  CHECK(tw_shared_limiter_check(NULL, NULL, 0, 0, 1, &d, NULL) == TW_STATUS_NULL_ARGUMENT, "check");
  CHECK(tw_shared_limiter_request(NULL, 1, &req, NULL) == TW_STATUS_NULL_ARGUMENT, "request");
  CHECK(tw_shared_limiter_reply(NULL, 1, &reply, 0, &d, NULL) == TW_STATUS_NULL_ARGUMENT, "reply");
  CHECK(tw_shared_limiter_abandon(NULL, 1, 0, NULL) == TW_STATUS_NULL_ARGUMENT, "abandon");
  CHECK(tw_shared_limiter_store_state(NULL, &s, NULL) == TW_STATUS_NULL_ARGUMENT, "store_state");
  CHECK(tw_shared_limiter_metrics_json(NULL, NULL, 0, &n, NULL) == TW_STATUS_NULL_ARGUMENT, "metrics");
  CHECK(tw_shared_limiter_last_error(NULL, NULL, 0, &n, NULL) == TW_STATUS_NULL_ARGUMENT, "last_error");
  CHECK(tw_shared_limiter_use_host_clock(NULL, true, NULL) == TW_STATUS_NULL_ARGUMENT, "use_host_clock");
  CHECK(tw_shared_limiter_poll_event(NULL, &e, NULL) == TW_STATUS_NULL_ARGUMENT, "poll_event");
  CHECK(tw_shared_limiter_set_listener(NULL, NULL, NULL, NULL) == TW_STATUS_NULL_ARGUMENT, "set_listener");
  CHECK(tw_shared_limiter_new(NULL, 0, &l, NULL) == TW_STATUS_NULL_ARGUMENT, "new json");
  CHECK(tw_pipeline_set_store(NULL, NULL, NULL) == TW_STATUS_NULL_ARGUMENT, "set_store");
  CHECK(tw_call_store_request(NULL, 1, &req, NULL) == TW_STATUS_NULL_ARGUMENT, "store_request");
  CHECK(tw_call_report_store(NULL, 1, &reply, 0, NULL) == TW_STATUS_NULL_ARGUMENT, "report_store");
  CHECK(tw_store_scripts(NULL, 0, NULL, NULL) == TW_STATUS_NULL_ARGUMENT, "scripts count");
  tw_share_metrics sm;
  CHECK(tw_pipeline_get_share_metrics(NULL, &sm, NULL) == TW_STATUS_NULL_ARGUMENT, "share metrics");
  CHECK(tw_pipeline_store_last_error(NULL, NULL, 0, &n, NULL) == TW_STATUS_NULL_ARGUMENT, "pipeline last_error");
  CHECK(tw_pipeline_use_store_host_clock(NULL, true, NULL) == TW_STATUS_NULL_ARGUMENT, "pipeline use_store_host_clock");
  const char *shared = "{\"circuitBreaker\": {\"share\": {}}, \"store\": {\"key\": \"k\"}}";
  tw_pipeline *sp = NULL;
  OK(tw_pipeline_new(shared, strlen(shared), &sp, E));
  CHECK(tw_pipeline_get_share_metrics(sp, NULL, NULL) == TW_STATUS_NULL_ARGUMENT, "share metrics out NULL");
  OK(tw_pipeline_get_share_metrics(sp, &sm, E));
  CHECK(sm.requests == 0 && sm.fleet_state == TW_BREAKER_STATE_CLOSED, "a fresh share");
  tw_pipeline_free(sp);
  tw_shared_limiter_free(NULL);
  const char *good = "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"1/s\"}, \"store\": {\"key\": \"k\"}}";
  OK(tw_shared_limiter_new(good, strlen(good), &l, E));
  CHECK(tw_shared_limiter_check(l, NULL, 3, 0, 1, &d, NULL) == TW_STATUS_NULL_ARGUMENT, "key NULL with a length");
  CHECK(tw_shared_limiter_check(l, "\xff", 1, 0, 1, &d, NULL) == TW_STATUS_INVALID_ARGUMENT, "key not UTF-8");
  CHECK(tw_shared_limiter_check(l, NULL, 0, 0, 1, NULL, NULL) == TW_STATUS_NULL_ARGUMENT, "out NULL");
  CHECK(tw_shared_limiter_reply(l, 1, NULL, 0, &d, NULL) == TW_STATUS_NULL_ARGUMENT, "reply NULL");
  CHECK(strcmp(tw_store_source_str(TW_STORE_SOURCE_CACHE), "cache") == 0 && strcmp(tw_store_source_str(9), "unknown") == 0,
        "source names");
  tw_shared_limiter_free(l);
}

int main(void) {
  url = getenv("TRIPWIRE_REDIS_URL");
  const char *pid = getenv("TRIPWIRE_REDIS_PID");
  const char *slack = getenv("TW_TEST_SLACK_MS");
  if (!url || !*url || !pid) {
    fprintf(stderr, "store: needs TRIPWIRE_REDIS_URL and TRIPWIRE_REDIS_PID (source scripts/ci/redis.sh; redis_start)\n");
    return 2;
  }
  redis_pid = (pid_t)atol(pid);
  if (slack) slack_ns = (uint64_t)atoll(slack) * 1000000u;
  admin = connect_url();
  if (!admin || admin->err) {
    fprintf(stderr, "store: cannot reach %s\n", url);
    return 2;
  }
  admin_do("FLUSHALL");
  admin_do("SCRIPT FLUSH");
  void (*tests[])(void) = {test_scripts,
                           test_burst_then_rate_limited,
                           test_two_instances_share_the_limit,
                           test_threads_share_one_adapter,
                           test_step_protocol,
                           test_no_store_client,
                           test_store_on_a_closed_port,
                           test_store_frozen,
                           test_wrongtype_does_not_open_the_store_breaker,
                           test_shared_breaker,
                           test_raw_shared_limiter,
                           test_callbacks_that_misbehave,
                           test_bad_input};
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    test_no = (int)i;
    tests[i]();
  }
  redisFree(admin);
  printf("store: %zu tests, %d failed checks\n", sizeof tests / sizeof tests[0], failures);
  return failures == 0 ? 0 : 1;
}
