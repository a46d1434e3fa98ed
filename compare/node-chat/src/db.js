// @ts-check
// One SQLite file for everything that must survive a restart: users,
// messages and sessions. (step05-chat/src/db.rs)
//
// better-sqlite3 is synchronous: a query runs to its end before anything else
// in the process does. That costs the event loop the query's time, and buys
// what step 5 takes its `deliveries` lock for (and "The chat under load" a
// task per room): no other handler can run between "stored" and "broadcast",
// or between "read the history" and "joined".

import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";

import Database from "better-sqlite3";

/** step05's own migrations: the twin reads the very same SQL files. */
const MIGRATIONS = new URL("../../../step05-chat/migrations/", import.meta.url);

// ANCHOR: open_database
/** Opens (creating if needed) the database at `databaseUrl`. */
export function openDatabase(databaseUrl) {
  const path = sqlitePath(databaseUrl);
  // SQLite creates the file, not the directory it goes in.
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  // Readers (a joining user's history) go on while a writer commits.
  db.pragma("journal_mode = WAL");
  // A commit returns once it is on the disk (an fsync of the log), as in
  // step 5: "stored" then survives a power cut, not only a crash. (WAL's
  // NORMAL, better-sqlite3's usual pairing, may lose the last commits.)
  db.pragma("synchronous = FULL");
  // One writer at a time: under a burst, wait rather than fail at once.
  db.pragma("busy_timeout = 5000");
  // SQLite ignores REFERENCES unless asked, per connection.
  db.pragma("foreign_keys = ON");
  migrate(db);
  return db;
}
// ANCHOR_END: open_database

/** `sqlite://data/chat.db`, `sqlite:data/chat.db` or `sqlite::memory:`. */
export function sqlitePath(databaseUrl) {
  const match = /^sqlite:(?:\/\/)?([^?]+)$/.exec(databaseUrl);
  if (match === null) {
    throw new Error(
      "DATABASE_URL must look like sqlite://data/chat.db " +
        `(no ?options in the Node twin), got ${JSON.stringify(databaseUrl)}`,
    );
  }
  return match[1];
}

/**
 * Runs the migrations not yet applied, each in a transaction, and records
 * them the way sqlx does (same table, same checksum): the Rust chat and the
 * twin can then take turns on one database file.
 */
function migrate(db) {
  db.exec(`CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
  )`);
  const applied = new Set(
    db.prepare("SELECT version FROM _sqlx_migrations").pluck().all(),
  );
  const record = db.prepare(
    `INSERT INTO _sqlx_migrations
       (version, description, success, checksum, execution_time)
     VALUES (?, ?, TRUE, ?, ?)`,
  );
  for (const file of readdirSync(MIGRATIONS).sort()) {
    const parts = /^(\d+)_(.+)\.sql$/.exec(file);
    if (parts === null || applied.has(Number(parts[1]))) continue;
    const sql = readFileSync(new URL(file, MIGRATIONS));
    const started = process.hrtime.bigint();
    db.transaction(() => {
      db.exec(sql.toString("utf8"));
      const checksum = createHash("sha384").update(sql).digest();
      const elapsed = process.hrtime.bigint() - started;
      const description = parts[2].replaceAll("_", " ");
      record.run(Number(parts[1]), description, checksum, elapsed);
    })();
  }
}
