// Sending to sockets that may be too slow, without losing anything.
// (step05-chat/src/delivery.rs)
//
// Node's Socket.IO never refuses a packet: what a socket cannot take yet
// waits in its Engine.IO connection's `writeBuffer`, which grows for as long
// as the client does not read (a frozen tab, a phone on a bad network). Step
// 5's queue is bounded instead, at SOCKET_BUFFER packets, and a socket that
// overflows it is *resynchronised*: told `resync`, disconnected, and caught
// up from the database when the page reconnects. The twin keeps the same
// bound by watching `writeBuffer`, so memory per socket stays bounded too.

import { log } from "./log.js";

// ANCHOR: deliver
/**
 * Broadcasts `event` to `room`, encoded once for everybody, then
 * resynchronises every member whose queue is now over `socketBuffer`.
 */
export function deliver(io, room, event, data, socketBuffer) {
  io.to(room).emit(event, data);
  const members = io.sockets.adapter.rooms.get(room) ?? [];
  for (const id of members) {
    const socket = io.sockets.sockets.get(id);
    if (socket && queued(socket) > socketBuffer) resync(socket);
  }
}

/** Sends to one socket; false if it is gone or being resynchronised. */
export function send(socket, event, data, socketBuffer) {
  if (!socket.connected || socket.data.lagging) return false;
  socket.emit(event, data);
  if (queued(socket) <= socketBuffer) return true;
  resync(socket);
  return false;
}
// ANCHOR_END: deliver

/** Packets waiting for the client to read them. */
function queued(socket) {
  return socket.conn.writeBuffer.length;
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
  if (socket.data.lagging) return;
  socket.data.lagging = true;
  log.warn(`socket ${socket.id} too slow for the room: resynchronising it`);
  socket.emit("resync");
  socket.disconnect();
}
// ANCHOR_END: resync
