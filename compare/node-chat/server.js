// @ts-check
// `node compare/node-chat/server.js`: step05-chat's Node.js twin.
// (step05-chat/src/main.rs)
//
// The same chat, the same contract, the same page: Express, express-session,
// Passport and Socket.IO, configured by the same environment variables.

import "./src/dotenv.js"; // first: the modules below read the environment

import cluster from "node:cluster";
import http from "node:http";

import { build } from "./src/app.js";
import { runPrimary, runWorker } from "./src/cluster.js";
import { limitConnectionsPerAddress } from "./src/per-address.js";
import {
  ConfigError,
  chatConfigFromEnv,
  listenAddressFromEnv,
  workersFromEnv,
} from "./src/config.js";

// ANCHOR: main
function main() {
  const listen = listenAddressFromEnv(process.env);
  const config = chatConfigFromEnv(process.env);
  // WORKERS=2: a primary and two workers (src/cluster.js); by default, one
  // process, as below.
  const workers = workersFromEnv(process.env);
  if (cluster.isWorker) return runWorker(config);
  if (workers > 1) return runCluster(config, listen, workers);
  const { host, port } = listen;
  const { server } = config;
  const httpServer = http.createServer({
    headersTimeout: server.headerReadTimeoutMs,
    requestTimeout: server.requestTimeoutMs,
  });
  httpServer.maxConnections = server.maxConnections;
  // One address, one share of them; TRUSTED_PROXY decides which address.
  const { trustedProxies } = config.authLimits;
  const perAddress = server.maxConnectionsPerAddress;
  limitConnectionsPerAddress(httpServer, perAddress, trustedProxies);
  httpServer.keepAliveTimeout = server.headerReadTimeoutMs;
  // The Express app, then Socket.IO on the same server, then listen.
  const chat = build(config, httpServer);
  httpServer.once("error", fail);
  httpServer.listen(port, host, () => {
    const address = /** @type {import("node:net").AddressInfo} */ (
      httpServer.address()
    );
    // With PORT=0 the port is known only now, before any request is read.
    config.allowedOrigins.listeningOn(address, config.extraOrigins);
    announce(address);
  });
  // Close every socket first: an open WebSocket would otherwise keep the
  // server waiting for as long as the tab stays open.
  const stop = () => {
    setTimeout(() => process.exit(0), 10_000).unref();
    chat.close().then(() => process.exit(0), fail);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
// ANCHOR_END: main

/**
 * The primary of a cluster: it announces the chat once every worker is
 * ready to take requests.
 * @param {ReturnType<typeof chatConfigFromEnv>} config
 * @param {{ host: string, port: number }} listen
 * @param {number} workers
 */
function runCluster(config, listen, workers) {
  const stop = runPrimary(config, listen, workers, {
    started: (address) => announce(address, `, ${workers} workers`),
    fail,
  });
  process.once("SIGINT", () => stop());
  process.once("SIGTERM", () => stop());
}

/**
 * The line the tests (and the reader) wait for.
 * @param {import("node:net").AddressInfo} address
 */
function announce(address, workers = "") {
  console.log(`The chat is running: open ${url(address)}`);
  console.log(`(Ctrl-C to stop${workers})`);
}

/** @param {import("node:net").AddressInfo} address */
function url({ address, port }) {
  if (address === "0.0.0.0" || address === "::") {
    const network = "(and this machine's address on your network)";
    return `http://localhost:${port} ${network}`;
  }
  const host = address.includes(":") ? `[${address}]` : address;
  return `http://${host}:${port}/`;
}

/**
 * A setting that cannot be understood is a message; anything else is a
 * crash, printed with its stack (LOG_LEVEL does not hide it).
 */
/** @param {Error & { code?: string }} error */
function fail(error) {
  if (error instanceof ConfigError || error.code === "EADDRINUSE") {
    console.error(`error: ${error.message}`);
  } else {
    console.error("error:", error);
  }
  process.exit(1);
}

try {
  main();
} catch (error) {
  fail(error);
}
