// Name tables indexed by the codes the wasm side writes, read from the core itself so that a
// kind or state added there cannot drift out of step here.
import { raw } from './native.js';

/** Error kind names by code (index 0 unused): "circuitOpen", ... */
export const KINDS = Object.freeze(raw.errorKindNames());
/** Breaker state names by code: "closed", "open", "halfOpen", "forcedOpen", "disabled". */
export const STATES = Object.freeze(raw.breakerStateNames());
/** Policy event type names by code. */
export const EVENT_TYPES = Object.freeze(raw.eventTypeNames());
/** Health event type names by code. */
export const HEALTH_EVENT_TYPES = Object.freeze(raw.healthEventTypeNames());
/** Check status names by code. */
export const CHECK_STATUSES = Object.freeze(raw.checkStatusNames());
/** Overall health status names by code. */
export const HEALTH_STATUSES = Object.freeze(raw.healthStatusNames());
/** Retry give-up reasons by code. */
export const GIVE_UPS = Object.freeze(raw.giveUpNames());
