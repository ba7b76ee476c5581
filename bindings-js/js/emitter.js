// `.on(event, listener)` for every policy object, and the events the core queued, as plain
// objects (times in ms on the policy's clock).
import { out, EVENT } from './out.js';
import { EVENT_TYPES, HEALTH_EVENT_TYPES, KINDS, STATES, CHECK_STATUSES, HEALTH_STATUSES } from './names.js';

function ms(value) {
  return Number.isNaN(value) ? undefined : value;
}

/** The policy event the wasm side just wrote (type `code`). */
export function readEvent(code) {
  const o = out();
  const type = EVENT_TYPES[code];
  const at = o[EVENT + 1];
  const a = o[EVENT + 2];
  const b = o[EVENT + 3];
  switch (type) {
    case 'stateChanged':
    case 'storeStateChanged':
      return { type, at, from: STATES[a], to: STATES[b] };
    case 'rejected':
      return { type, at, reason: KINDS[a], retryAfter: ms(b) };
    case 'retryScheduled':
      return { type, at, attempt: a, delay: b };
    case 'gaveUp':
      return { type, at, reason: KINDS[a], attempts: b };
    case 'queued':
    case 'woken':
      return { type, at, ticket: a };
    default:
      return { type: type ?? '', at };
  }
}

/** The health event the wasm side just wrote; `nameOf(id)` names a check. */
export function readHealthEvent(code, nameOf) {
  const o = out();
  const type = HEALTH_EVENT_TYPES[code];
  const at = o[EVENT + 1];
  const check = o[EVENT + 2];
  switch (type) {
    case 'checkChanged':
      return { type, at, check: nameOf(check), from: CHECK_STATUSES[o[EVENT + 3]], to: CHECK_STATUSES[o[EVENT + 4]] };
    case 'timedOut':
      return { type, at, check: nameOf(check) };
    case 'statusChanged':
      return { type, at, from: HEALTH_STATUSES[o[EVENT + 3]], to: HEALTH_STATUSES[o[EVENT + 4]] };
    default:
      return { type: type ?? '', at };
  }
}

/** Policy event names (`.on` refuses others, so a typo is an error, not silence). */
export const POLICY_EVENTS = Object.freeze(EVENT_TYPES.filter((t) => t !== ''));
/** Health event names. */
export const HEALTH_EVENTS = Object.freeze(HEALTH_EVENT_TYPES.filter((t) => t !== ''));

/**
 * A minimal event emitter that works the same in Node and browsers. Subclasses say which
 * names they emit and learn (through `listening`) whether anyone listens at all, so the wasm
 * side keeps events only then.
 */
export class Emitter {
  #names;
  #listeners = new Map();
  #count = 0;
  #listening;

  constructor(names, listening) {
    this.#names = names;
    this.#listening = listening;
  }

  /** Call `listener(event)` for every `name` event ("*" for all); returns this. */
  on(name, listener) {
    if (typeof listener !== 'function') throw new TypeError('on(name, listener): listener must be a function');
    if (name !== '*' && !this.#names.includes(name)) {
      throw new TypeError(`unknown event "${String(name)}"; known: ${this.#names.join(', ')}, *`);
    }
    let list = this.#listeners.get(name);
    if (list === undefined) this.#listeners.set(name, (list = []));
    list.push(listener);
    if (this.#count++ === 0) this.#listening(true);
    return this;
  }

  /** Remove a listener added with `on`; returns this. */
  off(name, listener) {
    const list = this.#listeners.get(name);
    const i = list === undefined ? -1 : list.indexOf(listener);
    if (i >= 0) {
      list.splice(i, 1);
      if (--this.#count === 0) this.#listening(false);
    }
    return this;
  }

  /** Hand `event` to its listeners. A listener that throws is reported, not propagated. */
  emit(event) {
    for (const name of [event.type, '*']) {
      const list = this.#listeners.get(name);
      if (list === undefined) continue;
      for (const listener of [...list]) {
        try {
          listener(event);
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    }
  }
}
