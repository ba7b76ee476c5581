// The low-level WebAssembly API (wasm-bindgen classes). Not covered by semver.
export * as raw from '../dist/web/tripwire_js.js';

/** The scratch buffer each decision's fields are written to. */
export declare function out(): Float64Array;
export declare const CALL: number;
export declare const ATTEMPTS: number;
export declare const TIME: number;
export declare const KIND: number;
export declare const RETRY_AFTER: number;
export declare const FALLBACK: number;
export declare const CAUSE: number;
export declare const TICKET: number;
export declare const EVENT: number;
export declare const WAKE: number;
export declare const PERMIT: number;
export declare const KINDS: readonly string[];
export declare const STATES: readonly string[];
export declare const EVENT_TYPES: readonly string[];
export declare const HEALTH_EVENT_TYPES: readonly string[];
export declare const CHECK_STATUSES: readonly string[];
export declare const HEALTH_STATUSES: readonly string[];
export declare const GIVE_UPS: readonly string[];
export declare function readEvent(code: number): { type: string; at: number; [field: string]: unknown };
export declare function readHealthEvent(code: number, nameOf: (id: number) => string | null): { type: string; at: number; [field: string]: unknown };
export declare function configInput(input: unknown): unknown;
export declare function fromNative(error: unknown): unknown;
