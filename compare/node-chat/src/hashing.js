// @ts-check
// Argon2, bounded: a few hashes at a time, the rest refused at once.
// (step03-passport-like-auth/src/hashing.rs)
//
// A hash takes 19 MiB and tens of milliseconds of CPU, on purpose. The
// `argon2` package runs it on libuv's thread pool, so the event loop stays
// free; but 150 logins at once would still be 150 hashes, 2.7 GiB, and
// seconds for everyone. So `workers` run at a time, `queue` more may wait,
// and beyond that a login gets `503` with `Retry-After: 1` (a ServerBusy).

import argon2 from "argon2";

/** step 5's cost (the Rust argon2 crate's default): OWASP's minimum. */
export const DEFAULT_HASHING = Object.freeze({
  memoryCost: 19456, // KiB
  timeCost: 2,
  parallelism: 1,
});

/** Thrown when `workers + queue` hashes are running or waiting already. */
export class ServerBusy extends Error {}

export class HashPool {
  /**
   * @param {{ memoryCost: number, timeCost: number, parallelism: number }} params
   * @param {number} workers hashes at a time (libuv's pool runs them)
   * @param {number} queue hashes that may wait for a turn
   */
  constructor(params, workers, queue) {
    /** @type {import("argon2").HashOptions} */
    this.options = { type: argon2.argon2id, ...params };
    this.workers = Math.max(1, workers);
    this.admitted = this.workers + queue;
    this.inFlight = 0; // running or waiting
    this.running = 0;
    /** @type {Array<(value?: unknown) => void>} resolvers of waiting hashes */
    this.waiting = [];
  }

  /**
   * A PHC string: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
   * @param {string} password
   * @returns {Promise<string>}
   */
  hash(password) {
    return this.run(() => argon2.hash(password, this.options));
  }

  /**
   * Whether `password` matches; the cost is read from the PHC string.
   * @param {string} phcHash
   * @param {string} password
   * @returns {Promise<boolean>}
   */
  verify(phcHash, password) {
    return this.run(() => argon2.verify(phcHash, password));
  }

  /**
   * @template T
   * @param {() => Promise<T>} job
   * @returns {Promise<T>}
   */
  async run(job) {
    if (this.inFlight >= this.admitted) throw new ServerBusy();
    this.inFlight += 1;
    try {
      if (this.running >= this.workers) {
        await new Promise((resolve) => this.waiting.push(resolve));
      }
      this.running += 1;
      try {
        return await job();
      } finally {
        this.running -= 1;
        this.waiting.shift()?.();
      }
    } finally {
      this.inFlight -= 1;
    }
  }
}
