// @ts-check
// What every socket shares, whichever process its connection landed in: the
// order of the messages, the limits, who is online, the login throttle.
// (In step 5 this is the `Chat` state behind its locks.)
//
// With one process (WORKERS=1) chat.js calls these methods directly. With
// several (cluster.js), there is one SharedState, in the primary process,
// and the workers call it over the cluster's IPC channel: one place counts
// each budget once for the whole server, and one place numbers the
// messages, so every worker hears them in the same order.
//
// Every method takes and returns plain data (what `process.send` can carry)
// and may throw a ChatError or an ApiError (a refusal). What the workers must
// be told comes out through `publish`: a stored message, a presence change.

import { ChatError, RATE_LIMITED, TOO_MANY_SOCKETS } from "./chat.js";
import { UNLIMITED_RATE } from "./limits.js";
import { Presence } from "./presence.js";
import { FairRoom, RateLimiter, nowSeconds } from "./rate-limit.js";

/**
 * @typedef {{ id: number, username: string }} User
 * @typedef {import("./messages.js").MessageStore} MessageStore
 * @typedef {import("./messages.js").Message} Message
 * @typedef {import("./limits.js").ChatLimits} Limits
 * @typedef {import("./auth-limits.js").AuthThrottle} AuthThrottle
 * @typedef {import("./presence.js").PresenceChange} PresenceChange
 * @typedef {{ type: "stored", message: Message }
 *   | { type: "presence change", room: string, change: PresenceChange }
 * } Published what every worker must hear, in the order it happened
 * @typedef {"typing" | "pages" | "roomChanges" | "refusals"} PerUserRate
 */

/** Presence changes in a room are gathered this long, then told once. */
const PRESENCE_EVERY_MS = 100;

export class SharedState {
  /** @type {Set<string>} rooms that may have grown past their cap */
  retention = new Set();
  /** @type {Set<string>} rooms about to be told who came and went */
  presenceDue = new Set();
  /** @type {Map<string, number>} socket id -> its user's id */
  socketUsers = new Map();
  /** @type {Map<number, number>} user id -> sockets admitted */
  socketsPerUser = new Map();
  closed = false;

  /**
   * @param {{ messages: MessageStore, rateLimit: number[], limits: Limits,
   *   presencePage: number, throttle: AuthThrottle,
   *   publish: (event: Published) => void }} parts `rateLimit` is the
   *   message rate, `[burst, perSecond]`; `presencePage`, the users per page
   *   of an online list
   */
  constructor(parts) {
    this.messages = parts.messages;
    this.limits = parts.limits;
    this.presencePage = parts.presencePage;
    this.throttle = parts.throttle;
    this.publish = parts.publish;
    this.presence = new Presence();
    this.rates = rateLimiters(parts.rateLimit, parts.limits);
    this.timers = [
      // Buckets of users gone quiet are dropped now and then.
      setInterval(() => forgetIdle(this.rates), 60_000),
    ];
    if (Number.isFinite(this.limits.roomHistoryCap)) {
      this.timers.push(setInterval(() => this.trimRooms(), 1000));
    }
    for (const timer of this.timers) timer.unref();
    this.throttle.forgetIdleEvery();
  }

  // ANCHOR: admit_socket
  /**
   * A new socket of `userId`: admitted while the user has at most
   * `MAX_SOCKETS_PER_USER`, this one included; refused with a reason
   * otherwise. Its place is given back by `releaseSocket`.
   * @param {string} socketId
   * @param {number} userId
   */
  admitSocket(socketId, userId) {
    const count = (this.socketsPerUser.get(userId) ?? 0) + 1;
    if (count > this.limits.socketsPerUser) {
      throw new ChatError(TOO_MANY_SOCKETS);
    }
    this.socketsPerUser.set(userId, count);
    this.socketUsers.set(socketId, userId);
  }

  /**
   * The socket is gone: its place, and its presence in every room.
   * @param {string} socketId
   */
  releaseSocket(socketId) {
    const userId = this.socketUsers.get(socketId);
    if (userId === undefined) return; // released already
    this.socketUsers.delete(socketId);
    const left = (this.socketsPerUser.get(userId) ?? 1) - 1;
    if (left === 0) this.socketsPerUser.delete(userId);
    else this.socketsPerUser.set(userId, left);
    for (const room of this.presence.disconnect(socketId)) {
      this.announceChange(room);
    }
  }
  // ANCHOR_END: admit_socket

  // ANCHOR: store_message
  /**
   * Stores a message of `user` in `room` if the user's rate and the room's
   * fair share allow it, and publishes it if it is new (a retry of a
   * stored message is acknowledged again, not sent again). Published
   * messages go out in the order of their ids: this is the one place that
   * numbers them.
   * @param {string} room
   * @param {User} user
   * @param {string} text
   * @param {string | null} clientOffset
   * @returns {{ ok: true, id: number }}
   */
  storeMessage(room, user, text, clientOffset) {
    const { rates } = this;
    const allowed =
      rates.messages.check(user.id) && rates.room.check(room, user.id);
    limited(allowed);
    const stored = this.messages.insert(room, user, text, clientOffset);
    if (stored.fresh) {
      this.publish({ type: "stored", message: stored.message });
      this.retention.add(room); // trimmed later, if need be
    }
    return { ok: true, id: stored.message.id };
  }
  // ANCHOR_END: store_message

  /**
   * Takes a token of one of the user's rates, or refuses (`rate limited`).
   * @param {PerUserRate} rate
   * @param {number} userId
   */
  take(rate, userId) {
    limited(this.rates[rate].check(userId));
  }

