// @ts-check
// A client that sends `join "general"` before its queued catch-up ran is
// shown each message once.
//
// Catch-ups wait their turn (one per turn of the event loop, chat.js), so
// under a burst of reconnections a client's `join` can be handled before its
// own catch-up. The join sends the history and the missed messages; a
// catch-up that then ran anyway would send them all a second time.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import Database from "better-sqlite3";
// The official client, at the version the Rust contract tests drive.
import { io } from "socket.io-client";

import { startTwin } from "./support.js";

/** Messages in general before anyone connects. */
const STORED = 1000;
/**
 * Sockets whose catch-ups (each of STORED messages) queue in front: 20 for
 * each worker (`WORKERS=2 npm test`), which share the connections out.
 */
const AHEAD = 20 * Math.max(1, Number(process.env.WORKERS) || 1);
/** The last message our client saw: it missed the newest few. */
const SEEN = STORED - 5;

/** @type {Awaited<ReturnType<typeof startTwin>>} */
let twin;
let cookie = "";
before(async () => {
  twin = await startTwin({
    // No limit on sockets per user; no resync of the sockets that take in
    // thousands of messages at once.
    RATE_LIMITS: "off",
    SOCKET_BUFFER: "1000000",
  });
  const response = await fetch(`${twin.url}/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "alice", password: "a long password" }),
  });
  assert.equal(response.status, 201);
  cookie = (response.headers.get("set-cookie") ?? "").split(";")[0];
  const { id } = /** @type {{ id: number }} */ (await response.json());
  // Stored beside the running twin, in one transaction (WAL lets it).
  const db = new Database(twin.databasePath);
  const insert = db.prepare(
    "INSERT INTO messages (room, user_id, text, ts) VALUES (?, ?, ?, ?)",
  );
  db.transaction(() => {
    for (let i = 1; i <= STORED; i++) {
      insert.run("general", id, `message ${i} `.padEnd(300, "."), Date.now());
    }
  })();
  db.close();
});
after(() => twin?.stop());

/**
 * A socket of alice's, over a connection already open: its `connect()`
 * sends the one packet that makes the server queue its catch-up.
 * `auth` is its handshake's (`serverOffset`).
 */
async function opened(auth = {}) {
  const socket = io(twin.url, {
    transports: ["websocket"],
    extraHeaders: { cookie },
    reconnection: false,
    forceNew: true,
    autoConnect: false,
    auth,
  });
  await new Promise((resolve, reject) =>
    socket.io.open((error) => (error ? reject(error) : resolve(undefined))),
  );
  return socket;
}

/** Resolves with the first `event` that `socket` receives. */
function next(socket, event) {
  return new Promise((resolve) => socket.once(event, resolve));
}

test("a join of general before the queued catch-up shows each message once", async () => {
  const ahead = await Promise.all(
    Array.from({ length: AHEAD }, () => opened({ serverOffset: 0 })),
  );
  const client = await opened({ serverOffset: SEEN });
  /** @type {number[]} */
  const shown = []; // the id of every message the client was shown
  let historyEvents = 0;
  client.on("history", ({ messages }) => {
    historyEvents += 1;
    shown.push(...messages.map((/** @type {any} */ m) => m.id));
  });
  client.on("chat message", (message) => shown.push(message.id));

  // The connections are open: their CONNECTs reach the server at once, and
  // their catch-ups queue before the first of them runs.
  for (const socket of ahead) socket.connect();
  await Promise.all(ahead.map((socket) => next(socket, "connect")));
  client.connect();
  await next(client, "connect");
  const joined = await client.emitWithAck("join", {
    room: "general",
    serverOffset: SEEN,
  });
  const caughtUpFirst = historyEvents > 0;
  shown.unshift(...joined.history.map((/** @type {any} */ m) => m.id));

  // Catch-ups run in the order their sockets connected: once one queued
  // after the client's has run, the client's own has run (or was skipped),
  // and what it sent the client came before the answer to a later event.
  const behind = await opened();
  behind.connect();
  await next(behind, "history");
  await client.emitWithAck("presence page", { room: "general" });

  for (const socket of [...ahead, client, behind]) socket.disconnect();
  assert.ok(!caughtUpFirst, "the catch-up ran first: too few queued ahead");
  const expected = [];
  for (let id = SEEN - 49; id <= STORED; id++) expected.push(id);
  assert.deepEqual(shown, expected);
});
