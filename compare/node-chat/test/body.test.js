// Bodies the parser refuses: each a 4xx naming the problem, never a 500
// (step 3's JsonOrForm extractor refuses them with a 4xx too).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startTwin } from "./support.js";

let twin;
before(async () => {
  twin = await startTwin();
});
after(() => twin?.stop());

function login(headers, body) {
  return fetch(`${twin.url}/login`, { method: "POST", headers, body });
}

async function assertRefused(response, status) {
  const answer = await response.json();
  assert.equal(response.status, status, answer.error);
  assert.equal(typeof answer.error, "string");
}

test("a charset other than UTF-8 is a 415", async () => {
  const headers = { "content-type": "application/json; charset=koi8-r" };
  const body = JSON.stringify({ username: "alice", password: "x" });
  await assertRefused(await login(headers, body), 415);
});

test("a Content-Encoding the server does not know is a 415", async () => {
  const headers = {
    "content-type": "application/json",
    "content-encoding": "x-unknown",
  };
  await assertRefused(await login(headers, "{}"), 415);
});

test("a form with thousands of fields is a 413", async () => {
  const headers = { "content-type": "application/x-www-form-urlencoded" };
  const body = Array.from({ length: 2000 }, (_, n) => `f${n}=1`).join("&");
  await assertRefused(await login(headers, body), 413);
});
