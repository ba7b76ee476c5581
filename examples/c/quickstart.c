/* tripwire quick start in C: a flaky HTTP service on 127.0.0.1 (a tiny socket server on a
 * pthread), called through the "api" pipeline of examples/policies/default.json (rate limit,
 * bulkhead, retry with a budget, circuit breaker, timeouts, fallback). The service answers for
 * 1 s, fails with 503s for 3.5 s, then recovers; the program prints the retries, the breaker's
 * trips, the fallbacks and the recovery from the pipeline's events, and ends by itself.
 *
 * HTTP rather than an in-process function, because the part a C user has to write is the I/O
 * that honours an attempt's deadline (here: poll() until `attempt->deadline_ns`) and the
 * mapping of a response to an outcome (5xx: retryable failure, 4xx: ignored). The rest is
 * tw_pipeline_execute(): it sleeps the backoffs, runs the attempts, and calls the fallback.
 *
 * Build: make -C examples/c            (after `make c` at the root; writes target/examples/)
 *    or: cc -std=c11 -pthread quickstart.c $(pkg-config --cflags --libs tripwire)
 * Run:   target/examples/quickstart-c [path/to/policies.json]
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tripwire.h>

#define MS UINT64_C(1000000) /* nanoseconds */

/* How the embedded service behaves, by time since it started. */
#define HEALTHY_UNTIL (1000 * MS)
#define BROKEN_UNTIL (4500 * MS)
/* How long the program runs, and how often it calls. */
#define RUN_FOR (8500 * MS)
#define EVERY (100 * MS)

/* tw_now_ns() at start. tw_now_ns() is the clock tw_pipeline_execute() sleeps by and stamps
 * events with, so the service, the calls and the events share one timeline. */
static uint64_t origin;

static double secs(uint64_t at_ns) { return (double)(int64_t)(at_ns - origin) / 1e9; }

static void sleep_until(uint64_t at_ns) {
  uint64_t now = tw_now_ns();
  if (at_ns <= now) return;
  struct timespec ts = {.tv_sec = (time_t)((at_ns - now) / 1000000000u),
                        .tv_nsec = (long)((at_ns - now) % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- the flaky service: one thread, one connection at a time, on an ephemeral port ---- */

struct service {
  int fd;
  uint16_t port;
  pthread_t thread;
};

static void *serve(void *arg) {
  struct service *s = arg;
  for (;;) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return NULL; /* the listener was shut down */
    }
    char req[1024];
    size_t got = 0;
    req[0] = '\0';
    while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) { /* the request head */
      ssize_t n = recv(c, req + got, sizeof req - 1 - got, 0);
      if (n <= 0) break;
      got += (size_t)n;
      req[got] = '\0';
    }
    uint64_t t = tw_now_ns() - origin;
    const char *status = "200 OK", *body = "price=42";
    if (t >= HEALTHY_UNTIL && t < BROKEN_UNTIL) {
      status = "503 Service Unavailable";
      body = "overloaded";
    } else {
      sleep_until(tw_now_ns() + 5 * MS);
    }
    char resp[256];
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       status, strlen(body), body);
    (void)send(c, resp, (size_t)len, MSG_NOSIGNAL);
    close(c);
  }
}

static int start_flaky_service(struct service *s) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(s->fd, 16) != 0 || getsockname(s->fd, (struct sockaddr *)&addr, &len) != 0) {
    perror("flaky service");
    return -1;
  }
  s->port = ntohs(addr.sin_port);
  return pthread_create(&s->thread, NULL, serve, s);
}

static void stop_flaky_service(struct service *s) {
  shutdown(s->fd, SHUT_RDWR); /* wakes accept() */
  pthread_join(s->thread, NULL);
  close(s->fd);
}

/* ---- the client: GET /price, given up at the attempt's deadline ------------------------ */

enum fetch { FETCH_OK, FETCH_STATUS, FETCH_TIMEOUT, FETCH_IO };

/* Wait until `fd` is ready for `events` or the deadline passes. */
static enum fetch await_fd(int fd, short events, uint64_t deadline_ns) {
  for (;;) {
    int wait_ms = -1;
    if (deadline_ns != TW_NO_DEADLINE) {
      uint64_t now = tw_now_ns();
      if (now >= deadline_ns) return FETCH_TIMEOUT;
      wait_ms = (int)((deadline_ns - now + MS - 1) / MS);
    }
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, wait_ms);
    if (n > 0) return FETCH_OK;
    if (n == 0) return FETCH_TIMEOUT;
    if (errno != EINTR) return FETCH_IO;
  }
}

