-- Sending safely (chapter 5, "Delivery"): a client that got no acknowledgement sends the same
-- message again, with the same `client_offset`, an id the page made up for it. The unique
-- index turns the second copy into a no-op, so a retried message is stored exactly once.

-- ANCHOR: client_offset
ALTER TABLE messages ADD COLUMN client_offset TEXT;

-- NULLs never collide in a UNIQUE index, so messages sent without an offset (older clients,
-- `curl`-style tests) are not affected.
CREATE UNIQUE INDEX messages_user_client_offset ON messages (user_id, client_offset);
-- ANCHOR_END: client_offset
