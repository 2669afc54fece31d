DROP TABLE entity_owners;
