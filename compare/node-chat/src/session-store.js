// @ts-check
// express-session's store, in the chat's SQLite file. (What step 5 gets from
// the tower-sessions-sqlx-store crate: see step05-chat/src/db.rs.)
//
// The npm stores for SQLite either bring a second SQLite driver along
// (connect-sqlite3 uses `sqlite3`) or a GPL licence (better-sqlite3-session-
// store), so the twin implements express-session's documented Store
// interface itself: get, set, destroy. A session is a JSON row.
//
// No `touch`: express-session would call it on every request that brings an
// unchanged session (every handshake), a write each time. Without it, as in
// step 5, a session lives 30 days from the last time it was saved.

import session from "express-session";

/** How often expired sessions are deleted (step 2's CLEANUP_PERIOD). */
const CLEANUP_EVERY_MS = 60_000;

export class SqliteSessionStore extends session.Store {
  constructor(db) {
    super();
    db.exec(`CREATE TABLE IF NOT EXISTS sessions (
      sid     TEXT PRIMARY KEY,
      sess    TEXT NOT NULL,
      expires INTEGER NOT NULL -- ms since the epoch
    )`);
    this.statements = {
      get: db.prepare(
        "SELECT sess FROM sessions WHERE sid = ? AND expires > ?",
      ),
      set: db.prepare(
        `INSERT INTO sessions (sid, sess, expires) VALUES (?, ?, ?)
         ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess,
                                         expires = excluded.expires`,
      ),
      destroy: db.prepare("DELETE FROM sessions WHERE sid = ?"),
      expired: db.prepare("DELETE FROM sessions WHERE expires <= ?"),
    };
    this.cleanup = setInterval(() => this.deleteExpired(), CLEANUP_EVERY_MS);
    this.cleanup.unref(); // never what keeps the process alive
  }

  get(sid, callback) {
    this.run(callback, () => {
      const row = this.statements.get.get(sid, Date.now());
      return row === undefined ? null : JSON.parse(row.sess);
    });
  }

  set(sid, sess, callback) {
    this.run(callback, () => {
      const json = JSON.stringify(sess);
      this.statements.set.run(sid, json, expiresAt(sess));
    });
  }

  destroy(sid, callback) {
    this.run(callback, () => {
      this.statements.destroy.run(sid);
    });
  }

  deleteExpired() {
    this.statements.expired.run(Date.now());
  }

  close() {
    clearInterval(this.cleanup);
  }

  /** express-session's callbacks want `(error, result)`, never a throw. */
  run(callback, job) {
    let result;
    try {
      result = job();
    } catch (error) {
      return callback?.(error);
    }
    callback?.(null, result);
  }
}

/** When the session's cookie expires: `maxAge` after it was last saved. */
function expiresAt(sess) {
  const expires = sess?.cookie?.expires;
  return expires ? new Date(expires).getTime() : Date.now() + 86_400_000;
}
