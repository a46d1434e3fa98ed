// How much one user, one socket and one room may ask of the server.
// (step05-chat/src/limits.rs)
//
// Logging in proves who someone is, not that they are harmless: an account is
// free, and a script with one can open a thousand sockets or join and leave
// rooms ten thousand times a second. Each limit is a setting whose default a
// class of 40 never reaches; `RATE_LIMITS=off` lifts them all (load tests).

/** What `cargo run` and `node server.js` use without settings. */
export const DEFAULT_LIMITS = Object.freeze({
  enabled: true,
  socketsPerUser: 20, // MAX_SOCKETS_PER_USER
  roomsPerSocket: 20, // MAX_ROOMS_PER_SOCKET, besides general
  roomMessagesPerSecond: 30, // ROOM_MESSAGES_PER_SECOND, burst twice that
  roomChangesPerSecond: 2, // joins and leaves per user, burst five times
  refusalsPer10s: 200, // refused events before the socket is disconnected
  roomHistoryCap: 10_000, // ROOM_HISTORY_CAP: messages a room keeps
});

/** "As fast as anyone can": finite, so the arithmetic stays ordinary. */
export const UNLIMITED_RATE = 1e12;

/** No limits at all (`RATE_LIMITS=off`). */
export const NO_LIMITS = Object.freeze({
  enabled: false,
  socketsPerUser: Infinity,
  roomsPerSocket: Infinity,
  roomMessagesPerSecond: UNLIMITED_RATE,
  roomChangesPerSecond: UNLIMITED_RATE,
  refusalsPer10s: UNLIMITED_RATE,
  roomHistoryCap: Infinity,
});

// ANCHOR: quotas
/**
 * What each socket holds: a place among its user's sockets, and its rooms.
 * Node runs one handler at a time, so "check, then take" cannot be cut in
 * two by another join: step 5 needs a lock for that, here it comes free.
 */
export class Quotas {
  users = new Map(); // user id -> Set of socket ids
  sockets = new Map(); // socket id -> { userId, rooms: Set }

  /** Takes a place for `socketId` if its user has fewer than `max`. */
  admit(userId, socketId, max) {
    let sockets = this.users.get(userId);
    if (sockets === undefined) {
      sockets = new Set();
      this.users.set(userId, sockets);
    }
    if (sockets.size >= max && !sockets.has(socketId)) return false;
    sockets.add(socketId);
    if (!this.sockets.has(socketId)) {
      this.sockets.set(socketId, { userId, rooms: new Set() });
    }
    return true;
  }

  /** Takes a place for `room` if the socket holds fewer than `max`. */
  takeRoom(socketId, room, max) {
    const held = this.sockets.get(socketId);
    if (held === undefined) return false; // not admitted, or gone
    if (held.rooms.has(room)) return true;
    if (held.rooms.size >= max) return false;
    held.rooms.add(room);
    return true;
  }

  /** Gives back the place of `room` (a leave, or a join that failed). */
  giveBackRoom(socketId, room) {
    this.sockets.get(socketId)?.rooms.delete(room);
  }

  /** Gives back everything `socketId` held. Safe to call twice. */
  release(socketId) {
    const held = this.sockets.get(socketId);
    if (held === undefined) return;
    this.sockets.delete(socketId);
    const sockets = this.users.get(held.userId);
    sockets?.delete(socketId);
    if (sockets?.size === 0) this.users.delete(held.userId);
  }
}
// ANCHOR_END: quotas