/* Send the request, then read the response until the server closes it, by the deadline. */
static enum fetch exchange(int fd, uint16_t port, uint64_t deadline_ns, char *resp, size_t cap) {
  static const char request[] =
      "GET /price HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1))
    return FETCH_IO;
  size_t got = 0;
  while (got < cap - 1) {
    enum fetch ready = await_fd(fd, POLLIN, deadline_ns);
    if (ready != FETCH_OK) return ready;
    ssize_t n = recv(fd, resp + got, cap - 1 - got, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return FETCH_IO;
    }
    got += (size_t)n;
  }
  resp[got] = '\0';
  return FETCH_OK;
}

static enum fetch fetch(uint16_t port, uint64_t deadline_ns, int *status, double *price) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return FETCH_IO;
  char resp[1024];
  enum fetch r = exchange(fd, port, deadline_ns, resp, sizeof resp);
  close(fd);
  if (r != FETCH_OK) return r;
  const char *body = strstr(resp, "\r\n\r\n");
  if (sscanf(resp, "HTTP/%*s %d", status) != 1 || !body) return FETCH_IO;
  if (*status >= 200 && *status < 300 && sscanf(body + 4, "price=%lf", price) == 1) return FETCH_OK;
  return FETCH_STATUS;
}

/* ---- the protected call, its fallback, and the events ---------------------------------- */

struct call {
  uint16_t port;
  double price;
  const char *source;
  uint32_t attempts;
  tw_failure failure; /* when the fallback answered: why */
};

/* One attempt (tw_pipeline_execute() runs it without any lock held): say how it ended. */
static tw_outcome get_price(void *ctx, tw_attempt *attempt) {
  struct call *c = ctx;
  c->attempts = attempt->number;
  int status = 0;
  switch (fetch(c->port, attempt->has_deadline ? attempt->deadline_ns : TW_NO_DEADLINE, &status,
                &c->price)) {
    case FETCH_OK:
      c->source = "the service";
      return TW_OUTCOME_SUCCESS;
    case FETCH_TIMEOUT:
      return TW_OUTCOME_TIMEOUT;
    case FETCH_STATUS:
      if (status >= 400 && status < 500 && status != 408 && status != 429) {
        attempt->retryable = false; /* the caller's fault: the breaker ignores it, no retry */
        return TW_OUTCOME_IGNORED;
      }
      break; /* 5xx, 408, 429: retryable */
    case FETCH_IO:
      break; /* refused, reset: retryable */
  }
  attempt->retryable = true;
  return TW_OUTCOME_FAILURE;
}

/* The fallback, for every kind listed in the file's `fallback.on`: fills the call's result. */
static tw_status from_cache(void *fallback_ctx, void *call_ctx, const tw_failure *failure) {
  (void)fallback_ctx;
  struct call *c = call_ctx;
  c->price = 40;
  c->source = "the cache";
  c->failure = *failure;
  return TW_STATUS_OK;
}

/* What happened, printed in order; runs of plain successes become one line. */
struct log {
  unsigned first_ok, last_ok; /* the current run of successes (0: none) */
  double first_ok_at;
  unsigned fallbacks, opened, closed;
};

static void log_flush(struct log *log) {
  if (log->first_ok == 0) return;
  if (log->first_ok == log->last_ok)
    printf("%6.2fs  call %2u  ok, price=42 from the service at the first attempt\n",
           log->first_ok_at, log->first_ok);
  else
    printf("%6.2fs  calls %u-%u  ok, price=42 from the service at the first attempt\n",
           log->first_ok_at, log->first_ok, log->last_ok);
  log->first_ok = 0;
}

static void log_ok(struct log *log, unsigned n) {
  if (log->first_ok == 0) {
    log->first_ok = n;
    log->first_ok_at = secs(tw_now_ns());
  }
  log->last_ok = n;
}

/* The pipeline's listener: called on the calling thread after the pipeline's lock is
 * released, so it prints in order with the calls. */
static void on_event(void *ctx, const tw_event *e) {
  struct log *log = ctx;
  switch (e->type) {
    case TW_EVENT_TYPE_STATE_CHANGED:
      if (e->to == TW_BREAKER_STATE_OPEN) log->opened++;
      if (e->to == TW_BREAKER_STATE_CLOSED) log->closed++;
      log_flush(log);
      printf("%6.2fs  ── breaker %s → %s\n", secs(e->at_ns), tw_breaker_state_str(e->from),
             tw_breaker_state_str(e->to));
      break;
    case TW_EVENT_TYPE_RETRY_SCHEDULED:
      log_flush(log);
      printf("%6.2fs            retry: attempt %u in %llu ms\n", secs(e->at_ns), e->attempt,
             (unsigned long long)(e->delay_ns / MS));
      break;
    default:
      break;
  }
}

/* ---- the program ------------------------------------------------------------------------ */

/* The policy file of this example: <the directory of __FILE__>/../policies/default.json. */
static void default_policies(char *buf, size_t cap) {
  const char *slash = strrchr(__FILE__, '/');
  if (slash)
    snprintf(buf, cap, "%.*s/../policies/default.json", (int)(slash - __FILE__), __FILE__);
  else
    snprintf(buf, cap, "../policies/default.json");
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *text = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long size = ftell(f);
    if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)size + 1))) {
      *len = fread(text, 1, (size_t)size, f);
      text[*len] = '\0';
    }
  }
  fclose(f);
  return text;
}

