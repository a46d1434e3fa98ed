// @ts-check
// The chat itself: what happens on each Socket.IO event.
// (step05-chat/src/chat.rs and handlers/)
//
// `createChat()` keeps this process's side of the chat in its closure (its
// sockets, the catch-up queue) and hands app.js the three functions that
// Socket.IO and the shared state call: `admitSocket` for `io.use()`,
// `onConnection` for `io.on("connection")`, and `onPublished` for what every
// process must hear (a stored message, a change of who is online). Each
// socket's handlers are registered in `onConnection` and close over that
// socket and its user, as in Socket.IO's own guide ("Application
// structure"). Step 5 passes the same state to each handler as
// `State<Chat>` instead.
//
// What all sockets share (the limits, who is online, the numbering of the
// messages) is `shared` (shared-state.js): the state itself in a single
// process, the primary's over IPC in a cluster (cluster.js). So a handler
// awaits it, and each socket's events run one after the other, in the
// order they arrived (`inOrder`), as they did when nothing was awaited.
//
// Every handler can rely on one thing: `authenticateSocket` ran first, so
// `socket.data.user` is the user of the session, the `socket.user` of the
// Node.js walkthrough. No handler ever reads a user from a client's payload.
//
// Messages reach this process's sockets through `onPublished` only, in the
// order of their ids, and "read the history, then join the room" happens in
// one synchronous run, with nothing awaited in between: what step 5's lock
// on deliveries exists to guarantee, the event loop gives here.

import { log } from "./log.js";
import { HISTORY_LIMIT } from "./messages.js";
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
 * @typedef {import("./shared-state.js").Shared} Shared
 * @typedef {import("./shared-state.js").Published} Published
 * @typedef {(payload: any) => Promise<object> | object} Handler an event's
 *   work; its answer
 */

/** The room every socket is in, and cannot leave. */
export const GENERAL = "general";
/** At most this many missed messages are replayed on reconnection. */
export const CATCH_UP_LIMIT = 1000;

// ANCHOR: chat_error
/** Why an event was refused: the text goes back in the ack, `{error}`. */
export class ChatError extends Error {}

const NOT_IN_ROOM = "you have not joined this room";
export const RATE_LIMITED = "rate limited";
const TOO_MANY_ROOMS = "too many rooms: leave one first";
const CANNOT_LEAVE_GENERAL = "you cannot leave general";
export const TOO_MANY_SOCKETS = "too many connections: close another tab first";
/** Logged in full on the server, never sent to the client. */
const INTERNAL = "internal error";
// ANCHOR_END: chat_error

/**
 * The chat of this process, over its parts: `messages` is read here (the
 * history, what a client missed); `shared` stores them and keeps the rest.
 * @param {{ messages: MessageStore, shared: Shared, limits: Limits,
 *   delivery: Delivery }} parts
 */
