DROP TABLE server_keys;
DROP TABLE push_settings;
DROP TABLE push_targets;
