-- Bans: why a user was banned (banned_at, in the accounts table since the start, says when).
ALTER TABLE users ADD COLUMN ban_reason TEXT;
