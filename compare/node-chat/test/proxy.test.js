// COOKIE_SECURE=true behind a proxy that terminates TLS: express-session
// sends a Secure cookie only over a connection it believes is HTTPS, i.e.
// `req.secure`, which Express reads from X-Forwarded-Proto only when the
// request comes from a proxy named in TRUSTED_PROXY (`trust proxy`).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startTwin } from "./support.js";

/** Registers `username` through "the proxy" and returns the answer. */
function register(url, username, headers = {}) {
  return fetch(`${url}/register`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ username, password: "a long enough password" }),
  });
}

let behindProxy;
before(async () => {
  behindProxy = await startTwin({
    COOKIE_SECURE: "true",
    TRUSTED_PROXY: "127.0.0.1",
  });
});
after(() => behindProxy?.stop());

test("HTTPS at the trusted proxy: the login cookie is sent, Secure", async () => {
  const { url } = behindProxy;
  const response = await register(url, "alice", {
    "x-forwarded-proto": "https",
    "x-forwarded-for": "203.0.113.7",
  });

  assert.equal(response.status, 201);
  const cookie = response.headers.get("set-cookie") ?? "";
  assert.match(cookie, /^id=/, "no session cookie");
  assert.match(cookie, /;\s*Secure/i);
});

test("plain HTTP at the proxy: no Secure cookie over it", async () => {
  const response = await register(behindProxy.url, "bob", {
    "x-forwarded-proto": "http",
  });

  assert.equal(response.status, 201);
  assert.equal(response.headers.get("set-cookie"), null);
});