  /**
   * The newest id of `room` in the database. Every message up to it that
   * this state stored was published before this answer; every later one
   * will be published after it. (Messages written to the database by
   * another program, a test, are never published: a socket entering the
   * room reads them.)
   * @param {string} room
   */
  lastId(room) {
    return this.messages.lastId(room);
  }

  /**
   * A socket of `userId` enters `room`: a token of the user's joins and
   * leaves, then the room's `lastId`.
   * @param {number} userId
   * @param {string} room
   */
  enterRoom(userId, room) {
    this.take("roomChanges", userId);
    return this.lastId(room);
  }

  /**
   * One refused event of `userId`: whether the user may go on (false past
   * `refusalsPer10s` in ten seconds: the socket is then disconnected).
   * @param {number} userId
   */
  strike(userId) {
    return this.rates.refusals.check(userId);
  }

  /**
   * Counts the socket in `room`; the first page of the room's users, for
   * it. The others hear of a change of users as a `presence change`.
   * @param {string} socketId
   * @param {User} user
   * @param {string} room
   */
  enterPresence(socketId, user, room) {
    // A socket released already (it closed while this was on its way) is
    // not counted: nobody is shown online who is not.
    if (!this.socketUsers.has(socketId)) return null;
    if (this.presence.join(socketId, user, room)) this.announceChange(room);
    return this.presence.page(room, undefined, this.presencePage);
  }

  /**
   * Stops counting the socket in `room`.
   * @param {string} socketId
   * @param {string} room
   */
  leavePresence(socketId, room) {
    if (this.presence.leave(socketId, room)) this.announceChange(room);
  }

  /**
   * A page of the users online in `room` after the id `after`, if the
   * user's rate of pages allows it.
   * @param {number} userId
   * @param {string} room
   * @param {number | undefined} after
   */
  presencePageFor(userId, room, after) {
    this.take("pages", userId);
    return this.presence.page(room, after, this.presencePage);
  }

  // The login throttle (auth-limits.js), shared like the rest.
  /** @param {string | undefined} address @param {string} username */
  loginAttempt(address, username) {
    this.throttle.loginAttempt(address, username);
  }

  /** @param {string | undefined} address @param {string} username */
  loginSucceeded(address, username) {
    this.throttle.loginSucceeded(address, username);
  }

  /** @param {string | undefined} address */
  registrationAttempt(address) {
    this.throttle.registrationAttempt(address);
  }

  /**
   * Gathered: the first change schedules the announcement, later ones join.
   * @param {string} room
   */
  announceChange(room) {
    if (this.presenceDue.has(room)) return;
    this.presenceDue.add(room);
    setTimeout(() => {
      this.presenceDue.delete(room);
      const change = this.presence.takeChange(room);
      if (change && !this.closed) {
        this.publish({ type: "presence change", room, change });
      }
    }, PRESENCE_EVERY_MS);
  }

  // ANCHOR: retention
  /**
   * Trims each room noted since the last pass to its newest
   * `roomHistoryCap` messages, 200 at a time, a turn of the event loop
   * apart: the senders' events are handled in between.
   */
  trimRooms() {
    const rooms = [...this.retention];
    this.retention.clear();
    const next = () => {
      if (this.closed || rooms.length === 0) return;
      const room = /** @type {string} */ (rooms.at(-1));
      const deleted = this.messages.trim(room, this.limits.roomHistoryCap);
      if (deleted === 0) rooms.pop(); // at its cap
      setImmediate(next);
    };
    next();
  }
  // ANCHOR_END: retention

  /** Stops the timers. */
  close() {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.throttle.stop();
  }
}

/** The methods a worker may call (cluster.js): nothing else crosses. */
export const SHARED_METHODS = /** @type {const} */ ([
  "admitSocket",
  "releaseSocket",
  "storeMessage",
  "take",
  "lastId",
  "enterRoom",
  "strike",
  "enterPresence",
  "leavePresence",
  "presencePageFor",
  "loginAttempt",
  "loginSucceeded",
  "registrationAttempt",
]);

/**
 * What chat.js and the routes see: the same methods, answered now (one
 * process) or later (a worker asking the primary).
 * @typedef {{ [M in typeof SHARED_METHODS[number]]:
 *   (...args: Parameters<SharedState[M]>) =>
 *     ReturnType<SharedState[M]> | Promise<ReturnType<SharedState[M]>> }}
 *   Shared
 */

/**
 * The limiters: messages per user, then per room shared fairly among its
 * talkers; joins and leaves, typing, online-list pages; refused events.
 * @param {number[]} rateLimit `[burst, perSecond]` of messages
 * @param {Limits} limits
 */
function rateLimiters([burst, perSecond], limits) {
  const unlimited = () => new RateLimiter(2 ** 32 - 1, UNLIMITED_RATE);
  const on = limits.enabled;
  const roomRate = limits.roomMessagesPerSecond;
  const changes = limits.roomChangesPerSecond;
  const refusals = limits.refusalsPer10s;
  return {
    messages: on ? new RateLimiter(burst, perSecond) : unlimited(),
    typing: on ? new RateLimiter(5, 2) : unlimited(),
    pages: on ? new RateLimiter(20, 10) : unlimited(),
    room: new FairRoom(roomRate * 2, roomRate),
    roomChanges: new RateLimiter(changes * 5, changes),
    refusals: new RateLimiter(refusals, refusals / 10),
  };
}

/**
 * Drops the buckets of keys gone quiet.
 * @param {ReturnType<typeof rateLimiters>} rates
 */
function forgetIdle(rates) {
  const now = nowSeconds();
  for (const limiter of Object.values(rates)) limiter.forgetIdle(now);
}

/**
 * Nothing if `allowed`; otherwise `rate limited`, a refusal like any other.
 * @param {boolean} allowed
 */
function limited(allowed) {
  if (!allowed) throw new ChatError(RATE_LIMITED);
}
