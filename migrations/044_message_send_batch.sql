-- 044_message_send_batch: group commit of message sends (targets.md P4).
--
-- sb_message_send_batch(items) sends many messages in ONE transaction: the
-- server combines the sends that arrive on a reactor while its previous
-- batch is in flight and acknowledges each only after the batch committed.
-- It first takes the stream locks of every conversation involved, in
-- ascending order (no deadlock between batches, and no other write waits
-- for a conversation lock while holding a later one), before anything
-- assigns an xid; so per stream lock order = xid order = seq order = commit
-- order still holds (docs/sync.md, "The write rule"). Then each item runs
-- the same checks and writes as sb_message_send of 005, in array order,
-- and yields one row: the answer of that item (the message, or an
-- {"error"...} object: a bad item writes nothing and does not fail the
-- others). Idempotency on (sender_id, client_id) holds inside a batch (a
-- later duplicate sees the earlier item's row) and across concurrent
-- batches (the unique key; ON CONFLICT waits for the other transaction).
--
-- items: a JSON array of {"u": sender id, "c": conversation id,
-- "i": client_id, "k": kind, "b": body, "m": media_id, "r": reply_to,
-- "f": forward_of, "l": location, "o": contact} (absent or null = NULL),
-- validated by the caller (chat_ops.c).

-- The send of one message, for a caller that holds sb_stream_lock(p_conv).
-- Same contract as sb_message_send (005).
CREATE FUNCTION sb_message_send_locked(p_user bigint, p_conv bigint, p_client_id text, p_kind text,
                                p_body text, p_media_id text, p_reply_to bigint, p_forward_of bigint,
                                p_location jsonb, p_contact jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    c conversations;
    m messages;
    v_role text;
    v_seq bigint;
    v_eseq bigint;
    j jsonb;
BEGIN
    SELECT * INTO m FROM messages WHERE sender_id = p_user AND client_id = p_client_id;
    IF m.id IS NOT NULL THEN
        RETURN jsonb_build_object('message', sb_message_json(m), 'duplicate', true);
    END IF;
    SELECT * INTO c FROM conversations WHERE id = p_conv;
    SELECT role INTO v_role FROM members WHERE conversation_id = p_conv AND user_id = p_user;
    IF c.id IS NULL OR v_role IS NULL THEN
        RETURN sb_err('not_found', 'no such conversation');
    END IF;
    IF c.who_can_send = 'admins' AND sb_role_rank(v_role) < 2 THEN
        RETURN sb_err('forbidden', 'only admins may send to this group');
    END IF;
    IF p_reply_to IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM messages r WHERE r.id = p_reply_to AND r.conversation_id = p_conv
          AND sb_message_visible(r.id, p_user)) THEN
        RETURN sb_err('validation_failed', 'reply_to is not a message of this conversation you can see',
                      '{"reply_to":"no such message in this conversation"}');
    END IF;
    IF p_forward_of IS NOT NULL AND NOT sb_message_visible(p_forward_of, p_user) THEN
        RETURN sb_err('validation_failed', 'forward_of is not a message you can see',
                      '{"forward_of":"no such message"}');
    END IF;
    v_seq := c.last_seq + 1;
    v_eseq := sb_stream_next(p_conv);
    INSERT INTO messages (conversation_id, seq, event_seq, sender_id, client_id, kind, body, media_id,
                          reply_to, forward_of, location, contact)
    VALUES (p_conv, v_seq, v_eseq, p_user, p_client_id, p_kind, p_body, p_media_id, p_reply_to,
            p_forward_of, p_location, p_contact)
    ON CONFLICT (sender_id, client_id) DO NOTHING
    RETURNING * INTO m;
    IF m.id IS NULL THEN
        -- a concurrent retry to another conversation committed first
        SELECT * INTO m FROM messages WHERE sender_id = p_user AND client_id = p_client_id;
        RETURN jsonb_build_object('message', sb_message_json(m), 'duplicate', true);
    END IF;
    UPDATE conversations SET last_seq = v_seq, last_activity_at = m.inserted_at WHERE id = p_conv;
    IF c.kind = 'direct' THEN
        UPDATE members SET hidden = false WHERE conversation_id = p_conv AND hidden;
    END IF;
    j := jsonb_build_object('message', sb_message_json(m));
    PERFORM sb_event_append(p_conv, 'message:new', j);
    RETURN j || '{"duplicate": false}';
END $$;

-- The single send: the batch of one, kept for callers of the 005 signature.
CREATE OR REPLACE FUNCTION sb_message_send(p_user bigint, p_conv bigint, p_client_id text, p_kind text,
                                p_body text, p_media_id text, p_reply_to bigint, p_forward_of bigint,
                                p_location jsonb, p_contact jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sb_stream_lock(p_conv);
    RETURN sb_message_send_locked(p_user, p_conv, p_client_id, p_kind, p_body, p_media_id,
                                  p_reply_to, p_forward_of, p_location, p_contact);
END $$;

-- Many sends in one transaction; one result row (jsonb as text) per item,
-- in item order.
CREATE FUNCTION sb_message_send_batch(p_items jsonb) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    v_conv bigint;
    it jsonb;
BEGIN
    -- every stream lock first, ascending, before anything assigns an xid
    FOR v_conv IN SELECT DISTINCT (e->>'c')::bigint FROM jsonb_array_elements(p_items) e ORDER BY 1
    LOOP
        PERFORM sb_stream_lock(v_conv);
    END LOOP;
    FOR it IN SELECT e FROM jsonb_array_elements(p_items) WITH ORDINALITY AS x(e, n) ORDER BY n
    LOOP
        RETURN NEXT sb_message_send_locked(
            (it->>'u')::bigint, (it->>'c')::bigint, it->>'i', it->>'k', it->>'b', it->>'m',
            (it->>'r')::bigint, (it->>'f')::bigint,
            CASE WHEN jsonb_typeof(it->'l') = 'object' THEN it->'l' END,
            CASE WHEN jsonb_typeof(it->'o') = 'object' THEN it->'o' END)::text;
    END LOOP;
    RETURN;
END $$;
