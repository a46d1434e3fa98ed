-- The chat's own tables. The session table is not here: tower-sessions-sqlx-store creates it
-- itself (see `open_database` in src/db.rs), so its layout stays the library's business.

-- ANCHOR: schema
CREATE TABLE users (
    -- AUTOINCREMENT, not just INTEGER PRIMARY KEY: without it SQLite may hand a deleted
    -- user's id to the next user, and a session that outlived the old user would wake up as
    -- the new one.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NOCASE makes both the UNIQUE check and every `WHERE username = ?` ignore ASCII case,
    -- so `Alice` can neither register beside `alice` nor log in as her.
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- A PHC string (argon2id, salt and parameters included), never the password.
    password_hash TEXT    NOT NULL,
    -- Milliseconds since the Unix epoch, like `messages.ts` and JavaScript's `Date.now()`.
    created_at    INTEGER NOT NULL
);

CREATE TABLE messages (
    -- Also AUTOINCREMENT: ids only ever grow, so "everything after id 41" is a complete
    -- answer for a client that reconnects having seen message 41.
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    room    TEXT    NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id),
    text    TEXT    NOT NULL,
    -- Milliseconds since the Unix epoch.
    ts      INTEGER NOT NULL
);

-- Both history queries ask "this room, ordered by id": with this index SQLite walks straight
-- to the right rows instead of reading every message ever sent.
CREATE INDEX messages_room_id ON messages (room, id);
-- ANCHOR_END: schema
