// @ts-check
// The chat itself: what happens on each Socket.IO event.
// (step05-chat/src/chat.rs and handlers/)
//
// `createChat()` keeps what every socket shares (the message store, the
// limiters, who is online) in its closure, and hands app.js the two
// functions Socket.IO calls: `admitSocket` for `io.use()` and
// `onConnection` for `io.on("connection")`. Each socket's handlers are
// registered there and close over that socket and its user, as in Socket.IO's
// own guide ("Application structure"). Step 5 passes the same state to each
// handler as `State<Chat>` instead.
//
// Every handler can rely on one thing: `authenticateSocket` ran first, so
// `socket.data.user` is the user of the session, the `socket.user` of the
// Node.js walkthrough. No handler ever reads a user from a client's payload.
//
// Node runs one handler at a time, and better-sqlite3 answers before the
// handler goes on. So "store, then broadcast, then acknowledge" and "read the
// history, then join the room" each happen with nothing in between: what step
// 5's lock on deliveries exists to guarantee, the event loop gives here.
// The price is that each of those steps holds up every other socket.

import { UNLIMITED_RATE } from "./limits.js";
import { log } from "./log.js";
import { HISTORY_LIMIT } from "./messages.js";
import { Presence } from "./presence.js";
import { FairRoom, RateLimiter, nowSeconds } from "./rate-limit.js";
import { userRoom } from "./socket-auth.js";
import {
  InputError,
  parseAfter,
  parseChatMessage,
  parseRoom,
} from "./validation.js";

/**
 * @typedef {import("socket.io").Socket} Socket
 * @typedef {{ id: number, username: string }} User
 * @typedef {import("./messages.js").MessageStore} MessageStore
 * @typedef {import("./delivery.js").Delivery} Delivery
 * @typedef {import("./limits.js").ChatLimits} Limits
 * @typedef {(payload: any) => object} Handler an event's work; its answer
 */

/** The room every socket is in, and cannot leave. */
export const GENERAL = "general";
/** At most this many missed messages are replayed on reconnection. */
export const CATCH_UP_LIMIT = 1000;
/** Presence changes in a room are gathered this long, then told once. */
const PRESENCE_EVERY_MS = 100;

// ANCHOR: chat_error
/** Why an event was refused: the text goes back in the ack, `{error}`. */
export class ChatError extends Error {}

const NOT_IN_ROOM = "you have not joined this room";
const RATE_LIMITED = "rate limited";
const TOO_MANY_ROOMS = "too many rooms: leave one first";
const CANNOT_LEAVE_GENERAL = "you cannot leave general";
const TOO_MANY_SOCKETS = "too many connections: close another tab first";
/** Logged in full on the server, never sent to the client. */
const INTERNAL = "internal error";
// ANCHOR_END: chat_error

/**
 * The chat, over its parts: `rateLimit` is the message rate, `[burst,
 * perSecond]`; `presencePage`, the users per page of an online list.
 * @param {{ messages: MessageStore, rateLimit: number[], limits: Limits,
 *   delivery: Delivery, presencePage: number }} parts
 */
