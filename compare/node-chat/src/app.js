// @ts-check
// The whole chat server: database, stores, Passport, Express routes and
// Socket.IO, put together. (step05-chat/src/lib.rs, and the layers of step
// 4's lib.rs)
//
// File by file, the twin of each Rust module:
//   config.js            step05 config.rs (+ steps 2-4's settings)
//   db.js, users.js      step05 db.rs, users.rs
//   session-store.js     tower-sessions-sqlx-store
//   passport.js          step03 passport.rs
//   hashing.js           step03 hashing.rs
//   auth-limits.js       step03 limits.rs
//   auth-routes.js       step03 routes.rs; api.js: step03 api.rs
//   socket-auth.js       step04 origin.rs, handshake.rs, socket_auth.rs,
//                        live_sessions.rs
//   security-headers.js  step01 security_headers.rs
//   rate-limit.js        step04 fair_use.rs; delivery.js: step04 delivery.rs
//   chat.js              step05 chat.rs and handlers/
//   shared-state.js      step05 chat.rs's `Chat`: what every socket shares
//   messages.js, validation.js, limits.js, presence.js
//                        step05's modules of the same names
//   cluster.js           (none: step 5 uses every core in one process)

import { readFileSync } from "node:fs";

import cors from "cors";
import express from "express";
import session from "express-session";
import { Server } from "socket.io";
import * as parser from "socket.io-parser";

import { jsonErrors } from "./api.js";
/** @import { chatConfigFromEnv } from "./config.js" */
import { AuthThrottle } from "./auth-limits.js";
import { authRoutes } from "./auth-routes.js";
import { createChat } from "./chat.js";
import { openDatabase } from "./db.js";
import { Delivery } from "./delivery.js";
import { HashPool } from "./hashing.js";
import { MessageStore } from "./messages.js";
import { createPassport } from "./passport.js";
import { pagePolicy, securityHeaders } from "./security-headers.js";
import { SqliteSessionStore } from "./session-store.js";
import { SharedState } from "./shared-state.js";
import * as auth from "./socket-auth.js";
import { UserStore } from "./users.js";

/** step 5's page, read from step 5: both servers serve the very same file. */
const PAGE = readFileSync(
  new URL("../../../step05-chat/static/index.html", import.meta.url),
  "utf8",
);

/**
 * Socket.IO's own parser, text only: a packet that announces a binary
 * attachment is a decoding error, and Socket.IO closes that connection
 * before any attachment is read (step 4's `max_incoming_binaries(0)`).
 */
/** @typedef {ReturnType<typeof chatConfigFromEnv>} ChatConfig */

const textOnlyParser = {
  ...parser,
  Decoder: class TextOnlyDecoder extends parser.Decoder {
    constructor() {
      super({ maxAttachments: 0 });
    }
  },
};

/**
 * In a worker of a cluster (cluster.js): the primary's shared state, and
 * the Socket.IO adapter that reaches the other workers' sockets.
 * @typedef {{ shared: import("./shared-state.js").Shared,
 *   adapter: import("socket.io").ServerOptions["adapter"] }} FromPrimary
 */

/**
 * Builds the chat on `httpServer` (not listening yet): the Express app for
 * its requests, then Socket.IO on its upgrades and /socket.io/ requests.
 * Alone (`fromPrimary` null), the process keeps the shared state itself.
 * Returns the Socket.IO server, `onPublished` for what the shared state
 * publishes, and a `close()` for a graceful shutdown.
 * @param {ChatConfig} config
 * @param {import("node:http").Server} httpServer
 * @param {FromPrimary | null} [fromPrimary]
 * @returns {{ io: Server, onPublished: (event: any) => void,
 *   close: () => Promise<void> }}
 */
