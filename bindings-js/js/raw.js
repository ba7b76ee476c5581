// tripwire/raw: the low-level WebAssembly API (the core's step protocol, one class per
// policy), for conformance runners and hosts that drive the core themselves. Decisions are
// returned as small integer codes with their fields in the scratch buffer `out()`; see
// bindings-js/src/*.rs for each method's codes. Not covered by semver.
export { raw } from './native.js';
export { out, CALL, ATTEMPTS, TIME, KIND, RETRY_AFTER, FALLBACK, CAUSE, TICKET, EVENT, WAKE, PERMIT } from './out.js';
export { KINDS, STATES, EVENT_TYPES, HEALTH_EVENT_TYPES, CHECK_STATUSES, HEALTH_STATUSES, GIVE_UPS } from './names.js';
export { readEvent, readHealthEvent } from './emitter.js';
export { configInput, fromNative } from './errors.js';
export { SharedLimiter } from './shared.js';
// A pipeline's store step by hand: `storeRequestOf(id, p.storeRequest(id))` is the request to
// run (e.g. with a RedisStore), `p.reportStore(index, generation, ...encodeStoreReply(reply), now)`
// reports its reply and polls the call.
export { scripts, requestOf as storeRequestOf, encode as encodeStoreReply } from './store.js';
