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

/**
 * The same budget, counted by hand: at most `max` connections in all and
 * `perAddress` from one address (the addresses of `trustedProxies` aside).
 * A cluster's primary needs it: the connections it hands to its workers
 * leave its own count (`server.maxConnections`) the moment they are handed
 * over, and their workers tell it when they close (cluster.js).
 */
export class ConnectionBudget {
  /** @type {Map<string, number>} */
  open = new Map();
  total = 0;

  /**
   * @param {number} max
   * @param {number} perAddress
   * @param {string[]} trustedProxies
   */
  constructor(max, perAddress, trustedProxies) {
    this.max = max;
    this.perAddress = perAddress;
    this.trusted = new Set(trustedProxies.map((proxy) => addressKey(proxy)));
  }

  /**
   * Counts a new connection from `address`; false if it is over budget (it
   * is then not counted, and should be closed at once).
   * @param {string | undefined} address
   */
  take(address) {
    const key = addressKey(address);
    const count = (this.open.get(key) ?? 0) + 1;
    const fromProxy = this.trusted.has(key);
    if (this.total >= this.max || (!fromProxy && count > this.perAddress)) {
      return false;
    }
    this.total += 1;
    if (!fromProxy) this.open.set(key, count);
    return true;
  }

  /**
   * A counted connection from `address` closed.
   * @param {string | undefined} address
   */
  giveBack(address) {
    const key = addressKey(address);
    this.total = Math.max(0, this.total - 1);
    if (this.trusted.has(key)) return;
    const left = (this.open.get(key) ?? 1) - 1;
    if (left === 0) this.open.delete(key);
    else this.open.set(key, left);
  }
}
