// The C++ layer over the store API (tripwire.hpp): tw::make_store over a lambda, an exception
// in it, Pipeline::set_store, store_last_error and share_metrics, tw::SharedLimiter. The store
// here is a stand-in that answers the way the gcra script does ({code, store s, store ns, wait,
// until full, remaining, limit, members}); the real scripts run in store.c and vectors.c.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "tripwire.hpp"

static int failures = 0;
#define CHECK(cond, what)                                           \
  do {                                                              \
    if (!(cond)) {                                                  \
      failures++;                                                   \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, what); \
    }                                                               \
  } while (0)

int main() {
  const char *config =
      R"({"rateLimit": {"algorithm": "gcra", "rate": "10/s"}, "store": {"key": "cpp", "timeout": "1s"}})";
  int requests = 0;
  std::string last_key;
  auto admit = [&](const tw_store_request &r, tw_store_reply &out) {
    requests++;
    last_key = std::string(tw::view(r.keys[0]));
    out.kind = TW_STORE_REPLY_KIND_VALUES;
    out.num_values = 8;
    const std::int64_t values[8] = {0, 1700000000, 0, 0, 0, 9, 1, 0};
    for (int i = 0; i < 8; i++) out.values[i] = values[i];
  };
  auto broken = [](const tw_store_request &, tw_store_reply &) { throw std::runtime_error("client exploded"); };
  tw_store admitting = tw::make_store(admit), throwing = tw::make_store(broken);

  tw::Pipeline p(config);
  p.set_store(admitting);
  int calls = 0;
  p.execute([&](tw_attempt &) {
    calls++;
    return TW_OUTCOME_SUCCESS;
  });
  CHECK(calls == 1 && requests == 1 && last_key == "tw:{rl:cpp:}:0", "the store admitted the call");
  CHECK(p.stats_json().find("\"storeAllowed\":1") != std::string::npos, "counted as a store decision");
  p.set_store(throwing);
  p.execute([&](tw_attempt &) {
    calls++;
    return TW_OUTCOME_SUCCESS;
  });
  CHECK(calls == 2 && p.stats_json().find("\"errors\":1") != std::string::npos,
        "an exception is a failed request: the fallback decides");
  CHECK(p.store_last_error() == "client exploded", "the exception's message is the store's last error");
  try {
    p.share_metrics();
    CHECK(false, "a breaker that is not shared has no share metrics");
  } catch (const tw::Error &e) {
    CHECK(e.status() == TW_STATUS_NOT_CONFIGURED, e.what());
  }
  tw::Pipeline shared(R"({"circuitBreaker": {"share": {"mode": "signal"}}, "store": {"key": "cpp"}})");
  CHECK(shared.share_metrics().requests == 0 && shared.store_last_error().empty(), "a fresh shared breaker");

  tw::SharedLimiter l(config, 1);
  tw_shared_decision d = l.decide(admitting, "");
  CHECK(d.decided && d.decision.allowed && d.source == TW_STORE_SOURCE_STORE && requests == 2, "decide()");
  d = l.check("", tw_now_ns());
  CHECK(!d.decided, "a request to run");
  tw_store_request r = l.request(d.request);
  CHECK(tw::view(r.script_name) == "gcra" && r.timeout_ns == 1000000000u, "the request");
  tw_store_reply timeout{};
  timeout.kind = TW_STORE_REPLY_KIND_TIMEOUT;
  d = l.reply(d.request, timeout, tw_now_ns());
  CHECK(d.source == TW_STORE_SOURCE_FALLBACK, "a timeout: the fallback decides");
  CHECK(l.store_state() == TW_BREAKER_STATE_CLOSED, "one timeout does not open the store breaker");
  CHECK(l.metrics_json().find("\"timeouts\":1") != std::string::npos, "metrics");
  try {
    tw::SharedLimiter bad(R"({"rateLimit": {"algorithm": "gcra", "rate": "1/s"}, "store": {"key": ""}})");
    CHECK(false, "an empty key is refused");
  } catch (const tw::Error &e) {
    CHECK(e.status() == TW_STATUS_INVALID_CONFIG && e.path() == "store.key", e.what());
  }
  std::printf("store.cpp: %d failed checks\n", failures);
  return failures == 0 ? 0 : 1;
}
