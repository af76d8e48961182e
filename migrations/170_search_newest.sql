-- 170_search_newest: search results newest first (message id descending,
-- like WhatsApp, Telegram and Signal), no relevance ranking, at a cost
-- bounded by the page rather than by the number of matches (docs/search.md,
-- docs/benchmarks.md P12).
--
-- 120 ordered by ts_rank, which needs every match's row (heap visit,
-- recheck, rank) before the first item is known: the commonest word (5,000
-- of a user's 10,000 messages) cost 12-140 ms. Without ranking, a page is
-- the newest p_limit visible matches, and each conversation can be read
-- newest first through a btree, stopping as soon as the merged page is full.
-- Which of the two ways is cheaper depends on a conversation's density of
-- matches: through the GIN a conversation costs one heap visit per match;
-- newest first through the btree it costs about (rows it contributes + 1)
-- / density heap visits. So each membership period is first probed through
-- the GIN for at most cap = max(8, sqrt(messages of the conversation))
-- matches: a period with fewer has them all (cost <= cap); a period with
-- cap or more is dense enough that reading it newest first costs about
-- sqrt(messages) rows per row it contributes, and it becomes one child of a
-- Merge Append of backward scans of the btree below (lazy: LIMIT at the
-- top pulls rows from the child with the newest next row only).

-- Newest first within a conversation; event_seq as a key column so that a
-- membership period's bounds are checked inside the index (no heap visit
-- for the messages outside the period, e.g. after a member left).
CREATE INDEX messages_conv_id_eseq_idx ON messages (conversation_id, id, event_seq);

-- One page of p_user's search: the messages matching the tsquery text p_q
-- in the periods of p_user's memberships, not hidden for p_user, optionally
-- in p_conv, newest first (id descending), with id < p_id when p_id is
-- given (the cursor: the last id of the previous page); p_limit rows; each
-- item a Message with "snippet" and "_pos" (its id, the next cursor).
-- p_rank is not used any more (kept so that the signature, and the
-- statement the server sends, stay those of 051 and 120).
CREATE OR REPLACE FUNCTION sb_search(p_user bigint, p_q text, p_conv bigint, p_rank real, p_id bigint, p_limit int)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    v_q tsquery := to_tsquery('simple', p_q);
    v_before bigint := coalesce(p_id, 9223372036854775807);
    v_ids bigint[];
    v_dc bigint[];   -- the dense periods: conversation,
    v_df bigint[];   -- from_seq,
    v_dt bigint[];   -- to_seq (no bound: the largest bigint),
    v_dq tsquery[];  -- namespaced query
    v_more bigint[];