export function createChat(parts) {
  const { messages, rateLimit, limits, delivery, presencePage } = parts;
  const presence = new Presence();
  const rates = rateLimiters(rateLimit, limits);
  const catchUps = new OneAtATime();
  const presenceDue = new Set(); // rooms about to be told who is there
  const retention = new Set(); // rooms that may have grown past their cap
  let closed = false;
  const timers = [
    // Buckets of users gone quiet are dropped now and then.
    setInterval(() => forgetIdle(rates), 60_000),
  ];
  if (Number.isFinite(limits.roomHistoryCap)) {
    timers.push(setInterval(trimRooms, 1000)); // a pass a second
  }
  for (const timer of timers) timer.unref();

  // ANCHOR: admit_socket
  /**
   * `io.use()`: at most `MAX_SOCKETS_PER_USER` sockets per user, counted by
   * the room `user:<id>` that `authenticateSocket` put this one in (a
   * refused socket leaves its rooms with the refusal).
   * @param {Socket} socket
   * @param {(error?: Error) => void} next
   */
  function admitSocket(socket, next) {
    const { user } = socket.data;
    const { rooms } = socket.nsp.adapter;
    const sockets = rooms.get(userRoom(user.id))?.size ?? 0;
    if (sockets > limits.socketsPerUser) {
      log.info(`refused a socket of ${user.username}: too many`);
      return next(new ChatError(TOO_MANY_SOCKETS));
    }
    next();
  }
  // ANCHOR_END: admit_socket

  /**
   * `io.on("connection")`: the socket's handlers, then general, then
   * presence.
   * @param {Socket} socket
   */
  function onConnection(socket) {
    const user = /** @type {User} */ (socket.data.user);

    // ANCHOR: chat_message
    /**
     * `socket.on(event)`, whose ack is `handle`'s answer, or `{error}`: a
     * refusal, and a strike (whatever its reason).
     * @param {string} event
     * @param {Handler} handle
     */
    const on = (event, handle) =>
      socket.on(event, (...args) => {
        const [payload, ack] = payloadAndAck(args);
        ack(answer(socket, () => handle(payload)));
      });

    /** `chat message`: store it, send it to the room (sender included), ack. */
    on("chat message", (payload) => {
      const { room, text, clientOffset } = parseChatMessage(payload);
      if (!hasJoined(socket, room)) throw new ChatError(NOT_IN_ROOM);
      // The room's pace, shared fairly among the people talking in it.
      const allowed =
        rates.messages.check(user.id) && rates.room.check(room, user.id);
      limited(allowed);
      // The author is the socket's user, from the session. Whatever "user"
      // the payload claimed was never even read.
      const stored = messages.insert(room, user, text, clientOffset);
      // A retry of a stored message is acknowledged again, not sent again.
      if (stored.fresh) {
        delivery.toRoom(room, "chat message", stored.message);
        retention.add(room); // trimmed later, if need be
      }
      return { ok: true, id: stored.message.id };
    });
    // ANCHOR_END: chat_message

    // `join`: "rust", or {room: "rust", serverOffset: 41} from a client
    // coming back with the last message it saw there. The ack has the room's
    // history up to that message; what came after it follows, then the join.
    socket.on("join", (...args) => {
      const [payload, ack] = payloadAndAck(args);
      const entry = answer(socket, () => enterRoom(payload));
      if (!entry.ok) {
        ack(entry); // {error}
        return;
      }
      const { missed, ...reply } = entry;
      // The ack, the missed messages, the join: one run, nothing in between.
      ack(reply);
      if (!replay(socket, missed)) return;
      socket.join(reply.room);
      announcePresence(socket, reply.room);
    });

    /**
     * The room `payload` names, if the socket may enter it, and what it is
     * shown there: the ack's `history`, then the `missed` messages.
     * @param {any} payload
     */
    function enterRoom(payload) {
      const named = payload !== null && typeof payload === "object";
      const asked = named && Object.hasOwn(payload, "room");
      const room = parseRoom(asked ? payload.room : payload);
      limited(rates.roomChanges.check(user.id));
      const full = roomsBesidesGeneral(socket) >= limits.roomsPerSocket;
      if (full && !hasJoined(socket, room)) {
        throw new ChatError(TOO_MANY_ROOMS);
      }
      const offset = asked ? parseOffset(payload.serverOffset) : null;
      const upto = messages.lastId(room);
      const { history, missed } = readEntry(room, offset, upto);
      return {
        ok: true,
        room,
        history: history.messages,
        truncated: missed.truncated,
        missed: missed.messages,
      };
    }

    /** `leave`: leaving a room one is not in is not an error. */
    on("leave", (payload) => {
      const room = parseRoom(payload);
      if (room === GENERAL) throw new ChatError(CANNOT_LEAVE_GENERAL);
      limited(rates.roomChanges.check(user.id));
      socket.leave(room);
      if (presence.leave(socket.id, room)) broadcastPresence(room);
      return { ok: true };
    });

    /** `typing`: tell the *others* in the room; rate-limited, a broadcast. */
    on("typing", (payload) => {
      const room = parseRoom(payload?.room);
      if (!hasJoined(socket, room)) throw new ChatError(NOT_IN_ROOM);
      limited(rates.typing.check(user.id));
      // `socket.to` (unlike `io.to`) leaves the sender out.
      socket.to(room).emit("typing", { room, user });
      return { ok: true };
    });

    /** `presence page`: the users of a room after the id `after`, a page. */
    on("presence page", (payload) => {
      const room = parseRoom(payload?.room);
      const after = parseAfter(payload?.after);
      if (!hasJoined(socket, room)) throw new ChatError(NOT_IN_ROOM);
      limited(rates.pages.check(user.id));
      return presence.page(room, after, presencePage);
    });

    // Rooms that lost their user's last socket are told.
    socket.on("disconnect", () => {
      for (const room of presence.disconnect(socket.id)) {
        broadcastPresence(room);
      }
    });

    // ANCHOR: on_connect
    const serverOffset = parseOffset(socket.handshake.auth?.serverOffset);
    // Each catch-up waits its turn: a thousand reconnections at once must
    // not hold up everybody else's messages (step 5 reads two at a time).
    catchUps.push(() => {
      if (!socket.connected) return; // gone while waiting: nothing to send
      // A `join "general"` sent while this waited has sent the history and
      // the missed messages already: a second catch-up would repeat them.
      if (socket.rooms.has(GENERAL)) return;
      const replayed = enterGeneral(socket, serverOffset);
      log.info(`${user.username} joined general (${replayed} replayed)`);
      announcePresence(socket, GENERAL);
    });
    // ANCHOR_END: on_connect
  }

  // ANCHOR: catch_up
  /**
   * Sends `history`, then each message after `serverOffset` as a `chat
   * message`, in order, then puts the socket in general. One synchronous
   * run: no message can be stored between the reads and the join, so each
   * one arrives exactly once, in the replay or live.
   * @param {Socket} socket
   * @param {number | null} serverOffset
   */
  function enterGeneral(socket, serverOffset) {
    const upto = messages.lastId(GENERAL);
    const { history, missed } = readEntry(GENERAL, serverOffset, upto);
    const event = {
      room: GENERAL,
      messages: history.messages,
      truncated: missed.truncated,
    };
    if (!delivery.toSocket(socket, "history", event)) return 0;
    if (!replay(socket, missed.messages)) return 0;
    socket.join(GENERAL);
    return missed.messages.length;
  }

  /**
   * What a socket entering `room` is shown: the history up to `offset` (the
   * last message the client saw there), and the messages after `offset` up
   * to `upto`, the newest CATCH_UP_LIMIT of them (`truncated` if there were
   * more).
   * @param {string} room
   * @param {number | null} offset
   * @param {number} upto
   */
  function readEntry(room, offset, upto) {
    const shown = Math.min(offset ?? upto, upto);
    const history = messages.newest(room, 0, shown, HISTORY_LIMIT);
    const missed =
      offset === null
        ? { messages: [], truncated: false }
        : messages.newest(room, offset, upto, CATCH_UP_LIMIT);
    return { history, missed };
  }

  /**
   * Sends each of `missed`; whether all of them were queued.
   * @param {Socket} socket
   * @param {object[]} missed
   */
  function replay(socket, missed) {
    return missed.every((message) =>
      delivery.toSocket(socket, "chat message", message),
    );
  }
  // ANCHOR_END: catch_up

  /**
   * The handler's answer, or `{error}`: a refusal, and a strike. Unexpected
   * errors are logged.
   * @param {Socket} socket
   * @param {() => object} handle
   * @returns {any}
   */
  function answer(socket, handle) {
    try {
      return handle();
    } catch (error) {
      strike(socket);
      if (error instanceof ChatError || error instanceof InputError) {
        return { error: error.message };
      }
      log.error("chat handler failed:", error);
      return { error: INTERNAL };
    }
  }

  // ANCHOR: strike
  /**
   * One refused event of the socket's user: a person refused now and then
   * stays; a socket that keeps sending what is refused (past
   * `refusalsPer10s` in ten seconds) is disconnected.
   * @param {Socket} socket
   */
  function strike(socket) {
    const { user } = socket.data;
    if (!rates.refusals.check(user.id)) {
      log.warn(`too many refused events from ${user.id}: disconnecting`);
      socket.disconnect();
    }
  }
  // ANCHOR_END: strike

  /**
   * Counts the socket in `room` and sends it the room's list; the others
   * hear of a change of users as a `presence change`.
   * @param {Socket} socket
   * @param {string} room
   */
  function announcePresence(socket, room) {
    if (!socket.connected) return; // closed while being set up: no ghost
    const came = presence.join(socket.id, socket.data.user, room);
    const page = presence.page(room, undefined, presencePage);
    delivery.toSocket(socket, "presence", page);
    if (came) broadcastPresence(room);
  }

  /**
   * Gathered: the first change schedules the announcement, later ones join.
   * @param {string} room
   */
  function broadcastPresence(room) {
    if (presenceDue.has(room)) return;
    presenceDue.add(room);
    setTimeout(() => {
      presenceDue.delete(room);
      const change = presence.takeChange(room);
      if (change) delivery.toRoom(room, "presence change", change);
    }, PRESENCE_EVERY_MS);
  }

  // ANCHOR: retention
  /**
   * Trims each room noted since the last pass to its newest
   * `roomHistoryCap` messages, 200 at a time, a turn of the event loop
   * apart: the senders' events are handled in between.
   */
  function trimRooms() {
    const rooms = [...retention];
    retention.clear();
    const next = () => {
      if (closed || rooms.length === 0) return;
      const room = /** @type {string} */ (rooms.at(-1));
      const deleted = messages.trim(room, limits.roomHistoryCap);
      if (deleted === 0) rooms.pop(); // at its cap
      setImmediate(next);
    };
    next();
  }
  // ANCHOR_END: retention

  return {
    admitSocket,
    onConnection,
    /** Stops the timers (the sockets are io's to close). */
    close() {
      closed = true;
      for (const timer of timers) clearInterval(timer);
    },
  };
}

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

