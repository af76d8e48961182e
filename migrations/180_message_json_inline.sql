-- 180_message_json_inline: the Message object (sb_message_json) and the
-- timestamp text (sb_ts) inlined into the statements that use them
-- (docs/benchmarks.md P12, "Session 7").
--
-- A LANGUAGE sql function is inlined into its caller's plan only when its
-- body is a single expression without a sub-select, and no more volatile
-- than declared. sb_message_json had a sub-select (the reactions) and sb_ts
-- was declared IMMUTABLE over to_char, which is STABLE: neither was inlined,
-- so every statement building Messages parsed and planned both bodies again
-- (once per call site and statement) and called them through the SQL
-- function executor for every row: ~0.25 ms of a search's ~1 ms in
-- Postgres, the same on every page of history, sync or export.
-- Same texts, same results: sb_ts is now declared STABLE (what its body
-- is); the reactions are read by sb_message_reactions, PL/pgSQL (its one
-- statement planned once per connection), and sb_message_json is a single
-- expression, inlined.

-- The instant t as api.md writes it ("2026-12-07T16:52:05.123Z"); NULL for NULL.
CREATE OR REPLACE FUNCTION sb_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A message's reactions as api.md's Message has them: {emoji: [user ids in
-- the order they reacted]}, {} when none.
CREATE FUNCTION sb_message_reactions(p_msg bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN COALESCE((
        SELECT jsonb_object_agg(emoji, users) FROM (
            SELECT emoji, jsonb_agg(user_id::text ORDER BY created_at, user_id) AS users
            FROM reactions WHERE message_id = p_msg GROUP BY emoji) r), '{}'::jsonb);
END
$$;

-- The Message object of api.md (as 105 made it; the reactions through
-- sb_message_reactions, so that this is one expression and inlined).
CREATE OR REPLACE FUNCTION sb_message_json(m messages) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', m.id::text,
        'conversation_id', m.conversation_id::text,
        'seq', m.seq,
        'sender_id', m.sender_id::text,
        'client_id', m.client_id,
        'kind', m.kind,
        'body', CASE WHEN m.deleted_at IS NULL THEN m.body END,
        'media', CASE WHEN m.deleted_at IS NULL AND m.media_id IS NOT NULL
                      THEN sb_media_json(m.media_id) END,
        'location', CASE WHEN m.deleted_at IS NULL THEN m.location END,
        'contact', CASE WHEN m.deleted_at IS NULL THEN m.contact END,
        'reply_to', m.reply_to::text,
        'forward_of', m.forward_of::text,
        'reactions', sb_message_reactions(m.id),
        'edited_at', sb_ts(m.edited_at),
        'deleted', m.deleted_at IS NOT NULL,
        'inserted_at', sb_ts(m.inserted_at))
$$;
