/**
 * @file tripwire.hpp
 * @brief A small RAII layer over tripwire.h for C++17: owning handles that free themselves,
 * errors as exceptions (tw::Error, with the status and the message), and execute() taking any
 * callable. Header-only; link libtripwire as for C.
 *
 * @code
 * tw::Pipeline pipeline(R"({"retry": {"maxRetries": 2}, "timeout": {"perAttempt": "1s"}})");
 * int value = 0;
 * pipeline.execute([&](tw_attempt &attempt) {
 *   value = fetch(attempt.deadline_ns);   // honour the deadline in your I/O
 *   return TW_OUTCOME_SUCCESS;
 * });
 * @endcode
 */
#ifndef TRIPWIRE_HPP
#define TRIPWIRE_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "tripwire.h"

namespace tw {

/** A failed call into the library, or a protected call that failed (status() says which). */
class Error : public std::runtime_error {
 public:
  /** An error with a status and a message. */
  Error(tw_status status, const std::string &message, std::string path = {})
      : std::runtime_error(message), status_(status), path_(std::move(path)) {}
  /** The ::tw_status (e.g. ::TW_STATUS_CIRCUIT_OPEN). */
  tw_status status() const noexcept { return status_; }
  /** For configuration errors: the field path of the first problem. */
  const std::string &path() const noexcept { return path_; }

 private:
  tw_status status_;
  std::string path_;
};

namespace detail {
/** Throw tw::Error for a status other than OK, releasing the C error. */
inline void check(tw_status status, tw_error *err) {
  if (status == TW_STATUS_OK) return;
  std::string message = err ? tw_error_message(err) : tw_last_error_message();
  std::string path = err ? tw_error_path(err) : "";
  tw_error_free(err);
  throw Error(status, message, path);
}

/** Call `f(..., &err)` and throw on failure. */
template <typename F>
void call(F &&f) {
  tw_error *err = nullptr;
  tw_status status = f(&err);
  check(status, err);
}

/** Read a text the library writes into a caller buffer. */
template <typename F>
std::string text(F &&f) {
  std::size_t needed = 0;
  call([&](tw_error **e) { return f(nullptr, 0, &needed, e); });
  std::string out(needed, '\0');
  call([&](tw_error **e) { return f(out.data(), out.size(), &needed, e); });
  out.resize(needed - 1);
  return out;
}

/** Adapts a callable `tw_outcome(tw_attempt&)` to ::tw_attempt_fn. */
template <typename F>
tw_outcome trampoline(void *ctx, tw_attempt *attempt) noexcept {
  auto *self = static_cast<std::pair<F *, std::exception_ptr> *>(ctx);
  try {
    return (*self->first)(*attempt);
  } catch (...) {
    // Exceptions must not cross the C library: keep it, fail the attempt (not retried), and
    // rethrow once the call is over.
    self->second = std::current_exception();
    attempt->retryable = false;
    return TW_OUTCOME_FAILURE;
  }
}
}  // namespace detail

/** A pipeline (see tw_pipeline_new()). Move-only; safe to share between threads by reference. */
class Pipeline {
 public:
  /** Build from a JSON config; throws tw::Error (::TW_STATUS_INVALID_CONFIG) when refused. */
  explicit Pipeline(std::string_view json) {
    tw_pipeline *p = nullptr;
    detail::call([&](tw_error **e) { return tw_pipeline_new(json.data(), json.size(), &p, e); });
    handle_.reset(p);
  }

  /** The C handle, for the functions this class does not wrap. */
  tw_pipeline *get() const noexcept { return handle_.get(); }

  /**
   * Run `f(tw_attempt&) -> tw_outcome` through the pipeline, blocking (see
   * tw_pipeline_execute()). Throws tw::Error when the call fails (status() is the kind, e.g.
   * ::TW_STATUS_RETRIES_EXHAUSTED), or rethrows what `f` threw.
   */
  template <typename F>
  void execute(F &&f) {
    std::pair<std::remove_reference_t<F> *, std::exception_ptr> ctx{&f, nullptr};
    tw_error *err = nullptr;
    tw_status status = tw_pipeline_execute(handle_.get(), &detail::trampoline<std::remove_reference_t<F>>, &ctx, &err);
    if (ctx.second) {
      tw_error_free(err);
      std::rethrow_exception(ctx.second);
    }
    detail::check(status, err);
  }

  /** Counters and gauges. */
  tw_pipeline_stats stats() const {
    tw_pipeline_stats s{};
    detail::call([&](tw_error **e) { return tw_pipeline_get_stats(handle_.get(), &s, e); });
    return s;
  }

