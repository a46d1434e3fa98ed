-- The cluster's tables in PostgreSQL: step 5's users and messages (its two SQLite migrations
-- in one), plus one row per room that makes the room's inserts take turns. Sessions are not
-- here: they live in Redis.

-- ANCHOR: schema
CREATE TABLE users (
    -- An identity column never hands out an id twice, even after a delete (SQLite needed
    -- AUTOINCREMENT for that).
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT   NOT NULL,
    -- A PHC string (argon2id, salt and parameters included), never the password.
    password_hash TEXT   NOT NULL,
    -- Milliseconds since the Unix epoch, like `messages.ts` and JavaScript's `Date.now()`.
    created_at    BIGINT NOT NULL,
    -- Moved on to end every session of the user (step 5's column: "Sessions a user can end").
    session_epoch BIGINT NOT NULL DEFAULT 0
);
-- SQLite's COLLATE NOCASE, in PostgreSQL: `Alice` cannot register beside `alice`. Every
-- lookup by name compares `lower(username)` too, and so uses this index.
CREATE UNIQUE INDEX users_username ON users (lower(username));

CREATE TABLE messages (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room          TEXT   NOT NULL,
    user_id       BIGINT NOT NULL REFERENCES users(id),
    text          TEXT   NOT NULL,
    ts            BIGINT NOT NULL,
    -- The client's own id for a message: sent again, it is stored once (NULLs never collide).
    client_offset TEXT
);
CREATE INDEX messages_room_id ON messages (room, id);
CREATE UNIQUE INDEX messages_user_client_offset ON messages (user_id, client_offset);

-- One row per room: the id of its newest message. A transaction that stores messages in a
-- room first locks the room's row, so the room's inserts, from every node, take turns: within
-- a room, ids grow in the order the transactions commit, and a node that sees message 57
-- follow message 41 knows it lacks whatever the room holds between them.
CREATE TABLE room_heads (
    room    TEXT   PRIMARY KEY,
    last_id BIGINT NOT NULL
);
-- ANCHOR_END: schema
