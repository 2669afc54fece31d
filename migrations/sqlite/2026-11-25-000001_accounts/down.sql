DROP TABLE devices;
DROP TABLE users;
