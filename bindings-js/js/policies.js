// loadPolicies: a policy file (`{seed?, policies: {name: pipelineConfig}}`) as named pipelines.
import { raw } from './native.js';
import { native, disposedError, configInput } from './errors.js';
import { Pipeline, Adopted } from './pipeline.js';
import { DISPOSE, randomSeed } from './lifecycle.js';

/** Named pipelines from one policy file; `get(name)` returns the same Pipeline every time. */
export class Policies {
  #file;
  #options;
  #pipelines = new Map();

  constructor(file, options) {
    this.#file = file;
    this.#options = options;
  }

  /** The pipeline named `name` (created on first use); a RangeError for an unknown name. */
  get(name) {
    if (this.#file === null) throw disposedError('policy set');
    let pipeline = this.#pipelines.get(name);
    if (pipeline === undefined) {
      const [hi, lo] = randomSeed();
      const p = this.#file.pipeline(String(name), hi, lo);
      pipeline = new Pipeline(new Adopted(p, String(name)), this.#options);
      this.#pipelines.set(name, pipeline);
    }
    return pipeline;
  }

  /** The pipeline names, sorted. */
  names() {
    if (this.#file === null) throw disposedError('policy set');
    return this.#file.names();
  }

  /** Dispose of every pipeline handed out, and the file. */
  dispose() {
    if (this.#file === null) return;
    for (const p of this.#pipelines.values()) p.dispose();
    this.#file.free();
    this.#file = null;
  }

  [DISPOSE]() {
    this.dispose();
  }
}

/**
 * Load a policy file given as an object or as JSON text; a ConfigError names the first bad
 * field (`policies.api.retry.maxRetrys: unknown field ...`). `options` (`{clock, retryable}`)
 * apply to every pipeline.
 */
export function loadPolicies(objectOrJsonText, options = {}) {
  const file = native(() => new raw.RawPolicyFile(configInput(objectOrJsonText)));
  return new Policies(file, options);
}
