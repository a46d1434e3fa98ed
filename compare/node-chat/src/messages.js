// @ts-check
// Chat messages: what the wire carries, and the table that remembers them.
// (step05-chat/src/messages.rs)
//
// A message as every client receives it:
//   {"id": 7, "room": "general", "user": {"id": 1, "username": "alice"},
//    "text": "hi", "ts": 1700000000000}
// `user` is whoever the server authenticated on the socket, never something
// the client said. `ts` is milliseconds since the epoch, `Date.now()`.

/**
 * @typedef {{ id: number, room: string,
 *   user: { id: number, username: string }, text: string, ts: number }}
 *   Message
 */

/** How many messages a client gets when it joins a room. */
export const HISTORY_LIMIT = 50;

const SELECT = `SELECT m.id, m.room, m.user_id, u.username, m.text, m.ts
  FROM messages m JOIN users u ON u.id = m.user_id`;

/** The `messages` table. */
export class MessageStore {
  constructor(db) {
    this.statements = {
      insert: db.prepare(
        `INSERT INTO messages (room, user_id, text, ts, client_offset)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (user_id, client_offset) DO NOTHING`,
      ),
      earlier: db.prepare(
        `${SELECT} WHERE m.user_id = ? AND m.client_offset = ?`,
      ),
      lastId: db
        .prepare("SELECT COALESCE(MAX(id), 0) FROM messages WHERE room = ?")
        .pluck(),
      maxId: db.prepare("SELECT COALESCE(MAX(id), 0) FROM messages").pluck(),
      // Up to which id the room's messages were deleted (a trigger of
      // step 5's migration 0004 keeps it).
      trimmed: db
        .prepare("SELECT deleted_upto FROM room_trims WHERE room = ?")
        .pluck(),
      // The 200 oldest messages of a room beyond its newest `cap`.
      trim: db.prepare(
        `DELETE FROM messages WHERE id IN (SELECT id FROM messages
           WHERE room = @room AND id <= (SELECT id FROM messages
             WHERE room = @room ORDER BY id DESC LIMIT 1 OFFSET @cap)
           ORDER BY id LIMIT 200)`,
      ),
      newest: db.prepare(
        `${SELECT} WHERE m.room = ? AND m.id > ? AND m.id <= ?
         ORDER BY m.id DESC LIMIT ?`,
      ),
    };
  }

  // ANCHOR: insert
  /**
   * Stores a message and returns `{ fresh, message }`. The same
   * `(user, clientOffset)` twice is a client retrying a message whose ack it
   * missed: the first one comes back, `fresh: false`, to be acknowledged
   * again and not broadcast again.
   */
  insert(room, user, text, clientOffset) {
    const ts = Date.now();
    const { statements } = this;
    const done = statements.insert.run(room, user.id, text, ts, clientOffset);
    if (done.changes === 1) {
      const id = Number(done.lastInsertRowid);
      return { fresh: true, message: { id, room, user, text, ts } };
    }
    const row = statements.earlier.get(user.id, clientOffset);
    return { fresh: false, message: fromRow(row) };
  }
  // ANCHOR_END: insert

  /** The id of the newest message of `room`, or 0. */
  lastId(room) {
    return this.statements.lastId.get(room);
  }

  /** The id of the newest message of any room, or 0. */
  maxId() {
    return this.statements.maxId.get();
  }

  /**
   * The `limit` newest messages of `room` with an id in `after+1 ..= upto`,
   * oldest first, and whether older ones in that range were left out.
   */
  newest(room, after, upto, limit) {
    const take = Math.max(0, limit); // SQLite reads -1 as "no limit"
    const rows = this.statements.newest.all(room, after, upto, take + 1);
    // Or some were deleted (`trim`): the client is told so.
    const trimmed = this.statements.trimmed.get(room) ?? 0;
    const truncated = rows.length > take || after < trimmed;
    const messages = rows.slice(0, take).reverse().map(fromRow);
    return { messages, truncated };
  }

  /**
   * Deletes up to 200 messages of `room` older than its newest `cap`; how
   * many it deleted (0: the room is at its cap).
   */
  trim(room, cap) {
    return this.statements.trim.run({ room, cap }).changes;
  }
}

/** A flat SQL row, nested into the wire's shape (keys in the wire's order). */
function fromRow(row) {
  return {
    id: row.id,
    room: row.room,
    user: { id: row.user_id, username: row.username },
    text: row.text,
    ts: row.ts,
  };
}
