-- 046_send_batch_conv_lookup: sb_message_send_batch (045) looks each item's
-- conversation up by its key instead of scanning the table.
--
-- Measured (targets.md P4, docs/benchmarks.md): 045's generic plan joined
-- the batch's items to conversations with a hash join over a sequential scan
-- of the whole table (the planner assumes 100 items per batch, and an index
-- probe per item looked dearer than one scan while the table was small):
-- about 1 ms of Postgres CPU per batch at 12,000 conversations, growing with
-- the table, paid by every batch however few its items. Timed alone
-- (psql, 12,000 conversations): a batch of 1 took 1.5 ms, now 0.7 ms; a
-- batch of 10, 2.5 ms, now 1.5 ms. At the half-rate P4 load the batches hold
-- 5-15 sends, so this was a large share of Postgres' CPU per send. Same
-- contract and same statements as 045 otherwise.
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
            SELECT it.*, co.kind AS ckind, co.last_seq AS clast, co.who_can_send,
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