/* The "api" pipeline of a policy file (NULL, with the reason printed, when it cannot be). */
static tw_pipeline *load_api(const char *path) {
  size_t len = 0;
  char *text = read_file(path, &len);
  if (!text) {
    printf("cannot read %s\n", path);
    return NULL;
  }
  tw_policies *file = NULL;
  tw_pipeline *api = NULL;
  tw_error *err = NULL;
  if (tw_policies_new(text, len, &file, &err) != TW_STATUS_OK ||
      tw_policies_pipeline(file, "api", &api, &err) != TW_STATUS_OK) {
    printf("%s: %s\n", path, tw_error_message(err)); /* "policies.api.retry...: reason" */
    tw_error_free(err);
  }
  tw_policies_free(file); /* the pipeline lives on */
  free(text);
  return api;
}

int main(int argc, char **argv) {
  char path[4096];
  if (argc > 1)
    snprintf(path, sizeof path, "%s", argv[1]);
  else
    default_policies(path, sizeof path);
  tw_pipeline *api = load_api(path);
  if (!api) return 1;

  struct log log = {0};
  tw_error *err = NULL;
  if (tw_pipeline_add_fallback(api, from_cache, NULL, &err) != TW_STATUS_OK ||
      tw_pipeline_set_listener(api, on_event, &log, &err) != TW_STATUS_OK) {
    printf("%s\n", tw_error_message(err));
    tw_error_free(err);
    tw_pipeline_free(api);
    return 1;
  }

  origin = tw_now_ns();
  struct service service;
  if (start_flaky_service(&service) != 0) {
    tw_pipeline_free(api);
    return 1;
  }
  printf("tripwire quick start: pipeline \"api\" from %s\n", path);
  printf("flaky service on http://127.0.0.1:%u/price: healthy, then 503s from 1 s to 4.5 s, "
         "then healthy\n\n",
         (unsigned)service.port);

  unsigned n = 0;
  uint64_t next = origin;
  while (tw_now_ns() - origin < RUN_FOR) {
    n++;
    struct call c = {.port = service.port};
    uint64_t started = tw_now_ns();
    tw_status status = tw_pipeline_execute(api, get_price, &c, &err);
    unsigned long long took = (unsigned long long)((tw_now_ns() - started) / MS);
    if (status != TW_STATUS_OK) { /* no fallback applied (not this file's case) */
      log_flush(&log);
      printf("%6.2fs  call %2u  error     %s  (%llu ms)\n", secs(tw_now_ns()), n,
             tw_error_message(err), took);
      tw_error_free(err);
      err = NULL;
    } else if (strcmp(c.source, "the cache") == 0) {
      log.fallbacks++;
      log_flush(&log);
      printf("%6.2fs  call %2u  fallback  price=%.0f from the cache (%s", secs(tw_now_ns()), n,
             c.price, tw_kind_str(c.failure.kind));
      if (c.failure.has_retry_after)
        printf(", retry after %llu ms", (unsigned long long)(c.failure.retry_after_ns / MS));
      printf(")  (%llu ms)\n", took);
    } else if (c.attempts == 1) {
      log_ok(&log, n);
    } else {
      log_flush(&log);
      printf("%6.2fs  call %2u  ok        price=%.0f from the service (%u attempt(s))  (%llu ms)\n",
             secs(tw_now_ns()), n, c.price, c.attempts, took);
    }
    /* One call every 100 ms, or right away when the last one took longer. */
    next += EVERY;
    if (next < tw_now_ns()) next = tw_now_ns();
    sleep_until(next);
  }
  log_flush(&log);

  tw_pipeline_stats stats;
  bool recovered = false;
  if (tw_pipeline_get_stats(api, &stats, &err) != TW_STATUS_OK) {
    printf("%s\n", tw_error_message(err));
    tw_error_free(err);
  } else {
    printf("\n%llu calls: %llu answered by the service, %u by the fallback; %llu requests "
           "reached it; the breaker opened %u time(s) and closed again %u time(s)\n",
           (unsigned long long)stats.calls, (unsigned long long)stats.succeeded, log.fallbacks,
           (unsigned long long)stats.attempts, log.opened, log.closed);
    recovered = stats.has_breaker && stats.breaker_state == TW_BREAKER_STATE_CLOSED;
  }
  tw_pipeline_free(api);
  stop_flaky_service(&service);
  fflush(stdout);

  /* The example checks its own story, so that it cannot rot silently in CI. */
  if (log.opened == 0 || log.closed == 0 || !recovered || log.fallbacks == 0) {
    printf("expected the breaker to open during the outage and close after it\n");
    return 1;
  }
  return 0;
}