export function createChat(parts) {
  const { messages, shared, limits, delivery } = parts;
  const catchUps = new OneAtATime();
  // The newest id published to this process: every message up to it has
  // been sent to the sockets in its room here, every later one will be.
  // (Read now, before any socket: none can be in a room yet.)
  let delivered = messages.maxId();

  // ANCHOR: admit_socket
  /**
   * `io.use()`: at most `MAX_SOCKETS_PER_USER` sockets per user, counted by
   * the shared state for the whole server. The place is given back when the
   * socket disconnects, or when its connection closes before it could
   * connect (a socket dropped while being admitted).
   * @param {Socket} socket
   * @param {(error?: Error) => void} next
   */
  async function admitSocket(socket, next) {
    const { user } = socket.data;
    try {
      await shared.admitSocket(socket.id, user.id);
    } catch (error) {
      log.info(`refused a socket of ${user.username}: ${error.message}`);
      return next(error instanceof ChatError ? error : new Error(INTERNAL));
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      settle(shared.releaseSocket(socket.id));
    };
    socket.once("disconnect", release);
    socket.conn.once("close", release);
    if (socket.conn.readyState === "closed") release();
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
    const inOrder = oneAfterAnother();

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
        inOrder(async () => ack(await answer(socket, () => handle(payload))));
      });

    /** `chat message`: store it, send it to the room (sender included), ack. */
    on("chat message", (payload) => {
      const { room, text, clientOffset } = parseChatMessage(payload);
      if (!hasJoined(socket, room)) throw new ChatError(NOT_IN_ROOM);
      // The user's rate and the room's pace, shared fairly among the people
      // talking in it; then the message is numbered, stored and sent to the
      // room everywhere (`onPublished`), and only then acknowledged. The
      // author is the socket's user, from the session. Whatever "user" the
      // payload claimed was never even read.
      return shared.storeMessage(room, user, text, clientOffset);
    });
    // ANCHOR_END: chat_message

    // `join`: "rust", or {room: "rust", serverOffset: 41} from a client
    // coming back with the last message it saw there. The ack has the room's
    // history up to that message; what came after it follows, then the join.
    socket.on("join", (...args) => {
      const [payload, ack] = payloadAndAck(args);
      inOrder(async () => {
        const entry = await answer(socket, () => enterRoom(payload));
        if (!entry.ok) return ack(entry); // {error}
        await announcePresence(socket, entry.room);
      });

      /**
       * Checks that the socket may enter the room `payload` names, then, in
       * one synchronous run: the ack with the history, the missed messages,
       * the join.
       * @param {any} payload
       */
      async function enterRoom(payload) {
        const named = payload !== null && typeof payload === "object";
        const asked = named && Object.hasOwn(payload, "room");
        const room = parseRoom(asked ? payload.room : payload);
        const offset = asked ? parseOffset(payload.serverOffset) : null;
        const lastId = await shared.enterRoom(user.id, room);
        const full = roomsBesidesGeneral(socket) >= limits.roomsPerSocket;
        if (full && !hasJoined(socket, room)) {
          throw new ChatError(TOO_MANY_ROOMS);
        }
        const { history, missed } = readEntry(room, offset, lastId);
        ack({
          ok: true,
          room,
          history: history.messages,
          truncated: missed.truncated,
        });
        if (replay(socket, missed.messages)) socket.join(room);
        return { ok: true, room };
      }
    });

    /** `leave`: leaving a room one is not in is not an error. */
    on("leave", async (payload) => {
      const room = parseRoom(payload);
      if (room === GENERAL) throw new ChatError(CANNOT_LEAVE_GENERAL);
      await shared.take("roomChanges", user.id);
      socket.leave(room);
      await shared.leavePresence(socket.id, room);
      return { ok: true };
    });

    /** `typing`: tell the *others* in the room; rate-limited, a broadcast. */
    on("typing", async (payload) => {
      const room = parseRoom(payload?.room);
      if (!hasJoined(socket, room)) throw new ChatError(NOT_IN_ROOM);
      await shared.take("typing", user.id);
      // `socket.to` (unlike `io.to`) leaves the sender out; through the
      // cluster adapter it reaches the room's sockets in every process.
      socket.to(room).emit("typing", { room, user });
      return { ok: true };
    });

    /** `presence page`: the users of a room after the id `after`, a page. */
    on("presence page", (payload) => {
      const room = parseRoom(payload?.room);
      const after = parseAfter(payload?.after);
      if (!hasJoined(socket, room)) throw new ChatError(NOT_IN_ROOM);
      return shared.presencePageFor(user.id, room, after);
    });

    // ANCHOR: on_connect
    const serverOffset = parseOffset(socket.handshake.auth?.serverOffset);
    // Each catch-up waits its turn: a thousand reconnections at once must
    // not hold up everybody else's messages (step 5 reads two at a time).
    catchUps.push(async () => {
      if (!socket.connected) return; // gone while waiting: nothing to send
      const lastId = await shared.lastId(GENERAL);
      // A `join "general"` sent while this waited has sent the history and
      // the missed messages already: a second catch-up would repeat them.
      if (!socket.connected || socket.rooms.has(GENERAL)) return;
      const replayed = enterGeneral(socket, serverOffset, lastId);
      log.info(`${user.username} joined general (${replayed} replayed)`);
      inOrder(() => announcePresence(socket, GENERAL));
    });
    // ANCHOR_END: on_connect
  }

  // ANCHOR: catch_up
  /**
   * Sends `history`, then each message after `serverOffset` as a `chat
   * message`, in order, then puts the socket in general. One synchronous
   * run: no message can be published between the reads and the join, so
   * each one arrives exactly once, in the replay or live.
   * @param {Socket} socket
   * @param {number | null} serverOffset
   * @param {number} lastId general's newest id, from the shared state
   */
  function enterGeneral(socket, serverOffset, lastId) {
    const { history, missed } = readEntry(GENERAL, serverOffset, lastId);
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
   * to the room's newest, the newest CATCH_UP_LIMIT of them (`truncated` if
   * there were more). The room's newest is `lastId`, as the shared state
   * answered, or a later message published here since: every message up to
   * `delivered` went to the room here before this socket joins it, every
   * later one will reach it live.
   * @param {string} room
   * @param {number | null} offset
   * @param {number} lastId
   */
  function readEntry(room, offset, lastId) {
    const upto = Math.max(lastId, delivered);
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
   * What every process hears from the shared state, in the order it
   * happened: a stored message goes to this process's sockets in its room;
   * so does a change of who is online.
   * @param {Published} event
   */
  function onPublished(event) {
    if (event.type === "stored") {
      const { message } = event;
      delivered = Math.max(delivered, message.id);
      delivery.toRoom(message.room, "chat message", message);
    } else {
      delivery.toRoom(event.room, "presence change", event.change);
    }
  }

  /**
   * The handler's answer, or `{error}`: a refusal, and a strike. Unexpected
   * errors are logged.
   * @param {Socket} socket
   * @param {() => Promise<object> | object} handle
   * @returns {Promise<any>}
   */
  async function answer(socket, handle) {
    try {
      return await handle();
    } catch (error) {
      await strike(socket);
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
  async function strike(socket) {
    const { user } = socket.data;
    if (!(await shared.strike(user.id))) {
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
  async function announcePresence(socket, room) {
    if (!socket.connected) return; // closed while being set up: no ghost
    const page = await shared.enterPresence(socket.id, socket.data.user, room);
    if (page) delivery.toSocket(socket, "presence", page);
  }

  return { admitSocket, onConnection, onPublished };
}


/**
 * A queue of one socket's events: each job starts when the one before it
 * has finished, so that a socket's `join` is done before its next `chat
 * message` is read, even when the shared state answers later (a cluster).
 * A job's failure is logged; the next one runs all the same.
 * @returns {(job: () => unknown) => void}
 */
function oneAfterAnother() {
  /** @type {Promise<unknown>} */
  let last = Promise.resolve();
  return (job) => {
    last = last.then(job).catch((error) => {
      log.error("a socket's event failed:", error);
    });
  };
}

/**
 * Waits for `work` in the background; a failure is logged.
 * @param {unknown} work
 */
function settle(work) {
  Promise.resolve(work).catch((error) => log.error("failed:", error));
}

/**
 * Runs jobs one at a time, a turn of the event loop apart, so that the
 * events that arrived meanwhile (other people's messages) are handled in
 * between. A job runs to its end (what it awaits included) before the next
 * one starts.
 */
class OneAtATime {
  /** @type {Array<() => unknown>} */
  waiting = [];
  running = false;

  /** @param {() => unknown} job */
  push(job) {
    this.waiting.push(job);
    if (this.running) return;
    this.running = true;
    setImmediate(() => this.next());
  }

  async next() {
    const job = this.waiting.shift();
    if (job === undefined) {
      this.running = false;
      return;
    }
    try {
      await job();
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
