-- 080_moderation: blocks between users and user reports (api.md "Safety",
-- server/src/moderation, docs/moderation.md).

-- blocker_id blocked blocked_id. The primary key serves "whom do I block"
-- (the list, and the send check from the blocker's side); the second index
-- serves "who blocks me". Checks in chat/calls/presence query this table
-- directly, so a block holds on every node as soon as it is committed.
CREATE TABLE blocks (
    blocker_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT blocks_not_self CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

-- Reports of a user or a message, resolved by an admin (open -> actioned |
-- dismissed). snapshot keeps the reported message as it was when reported,
-- so a later edit or delete does not erase the evidence. A report outlives
-- the message (message_id is not a foreign key) and, as evidence, the
-- reported user (target_user_id is kept as a plain id).
CREATE TABLE reports (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reporter_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    target_user_id  bigint,
    message_id      bigint,
    reason          text NOT NULL CONSTRAINT reports_reason_length CHECK (char_length(reason) BETWEEN 1 AND 64),
    note            text CONSTRAINT reports_note_length CHECK (char_length(note) <= 2000),
    snapshot        jsonb,
    state           text NOT NULL DEFAULT 'open'
                    CONSTRAINT reports_state CHECK (state IN ('open', 'actioned', 'dismissed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolved_by     text,
    resolution_note text CONSTRAINT reports_resolution_note_length CHECK (char_length(resolution_note) <= 2000),
    CONSTRAINT reports_has_target CHECK (target_user_id IS NOT NULL OR message_id IS NOT NULL)
);
CREATE INDEX reports_state_idx ON reports (state, id);
