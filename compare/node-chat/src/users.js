// @ts-check
// Users in SQLite. (step05-chat/src/users.rs, over step03's UserStore)
//
// Passport asks three questions of a user store: who has this id, what are
// this name's credentials, and "create this account"; ending sessions adds
// two: the user with their session epoch, and "move the epoch on". The
// answers come from the `users` table that step 5's migrations created.

/** Thrown by `create` when the name is taken (in any case). */
export class UsernameTaken extends Error {}

export class UserStore {
  constructor(db) {
    this.byId = db.prepare(
      "SELECT id, username, session_epoch FROM users WHERE id = ?",
    );
    // No `lower(...)`: the column is COLLATE NOCASE, so `=` ignores case.
    this.byName = db.prepare(
      "SELECT id, username, password_hash FROM users WHERE username = ?",
    );
    this.insert = db.prepare(
      `INSERT INTO users (username, password_hash, created_at)
       VALUES (?, ?, ?)`,
    );
    // step03's `end_sessions_in_sqlite`, the same statement.
    this.bump = db.prepare(
      `UPDATE users SET session_epoch = session_epoch + 1,
         password_hash = coalesce(?, password_hash)
       WHERE id = ? RETURNING session_epoch`,
    );
  }

  /** `{id, username}`, or null. */
  findById(id) {
    return this.findWithEpoch(id)?.user ?? null;
  }

  /** `{user, epoch}`: the user and their session epoch, or null. */
  findWithEpoch(id) {
    const row = this.byId.get(id);
    if (row === undefined) return null;
    const user = { id: row.id, username: row.username };
    return { user, epoch: row.session_epoch };
  }

  /**
   * Moves the session epoch on, which ends every session of the user; with
   * a `newPasswordHash`, stores it too, in the same statement. The new
   * epoch, or null if there is no such user.
   */
  endSessions(id, newPasswordHash = null) {
    const row = this.bump.get(newPasswordHash, id);
    return row === undefined ? null : row.session_epoch;
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
