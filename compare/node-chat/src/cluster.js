// @ts-check
// The chat on every core: a primary process and WORKERS workers, with
// Node's `cluster` module. (Step 5 needs none of this: one Rust process
// runs on every core.)
//
// The primary listens. For each connection it reads the first request and
// hands the connection to a worker (@socket.io/sticky): a long-polling
// client's requests carry its Engine.IO id (`sid`), and go to the worker
// that holds that connection. The workers run the app (Express, Socket.IO)
// and reach each other's sockets through @socket.io/cluster-adapter: a
// logout disconnects the session's sockets wherever they are, a `typing`
// reaches the whole room.
//
// What every socket shares lives in the primary, in one SharedState
// (shared-state.js): the workers call it over the IPC channel, which keeps
// each worker's messages in order. So there is one budget of each limit for
// the whole server, one list of who is online, and one place that numbers
// the messages: it stores each one, publishes it to every worker in the
// order of the ids, and only then answers the sender. Each worker sends a
// published message to its own sockets in the room, so every socket, on any
// worker, sees a room's messages in one order. The cost: a message, a join,
// a rate check each take a trip to the primary and back.

import cluster from "node:cluster";
import http from "node:http";
import net from "node:net";

import { createAdapter, setupPrimary } from "@socket.io/cluster-adapter";
import { setupMaster as setupSticky, setupWorker } from "@socket.io/sticky";

import { ApiError } from "./api.js";
import { build } from "./app.js";
import { AuthThrottle } from "./auth-limits.js";
import { ChatError } from "./chat.js";
import { openDatabase } from "./db.js";
import { log } from "./log.js";
import { MessageStore } from "./messages.js";
import { ConnectionBudget } from "./per-address.js";
import { SHARED_METHODS, SharedState } from "./shared-state.js";

/**
 * @typedef {import("./app.js").ChatConfig} ChatConfig
 * @typedef {import("./shared-state.js").Shared} Shared
 * @typedef {import("./shared-state.js").Published} Published
 * @typedef {{ type: "shared:call", id: number, method: string,
 *   args: unknown[] }} Call a worker asks the shared state
 * @typedef {{ type: "shared:reply", id: number, result?: unknown,
 *   error?: { kind: string, message: string, status?: number,
 *   retryAfter?: number | null } }} Reply its answer, or its refusal
 */

/** Where the workers learn the address the primary listens on. */
const LISTENING_ON = "NODE_CHAT_LISTENING_ON";

// ANCHOR: primary
/**
 * The primary: the shared state, the listening socket, the workers. Calls
 * `started(address)` once every worker is ready for requests, `fail(error)`
 * if it cannot listen; returns a `stop()` that ends the workers, then
 * itself.
 * @param {ChatConfig} config
 * @param {{ host: string, port: number }} listen
 * @param {number} workers
 * @param {{ started: (address: net.AddressInfo) => void,
 *   fail: (error: Error) => void }} callbacks
 */
export function runPrimary(config, { host, port }, workers, callbacks) {
  const { started, fail } = callbacks;
  // The migrations run here, once, before any worker opens the file.
  const db = openDatabase(config.databaseUrl);
  const state = new SharedState({
    messages: new MessageStore(db),
    rateLimit: config.rateLimit,
    limits: config.limits,
    presencePage: config.presencePage,
    throttle: new AuthThrottle(config.authLimits),
    publish: (event) => toEveryWorker({ type: "shared:published", event }),
  });
  answerWorkers(state);
  setupPrimary(); // the cluster adapter's relay between the workers

  // A plain TCP server: the primary reads no HTTP itself, sticky only
  // peeks at the first request's line for the `sid`. (Its types ask for an
  // http.Server; it only listens for `connection`.) Half-open, like an
  // http.Server: a client that shuts its side after its request still
  // gets the answer that the primary passes on.
  const server = net.createServer({ allowHalfOpen: true });
  countConnections(server, config);
  // Round-robin: "least-connection" counts the connections each worker
  // announces, and `bindToThisWorker` announces each one twice.
  setupSticky(/** @type {http.Server} */ (/** @type {unknown} */ (server)), {
    loadBalancingMethod: "round-robin",
  });

  let stopping = false;
  let ready = 0;
  cluster.on("message", (worker, message) => {
    if (message?.type === "worker:ready" && ++ready === workers) {
      started(/** @type {net.AddressInfo} */ (server.address()));
    }
  });
  // A worker that dies took its sockets' state in the primary with it
  // (their places, their presence), and its clients are gone anyway: the
  // whole server stops, with the worker's exit code, for its supervisor
  // (systemd, Docker, a test) to restart it as it would restart the single
  // process. Restarting one worker in place would need that state undone.
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    log.error(
      `worker ${worker.process.pid} exited (code ${code}, signal ` +
        `${signal}): stopping the chat`,
    );
    stop(code || 1);
  });
  server.once("error", fail);
  // Sticky passes the bytes of a request with a body over IPC, as Buffers:
  // JSON would turn them into arrays of numbers; V8's serializer keeps them.
  cluster.setupPrimary({ serialization: "advanced" });
  server.listen(port, host, () => {
    const address = JSON.stringify(server.address());
    for (let i = 0; i < workers; i += 1) {
      cluster.fork({ [LISTENING_ON]: address });
    }
  });

  /** Ends every worker (each closes its sockets), then the primary. */
  function stop(code = 0) {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(code), 10_000).unref();
    server.close();
    const running = Object.values(cluster.workers ?? {});
    let left = running.length;
    const done = () => {
      if (--left > 0) return;
      state.close();
      db.close();
      process.exit(code);
    };
    if (left === 0) return done();
    for (const worker of running) {
      worker?.once("exit", done);
      worker?.process.kill("SIGTERM");
    }
  }
  return stop;
}
// ANCHOR_END: primary

