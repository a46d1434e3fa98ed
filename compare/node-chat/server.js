// `node compare/node-chat/server.js`: step05-chat's Node.js twin.
// (step05-chat/src/main.rs)
//
// The same chat, the same contract, the same page: Express, express-session,
// Passport and Socket.IO, configured by the same environment variables.

import "./src/dotenv.js"; // first: the modules below read the environment

import http from "node:http";

import { build } from "./src/app.js";
import { chatConfigFromEnv, listenAddressFromEnv } from "./src/config.js";
import { log } from "./src/log.js";

// ANCHOR: main
function main() {
  const { host, port } = listenAddressFromEnv(process.env);
  const httpServer = http.createServer();
  httpServer.once("error", fail);
  // Listen first: with PORT=0 the OS picks the port, and the allowed
  // origins are the server's own. `build` runs before any request is read.
  httpServer.listen(port, host, () => attempt(() => serve(httpServer)));
}

function serve(httpServer) {
  const address = httpServer.address();
  const config = chatConfigFromEnv(process.env, address);
  Object.assign(httpServer, {
    maxConnections: config.server.maxConnections,
    headersTimeout: config.server.headerReadTimeoutMs,
    keepAliveTimeout: config.server.headerReadTimeoutMs,
    requestTimeout: config.server.requestTimeoutMs,
  });
  const chat = build(config, httpServer);
  console.log(`The chat is running: open ${url(address)}`);
  console.log("(Ctrl-C to stop)");
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

function url({ address, port }) {
  if (address === "0.0.0.0" || address === "::") {
    const network = "(and this machine's address on your network)";
    return `http://localhost:${port} ${network}`;
  }
  const host = address.includes(":") ? `[${address}]` : address;
  return `http://${host}:${port}/`;
}

function attempt(job) {
  try {
    job();
  } catch (error) {
    fail(error);
  }
}

function fail(error) {
  console.error(`error: ${error.message}`);
  log.debug(error.stack);
  process.exit(1);
}

attempt(main);
