// Settings the twin refuses at start, with a message, rather than run with
// a trap in them.

import assert from "node:assert/strict";
import { test } from "node:test";

import { startTwin } from "./support.js";

test("COOKIE_SECURE=true without TRUSTED_PROXY is refused at start", async () => {
  await assert.rejects(startTwin({ COOKIE_SECURE: "true" }), /TRUSTED_PROXY/);
});

test("test settings (a cheap hash) are refused outside NODE_ENV=test", async () => {
  const started = startTwin({ NODE_ENV: "production" });
  await assert.rejects(started, /NODE_ENV=test/);
});
