ALTER TABLE conversation_states DROP COLUMN mention_seq;
DROP TABLE group_invites;
DROP TABLE group_members;
DROP TABLE groups;
