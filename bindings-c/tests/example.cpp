// The C++ example: tripwire.hpp's RAII handles, lambdas as protected functions, tw::Error.
// Compiled with g++ -std=c++17 -Wall -Wextra -Werror by scripts/ci/test-c.sh; it checks what it
// prints.
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "tripwire.hpp"

static int failures = 0;
#define EXPECT(cond)                                                   \
  do {                                                                 \
    if (!(cond)) {                                                     \
      ++failures;                                                      \
      std::fprintf(stderr, "%s:%d: EXPECT failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                  \
  } while (0)

int main() {
  tw::Pipeline pipeline(R"({
    "retry": {"maxRetries": 2, "backoff": {"type": "constant", "base": "1ms", "jitter": "none"}},
    "circuitBreaker": {"trip": {"consecutiveFailures": 3}},
    "timeout": {"perAttempt": "2s"}
  })");

  // Fails once, then returns a value: the retry hides the first failure.
  int calls = 0;
  std::string price;
  pipeline.execute([&](tw_attempt &attempt) {
    ++calls;
    if (attempt.number == 1) return TW_OUTCOME_FAILURE;
    price = "42.00";
    return TW_OUTCOME_SUCCESS;
  });
  std::printf("price %s after %d attempts\n", price.c_str(), calls);
  EXPECT(price == "42.00" && calls == 2);

  // Always failing: retries run out and tw::Error carries the kind.
  try {
    pipeline.execute([](tw_attempt &) { return TW_OUTCOME_FAILURE; });
    EXPECT(false);
  } catch (const tw::Error &e) {
    std::printf("gave up: %s (%s)\n", e.what(), tw_status_str(e.status()));
    EXPECT(e.status() == TW_STATUS_RETRIES_EXHAUSTED);
  }

  // A C++ exception in the protected function is rethrown, never sent through C.
  try {
    pipeline.execute([](tw_attempt &) -> tw_outcome { throw std::logic_error("bug in fn"); });
    EXPECT(false);
  } catch (const std::logic_error &e) {
    EXPECT(std::strcmp(e.what(), "bug in fn") == 0);
  }

  tw_pipeline_stats stats = pipeline.stats();
  EXPECT(stats.calls == 3 && stats.succeeded == 1);
  EXPECT(pipeline.prometheus("prices").find("tripwire_calls_total{pipeline=\"prices\"} 3") != std::string::npos);
  EXPECT(pipeline.stats_json().find("\"succeeded\":1") != std::string::npos);

  // Configuration errors are exceptions with the field path.
  try {
    tw::Pipeline bad(R"({"retry": {"backoff": {"base": "5 parsecs"}}})");
    EXPECT(false);
  } catch (const tw::Error &e) {
    std::printf("refused: %s\n", e.what());
    EXPECT(e.status() == TW_STATUS_INVALID_CONFIG && e.path() == "retry.backoff.base");
  }

  tw::CircuitBreaker breaker(R"({"trip": {"consecutiveFailures": 1}})");
  try {
    breaker.execute([](tw_attempt &) { return TW_OUTCOME_FAILURE; });
  } catch (const tw::Error &e) {
    EXPECT(e.status() == TW_STATUS_FAILURE);
  }
  EXPECT(breaker.state() == TW_BREAKER_STATE_OPEN);
  breaker.reset();
  EXPECT(breaker.state() == TW_BREAKER_STATE_CLOSED);

  tw::RateLimiter limiter(R"({"rate": "2/s", "burst": 2})");
  int allowed = 0;
  for (int i = 0; i < 5; ++i) allowed += limiter.check().allowed ? 1 : 0;
  EXPECT(allowed == 2);

  std::printf("example.cpp: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