/**
 * The primary's side of the shared state: each call of a worker runs here,
 * one at a time, and the answer goes back to that worker.
 * @param {SharedState} state
 */
function answerWorkers(state) {
  /** @type {Set<string>} */
  const methods = new Set(SHARED_METHODS);
  /**
   * @param {string} method
   * @param {unknown[]} args
   */
  const run = (method, args) => {
    // `sync`: nothing to do; its answer says that everything the worker
    // sent before it was read.
    if (method === "sync") return true;
    if (!methods.has(method)) throw new Error(`no method ${method}`);
    const call = /** @type {(...args: unknown[]) => unknown} */ (
      /** @type {any} */ (state)[method]
    );
    return call.apply(state, args);
  };
  cluster.on("message", (worker, /** @type {Call} */ message) => {
    if (message?.type !== "shared:call") return;
    const { id, method, args } = message;
    /** @type {Reply} */
    let reply;
    try {
      reply = { type: "shared:reply", id, result: run(method, args) };
    } catch (error) {
      reply = { type: "shared:reply", id, error: refusal(error) };
    }
    if (worker.isConnected()) worker.send(reply, ignoreClosed);
  });
}

/**
 * A refusal as plain data, to be thrown again in the worker.
 * @param {any} error
 * @returns {NonNullable<Reply["error"]>}
 */
function refusal(error) {
  if (error instanceof ApiError) {
    const { status, message, retryAfterSeconds } = error;
    return { kind: "ApiError", message, status, retryAfter: retryAfterSeconds };
  }
  if (error instanceof ChatError) {
    return { kind: "ChatError", message: error.message };
  }
  log.error("the shared state failed:", error);
  return { kind: "Error", message: "internal error" };
}

/** @param {{ type: string, event: Published }} message */
function toEveryWorker(message) {
  for (const worker of Object.values(cluster.workers ?? {})) {
    if (worker?.isConnected()) worker.send(message, ignoreClosed);
  }
}

/**
 * MAX_CONNECTIONS and MAX_CONNECTIONS_PER_ADDRESS, for the whole server.
 * A connection is counted when the primary accepts it; it is given back
 * when it closes: in the primary, if the primary kept it (a request with a
 * body is passed on chunk by chunk), or else in the worker it was handed to,
 * which says so (`worker:closed`).
 * @param {net.Server} server
 * @param {ChatConfig} config
 */
function countConnections(server, config) {
  const { maxConnections, maxConnectionsPerAddress } = config.server;
  const budget = new ConnectionBudget(
    maxConnections,
    maxConnectionsPerAddress,
    config.authLimits.trustedProxies,
  );
  server.on("connection", (socket) => {
    // A client gone mid-request (a reset, a write after it closed) is
    // the end of that connection, not of the primary: without a listener,
    // an 'error' would be thrown.
    socket.on("error", () => socket.destroy());
    const address = socket.remoteAddress;
    if (!budget.take(address)) {
      log.warn(`refused a connection from ${address}: too many open`);
      socket.destroy();
      return;
    }
    socket.once("close", () => budget.giveBack(address));
    // A client that sends nothing is closed, as a worker would close it
    // (HEADER_READ_TIMEOUT_SECS); a handed-over socket takes no timeout along.
    const { headerReadTimeoutMs } = config.server;
    socket.setTimeout(headerReadTimeoutMs, () => socket.destroy());
  });
  cluster.on("message", (worker, message) => {
    if (message?.type === "worker:closed") budget.giveBack(message.address);
  });
}

// ANCHOR: worker
/**
 * A worker: the whole app, on a server that never listens: the primary
 * hands it connections. Its calls to the shared state go to the primary.
 * @param {ChatConfig} config
 */
