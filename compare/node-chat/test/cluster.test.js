// @ts-check
// WORKERS=2: what the contract tests cannot see from outside, because with
// one process it cannot go wrong. Senders on both workers at once, and every
// socket, on either worker, still gets each message once, in id order; a
// user's sockets and who is online are counted once for the whole server.
//
// The primary hands connections to the workers in turn (round-robin), so
// sockets opened one after the other over WebSocket (one connection each)
// land on the two workers alternately.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { io } from "socket.io-client";

import { startTwin, waitFor } from "./support.js";

/** @typedef {import("socket.io-client").Socket} Socket */

/** @type {Awaited<ReturnType<typeof startTwin>>} */
let twin;
before(async () => {
  twin = await startTwin({
    WORKERS: "2",
    MAX_SOCKETS_PER_USER: "3",
    // Limits on, but room for the senders' burst.
    ROOM_MESSAGES_PER_SECOND: "1000",
    NODE_CHAT_TEST_SETTINGS: JSON.stringify({
      hashing: { memoryCost: 8, timeCost: 1, parallelism: 1 },
      messageRate: [1000, 1000],
    }),
  });
});
after(() => twin?.stop());

/** Registers `username`; its session cookie. */
async function register(username) {
  const response = await fetch(`${twin.url}/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: "a long password" }),
  });
  assert.equal(response.status, 201);
  return (response.headers.get("set-cookie") ?? "").split(";")[0];
}

/** @type {WeakMap<Socket, Promise<unknown>>} each socket's `history` */
const histories = new WeakMap();
/** @type {WeakMap<Socket, Promise<unknown>>} its first `presence` page */
const presences = new WeakMap();

/**
 * A socket of the session `cookie`, once connected or refused.
 * @param {string} cookie
 * @returns {Promise<Socket>}
 */
function connected(cookie) {
  const socket = io(twin.url, {
    transports: ["websocket"],
    extraHeaders: { cookie },
    reconnection: false,
    forceNew: true,
  });
  /** @param {string} event */
  const first = (event) =>
    new Promise((resolve) => socket.once(event, resolve));
  histories.set(socket, first("history"));
  presences.set(socket, first("presence"));
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (error) => {
      socket.close();
      reject(error);
    });
  });
}

test("senders on both workers: each message once, in id order", async () => {
  const SENDERS = 4;
  const EACH = 50;
  const cookies = [];
  for (let n = 0; n < SENDERS; n += 1) {
    cookies.push(await register(`sender${n}`));
  }
  // One after the other, with no request in between: the two workers in turn.
  /** @type {Socket[]} */
  const sockets = [];
  for (const cookie of cookies) sockets.push(await connected(cookie));
  /** @type {number[][]} */
  const seen = sockets.map(() => []);
  sockets.forEach((socket, n) =>
    socket.on("chat message", (/** @type {{ id: number }} */ message) => {
      seen[n].push(message.id);
    }),
  );
  // Each socket is in general once its history came.
  await Promise.all(sockets.map((socket) => histories.get(socket)));

  const acks = sockets.flatMap((socket, n) =>
    Array.from({ length: EACH }, (_, i) =>
      socket.emitWithAck("chat message", {
        room: "general",
        text: `${n}:${i}`,
      }),
    ),
  );
  const answers = await Promise.all(acks);
  const ids = answers.map((ack) => ack.id).sort((a, b) => a - b);
  assert.equal(new Set(ids).size, SENDERS * EACH, "each message its own id");

  const everything = () => seen.every((got) => got.length >= ids.length);
  assert.ok(await waitFor(everything, 10_000), "not everything arrived");
  for (const got of seen) assert.deepEqual(got, ids);
  for (const socket of sockets) socket.close();
});

test("a user's sockets are counted once for the whole server", async () => {
  const cookie = await register("tabs");
  const tabs = [];
  for (let n = 0; n < 3; n += 1) tabs.push(await connected(cookie));
  // A fourth, on whichever worker: refused, with the reason.
  await assert.rejects(connected(cookie), /too many connections/);
  // A tab closed gives its place back, to a socket on any worker.
  tabs.pop()?.close();
  const again = () => connected(cookie).then(
    (socket) => (tabs.push(socket), true),
    () => false,
  );
  assert.ok(await waitFor(again, 5000), "the place was not given back");
  for (const tab of tabs) tab.close();
});

test("two tabs on two workers: online once, gone when both are", async () => {
  const cookie = await register("twotabs");
  const watcher = await connected(await register("watcher"));
  /** @type {any[]} */
  const changes = [];
  watcher.on("presence change", (change) => changes.push(change));
  const first = await connected(cookie);
  const second = await connected(cookie);
  // Both tabs are counted once each got the room's list.
  await Promise.all([first, second].map((tab) => presences.get(tab)));
  /** @type {any} */
  const page = await watcher.emitWithAck("presence page", {
    room: "general",
    after: 0,
  });
  /** @param {{ username: string }[]} users @param {string} username */
  const has = (users, username) =>
    users.filter((user) => user.username === username).length;
  assert.equal(has(page.users, "twotabs"), 1, "listed once");
  assert.equal(page.online, page.users.length, "a user counted twice");

  /** @param {string} list @param {string} username */
  const told = (list, username) => () =>
    changes.some((change) => has(change[list], username) > 0);
  const left = told("left", "twotabs");
  first.close();
  // Someone who comes after the first tab closed: by the time the watcher
  // hears of them, it would have heard that twotabs left.
  const marker = await connected(await register("marker"));
  assert.ok(await waitFor(told("joined", "marker"), 5000));
  assert.equal(left(), false, "shown gone while a tab is open");
  second.close();
  assert.ok(await waitFor(left, 5000), "still shown online");
  watcher.close();
  marker.close();
});
