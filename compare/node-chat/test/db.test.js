// The durability the twin promises, the same as step 5's (step05-chat
// src/db.rs, `every_commit_is_on_disk_before_it_is_acknowledged`).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { openDatabase } from "../src/db.js";

test("every commit is on disk before it is acknowledged", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "node-chat-db-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The connection the server opens (`synchronous` is per connection).
  const db = openDatabase(`sqlite://${join(dir, "chat.db")}`);
  try {
    const synchronous = db.pragma("synchronous", { simple: true });
    const journalMode = db.pragma("journal_mode", { simple: true });
    // 2 is FULL: each commit waits for an fsync of the log.
    assert.deepEqual([synchronous, journalMode], [2, "wal"]);
  } finally {
    db.close();
  }
});
