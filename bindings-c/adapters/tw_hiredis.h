/**
 * @file tw_hiredis.h
 * @brief Runs tripwire's store requests (a rate limit shared through Redis or Valkey) with
 * hiredis, the client you already have. Not part of libtripwire (which never links a Redis
 * client): compile tw_hiredis.c into your program and link `-lhiredis -lpthread`.
 *
 * @code
 * struct timeval tv = {0, 100000};
 * redisContext *c = redisConnectWithTimeout("127.0.0.1", 6379, tv);   // yours; may be down
 * const char *why = NULL;
 * tw_hiredis *redis = tw_hiredis_new(c, &why);                         // NULL: see `why`
 * tw_store store = tw_hiredis_store(redis);
 * tw_pipeline_set_store(pipeline, &store, NULL);                       // execute() uses it
 * ...
 * tw_pipeline_free(pipeline); tw_hiredis_free(redis); redisFree(c);
 * @endcode
 *
 * The rules it keeps (SCALE-OUT.md, "Host adapters"):
 * - `EVALSHA`; on a `NOSCRIPT` error reply, and only then, `EVAL` once (so a fresh or restarted
 *   server costs one `EVAL` per connection, and nothing needs loading at start).
 * - The request's timeout bounds everything: waiting for the adapter's mutex, reconnecting, and
 *   each command (redisSetTimeout() to the time left before every command; the connect
 *   timeout of the context is set to the time left before a reconnect).
 * - Never resent: after a timeout or an I/O error the request is answered TIMEOUT or
 *   UNAVAILABLE and the connection is marked dead (a late reply would otherwise answer the
 *   next command). The next request reconnects it, lazily, with redisReconnect() on your same
 *   context; a request that finds it unreachable is UNAVAILABLE without being sent.
 * - Any other error reply (`WRONGTYPE`, `CROSSSLOT`, `NOPERM`...) is FAILED with the server's
 *   message: a deployment mistake, which does not open tripwire's store breaker.
 * - hiredis's blocking API has no retries and no offline queue, so there is nothing to turn
 *   off; an async (non-blocking) context is refused.
 *
 * Threads: one tw_hiredis is one connection. tw_hiredis_run() takes the adapter's mutex, so a
 * pipeline shared by many threads may use one adapter (its store requests then queue for the
 * connection; one whose timeout passes while queued is answered TIMEOUT unsent). For
 * throughput, give each thread its own context and adapter (with tw_shared_limiter_*, or one
 * pipeline per thread).
 *
 * SIGPIPE: writing to a connection the server closed raises SIGPIPE, which kills a process by
 * default. The adapter blocks it for the calling thread while it talks to the server and
 * discards one it caused, so you need not ignore SIGPIPE process-wide.
 */
#ifndef TW_HIREDIS_H
#define TW_HIREDIS_H

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "tripwire.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A store client over one hiredis context. Opaque. */
typedef struct tw_hiredis tw_hiredis;

/** What the adapter did, for tests and metrics (every count since tw_hiredis_new()). */
typedef struct tw_hiredis_counters {
  /** Requests sent (their EVALSHA written), each exactly once. */
  uint64_t sent;
  /** EVALs sent after a NOSCRIPT reply (one per connection and script at most). */
  uint64_t evals;
  /** Requests answered TIMEOUT (no reply in time, or the connection stayed busy). */
  uint64_t timeouts;
  /** Requests answered UNAVAILABLE (no connection, or it dropped). */
  uint64_t unavailable;
  /** Requests answered FAILED (an error reply, or a reply that is not an array of integers). */
  uint64_t failed;
  /** Reconnections of a dead connection (redisReconnect()). */
  uint64_t reconnects;
} tw_hiredis_counters;

/**
 * An adapter over your context `c` (borrowed: free it yourself with redisFree() after
 * tw_hiredis_free()). `c` may have failed to connect: the first request reconnects it.
 *
 * Returns NULL, with a static reason in `*why` (when `why` is not NULL), when `c` is NULL, is
 * not a blocking context (async API), or has no connect timeout (create it with
 * redisConnectWithTimeout() or redisConnectUnixWithTimeout(), so a reconnect cannot block past
 * the store timeout).
 */
tw_hiredis *tw_hiredis_new(redisContext *c, const char **why);

/** Release the adapter (not the context). NULL is ignored. No request may be running. */
void tw_hiredis_free(tw_hiredis *h);

/** The ::tw_store for tw_pipeline_set_store(): `{h, tw_hiredis_run}`. */
tw_store tw_hiredis_store(tw_hiredis *h);

/**
 * Run `request` once and fill `*reply` (a ::tw_store_run_fn; `ctx` is a tw_hiredis). Use it
 * directly with the step protocol or tw_shared_limiter_request(). Thread-safe.
 */
void tw_hiredis_run(void *ctx, const tw_store_request *request, tw_store_reply *reply);

/** The counters, into `*out`. */
void tw_hiredis_get_counters(tw_hiredis *h, tw_hiredis_counters *out);

#ifdef __cplusplus
}
#endif

#endif /* TW_HIREDIS_H */
