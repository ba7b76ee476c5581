// tripwire: circuit breakers, retries with budgets, timeouts and deadlines, bulkheads, rate
// limits, fallbacks and health checks, decided by one Rust core (WebAssembly).
export { Pipeline } from './pipeline.js';
export { CircuitBreaker } from './breaker.js';
export { RateLimiter, KeyedRateLimiter } from './limiter.js';
export { Bulkhead } from './bulkhead.js';
export { HealthChecker } from './health.js';
export { loadPolicies, Policies } from './policies.js';
export { TripwireError, CircuitOpenError, BulkheadFullError, QueueTimeoutError, RateLimitedError, TimeoutError, RetriesExhaustedError, BudgetExhaustedError, DeadlineExceededError, ConfigError } from './errors.js';
export { defaultRetryable, parseRetryAfter } from './classify.js';
export { systemClock } from './clock.js';
