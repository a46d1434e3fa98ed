// @ts-check
// Throttles on /login and /register: tries per client address; failed logins
// per (username, address), with a larger allowance per username that every
// address new to that username shares. (step03-passport-like-auth/src/limits.rs)
//
// A refusal is `429 {"error": "Too many attempts: try again in N seconds"}`
// with `Retry-After: N`, sent before any password is hashed.

import { isIPv6 } from "node:net";

import { ApiError } from "./api.js";
import { canonicalUsername } from "./passport.js";
import { RateLimiter, nowSeconds } from "./rate-limit.js";

/** Generous enough for a class of 40 behind one address. */
export const DEFAULT_AUTH_LIMITS = Object.freeze({
  enabled: true,
  loginPerAddressPerMinute: 60, // LOGIN_ATTEMPTS_PER_ADDRESS
  loginFailuresPerUsername: 5, // LOGIN_FAILURES_PER_USERNAME (per address)
  loginFailuresPerUsernameAnyAddress: 100, // an hour: LOGIN_FAILURES_PER_USERNAME_ANY_ADDRESS
  loginFailureDelaySecs: 60, // LOGIN_FAILURE_DELAY_SECS
  registrationsPerAddressPerHour: 50, // REGISTRATIONS_PER_ADDRESS
});

/** How long a (username, address) that logged in stays known: a month. */
const KNOWN_FOR_SECS = 30 * 24 * 3600;

/** How often the throttle forgets the keys it no longer holds anything on. */
export const FORGET_IDLE_EVERY_MS = 60_000;

export class AuthThrottle {
  /** `clock()` is now in seconds: the tests pass their own. */
  constructor(limits, clock = nowSeconds) {
    this.enabled = limits.enabled;
    this.clock = clock;
    this.forgetting = null;
    const perMinute = limits.loginPerAddressPerMinute;
    this.logins = new RateLimiter(perMinute, perMinute / 60);
    // Per (username, address): five failures in a row, then one more try
    // per delay. Someone guessing from elsewhere cannot lock the owner out.
    this.failures = new RateLimiter(
      limits.loginFailuresPerUsername,
      1 / limits.loginFailureDelaySecs,
    );
    // Per username, shared by every address it has not logged in from: a
    // botnet, one guess per address, slows down too.
    const anyAddress = limits.loginFailuresPerUsernameAnyAddress;
    this.anyAddress = new RateLimiter(anyAddress, anyAddress / 3600);
    /** @type {Map<string, number>} pair -> when it last logged in, in s */
    this.known = new Map();
    const perHour = limits.registrationsPerAddressPerHour;
    this.registrations = new RateLimiter(perHour, perHour / 3600);
  }

  /**
   * Before a password is checked. Unknown usernames count like real ones,
   * so a 429 does not tell which names exist; a success takes it back.
   */
  loginAttempt(address, username) {
    if (!this.enabled) return;
    const now = this.clock();
    refuseIfEmpty(this.logins, addressKey(address), now);
    const pair = pairKey(username, address);
    refuseIfEmpty(this.failures, pair, now);
    const known = this.known.get(pair);
    if (known !== undefined && now - known < KNOWN_FOR_SECS) return;
    refuseIfEmpty(this.anyAddress, usernameKey(username), now);
  }

  /**
   * The password was right: this pair starts again, full budget, and is
   * known from now on. The username's shared allowance is not handed back:
   * that would give a botnet a fresh one at each of the owner's logins.
   */
  loginSucceeded(address, username) {
    const pair = pairKey(username, address);
    this.failures.forget(pair);
    this.known.set(pair, this.clock());
  }

  registrationAttempt(address) {
    if (!this.enabled) return;
    refuseIfEmpty(this.registrations, addressKey(address), this.clock());
  }

  /** Drops the keys whose budget is full again (bounded memory). */
  forgetIdle() {
    const now = this.clock();
    for (const limiter of this.limiters()) limiter.forgetIdle(now);
    for (const [pair, at] of this.known) {
      if (now - at >= KNOWN_FOR_SECS) this.known.delete(pair);
    }
  }

  /**
   * Calls `forgetIdle()` every `periodMs` until `stop()`: without it, every
   * made-up username or address of a flood would stay in memory for good.
   * The timer is unref'd: it never keeps the process alive by itself.
   */
  forgetIdleEvery(periodMs = FORGET_IDLE_EVERY_MS) {
    this.stop();
    this.forgetting = setInterval(() => this.forgetIdle(), periodMs).unref();
    return this.forgetting;
  }

  stop() {
    clearInterval(this.forgetting ?? undefined);
    this.forgetting = null;
  }

  /** How many keys the throttle remembers, all limiters together. */
  keys() {
    const counted = this.limiters().reduce((sum, l) => sum + l.buckets.size, 0);
    return counted + this.known.size;
  }

  limiters() {
    return [this.logins, this.failures, this.anyAddress, this.registrations];
  }
}

function refuseIfEmpty(limiter, key, now) {
  const wait = limiter.secondsUntilNext(key, now);
  if (wait > 0) {
    const seconds = Math.max(1, Math.ceil(wait));
    throw new ApiError(
      429,
      `Too many attempts: try again in ${seconds} seconds`,
    ).retryAfter(seconds);
  }
  limiter.check(key, now);
}

/** One key per (username, address). */
function pairKey(username, address) {
  return `${usernameKey(username)}\u0000${addressKey(address)}`;
}

/** By canonical name, cut short: a megabyte of name costs what a name does. */
function usernameKey(username) {
  return canonicalUsername(username).slice(0, 64);
}

/**
 * One IPv6 customer usually has a whole /64: counting each of its addresses
 * apart would hand out billions of budgets. An IPv4-mapped address is IPv4
 * (a dual-stack server sees `::ffff:127.0.0.1`), and one address has one
 * key however it is written (`2001:DB8::1`, `2001:db8:0::0001`).
 */
export function addressKey(address = "") {
  if (!isIPv6(address)) return address;
  let canonical;
  try {
    // The URL parser writes IPv6 the one way: lower case, `::`, hex only.
    canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address; // with a zone (`fe80::1%eth0`): a link-local peer
  }
  const groups = expandIPv6(canonical).map((group) => parseInt(group, 16));
  if (groups.slice(0, 6).join() === "0,0,0,0,0,65535") {
    const [high, low] = groups.slice(6);
    return [high >> 8, high & 255, low >> 8, low & 255].join(".");
  }
  const prefix = groups.slice(0, 4).map((group) => group.toString(16));
  return prefix.join(":") + "::/64";
}

function expandIPv6(address) {
  const [head, tail = ""] = address.split("::");
  const parts = (s) => (s === "" ? [] : s.split(":"));
  const left = parts(head);
  const right = parts(tail);
  const zeros = Array(8 - left.length - right.length).fill("0");
  return [...left, ...(address.includes("::") ? zeros : []), ...right];
}
