-- 002_events: the durable event log behind live delivery and sync.
-- See docs/sync.md for the ordering rule these tables serve.

-- One row per stream: a conversation (stream = conversation id) or one
-- user's private stream (stream = -user_id). last_seq is the stream's last
-- event seq; bumped only while holding pg_advisory_xact_lock(stream).
CREATE TABLE streams (
    stream    bigint PRIMARY KEY,
    last_seq  bigint NOT NULL DEFAULT 0
);

-- One row per durable event, whatever the number of recipients.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    stream      bigint NOT NULL,
    seq         bigint NOT NULL,
    tx          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_seq_key UNIQUE (stream, seq)
);
CREATE INDEX events_tx_id_idx ON events (tx, id);
CREATE INDEX events_stream_tx_id_idx ON events (stream, tx, id);

-- Periods of membership of a user in a conversation: the user sees the
-- conversation's events with from_seq <= seq <= to_seq (to_seq NULL while
-- the user is a member).
CREATE TABLE memberships (
    conversation_id  bigint NOT NULL,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_seq         bigint NOT NULL,
    to_seq           bigint,
    PRIMARY KEY (conversation_id, user_id, from_seq)
);
CREATE INDEX memberships_user_idx ON memberships (user_id, conversation_id);
CREATE UNIQUE INDEX memberships_current_idx ON memberships (conversation_id, user_id) WHERE to_seq IS NULL;
