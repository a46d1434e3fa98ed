// What the twin's own tests share: waiting for a condition, and the twin
// started as a process, the way step 5's tests start it.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

const SERVER = new URL("../server.js", import.meta.url).pathname;

/** Polls `condition` until it holds (true) or `timeoutMs` passes (false). */
export async function waitFor(condition, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(5);
  }
  return condition();
}

/**
 * `node server.js` on a free loopback port over a fresh database, with
 * `env` added to what step 5's tests set; resolves to its base URL and a
 * `stop()`. Rejects with the server's error output if it does not start.
 */
export function startTwin(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), "node-chat-test-"));
  const child = spawn(process.execPath, [SERVER], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: "test",
      HOST: "127.0.0.1",
      PORT: "0",
      DATABASE_URL: `sqlite://${join(dir, "chat.db")}`,
      SESSION_SECRET: "ab".repeat(16) + "0123456789abcdef".repeat(4),
      LOG_LEVEL: "warn",
      NODE_CHAT_TEST_SETTINGS: JSON.stringify({
        hashing: { memoryCost: 8, timeCost: 1, parallelism: 1 },
      }),
      // `WORKERS=2 npm test`: every test against a primary and 2 workers.
      ...(process.env.WORKERS && { WORKERS: process.env.WORKERS }),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let errors = "";
  child.stderr.on("data", (chunk) => (errors += chunk));
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => {
      rmSync(dir, { recursive: true, force: true });
      reject(new Error(`the twin exited (${code}): ${errors}`));
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      const url = /^The chat is running: open (http:\/\/\S+?)\/?$/.exec(line);
      if (url) resolve({ url: url[1], databasePath: join(dir, "chat.db"), stop });
    });
  });
}
