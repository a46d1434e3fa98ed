// @ts-check
// How much one user, one socket and one room may ask of the server.
// (step05-chat/src/limits.rs)
//
// Logging in proves who someone is, not that they are harmless: an account is
// free, and a script with one can open a thousand sockets or join and leave
// rooms ten thousand times a second. Each limit is a setting whose default a
// class of 40 never reaches; `RATE_LIMITS=off` lifts them all (load tests).
//
// The counts come from Socket.IO's rooms (chat.js): a user's sockets are the
// `user:<id>` room, a socket's rooms are `socket.rooms`. (Step 5 counts a
// user's sockets in a map of its own, `chat.sockets`.)

/**
 * @typedef {{ enabled: boolean, socketsPerUser: number,
 *   roomsPerSocket: number, roomMessagesPerSecond: number,
 *   roomChangesPerSecond: number, refusalsPer10s: number,
 *   roomHistoryCap: number }} ChatLimits
 */

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