BEGIN
    -- The probe: per period, at most cap matches through the GIN (one
    -- bitmap scan of the period's namespaced query, stopped at cap rows).
    -- A period with fewer than cap has given all its matches (v_ids); the
    -- others are dense (v_dc, v_df, v_dt, v_dq).
    WITH pr AS MATERIALIZED (
        SELECT p.conversation_id AS c, p.from_seq AS f, coalesce(p.to_seq, 9223372036854775807) AS t,
               p.cq, coalesce(cardinality(x.ids), 0) >= p.cap AS dense, x.ids
        FROM (SELECT p.conversation_id, p.from_seq, p.to_seq,
                     sb_search_conv_query(p.conversation_id, v_q) AS cq,
                     greatest(8, ceil(sqrt(c.last_seq::float8)))::int AS cap
              FROM memberships p JOIN conversations c ON c.id = p.conversation_id
              WHERE p.user_id = p_user AND (p_conv IS NULL OR p.conversation_id = p_conv)) p,
        LATERAL (SELECT array_agg(y.id) AS ids
                 FROM (SELECT m.id FROM messages m
                       -- "+ 0": checked on the GIN's rows, never an index
                       -- of its own (the generic plan would AND the GIN's
                       -- bitmap with one of every message below v_before)
                       WHERE m.search_lex @@ p.cq AND m.conversation_id + 0 = p.conversation_id
                         AND m.event_seq >= p.from_seq AND (p.to_seq IS NULL OR m.event_seq <= p.to_seq)
                         AND m.id + 0 < v_before
                         AND NOT EXISTS (SELECT 1 FROM message_hidden h
                                         WHERE h.user_id = p_user AND h.message_id = m.id)
                       LIMIT p.cap) y) x)
    SELECT ARRAY(SELECT i FROM pr, unnest(pr.ids) i WHERE NOT pr.dense),
           array_agg(c ORDER BY c, f) FILTER (WHERE dense), array_agg(f ORDER BY c, f) FILTER (WHERE dense),
           array_agg(t ORDER BY c, f) FILTER (WHERE dense), array_agg(cq ORDER BY c, f) FILTER (WHERE dense)
    INTO v_ids, v_dc, v_df, v_dt, v_dq
    FROM pr;
    -- The dense periods, merged newest first: a k-way merge in a recursive
    -- query whose state is each period's newest match not yet taken (its
    -- head); each step takes the largest head and replaces it by that
    -- period's next match, one backward descent of messages_conv_id_eseq_idx
    -- reading rows until the next match. p_limit steps at most.
    -- ts_match_vq, not @@: not indexable, so never a GIN scan and a sort.
    IF v_dc IS NOT NULL THEN
        WITH RECURSIVE mg(k, out, heads) AS (
            SELECT 0, NULL::bigint, ARRAY(
                SELECT (SELECT m.id FROM messages m
                        WHERE m.conversation_id = v_dc[i] AND m.id < v_before
                          AND m.event_seq >= v_df[i] AND m.event_seq <= v_dt[i]
                          AND ts_match_vq(m.search_lex, v_dq[i])
                          AND NOT EXISTS (SELECT 1 FROM message_hidden h
                                          WHERE h.user_id = p_user AND h.message_id = m.id)
                        ORDER BY m.id DESC LIMIT 1)
                FROM generate_subscripts(v_dc, 1) i ORDER BY i)
          UNION ALL
            SELECT mg.k + 1, mg.heads[s.i], mg.heads[:s.i - 1] || ARRAY[(
                SELECT m.id FROM messages m
                WHERE m.conversation_id = v_dc[s.i] AND m.id < mg.heads[s.i]
                  AND m.event_seq >= v_df[s.i] AND m.event_seq <= v_dt[s.i]
                  AND ts_match_vq(m.search_lex, v_dq[s.i])
                  AND NOT EXISTS (SELECT 1 FROM message_hidden h
                                  WHERE h.user_id = p_user AND h.message_id = m.id)
                ORDER BY m.id DESC LIMIT 1)] || mg.heads[s.i + 1:]
            FROM mg, LATERAL (SELECT i FROM generate_subscripts(mg.heads, 1) i
                              WHERE mg.heads[i] IS NOT NULL ORDER BY mg.heads[i] DESC LIMIT 1) s
            WHERE mg.k < p_limit)
        SELECT array_agg(out) INTO v_more FROM mg WHERE k > 0;
        v_ids := v_ids || v_more;
    END IF;
    RETURN (WITH q AS MATERIALIZED (SELECT v_q AS q),
    page AS MATERIALIZED (SELECT DISTINCT id FROM unnest(v_ids) id ORDER BY id DESC LIMIT p_limit)
    SELECT jsonb_build_object('items', COALESCE(jsonb_agg(
        sb_message_json(m) || jsonb_build_object(
            'snippet', replace(replace(replace(replace(replace(
                ts_headline('simple', translate(m.body, chr(2) || chr(3), '  '), q.q,
                            'StartSel=' || chr(2) || ', StopSel=' || chr(3)
                            || ', MaxWords=24, MinWords=8, ShortWord=0, MaxFragments=2, FragmentDelimiter=" … "'),
                '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), chr(2), '<mark>'), chr(3), '</mark>'),
            '_pos', pg.id::text)
        ORDER BY pg.id DESC), '[]'::jsonb))
    FROM page pg JOIN messages m ON m.id = pg.id, q);
END
$$;
