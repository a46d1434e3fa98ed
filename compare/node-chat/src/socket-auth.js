// @ts-check
// Only logged-in users, from allowed pages, may open a socket; and a socket
// does not outlive its session. (step04-socket-middleware: origin.rs,
// handshake.rs, socket_auth.rs, live_sessions.rs)
//
// The chain follows Socket.IO's "How to use with Passport.js" guide: the
// session and Passport middlewares run on the Engine.IO handshake request
// only (`onlyForHandshake`), a handshake without a user gets a 401 before
// any connection is allocated, and `io.use()` attaches the user to the
// socket, or refuses with `Unauthorized`.

import { isIP } from "node:net";

import { log } from "./log.js";

// ANCHOR: allowed_origins
/** The origins (`http://localhost:3000`) whose pages may open a socket. */
export class AllowedOrigins {
  constructor(origins, sameHost = false) {
    this.origins = origins;
    this.sameHost = sameHost;
  }

  /** The server's own origins for `port`, plus `extra` (comma-separated). */
  static forPort(port, extra = "") {
    const own = [`http://localhost:${port}`, `http://127.0.0.1:${port}`];
    const more = extra
      .split(",")
      .map((origin) => origin.trim().replace(/\/+$/, ""))
      .filter((origin) => origin !== "");
    return new AllowedOrigins([...own, ...more]);
  }

  /**
   * Becomes step 5's list for the address the server listens on, known
   * once it listens (PORT=0 lets the OS pick the port), before any request
   * is read. In place: the middlewares and CORS hold this very object.
   */
  listeningOn(address, extra = "") {
    const resolved = allowedOrigins(address, extra);
    this.origins.splice(0, this.origins.length, ...resolved.origins);
    this.sameHost = resolved.sameHost;
  }

  /** Exact match; or, for a classroom server, the host the browser used. */
  allows(origin, host) {
    return (
      this.origins.includes(origin) ||
      (this.sameHost && host !== undefined && origin === `http://${host}`)
    );
  }
}
// ANCHOR_END: allowed_origins

/**
 * step 5's `allowed_origins`: a LAN address is an origin of its own, and on
 * `0.0.0.0` (every address) a page may connect from whatever host it used.
 */
export function allowedOrigins({ address, port }, extra = "") {
  const origins = AllowedOrigins.forPort(port, extra);
  if (address === "0.0.0.0" || address === "::") {
    return new AllowedOrigins(origins.origins, true);
  }
  if (address.startsWith("127.") || address === "::1") return origins;
  const host = isIP(address) === 6 ? `[${address}]` : address;
  const own = `http://${host}:${port}`;
  return AllowedOrigins.forPort(port, [extra, own].join(","));
}

/** The refusal, as JSON, on Express's response or Engine.IO's. */
function refuse(res, status, message) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ error: message }));
}

const SOCKET_IO_PATH = /^\/socket\.io(\/|\?|$)/;

/**
 * HTTP middleware: `403 {"error":"Forbidden origin"}` for a request from a
 * page not on the list, if it could change something (not GET, HEAD or
 * OPTIONS) or open a socket. This is what stops login CSRF.
 */
export function checkRequestOrigin(allowed) {
  return (req, res, next) => {
    const readsOnly = ["GET", "HEAD", "OPTIONS"].includes(req.method);
    if (readsOnly && !SOCKET_IO_PATH.test(req.url)) return next();
    if (sentByAllowedPage(allowed, req.headers)) return next();
    log.warn(`refused a foreign origin ${req.headers.origin} on ${req.url}`);
    refuse(res, 403, "Forbidden origin");
  };
}

/**
 * Browsers send `Origin` on every POST and WebSocket handshake: without one
 * it is curl or a script, with no victim's cookie. `Sec-Fetch-Site` covers
 * an old browser that omits `Origin`.
 */
function sentByAllowedPage(allowed, headers) {
  if (headers.origin !== undefined) {
    return allowed.allows(headers.origin, headers.host);
  }
  const site = headers["sec-fetch-site"];
  return site === undefined || site === "same-origin" || site === "none";
}