export function runWorker(config) {
  const { server } = config;
  const httpServer = http.createServer({
    headersTimeout: server.headerReadTimeoutMs,
    requestTimeout: server.requestTimeoutMs,
  });
  httpServer.keepAliveTimeout = server.headerReadTimeoutMs;
  const address = JSON.parse(process.env[LISTENING_ON] ?? "null");
  config.allowedOrigins.listeningOn(address, config.extraOrigins);
  const { shared, sync } = sharedFromPrimary();
  const chat = build(config, httpServer, { shared, adapter: createAdapter() });
  setupWorker(chat.io); // connections from the primary
  bindToThisWorker(chat.io.engine, sync);
  process.on("message", (/** @type {any} */ message) => {
    if (message?.type === "shared:published") chat.onPublished(message.event);
  });
  reportClosedConnections(httpServer);
  process.send?.({ type: "worker:ready" });
  const stop = () => {
    setTimeout(() => process.exit(0), 10_000).unref();
    chat.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  // Ctrl-C reaches the whole process group: the primary stops the workers
  // (SIGTERM), so that it sees each exit as asked for, not as a crash.
  process.on("SIGINT", () => {});
  process.once("SIGTERM", stop);
}
// ANCHOR_END: worker

/**
 * Sticky sends a long-polling client's requests to the worker that opened
 * its Engine.IO connection, once that worker has told the primary the
 * connection's id; but it tells it after the handshake's answer is sent,
 * and a quick client's next request (its CONNECT) could reach the primary
 * first, go to another worker, and get `400 Session ID unknown`. So the id
 * is announced before the handshake is answered, and the answer waits for
 * the primary to have read it (`sync`).
 * @param {import("socket.io").Server["engine"]} engine
 * @param {() => Promise<unknown>} sync
 */
function bindToThisWorker(engine, sync) {
  const generateId = engine.generateId.bind(engine);
  engine.generateId = async (req) => {
    const id = await generateId(req);
    process.send?.({ type: "sticky:connection", data: id }, ignoreClosed);
    await sync();
    return id;
  };
}

/**
 * The shared state as seen from a worker: each method sends a call to the
 * primary and resolves with its answer (or rejects with its refusal).
 * Answers come back in the order of the calls, on the same channel as the
 * published events: a sender hears its message, then its acknowledgement.
 * `sync()` resolves once the primary has read everything sent before it.
 * @returns {{ shared: Shared, sync: () => Promise<unknown> }}
 */
function sharedFromPrimary() {
  let lastId = 0;
  /** @type {Map<number, { resolve: (value: any) => void,
   *   reject: (error: Error) => void }>} the calls not answered yet */
  const waiting = new Map();
  process.on("message", (/** @type {Reply} */ message) => {
    if (message?.type !== "shared:reply") return;
    const call = waiting.get(message.id);
    if (call === undefined) return;
    waiting.delete(message.id);
    if (message.error) call.reject(fromRefusal(message.error));
    else call.resolve(message.result);
  });
  /**
   * @param {string} method
   * @param {unknown[]} args
   */
  const call = (method, args) =>
    new Promise((resolve, reject) => {
      const id = ++lastId;
      waiting.set(id, { resolve, reject });
      /** @type {Call} */
      const message = { type: "shared:call", id, method, args };
      process.send?.(message, undefined, {}, (error) => {
        if (!error) return;
        waiting.delete(id);
        // The primary is gone, and this worker exits with it (cluster ends
        // a worker whose channel closed): nothing is waiting for an answer.
        if (process.connected) reject(error);
      });
    });
  const shared = Object.fromEntries(
    SHARED_METHODS.map((method) => [
      method,
      (/** @type {unknown[]} */ ...args) => call(method, args),
    ]),
  );
  return {
    shared: /** @type {Shared} */ (/** @type {unknown} */ (shared)),
    sync: () => call("sync", []),
  };
}

/**
 * The refusal of the primary, as the error it was there.
 * @param {NonNullable<Reply["error"]>} error
 */
function fromRefusal({ kind, message, status, retryAfter }) {
  if (kind === "ApiError") {
    const error = new ApiError(status ?? 500, message);
    return retryAfter == null ? error : error.retryAfter(retryAfter);
  }
  if (kind === "ChatError") return new ChatError(message);
  return new Error(message);
}

/**
 * Tells the primary when a connection it handed over closes, so that its
 * budget of connections gets it back. (A connection the primary kept,
 * passed on chunk by chunk, is not a `net.Socket` here: the primary sees
 * it close.)
 * @param {http.Server} httpServer
 */
function reportClosedConnections(httpServer) {
  httpServer.on("connection", (socket) => {
    if (!(socket instanceof net.Socket)) return;
    const address = socket.remoteAddress;
    socket.once("close", () => {
      process.send?.({ type: "worker:closed", address }, ignoreClosed);
    });
  });
}

/** A worker or primary that went away meanwhile: nothing to do. */
function ignoreClosed() {}
