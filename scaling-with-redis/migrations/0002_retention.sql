-- Retention, as step 5's 0004 migration: each room keeps its newest ROOM_HISTORY_CAP messages.
-- A room remembers up to which id it was trimmed, so that a client coming back from an older
-- id is told part of what followed is gone (`"truncated": true`). Here it is a column of the
-- room's row, which `PgMessageLog::trim` moves in the statement that deletes.

-- ANCHOR: deleted_upto
ALTER TABLE room_heads ADD COLUMN deleted_upto BIGINT NOT NULL DEFAULT 0;
-- ANCHOR_END: deleted_upto
