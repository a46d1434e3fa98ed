// @ts-check
// A token bucket per key (a user id, a room, an address).
// (step04-socket-middleware/src/fair_use.rs: `RateLimit`, `FairRoom`)
//
// Each key holds up to `burst` tokens; every event takes one, and tokens come
// back at `perSecond`. A person typing never notices; a loop is cut down to
// `perSecond` events a second. In a Node app this is often the npm package
// `rate-limiter-flexible`; its counters are windows, not buckets, so the twin
// keeps the token bucket of step 4 (the `governor` crate's), short enough
// to read.

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

// ANCHOR: fair_room
/** How far back a room remembers who sent what, in seconds. */
export const FAIR_SHARE_WINDOW = 10;

/**
 * A room's pace (`burst` at once, then `perSecond`, from everyone together),
 * shared fairly: a sender who sent at most a fair share of the room's rate
 * in the last 10 s (the rate divided by the number of senders then) gets in
 * even when the pace is spent, and the senders above their share pay for it:
 * they are refused until the pace has caught up, so the room still carries
 * its rate. (step04-socket-middleware's `FairRoom`)
 */
export class FairRoom {
  constructor(burst, perSecond) {
    this.pace = new RateLimiter(burst, perSecond);
    this.perSecond = perSecond;
    this.rooms = new Map(); // room -> { accepted: [[at, userId]], perUser }
  }

  /** Whether `userId` may send to `room` now; if so, it is counted. */
  check(room, userId, now = nowSeconds()) {
    if (this.perSecond >= UNLIMITED) return true; // RATE_LIMITS=off
    let senders = this.rooms.get(room);
    if (senders === undefined) {
      senders = { accepted: [], perUser: new Map(), owed: 0 };
      this.rooms.set(room, senders);
    }
    forgetBefore(senders, now - FAIR_SHARE_WINDOW);
    const fair = withinFairShare(senders, userId, this.perSecond);
    const paced = this.pace.check(room, now);
    let allowed = paced;
    if (fair) {
      // Past the pace, on credit: the room owes it to its pace.
      if (!paced) senders.owed += 1;
      allowed = true;
    } else if (paced && senders.owed > 0) {
      // Above its share: the pace's next messages pay the debt first.
      senders.owed -= 1;
      allowed = false;
    }
    if (allowed) {
      senders.accepted.push([now, userId]);
      senders.perUser.set(userId, (senders.perUser.get(userId) ?? 0) + 1);
    }
    return allowed;
  }

  /** Forgets the rooms nobody sent to in the window. */
  forgetIdle(now = nowSeconds()) {
    this.pace.forgetIdle(now);
    for (const [room, senders] of this.rooms) {
      forgetBefore(senders, now - FAIR_SHARE_WINDOW);
      if (senders.accepted.length === 0) this.rooms.delete(room);
    }
  }
}

/**
 * Whether `userId` sent at most its fair share of the window: the room's
 * messages in it, `perSecond` × 10 s, divided among everyone who sent
 * (`userId` included).
 */
function withinFairShare(senders, userId, perSecond) {
  const mine = senders.perUser.get(userId) ?? 0;
  const count = senders.perUser.size + (mine === 0 ? 1 : 0);
  return mine <= (perSecond * FAIR_SHARE_WINDOW) / count;
}

/** Forgets what `senders` accepted before `oldest`. */
function forgetBefore(senders, oldest) {
  const { accepted, perUser } = senders;
  let gone = 0;
  while (gone < accepted.length && accepted[gone][0] < oldest) {
    const userId = accepted[gone][1];
    const count = perUser.get(userId) - 1;
    if (count === 0) perUser.delete(userId);
    else perUser.set(userId, count);
    gone += 1;
  }
  accepted.splice(0, gone);
}
// ANCHOR_END: fair_room

/** "As fast as anyone can" (limits.js's UNLIMITED_RATE): no limit at all. */
const UNLIMITED = 1e12;

/** A clock that never goes back, in seconds. */
export function nowSeconds() {
  return performance.now() / 1000;
}
