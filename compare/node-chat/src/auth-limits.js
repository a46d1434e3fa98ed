// Throttles on /login and /register: tries per client address and per
// username. (step03-passport-like-auth/src/limits.rs)
//
// A refusal is `429 {"error": "Too many attempts: try again in N seconds"}`
// with `Retry-After: N`, sent before any password is hashed.

import { isIPv6 } from "node:net";

import { ApiError } from "./api.js";
import { canonicalUsername } from "./passport.js";
import { RateLimiter } from "./rate-limit.js";

/** Generous enough for a class of 40 behind one address. */
export const DEFAULT_AUTH_LIMITS = Object.freeze({
  enabled: true,
  loginPerAddressPerMinute: 60, // LOGIN_ATTEMPTS_PER_ADDRESS
  loginFailuresPerUsername: 5, // LOGIN_FAILURES_PER_USERNAME
  loginFailureDelaySecs: 60, // LOGIN_FAILURE_DELAY_SECS
  registrationsPerAddressPerHour: 50, // REGISTRATIONS_PER_ADDRESS
});

export class AuthThrottle {
  constructor(limits) {
    this.enabled = limits.enabled;
    const perMinute = limits.loginPerAddressPerMinute;
    this.logins = new RateLimiter(perMinute, perMinute / 60);
    // Five failures in a row, then one more try per delay.
    this.failures = new RateLimiter(
      limits.loginFailuresPerUsername,
      1 / limits.loginFailureDelaySecs,
    );
    const perHour = limits.registrationsPerAddressPerHour;
    this.registrations = new RateLimiter(perHour, perHour / 3600);
  }

  /**
   * Before a password is checked. Unknown usernames count like real ones,
   * so a 429 does not tell which names exist; a success takes it back.
   */
  loginAttempt(address, username) {
    if (!this.enabled) return;
    refuseIfEmpty(this.logins, addressKey(address));
    refuseIfEmpty(this.failures, usernameKey(username));
  }

  /** The password was right: this username starts again, full budget. */
  loginSucceeded(username) {
    this.failures.forget(usernameKey(username));
  }

  registrationAttempt(address) {
    if (!this.enabled) return;
    refuseIfEmpty(this.registrations, addressKey(address));
  }

  /** Drops the keys whose budget is full again (bounded memory). */
  forgetIdle() {
    for (const limiter of [this.logins, this.failures, this.registrations]) {
      limiter.forgetIdle();
    }
  }
}

function refuseIfEmpty(limiter, key) {
  const wait = limiter.secondsUntilNext(key);
  if (wait > 0) {
    const seconds = Math.max(1, Math.ceil(wait));
    throw new ApiError(
      429,
      `Too many attempts: try again in ${seconds} seconds`,
    ).retryAfter(seconds);
  }
  limiter.check(key);
}

/** By canonical name, cut short: a megabyte of name costs what a name does. */
function usernameKey(username) {
  return canonicalUsername(username).slice(0, 64);
}

/**
 * One IPv6 customer usually has a whole /64: counting each of its addresses
 * apart would hand out billions of budgets. An IPv4-mapped address is IPv4.
 */
export function addressKey(address = "") {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!isIPv6(address)) return address;
  return expandIPv6(address).slice(0, 4).join(":") + "::/64";
}

function expandIPv6(address) {
  const [head, tail = ""] = address.split("::");
  const parts = (s) => (s === "" ? [] : s.split(":"));
  const left = parts(head);
  const right = parts(tail);
  const zeros = Array(8 - left.length - right.length).fill("0");
  return [...left, ...(address.includes("::") ? zeros : []), ...right];
}
