-- Push notifications (docs/ARCHITECTURE.md, "Push notifications").
--
-- A push target of a device: `webpush` (a browser's PushSubscription: `endpoint` is its URL,
-- `p256dh` and `auth` its keys, base64url) or `gateway` (the Matrix push-gateway model:
-- `endpoint` is the pushkey, `app_id` the app's id at the configured gateway). One row per
-- kind and endpoint: registering an endpoint again moves it to the registering device.
-- `previews` overrides the user's setting for this target (NULL: the user's).
CREATE TABLE push_targets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    app_id      TEXT,
    p256dh      TEXT,
    auth        TEXT,
    previews    BOOLEAN,
    created_at  BIGINT NOT NULL,
    UNIQUE (kind, endpoint)
);
CREATE INDEX push_targets_user_idx ON push_targets (user_id, id);
CREATE INDEX push_targets_device_idx ON push_targets (device_id, id);

-- A user's push settings (no row: the defaults, no previews and mentions breaking mute).
CREATE TABLE push_settings (
    user_id              BIGINT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    previews             BOOLEAN NOT NULL,
    mentions_break_mute  BOOLEAN NOT NULL,
    updated_at           BIGINT NOT NULL
);

-- Keys the server makes once and every node of a cluster shares (the VAPID key pair of Web
-- Push): the first node to insert wins, the others read its row.
CREATE TABLE server_keys (
    name        TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
