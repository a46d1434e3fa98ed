// @ts-check
// One address, one share of the connections (step01-http-vs-socket:
// server.rs, `PerAddress`). `server.maxConnections` alone lets one address
// take every place and leave everybody else's connection dropped.

import { addressKey } from "./auth-limits.js";

/**
 * Closes a new connection at once when its client's address already has
 * `max` open. Closed, not queued: a queue would fill with the flood. The
 * addresses of `trustedProxies` are not counted (behind a proxy every client
 * comes from it: the proxy limits per client). An IPv6 /64 counts as one
 * address, as for the login's throttles.
 *
 * @param {import("node:net").Server} server
 * @param {number} max
 * @param {string[]} trustedProxies
 */
export function limitConnectionsPerAddress(server, max, trustedProxies) {
  const trusted = new Set(trustedProxies.map((proxy) => addressKey(proxy)));
  /** @type {Map<string, number>} */
  const open = new Map();
  server.on("connection", (socket) => {
    const key = addressKey(socket.remoteAddress);
    if (trusted.has(key)) return;
    const count = (open.get(key) ?? 0) + 1;
    if (count > max) {
      socket.destroy();
      return;
    }
    open.set(key, count);
    socket.once("close", () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left === 0) open.delete(key);
      else open.set(key, left);
    });
  });
}
