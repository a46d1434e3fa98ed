-- Sessions a user can end (chapter "Before it faces the Internet: the login"): a login copies
-- the user's session epoch into the session; "log out everywhere" and a password change move
-- it on, and every session holding an older copy is logged out when next read.

-- ANCHOR: session_epoch
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
-- ANCHOR_END: session_epoch