// ANCHOR: handshake
/**
 * Runs `middleware` on the request that opens an Engine.IO connection only:
 * the later requests of a long-polling client (every message is one) carry
 * a `sid` and were settled at the handshake.
 */
export function onlyForHandshake(middleware) {
  return (req, res, next) => {
    const isHandshake = req._query.sid === undefined;
    if (isHandshake) middleware(req, res, next);
    else next();
  };
}

/** No user on the handshake: a 401, before a connection is allocated. */
export function requireLoginToConnect(req, res, next) {
  if (req.user) return next();
  log.info("refused a handshake without a logged-in session");
  refuse(res, 401, "Unauthorized");
}
// ANCHOR_END: handshake

// ANCHOR: authenticate_socket
/**
 * `io.use()`: admits a socket only if its handshake carried a logged-in
 * session, and keeps the user on it (`socket.data.user`). The socket joins
 * a room for its session and one for its user: logout finds it there.
 */
export function authenticateSocket(socket, next) {
  const { user, sessionID } = socket.request;
  if (!user || !sessionID) {
    log.info(`refused socket ${socket.id}: no logged-in session`);
    return next(new Error("Unauthorized"));
  }
  socket.join([sessionRoom(sessionID), userRoom(user.id)]);
  socket.data.user = user; // socket.user of the walkthrough
  next();
}
// ANCHOR_END: authenticate_socket

/** The room every socket of one session joins. */
export function sessionRoom(sessionId) {
  return `session:${sessionId}`;
}

/**
 * The id of the session `socket` belongs to now: its newest session room
 * (`follow` joins the new one before it leaves the old one).
 * @param {import("socket.io").Socket} socket
 */
function sessionOf(socket) {
  const rooms = [...socket.rooms].filter((room) => room.startsWith("session:"));
  return (rooms.at(-1) ?? "session:").slice("session:".length);
}

/** The room every socket of one user joins, whatever the session. */
export function userRoom(userId) {
  return `user:${userId}`;
}

/**
 * The logout hook: disconnects every socket opened with the session. The
 * client sees `disconnect` with the reason `io server disconnect`.
 */
export function disconnectOnLogout(io) {
  const hook = (sessionId) => {
    if (sessionId) io.in(sessionRoom(sessionId)).disconnectSockets();
  };
  /** Every socket of the user, but those of `exceptSessionId` if given. */
  hook.everywhere = (userId, exceptSessionId = null) => {
    const except = exceptSessionId ? [sessionRoom(exceptSessionId)] : [];
    io.in(userRoom(userId)).except(except).disconnectSockets();
  };
  /**
   * The sockets of session `from` now belong to session `to` (its new id
   * after a password change): they change rooms, in every process (the
   * cluster adapter passes the order on), and their session watch reads
   * the new id from their rooms.
   */
  hook.follow = (from, to) => {
    io.in(sessionRoom(from)).socketsJoin(sessionRoom(to));
    io.in(sessionRoom(from)).socketsLeave(sessionRoom(from));
  };
  return hook;
}

/**
 * A session can also end without a logout (it expires, or is deleted, or its
 * login is older than `lifetimeMs`): the socket re-reads it every `everyMs`
 * and leaves once it is gone. An open socket makes no HTTP request, so no
 * `deserializeUser` would notice the absolute lifetime for it.
 */
export function watchSession(socket, store, everyMs, lifetimeMs) {
  // Gone twice in a row, not once: a password change deletes the old id a
  // moment before the socket learns the new one (`follow`).
  let missing = false;
  const timer = setInterval(() => {
    store.get(sessionOf(socket), (error, session) => {
      if (error) return log.warn("could not re-check a session:", error);
      const outlived =
        session?.startedAt !== undefined &&
        Date.now() - session.startedAt >= lifetimeMs;
      if ((session && !outlived) || (!session && !missing)) {
        missing = !session;
        return;
      }
      log.info(`session ended: disconnecting socket ${socket.id}`);
      socket.emit("session ended");
      socket.disconnect();
    });
  }, everyMs);
  timer.unref();
  socket.once("disconnect", () => clearInterval(timer));
}
