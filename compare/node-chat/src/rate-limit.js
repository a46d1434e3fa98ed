// A token bucket per key (a user id, a room, an address).
// (step05-chat/src/rate_limit.rs)
//
// Each key holds up to `burst` tokens; every event takes one, and tokens come
// back at `perSecond`. A person typing never notices; a loop is cut down to
// `perSecond` events a second. In a Node app this is often the npm package
// `rate-limiter-flexible`; its counters are windows, not buckets, so the twin
// keeps step 5's arithmetic, which is short enough to read.

export class RateLimiter {
  /** `burst` events at once, then `perSecond` more every second. */
  constructor(burst, perSecond) {
    this.burst = burst;
    // NaN or a negative rate: the tokens never come back.
    this.perSecond = perSecond > 0 ? perSecond : 0;
    this.buckets = new Map();
  }

  // ANCHOR: check
  /** Whether `key` may act now; if so, its token is taken. */
  check(key, now = nowSeconds()) {
    const bucket = this.refilled(key, now);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
  // ANCHOR_END: check

  /** Seconds until `key` has a token again (0 if it has one now). */
  secondsUntilNext(key, now = nowSeconds()) {
    const { tokens } = this.refilled(key, now);
    if (tokens >= 1) return 0;
    return this.perSecond > 0 ? (1 - tokens) / this.perSecond : Infinity;
  }

  /** `key`'s bucket, brought up to date: no timer, just arithmetic. */
  refilled(key, now) {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.burst, updated: now };
      this.buckets.set(key, bucket);
    }
    const elapsed = Math.max(0, now - bucket.updated);
    bucket.tokens = Math.min(
      this.burst,
      bucket.tokens + elapsed * this.perSecond,
    );
    bucket.updated = now;
    return bucket;
  }

  /** Forgets `key`: it starts again with a full bucket. */
  forget(key) {
    this.buckets.delete(key);
  }

  /**
   * Forgets every key whose bucket is full again: such a key is the same as
   * one never seen, so only recent keys take memory.
   */
  forgetIdle(now = nowSeconds()) {
    for (const [key, bucket] of this.buckets) {
      const elapsed = Math.max(0, now - bucket.updated);
      if (bucket.tokens + elapsed * this.perSecond >= this.burst) {
        this.buckets.delete(key);
      }
    }
  }
}

/** A clock that never goes back, in seconds. */
export function nowSeconds() {
  return performance.now() / 1000;
}
