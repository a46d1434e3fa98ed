// The chat itself: what happens on each Socket.IO event.
// (step05-chat/src/chat.rs)
//
// Every handler can rely on one thing: `authenticateSocket` ran first, so
// `socket.data.user` is the user of the session, the `socket.user` of the
// Node.js walkthrough. No handler ever reads a user from a client's payload.
//
// Node runs one handler at a time, and better-sqlite3 answers before the
// handler goes on. So "store, then broadcast, then acknowledge" and "read the
// history, then join the room" each happen with nothing in between: what step
// 5's per-room sequencer task exists to guarantee, the event loop gives here.
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

/** Everything the handlers share. */
export class Chat {
  constructor({ messages, rateLimit, limits, delivery, presencePage }) {
    const unlimited = () => new RateLimiter(2 ** 32 - 1, UNLIMITED_RATE);
    this.messages = messages;
    this.limits = limits;
    this.delivery = delivery;
    this.presence = new Presence();
    this.presencePage = presencePage; // users per page of an online list
    this.presenceDue = new Set(); // rooms about to be told who is there
    this.catchUps = new OneAtATime();
    const [burst, perSecond] = rateLimit;
    this.limiter = limits.enabled
      ? new RateLimiter(burst, perSecond)
      : unlimited();
    this.typingLimiter = limits.enabled ? new RateLimiter(5, 2) : unlimited();
    this.pageLimiter = limits.enabled ? new RateLimiter(20, 10) : unlimited();
    const roomRate = limits.roomMessagesPerSecond;
    this.roomLimiter = new FairRoom(roomRate * 2, roomRate);
    const changes = limits.roomChangesPerSecond;
    this.roomChanges = new RateLimiter(changes * 5, changes);
    const refusals = limits.refusalsPer10s;
    this.refusals = new RateLimiter(refusals, refusals / 10);
    // Rooms that may have grown past their cap, trimmed a pass a second.
    this.retention = new Set();
    if (Number.isFinite(limits.roomHistoryCap)) {
      this.trimming = setInterval(() => this.trimRooms(), 1000);
      this.trimming.unref();
    }
    // Buckets of users gone quiet are dropped now and then.
    this.housekeeping = setInterval(() => this.forgetIdle(), 60_000);
    this.housekeeping.unref();
  }

  /**
   * Nothing if `allowed`; otherwise `rate limited`. Like every refusal, it
   * is a strike when `answer` sends it.
   */
  limited(allowed) {
    if (!allowed) throw new ChatError(RATE_LIMITED);
  }

  // ANCHOR: strike
  /**
   * One refused event of the socket's user: a person refused now and then
   * stays; a socket that keeps sending what is refused (past
   * `refusalsPer10s` in ten seconds) is disconnected.
   */
  strike(socket) {
    const { user } = socket.data;
    if (!this.refusals.check(user.id)) {
      log.warn(`too many refused events from ${user.id}: disconnecting`);
      socket.disconnect();
    }
  }
  // ANCHOR_END: strike

  forgetIdle() {
    const now = nowSeconds();
    for (const limiter of [
      this.limiter,
      this.typingLimiter,
      this.pageLimiter,
      this.roomLimiter,
      this.roomChanges,
      this.refusals,
    ]) {
      limiter.forgetIdle(now);
    }
  }

  // ANCHOR: retention
  /**
   * Trims each room noted since the last pass to its newest
   * `roomHistoryCap` messages, 200 at a time, a turn of the event loop apart:
   * the senders' events are handled in between.
   */
  trimRooms() {
    const [rooms, cap] = [[...this.retention], this.limits.roomHistoryCap];
    this.retention.clear();
    const next = () => {
      if (this.closed || rooms.length === 0) return;
      const deleted = this.messages.trim(rooms.at(-1), cap);
      if (deleted === 0) rooms.pop(); // at its cap
      setImmediate(next);
    };
    next();
  }
  // ANCHOR_END: retention

  close() {
    this.closed = true;
    clearInterval(this.trimming);
    clearInterval(this.housekeeping);
  }
}

// ANCHOR: admit_socket
/**
 * `io.use()`: at most `MAX_SOCKETS_PER_USER` sockets per user. They are
 * counted by the room `user:<id>`, which `authenticateSocket` put this one
 * in; a refused socket leaves its rooms with the refusal.
 */
export function admitSocket(chat) {
  return (socket, next) => {
    const { user } = socket.data;
    const { rooms } = socket.nsp.adapter;
    const sockets = rooms.get(userRoom(user.id))?.size ?? 0;
    if (sockets > chat.limits.socketsPerUser) {
      log.info(`refused a socket of ${user.username}: too many`);
      return next(new ChatError(TOO_MANY_SOCKETS));
    }
    next();
  };
}
// ANCHOR_END: admit_socket

