-- 001_accounts: users, sessions (refresh-token families), refresh tokens, devices.
-- Applied once, inside a transaction, by `switchboard migrate` (server/src/migrate.c).
-- Ids are bigint identities, exposed to clients as decimal strings.

-- Users. Usernames are stored lower-case (the server lower-cases what clients
-- send), so the plain unique index makes them unique case-insensitively; the
-- "C" collation lets the same index serve prefix searches (range scans).
CREATE TABLE users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        text COLLATE "C" NOT NULL
                    CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9_.]{3,32}$'),
    display_name    text NOT NULL
                    CONSTRAINT users_display_name_length CHECK (char_length(display_name) BETWEEN 1 AND 64),
    about           text NOT NULL DEFAULT ''
                    CONSTRAINT users_about_length CHECK (char_length(about) <= 500),
    avatar_media_id text
                    CONSTRAINT users_avatar_media_id_length CHECK (char_length(avatar_media_id) <= 64),
    password_hash   text NOT NULL,             -- Argon2id encoded string
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz,
    banned_at       timestamptz,
    CONSTRAINT users_username_key UNIQUE (username)
);

-- A session is one sign-in on one device: the family of refresh tokens that
-- descend from it by rotation. Its id is the `sid` claim of access tokens.
-- Revoking it (logout, reuse of a rotated token, ban) ends the whole family.
CREATE TABLE sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    revoke_reason text,                        -- 'logout', 'reuse', 'banned', ...
    user_agent    text,
    ip            text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens: 32 random bytes given to the client, stored only as their
-- SHA-256. Each refresh marks the presented token rotated and issues a new
-- one in the same session; presenting a rotated token again is reuse.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY CONSTRAINT refresh_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    session_id  bigint NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- Push-notification devices. A push token belongs to one device, so it is
-- unique: registering it again (another account signed in on the phone)
-- moves it. session_id ties it to the sign-in that registered it, so logout
-- stops pushes to that device.
CREATE TABLE devices (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id  bigint REFERENCES sessions (id) ON DELETE SET NULL,
    platform    text NOT NULL CONSTRAINT devices_platform CHECK (platform IN ('android', 'ios', 'web')),
    push_token  text NOT NULL
                CONSTRAINT devices_push_token_length CHECK (octet_length(push_token) BETWEEN 1 AND 2048),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT devices_push_token_key UNIQUE (push_token)
);
CREATE INDEX devices_user_id_idx ON devices (user_id);
CREATE INDEX devices_session_id_idx ON devices (session_id);
