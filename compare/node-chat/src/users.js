// Users in SQLite. (step05-chat/src/users.rs, over step03's UserStore)
//
// Passport only ever asks three questions of a user store: who has this id,
// what are this name's credentials, and "create this account". The answers
// come from the `users` table that step 5's migration created.

/** Thrown by `create` when the name is taken (in any case). */
export class UsernameTaken extends Error {}

export class UserStore {
  constructor(db) {
    this.byId = db.prepare("SELECT id, username FROM users WHERE id = ?");
    // No `lower(...)`: the column is COLLATE NOCASE, so `=` ignores case.
    this.byName = db.prepare(
      "SELECT id, username, password_hash FROM users WHERE username = ?",
    );
    this.insert = db.prepare(
      `INSERT INTO users (username, password_hash, created_at)
       VALUES (?, ?, ?)`,
    );
  }

  /** `{id, username}`, or null. */
  findById(id) {
    return this.byId.get(id) ?? null;
  }

  /** `{user, passwordHash}`, or null. */
  findCredentials(username) {
    const row = this.byName.get(username);
    if (row === undefined) return null;
    const user = { id: row.id, username: row.username };
    return { user, passwordHash: row.password_hash };
  }

  /**
   * Creates the account. No "SELECT first, then INSERT": the UNIQUE
   * constraint is the one place that decides, atomically.
   */
  create(username, passwordHash) {
    try {
      const done = this.insert.run(username, passwordHash, Date.now());
      return { id: Number(done.lastInsertRowid), username };
    } catch (error) {
      if (error.code === "SQLITE_CONSTRAINT_UNIQUE") throw new UsernameTaken();
      throw error;
    }
  }
}