export function build(config, httpServer, fromPrimary = null) {
  const db = openDatabase(config.databaseUrl);
  const store = new SqliteSessionStore(db);
  const users = new UserStore(db);
  const messages = new MessageStore(db);
  const { authLimits } = config;
  const hashes = new HashPool(
    config.hashing,
    authLimits.hashWorkers,
    authLimits.hashQueue,
  );
  const passport = createPassport(users, hashes, config.sessions);
  const sessions = session({
    name: config.sessions.cookieName,
    secret: config.sessions.secret,
    store,
    resave: false, // save only what a handler changed
    saveUninitialized: false, // no cookie for a visitor nobody wrote to
    cookie: {
      httpOnly: true,
      sameSite: "lax",
      secure: config.sessions.secure,
      maxAge: config.sessions.maxAgeMs,
    },
  });
  const origins = config.allowedOrigins;
  // CORS for a front end on another origin: named exactly, with cookies.
  const corsOptions = {
    origin: origins.origins,
    credentials: true,
    methods: ["GET", "POST"],
    allowedHeaders: ["content-type"],
  };

  // The app first: Socket.IO takes over the server's "request" listeners,
  // answers /socket.io/ itself and hands every other request to them.
  const app = express();
  httpServer.on("request", app);
  const io = new Server(httpServer, {
    cors: corsOptions,
    // step 4's limits: the largest message a client may send, and how long
    // a new connection may take to send its CONNECT.
    maxHttpBufferSize: config.sockets.maxMessageBytes,
    connectTimeout: config.sockets.connectTimeoutMs,
    parser: textOnlyParser,
    ...(fromPrimary && { adapter: fromPrimary.adapter }),
  });
  const onLogout = auth.disconnectOnLogout(io);
  // Alone, this process keeps what every socket shares; what it publishes
  // comes straight back to its own chat.
  const state = fromPrimary
    ? null
    : new SharedState({
        messages,
        rateLimit: config.rateLimit,
        limits: config.limits,
        presencePage: config.presencePage,
        throttle: new AuthThrottle(authLimits),
        publish: (event) => chat.onPublished(event),
      });
  const shared = fromPrimary?.shared ?? /** @type {SharedState} */ (state);
  const chat = createChat({
    messages,
    shared,
    limits: config.limits,
    delivery: new Delivery(io, config.socketBuffer),
  });

  app.set("trust proxy", authLimits.trustedProxies);
  app.use(securityHeaders());
  app.use(cors(corsOptions));
  app.use(auth.checkRequestOrigin(origins)); // 403
  app.use(sessions);
  app.use(passport.initialize());
  app.use(passport.session());
  app.get("/", (req, res) => {
    res.set("Content-Security-Policy", pagePolicy(PAGE));
    res.type("html").send(PAGE);
  });
  app.use(
    authRoutes({
      users,
      hashes,
      passport,
      throttle: shared,
      onLogout,
      cookieName: config.sessions.cookieName,
    }),
  );
  app.use((req, res) => res.status(404).end());
  app.use(jsonErrors);

  // ANCHOR: socket_chain
  // The Engine.IO requests (polling and the WebSocket upgrade alike): the
  // same headers and Origin rule as the routes, then session, user and the
  // 401, on the handshake only (Socket.IO's Passport example). A socket can
  // only come over such a connection, so `io.use()` need not check the
  // Origin again: it attaches `socket.user`, then counts the user's sockets.
  io.engine.use(securityHeaders());
  io.engine.use(auth.checkRequestOrigin(origins));
  io.engine.use(auth.onlyForHandshake(sessions));
  io.engine.use(auth.onlyForHandshake(passport.session()));
  io.engine.use(auth.onlyForHandshake(auth.requireLoginToConnect));
  io.use(auth.authenticateSocket);
  io.use(chat.admitSocket);
  io.on("connection", (socket) => {
    const { recheckMs, absoluteLifetimeMs } = config.sessions;
    auth.watchSession(socket, store, recheckMs, absoluteLifetimeMs);
    chat.onConnection(socket);
  });
  // ANCHOR_END: socket_chain

  return {
    io,
    onPublished: chat.onPublished,
    /** Closes every socket, then the server and the database. */
    async close() {
      await io.close();
      state?.close();
      store.close();
      db.close();
    },
  };
}
