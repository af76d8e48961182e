-- 083_report_fns: the Report object (server/src/moderation/reports.h) and
-- the snapshot of a reported message.

CREATE FUNCTION sb_report_json(r reports) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', r.id::text, 'reporter_id', r.reporter_id::text,
        'target_user_id', r.target_user_id::text, 'message_id', r.message_id::text,
        'reason', r.reason, 'note', r.note, 'snapshot', r.snapshot, 'state', r.state,
        'created_at', sb_ts(r.created_at), 'resolved_at', sb_ts(r.resolved_at),
        'resolved_by', r.resolved_by, 'resolution_note', r.resolution_note)
$$;

-- The evidence kept of message m: what it is now, before any later edit or
-- delete.
CREATE FUNCTION sb_report_snapshot(m messages) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'message_id', m.id::text, 'conversation_id', m.conversation_id::text,
        'sender_id', m.sender_id::text, 'kind', m.kind, 'body', m.body, 'media_id', m.media_id,
        'location', m.location, 'contact', m.contact,
        'inserted_at', sb_ts(m.inserted_at), 'edited_at', sb_ts(m.edited_at),
        'deleted', m.deleted_at IS NOT NULL)
$$;

-- A report by p_reporter of message p_msg (one they can see) and/or user
-- p_target. Returns {"report"} or an sb_err (not_found: no such message or
-- user for the reporter).
CREATE FUNCTION sb_report_create(p_reporter bigint, p_msg bigint, p_target bigint, p_reason text,
                                 p_note text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m messages;
    r reports;
BEGIN
    IF p_msg IS NOT NULL THEN
        SELECT * INTO m FROM messages WHERE id = p_msg;
        IF m.id IS NULL OR NOT sb_message_visible(p_msg, p_reporter) THEN
            RETURN sb_err('not_found', 'no such message');
        END IF;
    END IF;
    IF p_target IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users WHERE id = p_target) THEN
        RETURN sb_err('not_found', 'no such user');
    END IF;
    INSERT INTO reports (reporter_id, target_user_id, message_id, reason, note, snapshot)
    VALUES (p_reporter, COALESCE(p_target, m.sender_id), p_msg, p_reason, p_note,
            CASE WHEN p_msg IS NOT NULL THEN sb_report_snapshot(m) END)
    RETURNING * INTO r;
    RETURN jsonb_build_object('report', sb_report_json(r));
END $$;