  /** The stats as JSON text. */
  std::string stats_json() const {
    return detail::text([&](char *b, std::size_t c, std::size_t *n, tw_error **e) {
      return tw_pipeline_stats_json(handle_.get(), b, c, n, e);
    });
  }

  /**
   * Run the pipeline's store requests (a `store` in its config) through `store` in execute()
   * (see tw_pipeline_set_store(); `store.ctx` must outlive the pipeline). tw::make_store()
   * turns a callable into one.
   */
  void set_store(const tw_store &store) {
    detail::call([&](tw_error **e) { return tw_pipeline_set_store(handle_.get(), &store, e); });
  }

  /** The last error reply of the shared rate limit's store (empty when none). */
  std::string store_last_error() const {
    return detail::text([&](char *b, std::size_t c, std::size_t *n, tw_error **e) {
      return tw_pipeline_store_last_error(handle_.get(), b, c, n, e);
    });
  }

  /**
   * The shared breaker's counters (`circuitBreaker.share`); throws tw::Error
   * (::TW_STATUS_NOT_CONFIGURED) when the breaker is not shared.
   */
  tw_share_metrics share_metrics() const {
    tw_share_metrics m{};
    detail::call([&](tw_error **e) { return tw_pipeline_get_share_metrics(handle_.get(), &m, e); });
    return m;
  }

  /** The Prometheus text exposition, labelled `pipeline="<name>"`. */
  std::string prometheus(const std::string &name) const {
    return detail::text([&](char *b, std::size_t c, std::size_t *n, tw_error **e) {
      return tw_pipeline_prometheus(handle_.get(), name.c_str(), b, c, n, e);
    });
  }

 private:
  struct Free {
    void operator()(tw_pipeline *p) const noexcept { tw_pipeline_free(p); }
  };
  std::unique_ptr<tw_pipeline, Free> handle_;
};

/** A circuit breaker (see tw_breaker_new()). Move-only. */
class CircuitBreaker {
 public:
  /** Build from a JSON config; throws tw::Error when refused. */
  explicit CircuitBreaker(std::string_view json) {
    tw_breaker *b = nullptr;
    detail::call([&](tw_error **e) { return tw_breaker_new(json.data(), json.size(), &b, e); });
    handle_.reset(b);
  }

  /** The C handle. */
  tw_breaker *get() const noexcept { return handle_.get(); }

  /** The state. */
  tw_breaker_state state() const {
    tw_breaker_state s{};
    detail::call([&](tw_error **e) { return tw_breaker_get_state(handle_.get(), &s, e); });
    return s;
  }

  /** Protect one call of `f(tw_attempt&) -> tw_outcome` (see tw_breaker_execute()). */
  template <typename F>
  void execute(F &&f) {
    std::pair<std::remove_reference_t<F> *, std::exception_ptr> ctx{&f, nullptr};
    tw_error *err = nullptr;
    tw_status status = tw_breaker_execute(handle_.get(), &detail::trampoline<std::remove_reference_t<F>>, &ctx, &err);
    if (ctx.second) {
      tw_error_free(err);
      std::rethrow_exception(ctx.second);
    }
    detail::check(status, err);
  }

  /** Reject every call until reset(). */
  void force_open() {
    detail::call([&](tw_error **e) { return tw_breaker_force_open(handle_.get(), tw_now_ns(), e); });
  }

  /** Back to closed. */
  void reset() {
    detail::call([&](tw_error **e) { return tw_breaker_reset(handle_.get(), tw_now_ns(), e); });
  }

 private:
  struct Free {
    void operator()(tw_breaker *b) const noexcept { tw_breaker_free(b); }
  };
  std::unique_ptr<tw_breaker, Free> handle_;
};

/** A rate limiter (see tw_limiter_new()). Move-only. */
class RateLimiter {
 public:
  /** Build from a JSON config; throws tw::Error when refused. */
  explicit RateLimiter(std::string_view json) {
    tw_limiter *l = nullptr;
    detail::call([&](tw_error **e) { return tw_limiter_new(json.data(), json.size(), &l, e); });
    handle_.reset(l);
  }

  /** Check (and take) `cost` now. */
  tw_rate_decision check(std::uint64_t cost = 1) {
    tw_rate_decision d{};
    detail::call([&](tw_error **e) { return tw_limiter_check(handle_.get(), tw_now_ns(), cost, &d, e); });
    return d;
  }

