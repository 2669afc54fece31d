DROP TABLE friendships;
DROP TABLE friend_requests;
DROP TABLE friend_categories;