// ANCHOR: on_connect
/** The `connection` handler: the events, then general, then presence. */
export function onConnect(chat, socket) {
  const { user } = socket.data;
  socket.on("chat message", (...args) => {
    const [payload, ack] = payloadAndAck(args);
    const send = () => sendMessage(chat, socket, user, payload);
    ack(answer(chat, socket, send));
  });
  socket.on("join", (...args) => {
    const [payload, ack] = payloadAndAck(args);
    const join = () => joinRoom(chat, socket, user, payload);
    const entry = answer(chat, socket, join);
    if (!entry.ok) {
      ack(entry);
      return;
    }
    const { missed, ...reply } = entry;
    // The ack, the missed messages, the join: one run, nothing in between.
    ack(reply);
    if (!replay(chat.delivery, socket, missed)) return;
    socket.join(reply.room);
    announcePresence(chat, socket, user, reply.room);
  });
  socket.on("leave", (...args) => {
    const [payload, ack] = payloadAndAck(args);
    const leave = () => leaveRoom(chat, socket, user, payload);
    ack(answer(chat, socket, leave));
  });
  socket.on("typing", (...args) => {
    const [payload, ack] = payloadAndAck(args);
    const tell = () => tellTyping(chat, socket, user, payload);
    ack(answer(chat, socket, tell));
  });
  socket.on("presence page", (...args) => {
    const [payload, ack] = payloadAndAck(args);
    const page = () => nextPresencePage(chat, socket, user, payload);
    ack(answer(chat, socket, page));
  });
  socket.on("disconnect", () => onDisconnect(chat, socket));

  const serverOffset = parseOffset(socket.handshake.auth?.serverOffset);
  // Each catch-up waits its turn: a thousand reconnections at once must not
  // hold up everybody else's messages (step 5's CONCURRENT_CATCH_UPS).
  chat.catchUps.push(() => {
    if (!socket.connected) return; // gone while waiting: nothing to send
    // A `join "general"` sent while this waited has sent the history and
    // the missed messages already: a second catch-up would repeat them.
    if (socket.rooms.has(GENERAL)) return;
    const replayed = enterGeneral(chat, socket, serverOffset);
    log.info(`${user.username} joined general (${replayed} replayed)`);
    announcePresence(chat, socket, user, GENERAL);
  });
}
// ANCHOR_END: on_connect

/**
 * Runs jobs one at a time, a turn of the event loop apart, so that the
 * events that arrived meanwhile (other people's messages) are handled in
 * between. A job itself runs to its end without a pause.
 */
