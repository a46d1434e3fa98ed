// @ts-check
// Sending to sockets that may be too slow, without losing anything.
// (step04-socket-middleware/src/delivery.rs)
//
// Node's Socket.IO never refuses a packet: what a client has not read yet
// waits in its Engine.IO connection's `writeBuffer`, which grows for as long
// as the client does not read (a frozen tab, a phone on a bad network). Step
// 5's queue is bounded instead, at SOCKET_BUFFER packets, and a socket that
// overflows it is *resynchronised*: told `resync`, disconnected, and caught
// up from the database when the page reconnects. The twin keeps the same
// bound by watching `writeBuffer`, so memory per socket stays bounded too.
//
// One difference: Node writes nothing while a handler runs, so a burst of
// events handled in one go fills every queue, if only for a moment. Queues
// are therefore looked at a little after the burst (CHECK_AFTER_MS), when the
// transports have written what their clients would take.

import { log } from "./log.js";

/** How long after sending the queues are looked at. */
const CHECK_AFTER_MS = 25;

/**
 * How long a resynchronised connection may keep unsent packets before it is
 * closed: step 1's WRITE_STALL_TIMEOUT (step01-http-vs-socket/src/server.rs).
 */
const WRITE_STALL_MS = 30_000;

export class Delivery {
  /** Sends through `io`; a socket may have `socketBuffer` packets waiting. */
  constructor(io, socketBuffer) {
    this.io = io;
    this.socketBuffer = socketBuffer;
    this.rooms = new Set(); // rooms to look at, at the next check
    this.sockets = new Set(); // sockets to look at, at the next check
    this.timer = null;
  }

  // ANCHOR: deliver
  /**
   * Sends `event` to everybody in `room` in this process, encoded once for
   * all (`local`: in a cluster, each process hears every message and sends
   * it to its own sockets).
   */
  toRoom(room, event, data) {
    this.io.local.to(room).emit(event, data);
    this.rooms.add(room);
    this.checkSoon();
  }

  /** Sends to one socket; false if it is gone or being resynchronised. */
  toSocket(socket, event, data) {
    if (!socket.connected || socket.data.lagging) return false;
    socket.emit(event, data);
    this.sockets.add(socket);
    this.checkSoon();
    return true;
  }

  checkSoon() {
    this.timer ??= setTimeout(() => this.check(), CHECK_AFTER_MS);
  }

  /** Resynchronises every socket sent to whose queue is over the bound. */
  check() {
    this.timer = null;
    const { sockets } = this.io.sockets; // the main namespace's
    for (const room of this.rooms) {
      for (const id of this.io.sockets.adapter.rooms.get(room) ?? []) {
        this.sockets.add(sockets.get(id));
      }
    }
    for (const socket of this.sockets) {
      const queued = socket?.conn.writeBuffer.length ?? 0;
      if (queued > this.socketBuffer) resync(socket);
    }
    this.rooms.clear();
    this.sockets.clear();
  }
  // ANCHOR_END: deliver
}

// ANCHOR: resync
/**
 * Tells `socket` to resynchronise and disconnects it. Both packets go after
 * what is queued already: the client reads every message it was sent, then
 * `resync`, then the disconnect, and reconnects with the id of the last
 * message it saw. Disconnecting takes the socket out of its rooms at once,
 * so nothing is queued after the hole.
 */
function resync(socket) {
  if (!socket.connected || socket.data.lagging) return;
  socket.data.lagging = true;
  log.warn(`socket ${socket.id} too slow for the room: resynchronising it`);
  socket.emit("resync");
  socket.disconnect();
  // A client that reads nothing at all (yet answers pings) never takes those
  // two packets either, and its connection would hold them for ever: after
  // WRITE_STALL_MS, if they are still waiting, the connection is dropped.
  const conn = socket.conn;
  setTimeout(() => {
    if (conn.readyState === "closed" || conn.writeBuffer.length === 0) return;
    log.warn(`connection ${conn.id} read nothing for 30 s: closing it`);
    conn.transport?.socket?.terminate?.(); // a WebSocket: dropped at once
    conn.close(true);
  }, WRITE_STALL_MS).unref();
}
// ANCHOR_END: resync
