// One address at its share of the connections cannot keep another address
// from being served (step01-http-vs-socket/tests/limits.rs,
// `one_address_at_its_limit_cannot_keep_another_from_being_served`).

import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, test } from "node:test";

import { startTwin } from "./support.js";

/** A silent connection from `localAddress`, once it is open. */
function silentConnection(url, localAddress) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), localAddress });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Resolves once `socket` is closed by the server, false after `ms`. */
function closedWithin(socket, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.resume();
  });
}

let twin;
before(async () => {
  // Room for four connections, two per address; the header timeout far off,
  // so that only a refusal closes a connection during the test.
  twin = await startTwin({
    MAX_CONNECTIONS: "4",
    MAX_CONNECTIONS_PER_ADDRESS: "2",
    HEADER_READ_TIMEOUT_SECS: "30",
  });
});
after(() => twin?.stop());

test("one address at its limit cannot keep another from being served", async () => {
  const greedy = [];
  for (let i = 0; i < 4; i++) {
    greedy.push(await silentConnection(twin.url, "127.0.0.2"));
  }
  const closed = await Promise.all(greedy.map((s) => closedWithin(s, 1000)));
  // The two over the limit are closed at once; the two under it stay open.
  assert.deepEqual(closed, [false, false, true, true]);

  const response = await fetch(`${twin.url}/me`);
  assert.equal(response.status, 401, "127.0.0.1 is served");
  for (const socket of greedy) socket.destroy();
});

test("a trusted proxy is not held to the per-address limit", async () => {
  const behindProxy = await startTwin({
    MAX_CONNECTIONS_PER_ADDRESS: "1",
    TRUSTED_PROXY: "127.0.0.2",
    HEADER_READ_TIMEOUT_SECS: "30",
  });
  try {
    const proxied = [
      await silentConnection(behindProxy.url, "127.0.0.2"),
      await silentConnection(behindProxy.url, "127.0.0.2"),
    ];
    const closed = await Promise.all(proxied.map((s) => closedWithin(s, 500)));
    assert.deepEqual(closed, [false, false]);
    for (const socket of proxied) socket.destroy();
  } finally {
    await behindProxy.stop();
  }
});
