-- 081_blocks_enforce: blocks (080) enforced where a blocked user could reach
-- the blocker (docs/moderation.md). Every check is a probe of the blocks
-- primary key inside the statement that already does the work, so a block
-- holds on every node the moment it commits and no cache needs invalidating.
--
-- The checked functions keep their names and contracts: each former body is
-- renamed *_unchecked and the new function checks the block first (a plain
-- read, allowed before the stream lock by the write rule of docs/sync.md),
-- then calls it. The send batch is redefined with one more verdict.
-- Only a direct conversation is affected: in a group both users stay members
-- and see each other's messages.

-- True when p_blocker blocks p_blocked.
CREATE FUNCTION sb_blocks(p_blocker bigint, p_blocked bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = p_blocker AND blocked_id = p_blocked)
$$;

-- The other user of a direct conversation's key 'lo:hi' for p_user.
CREATE FUNCTION sb_direct_peer(p_key text, p_user bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN split_part(p_key, ':', 1)::bigint = p_user
                THEN split_part(p_key, ':', 2)::bigint ELSE split_part(p_key, ':', 1)::bigint END
$$;

-- True when p_conv is a direct conversation whose other user blocks p_user.
CREATE FUNCTION sb_direct_blocked(p_conv bigint, p_user bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM conversations c JOIN blocks b
                     ON b.blocker_id = sb_direct_peer(c.direct_key, p_user) AND b.blocked_id = p_user
                   WHERE c.id = p_conv AND c.kind = 'direct')
$$;

-- ---------------------------------------------------------------------------
-- Messages: send (single and per-item path), edit, react
-- ---------------------------------------------------------------------------
ALTER FUNCTION sb_message_send_locked(bigint, bigint, text, text, text, text, bigint, bigint, jsonb, jsonb)
    RENAME TO sb_message_send_locked_unchecked;
CREATE FUNCTION sb_message_send_locked(p_user bigint, p_conv bigint, p_client_id text, p_kind text,
                                p_body text, p_media_id text, p_reply_to bigint, p_forward_of bigint,
                                p_location jsonb, p_contact jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    -- a retry of a message stored before the block still answers the original
    IF sb_direct_blocked(p_conv, p_user)
       AND NOT EXISTS (SELECT 1 FROM messages WHERE sender_id = p_user AND client_id = p_client_id) THEN
        RETURN sb_err('forbidden', 'you cannot send messages to this user');
    END IF;
    RETURN sb_message_send_locked_unchecked(p_user, p_conv, p_client_id, p_kind, p_body, p_media_id,
                                            p_reply_to, p_forward_of, p_location, p_contact);
END $$;

ALTER FUNCTION sb_message_edit(bigint, bigint, text) RENAME TO sb_message_edit_unchecked;
CREATE FUNCTION sb_message_edit(p_user bigint, p_msg bigint, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF sb_direct_blocked((SELECT conversation_id FROM messages WHERE id = p_msg), p_user) THEN
        RETURN sb_err('forbidden', 'you cannot send messages to this user');
    END IF;
    RETURN sb_message_edit_unchecked(p_user, p_msg, p_body);
END $$;

ALTER FUNCTION sb_message_react(bigint, bigint, text, text) RENAME TO sb_message_react_unchecked;
CREATE FUNCTION sb_message_react(p_user bigint, p_msg bigint, p_emoji text, p_op text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF sb_direct_blocked((SELECT conversation_id FROM messages WHERE id = p_msg), p_user) THEN
        RETURN sb_err('forbidden', 'you cannot send messages to this user');
    END IF;
    RETURN sb_message_react_unchecked(p_user, p_msg, p_emoji, p_op);
END $$;

-- ---------------------------------------------------------------------------
-- Conversations: a new direct chat with the blocker, adding the blocker to a
-- group (new or existing)
-- ---------------------------------------------------------------------------
ALTER FUNCTION sb_conversation_direct(bigint, bigint) RENAME TO sb_conversation_direct_unchecked;
CREATE FUNCTION sb_conversation_direct(p_user bigint, p_other bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    -- an existing chat is still returned (its history stays readable)
    IF sb_blocks(p_other, p_user) AND NOT EXISTS (
        SELECT 1 FROM conversations
        WHERE direct_key = least(p_user, p_other)::text || ':' || greatest(p_user, p_other)::text) THEN
        RETURN sb_err('forbidden', 'you cannot start a chat with this user');
    END IF;
    RETURN sb_conversation_direct_unchecked(p_user, p_other);
END $$;

ALTER FUNCTION sb_conversation_group(bigint, text, bigint[]) RENAME TO sb_conversation_group_unchecked;
CREATE FUNCTION sb_conversation_group(p_user bigint, p_title text, p_members bigint[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ANY (p_members) AND blocked_id = p_user) THEN
        RETURN sb_err('forbidden', 'you cannot add a user who has blocked you',
                      '{"member_ids":"includes a user who has blocked you"}');
    END IF;
    RETURN sb_conversation_group_unchecked(p_user, p_title, p_members);
END $$;

ALTER FUNCTION sb_members_add(bigint, bigint, bigint[]) RENAME TO sb_members_add_unchecked;
CREATE FUNCTION sb_members_add(p_user bigint, p_conv bigint, p_ids bigint[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ANY (p_ids) AND blocked_id = p_user)
       AND EXISTS (SELECT 1 FROM members WHERE conversation_id = p_conv AND user_id = p_user) THEN
        RETURN sb_err('forbidden', 'you cannot add a user who has blocked you',
                      '{"user_ids":"includes a user who has blocked you"}');
    END IF;
    RETURN sb_members_add_unchecked(p_user, p_conv, p_ids);
END $$;

-- ---------------------------------------------------------------------------
-- Calls: a direct call to the blocker (by user or by conversation)
-- ---------------------------------------------------------------------------
ALTER FUNCTION sb_call_create(bigint, text, bigint, bigint, text, int, int) RENAME TO sb_call_create_unchecked;
CREATE FUNCTION sb_call_create(p_user bigint, p_session text, p_other bigint, p_conv bigint,
                               p_media text, p_ring_ms int, p_max int) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF (p_conv IS NULL AND p_other IS NOT NULL AND sb_blocks(p_other, p_user))
       OR (p_conv IS NOT NULL AND sb_direct_blocked(p_conv, p_user)) THEN
        RETURN sb_err('forbidden', 'you cannot call this user');
    END IF;
    RETURN sb_call_create_unchecked(p_user, p_session, p_other, p_conv, p_media, p_ring_ms, p_max);
END $$;

-- ---------------------------------------------------------------------------
-- Presence: whom p_user's online state and last seen are told to. Users
-- p_user blocks are left out.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sb_contacts(p_user bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT m2.user_id FROM members m1 JOIN members m2 ON m2.conversation_id = m1.conversation_id
    WHERE m1.user_id = p_user AND m2.user_id <> p_user
      AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = p_user AND b.blocked_id = m2.user_id)
$$;

-- ---------------------------------------------------------------------------
-- The send batch (046) with the block verdict: a direct conversation whose
-- other user blocks the sender answers forbidden, nothing stored. One probe
-- of the blocks key per direct item.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sb_message_send_batch(p_items jsonb) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    v_conv bigint;
    it jsonb;
    v_out text[];
    v_slow int;
BEGIN
    -- every stream lock first, ascending, before anything assigns an xid
    FOR v_conv IN SELECT DISTINCT (e->>'c')::bigint FROM jsonb_array_elements(p_items) e ORDER BY 1
    LOOP
        PERFORM sb_stream_lock(v_conv);
    END LOOP;
    BEGIN
        WITH it AS (
            SELECT x.n, (x.e->>'u')::bigint AS u, (x.e->>'c')::bigint AS c, x.e->>'i' AS i,
                   x.e->>'k' AS k, x.e->>'b' AS b, x.e->>'m' AS m, (x.e->>'r')::bigint AS r,
                   (x.e->>'f')::bigint AS f,
                   CASE WHEN jsonb_typeof(x.e->'l') = 'object' THEN x.e->'l' END AS l,
                   CASE WHEN jsonb_typeof(x.e->'o') = 'object' THEN x.e->'o' END AS o
            FROM jsonb_array_elements(p_items) WITH ORDINALITY AS x(e, n)
        ), chk AS (
            SELECT it.*, co.kind AS ckind, co.last_seq AS clast, co.who_can_send, co.direct_key AS dkey,
                   COALESCE((SELECT s.last_seq FROM streams s WHERE s.stream = it.c), 0) AS slast,
                   (SELECT mb.role FROM members mb WHERE mb.conversation_id = it.c AND mb.user_id = it.u) AS role,
                   (SELECT mm.id FROM messages mm WHERE mm.sender_id = it.u AND mm.client_id = it.i) AS ex
            FROM it LEFT JOIN LATERAL (
                -- LIMIT 1 (id is the key: same rows) keeps this a lookup per
                -- item: without it the join is flattened and, planned for the
                -- 100 rows assumed of jsonb_array_elements, became a hash join
                -- over a sequential scan of every conversation per batch
                SELECT * FROM conversations co1 WHERE co1.id = it.c LIMIT 1) co ON true
        ), st AS (
            SELECT chk.*, CASE
                WHEN ex IS NOT NULL THEN 'dup'
                WHEN ckind IS NULL OR role IS NULL THEN 'not_found'
                WHEN who_can_send = 'admins' AND sb_role_rank(role) < 2 THEN 'forbidden'
                WHEN ckind = 'direct' AND EXISTS (
                    SELECT 1 FROM blocks bl WHERE bl.blocker_id = sb_direct_peer(dkey, u)
                      AND bl.blocked_id = u) THEN 'blocked'
                WHEN r IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM messages rm WHERE rm.id = r AND rm.conversation_id = c
                      AND sb_message_visible(rm.id, u)) THEN 'slow'
                WHEN f IS NOT NULL AND NOT sb_message_visible(f, u) THEN 'slow'
                ELSE 'ok' END AS verdict
            FROM chk
        ), w AS (
            SELECT st.*, (verdict = 'ok' AND NOT COALESCE(bool_or(verdict = 'ok') OVER (
                PARTITION BY u, i ORDER BY n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                false)) AS writes
            FROM st
        ), num AS (
            SELECT w.*, count(*) FILTER (WHERE writes) OVER (PARTITION BY c ORDER BY n) AS kth
            FROM w
        ), ins AS (
            INSERT INTO messages (conversation_id, seq, event_seq, sender_id, client_id, kind, body,
                                  media_id, reply_to, forward_of, location, contact)
            SELECT c, clast + kth, slast + kth, u, i, k, b, m, r, f, l, o
            FROM num WHERE writes ORDER BY c, kth
            ON CONFLICT (sender_id, client_id) DO NOTHING
            RETURNING *
        ), jm AS (
            SELECT ins.id, ins.conversation_id, ins.seq, ins.event_seq, ins.sender_id, ins.client_id,
                   ins.inserted_at,
                   -- sb_message_json of a new message (no reactions, not edited or
                   -- deleted), built inline: a call per row costs more than the row
                   jsonb_build_object('message', jsonb_build_object(
                       'id', ins.id::text, 'conversation_id', ins.conversation_id::text,
                       'seq', ins.seq, 'sender_id', ins.sender_id::text, 'client_id', ins.client_id,
                       'kind', ins.kind, 'body', ins.body,
                       'media', CASE WHEN ins.media_id IS NOT NULL
                                     THEN jsonb_build_object('id', ins.media_id) END,
                       'location', ins.location, 'contact', ins.contact,
                       'reply_to', ins.reply_to::text, 'forward_of', ins.forward_of::text,
                       'reactions', '{}'::jsonb, 'edited_at', NULL::text, 'deleted', false,
                       'inserted_at', to_char(ins.inserted_at AT TIME ZONE 'UTC',
                                              'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))) AS j
            FROM ins
        ), upc AS (
            UPDATE conversations co SET last_seq = x.mx, last_activity_at = x.at
            FROM (SELECT conversation_id, max(seq) AS mx, max(inserted_at) AS at FROM jm GROUP BY 1) x
            WHERE co.id = x.conversation_id
        ), ups AS (
            INSERT INTO streams AS s (stream, last_seq)
            SELECT conversation_id, max(event_seq) FROM jm GROUP BY 1
            ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq
        ), uph AS (
            UPDATE members mb SET hidden = false
            WHERE mb.hidden AND mb.conversation_id IN (
                SELECT DISTINCT num.c FROM num WHERE num.writes AND num.ckind = 'direct')
        ), ev AS (
            INSERT INTO events (stream, seq, type, payload)
            SELECT conversation_id, event_seq, 'message:new', j FROM jm ORDER BY conversation_id, event_seq
        )
        SELECT array_agg((CASE
                   WHEN num.writes AND jm.id IS NOT NULL THEN jm.j || '{"duplicate": false}'
                   WHEN num.verdict = 'dup' THEN jsonb_build_object(
                       'message', (SELECT sb_message_json(mm) FROM messages mm WHERE mm.id = num.ex),
                       'duplicate', true)
                   WHEN num.verdict = 'ok' AND jd.id IS NOT NULL THEN jd.j || '{"duplicate": true}'
                   WHEN num.verdict = 'not_found' THEN sb_err('not_found', 'no such conversation')
                   WHEN num.verdict = 'forbidden' THEN sb_err('forbidden', 'only admins may send to this group')
                   WHEN num.verdict = 'blocked' THEN sb_err('forbidden', 'you cannot send messages to this user')
               END)::text ORDER BY num.n),
               count(*) FILTER (WHERE num.verdict = 'slow' OR (num.writes AND jm.id IS NULL)
                                   OR (num.verdict = 'ok' AND NOT num.writes AND jd.id IS NULL))
        INTO v_out, v_slow
        FROM num
        LEFT JOIN jm ON num.writes AND jm.sender_id = num.u AND jm.client_id = num.i
        LEFT JOIN jm jd ON NOT num.writes AND num.verdict = 'ok' AND jd.sender_id = num.u
                           AND jd.client_id = num.i;
        IF v_slow > 0 THEN
            RAISE EXCEPTION 'send batch: per-item path needed' USING ERRCODE = 'SBSLW';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        -- nothing of the set statement stays: answer each item on its own
        RAISE DEBUG 'sb_message_send_batch: per-item path (%: %)', SQLSTATE, SQLERRM;
        v_out := NULL;
    END;
    IF v_out IS NOT NULL THEN
        RETURN QUERY SELECT unnest(v_out);
        RETURN;
    END IF;
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