 private:
  struct Free {
    void operator()(tw_limiter *l) const noexcept { tw_limiter_free(l); }
  };
  std::unique_ptr<tw_limiter, Free> handle_;
};

/** The bytes of a ::tw_store_str (not NUL-terminated). */
inline std::string_view view(tw_store_str s) noexcept { return {s.ptr, s.len}; }

/**
 * A ::tw_store over `client`, any callable `void(const tw_store_request &, tw_store_reply &)`
 * that runs the request once (see ::tw_store for the rules). `client` must outlive every
 * pipeline it is set on. An exception it throws becomes a FAILED reply with its message (it
 * never crosses the C library).
 */
template <typename F>
tw_store make_store(F &client) {
  tw_store s{};
  s.ctx = &client;
  s.run = [](void *ctx, const tw_store_request *request, tw_store_reply *reply) {
    try {
      (*static_cast<F *>(ctx))(*request, *reply);
    } catch (const std::exception &e) {
      reply->kind = TW_STORE_REPLY_KIND_FAILED;
      std::snprintf(reply->message, sizeof reply->message, "%s", e.what());
    } catch (...) {
      reply->kind = TW_STORE_REPLY_KIND_FAILED;
      std::snprintf(reply->message, sizeof reply->message, "%s", "an unknown exception");
    }
  };
  return s;
}

/** A rate limit shared through a store, without a pipeline (see tw_shared_limiter_new()). */
class SharedLimiter {
 public:
  /** Build from `{"rateLimit", "store", "keyed"?}`; throws tw::Error when refused. */
  explicit SharedLimiter(std::string_view json) {
    tw_shared_limiter *l = nullptr;
    detail::call([&](tw_error **e) { return tw_shared_limiter_new(json.data(), json.size(), &l, e); });
    handle_.reset(l);
  }

  /** As above, seeded (reproducible tests). */
  SharedLimiter(std::string_view json, std::uint64_t seed) {
    tw_shared_limiter *l = nullptr;
    detail::call([&](tw_error **e) {
      return tw_shared_limiter_new_with_seed(json.data(), json.size(), seed, &l, e);
    });
    handle_.reset(l);
  }

  /** The C handle. */
  tw_shared_limiter *get() const noexcept { return handle_.get(); }

  /** Decide `cost` for `key` at `now_ns`: decided, or a request to run (`decided == false`). */
  tw_shared_decision check(std::string_view key, std::uint64_t now_ns, std::uint64_t cost = 1) {
    tw_shared_decision d{};
    detail::call([&](tw_error **e) {
      return tw_shared_limiter_check(handle_.get(), key.data(), key.size(), now_ns, cost, &d, e);
    });
    return d;
  }

  /** The request `id` to run (valid until its reply is reported). */
  tw_store_request request(std::uint64_t id) {
    tw_store_request r{};
    detail::call([&](tw_error **e) { return tw_shared_limiter_request(handle_.get(), id, &r, e); });
    return r;
  }

  /** Report the reply to request `id` at `now_ns`: the decision. */
  tw_shared_decision reply(std::uint64_t id, const tw_store_reply &reply, std::uint64_t now_ns) {
    tw_shared_decision d{};
    detail::call([&](tw_error **e) {
      return tw_shared_limiter_reply(handle_.get(), id, &reply, now_ns, &d, e);
    });
    return d;
  }

  /** Check, run the request (if any) through `store`, and report: one decision. */
  tw_shared_decision decide(const tw_store &store, std::string_view key, std::uint64_t cost = 1) {
    tw_shared_decision d = check(key, tw_now_ns(), cost);
    if (d.decided) return d;
    tw_store_request r = request(d.request);
    tw_store_reply out{};
    store.run(store.ctx, &r, &out);
    return reply(d.request, out, tw_now_ns());
  }

  /** The store's breaker state (closed: the store is asked). */
  tw_breaker_state store_state() const {
    tw_breaker_state s{};
    detail::call([&](tw_error **e) { return tw_shared_limiter_store_state(handle_.get(), &s, e); });
    return s;
  }

  /** The counters as JSON. */
  std::string metrics_json() const {
    return detail::text([&](char *b, std::size_t c, std::size_t *n, tw_error **e) {
      return tw_shared_limiter_metrics_json(handle_.get(), b, c, n, e);
    });
  }

 private:
  struct Free {
    void operator()(tw_shared_limiter *l) const noexcept { tw_shared_limiter_free(l); }
  };
  std::unique_ptr<tw_shared_limiter, Free> handle_;
};

}  // namespace tw

#endif  // TRIPWIRE_HPP
