-- 052_export: the reads behind GET /api/v1/conversations/:id/export
-- (api.md "Messages"; docs/export.md). The export is streamed: the head
-- once, then pages of messages by keyset (seq), each one short statement,
-- the next read only after the client took the previous page.

-- The head of p_user's export of p_conv: {conversation, members,
-- exported_at, exported_by}, or not_found unless p_user is a current member.
CREATE FUNCTION sb_export_head(p_user bigint, p_conv bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM members WHERE conversation_id = p_conv AND user_id = p_user)
        THEN sb_err('not_found', 'no such conversation')
        ELSE jsonb_build_object(
            'conversation', sb_conversation_json(p_conv),
            'members', COALESCE((
                SELECT jsonb_agg(jsonb_build_object('user_id', u.id::text, 'username', u.username,
                                                    'display_name', u.display_name, 'role', mb.role,
                                                    'joined_at', sb_ts(mb.joined_at))
                                 ORDER BY mb.joined_at, mb.user_id)
                FROM members mb JOIN users u ON u.id = mb.user_id
                WHERE mb.conversation_id = p_conv), '[]'::jsonb),
            'exported_at', sb_ts(now()),
            'exported_by', p_user::text) END
$$;

-- One page of the export: the messages of p_conv after seq p_after that
-- p_user may see (in one of their membership periods, not deleted for them;
-- deleted-for-everyone messages stay as tombstones, as in the history),
-- oldest first, p_limit rows: (seq, Message JSON with reactions and media).
CREATE FUNCTION sb_export_page(p_user bigint, p_conv bigint, p_after bigint, p_limit int)
RETURNS TABLE (seq bigint, message text) LANGUAGE sql STABLE AS $$
    SELECT m.seq, sb_message_json(m)::text
    FROM messages m
    WHERE m.conversation_id = p_conv AND m.seq > p_after
      AND EXISTS (SELECT 1 FROM memberships p
                  WHERE p.user_id = p_user AND p.conversation_id = p_conv
                    AND m.event_seq >= p.from_seq AND (p.to_seq IS NULL OR m.event_seq <= p.to_seq))
      AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = p_user AND h.message_id = m.id)
    ORDER BY m.seq
    LIMIT p_limit
$$;
