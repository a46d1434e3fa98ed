// The login throttle's memory: keys that hold nothing any more are dropped by
// a timer, as step 3 drops them (step03 limits.rs, `tidy`).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthThrottle,
  DEFAULT_AUTH_LIMITS,
  addressKey,
} from "../src/auth-limits.js";
import { waitFor } from "./support.js";

test("a flood of made-up names is forgotten once idle, by the timer", async () => {
  let now = 0;
  const throttle = new AuthThrottle(DEFAULT_AUTH_LIMITS, () => now);
  for (let n = 0; n < 50; n += 1) {
    throttle.loginAttempt(`10.1.0.${n}`, `made-up-${n}`);
  }
  // Each address, each (name, address) and each name's shared allowance.
  assert.equal(throttle.keys(), 150);

  // An hour later every budget is full again, but nothing was called yet.
  now = 3600;
  assert.equal(throttle.keys(), 150, "forgotten without the timer");

  const timer = throttle.forgetIdleEvery(5);
  try {
    assert.equal(timer.hasRef(), false, "the timer keeps the process alive");
    assert.ok(await waitFor(() => throttle.keys() === 0), "still remembered");
  } finally {
    throttle.stop();
  }
});

test("a name still being guessed is not forgotten", async () => {
  let now = 0;
  const throttle = new AuthThrottle(DEFAULT_AUTH_LIMITS, () => now);
  for (let guess = 0; guess < 5; guess += 1) {
    throttle.loginAttempt("10.1.0.1", "victim");
  }
  now = 1; // one second later, far from a full budget
  throttle.forgetIdle();

  assert.throws(() => throttle.loginAttempt("10.1.0.1", "victim"), {
    status: 429,
  });
});

test("the owner logs in from her address while another address guesses", () => {
  let now = 0;
  const throttle = new AuthThrottle(DEFAULT_AUTH_LIMITS, () => now);
  throttle.loginAttempt("10.9.0.1", "victim");
  throttle.loginSucceeded("10.9.0.1", "victim"); // she logged in once
  for (let second = 0; second < 130; second += 1) {
    now = second;
    try {
      throttle.loginAttempt("10.6.6.6", "victim"); // a wrong guess a second
    } catch {
      // refused: the guesser is throttled, as it should be
    }
    if (second % 10 === 0) {
      // Her correct password, from her own address, is never refused.
      throttle.loginAttempt("10.9.0.1", "victim");
      throttle.loginSucceeded("10.9.0.1", "victim");
    }
  }
  assert.throws(() => throttle.loginAttempt("10.6.6.6", "victim"), {
    status: 429,
  });
});

test("a botnet, one guess per address, spends the name's shared allowance", () => {
  const throttle = new AuthThrottle(DEFAULT_AUTH_LIMITS, () => 0);
  for (let n = 0; n < 100; n += 1) throttle.loginAttempt(`10.2.${n >> 8}.${n & 255}`, "victim");
  assert.throws(() => throttle.loginAttempt("10.3.0.1", "victim"), {
    status: 429,
  });
});

test("one address, one key, however it is written", () => {
  assert.equal(addressKey("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(addressKey("::FFFF:7f00:1"), "127.0.0.1");
  assert.equal(addressKey("2001:DB8::1"), "2001:db8:0:0::/64");
  assert.equal(addressKey("2001:0db8:0:0:ffff::0001"), "2001:db8:0:0::/64");
  assert.equal(addressKey("203.0.113.7"), "203.0.113.7");
});
