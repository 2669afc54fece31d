DROP TABLE message_hides;
DROP TABLE conversation_states;
DROP TABLE conversations;
