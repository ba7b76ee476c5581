import { Pipeline } from 'tripwire';

// One pipeline per dependency: a breaker around retries around per-attempt timeouts.
export const prices = new Pipeline(
  {
    circuitBreaker: { trip: { consecutiveFailures: 5 }, openDuration: '30s' },
    retry: { maxRetries: 3, backoff: { type: 'exponential', base: '100ms', max: '2s' } },
    timeout: { perAttempt: '2s', overall: '5s' },
  },
  { name: 'prices' },
);

prices.on('stateChanged', (e) => console.log(`prices breaker: ${e.from} -> ${e.to}`));

const lastKnown = new Map();

export async function getPrice(baseUrl, id) {
  return prices.execute(
    async ({ signal }) => {
      // `signal` aborts when this attempt times out.
      const res = await fetch(`${baseUrl}/prices/${id}`, { signal });
      // A thrown Response: 5xx and 429 are retried (honouring Retry-After); 4xx are not.
      if (!res.ok) throw res;
      const price = await res.json();
      lastKnown.set(id, price);
      return price;
    },
    // When the call fails, tried in order; a function that returns undefined falls through.
    { fallback: [() => lastKnown.get(id), { id, price: null }] },
  );
}