class OneAtATime {
  waiting = [];
  running = false;

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

/** `(payload, ack)` of an event: the ack is optional for the client. */
function payloadAndAck(args) {
  const ack = typeof args.at(-1) === "function" ? args.pop() : () => {};
  return [args.length > 0 ? args[0] : null, ack];
}

/**
 * The handler's answer, or `{error}`: a refusal, and a strike (every refusal
 * counts, whatever its reason). Unexpected errors are logged.
 */
function answer(chat, socket, handle) {
  try {
    return handle();
  } catch (error) {
    chat.strike(socket);
    if (error instanceof ChatError || error instanceof InputError) {
      return { error: error.message };
    }
    log.error("chat handler failed:", error);
    return { error: INTERNAL };
  }
}

// ANCHOR: catch_up
/**
 * Sends `history`, then each message after `serverOffset` as a `chat
 * message`, in order, then puts the socket in general. One synchronous
 * run: no message can be stored between the reads and the join, so each
 * one arrives exactly once, in the replay or live.
 */
function enterGeneral(chat, socket, serverOffset) {
  const { messages, delivery } = chat;
  const upto = messages.lastId(GENERAL);
  const { history, missed } = readEntry(messages, GENERAL, serverOffset, upto);
  const event = {
    room: GENERAL,
    messages: history.messages,
    truncated: missed.truncated,
  };
  if (!delivery.toSocket(socket, "history", event)) return 0;
  if (!replay(delivery, socket, missed.messages)) return 0;
  socket.join(GENERAL);
  return missed.messages.length;
}

/**
 * What a socket entering `room` is shown: the history up to `offset` (the
 * last message the client saw there), and the messages after `offset` up to
 * `upto`, the newest CATCH_UP_LIMIT of them (`truncated` if there were more).
 */
function readEntry(messages, room, offset, upto) {
  const shown = Math.min(offset ?? upto, upto);
  const history = messages.newest(room, 0, shown, HISTORY_LIMIT);
  const missed =
    offset === null
      ? { messages: [], truncated: false }
      : messages.newest(room, offset, upto, CATCH_UP_LIMIT);
  return { history, missed };
}

/** Sends each of `missed`; whether all of them were queued. */
function replay(delivery, socket, missed) {
  return missed.every((message) =>
    delivery.toSocket(socket, "chat message", message),
  );
}
// ANCHOR_END: catch_up

// ANCHOR: chat_message
/** `chat message`: store it, send it to the room (sender included), ack. */
function sendMessage(chat, socket, user, payload) {
  const outgoing = parseChatMessage(payload);
  if (!hasJoined(socket, outgoing.room)) throw new ChatError(NOT_IN_ROOM);
  // The room's pace, shared fairly among the people talking in it.
  const allowed =
    chat.limiter.check(user.id) &&
    chat.roomLimiter.check(outgoing.room, user.id);
  chat.limited(allowed);
  // The author is the socket's user, from the session. Whatever "user" the
  // payload claimed was never even read.
  const { fresh, message } = chat.messages.insert(
    outgoing.room,
    user,
    outgoing.text,
    outgoing.clientOffset,
  );
  // A retry of a stored message is acknowledged again, not sent again.
  if (fresh) {
    chat.delivery.toRoom(message.room, "chat message", message);
    chat.retention.add(message.room); // trimmed later, if need be
  }
  return { ok: true, id: message.id };
}
// ANCHOR_END: chat_message

/** `general` always counts as joined: everyone is put there on connect. */
function hasJoined(socket, room) {
  return room === GENERAL || socket.rooms.has(room);
}

/**
 * `join`: `"rust"`, or `{room: "rust", serverOffset: 41}` from a client
 * coming back with the last message it saw there. The acknowledgement has
 * the room's history, up to that message; what came after it, `missed`, is
 * for the handler to send after the acknowledgement, then to join.
 */
function joinRoom(chat, socket, user, payload) {
  const named = payload !== null && typeof payload === "object";
  const asked = named && Object.hasOwn(payload, "room");
  const room = parseRoom(asked ? payload.room : payload);
  chat.limited(chat.roomChanges.check(user.id));
  const full = roomsBesidesGeneral(socket) >= chat.limits.roomsPerSocket;
  if (full && !hasJoined(socket, room)) throw new ChatError(TOO_MANY_ROOMS);
  const offset = asked ? parseOffset(payload.serverOffset) : null;
  const upto = chat.messages.lastId(room);
  const { history, missed } = readEntry(chat.messages, room, offset, upto);
  return {
    ok: true,
    room,
    history: history.messages,
    truncated: missed.truncated,
    missed: missed.messages,
  };
}

/**
 * How many chat rooms `socket` is in, general aside. The rooms the server
 * puts every socket in, its own id's and `session:`/`user:`, are not chat
 * rooms (no room name has a colon).
 */
function roomsBesidesGeneral(socket) {
  const chatRoom = (room) =>
    room !== GENERAL && room !== socket.id && !room.includes(":");
  return [...socket.rooms].filter(chatRoom).length;
}

/** The id of the last message a client saw: an integer, or null (none). */
function parseOffset(value) {
  return Number.isSafeInteger(value) ? value : null;
}

/** `leave`: leaving a room one is not in is not an error. */
function leaveRoom(chat, socket, user, payload) {
  const room = parseRoom(payload);
  if (room === GENERAL) throw new ChatError(CANNOT_LEAVE_GENERAL);
  chat.limited(chat.roomChanges.check(user.id));
  socket.leave(room);
  if (chat.presence.leave(socket.id, room)) broadcastPresence(chat, room);
  return { ok: true };
}

/** `typing`: tell the *others* in the room; rate-limited, it is a broadcast. */
function tellTyping(chat, socket, user, payload) {
  const room = parseRoom(payload?.room);
  if (!hasJoined(socket, room)) throw new ChatError(NOT_IN_ROOM);
  chat.limited(chat.typingLimiter.check(user.id));
  // `socket.to` (unlike `io.to`) leaves the sender out.
  socket.to(room).emit("typing", { room, user });
  return { ok: true };
}

/** `presence page`: the users of a room after the id `after`, one page. */
function nextPresencePage(chat, socket, user, payload) {
  const room = parseRoom(payload?.room);
  const after = parseAfter(payload?.after);
  if (!hasJoined(socket, room)) throw new ChatError(NOT_IN_ROOM);
  chat.limited(chat.pageLimiter.check(user.id));
  return chat.presence.page(room, after, chat.presencePage);
}

/** A socket went away: rooms that lost their user's last socket are told. */
function onDisconnect(chat, socket) {
  for (const room of chat.presence.disconnect(socket.id)) {
    broadcastPresence(chat, room);
  }
}

/**
 * Counts the socket in `room` and sends it the room's list; the others hear
 * of a change of users as a `presence change`.
 */
function announcePresence(chat, socket, user, room) {
  if (!socket.connected) return; // closed while being set up: no ghost
  const came = chat.presence.join(socket.id, user, room);
  const page = chat.presence.page(room, undefined, chat.presencePage);
  chat.delivery.toSocket(socket, "presence", page);
  if (came) broadcastPresence(chat, room);
}

/** Gathered: the first change schedules the announcement, later ones join. */
function broadcastPresence(chat, room) {
  if (chat.presenceDue.has(room)) return;
  chat.presenceDue.add(room);
  setTimeout(() => {
    chat.presenceDue.delete(room);
    const change = chat.presence.takeChange(room);
    if (change) chat.delivery.toRoom(room, "presence change", change);
  }, PRESENCE_EVERY_MS);
}

