-- Retention: each room keeps its newest ROOM_HISTORY_CAP messages (see `MessageStore::trim`).
-- Ids only grow, so "deleted up to id N" is all a room must remember to tell a client that
-- asks for what came after an older id that part of it is gone (`"truncated": true`).

-- ANCHOR: room_trims
CREATE TABLE room_trims (
    room         TEXT    PRIMARY KEY,
    deleted_upto INTEGER NOT NULL
);

-- Whatever deletes a message (retention, or a moderator one day), the room remembers it.
CREATE TRIGGER messages_deleted AFTER DELETE ON messages BEGIN
    INSERT OR REPLACE INTO room_trims (room, deleted_upto) VALUES (old.room, MAX(old.id,
        COALESCE((SELECT deleted_upto FROM room_trims WHERE room = old.room), 0)));
END;
-- ANCHOR_END: room_trims