/**
 * Runs jobs one at a time, a turn of the event loop apart, so that the
 * events that arrived meanwhile (other people's messages) are handled in
 * between. A job itself runs to its end without a pause.
 */
class OneAtATime {
  /** @type {Array<() => void>} */
  waiting = [];
  running = false;

  /** @param {() => void} job */
  push(job) {
    this.waiting.push(job);
    if (this.running) return;
    this.running = true;
    setImmediate(() => this.next());
  }

  next() {
    const job = this.waiting.shift();
    if (job === undefined) {
      this.running = false;
      return;
    }
    try {
      job();
    } catch (error) {
      log.error("could not send the history:", error);
    }
    setImmediate(() => this.next());
  }
}

/**
 * `(payload, ack)` of an event: the ack is optional for the client.
 * @param {any[]} args
 * @returns {[any, (reply: object) => void]}
 */
function payloadAndAck(args) {
  const ack = typeof args.at(-1) === "function" ? args.pop() : () => {};
  return [args.length > 0 ? args[0] : null, ack];
}

/**
 * `general` always counts as joined: everyone is put there on connect.
 * @param {Socket} socket
 * @param {string} room
 */
function hasJoined(socket, room) {
  return room === GENERAL || socket.rooms.has(room);
}

/**
 * How many chat rooms `socket` is in, general aside. The rooms the server
 * puts every socket in, its own id's and `session:`/`user:`, are not chat
 * rooms (no room name has a colon).
 * @param {Socket} socket
 */
function roomsBesidesGeneral(socket) {
  /** @param {string} room */
  const chatRoom = (room) =>
    room !== GENERAL && room !== socket.id && !room.includes(":");
  return [...socket.rooms].filter(chatRoom).length;
}

/**
 * The id of the last message a client saw: an integer, or null (none).
 * @param {unknown} value
 */
function parseOffset(value) {
  return Number.isSafeInteger(value) ? /** @type {number} */ (value) : null;
}
