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
-- the GIN for at most cap = max(24, sqrt(messages of the conversation))
-- matches: a period with fewer has them all (cost <= cap); a period with
-- cap or more is dense enough that reading it newest first costs at most
-- about sqrt(messages) rows per row it contributes, and it is merged
-- newest first with the other dense periods through the btree below,
-- stopping when the page is full. (The probe first stops at 24 matches,
-- which needs no conversation size; only a period that reaches 24 in a
-- conversation of more than 24^2 messages is probed on to sqrt(messages).)

-- Newest first within a conversation; event_seq as a key column so that a
-- membership period's bounds are checked inside the index (no heap visit
-- for the messages outside the period, e.g. after a member left).
CREATE INDEX messages_conv_id_eseq_idx ON messages (conversation_id, id, event_seq);

-- The probe of one membership period (conversation p_conv, event_seq
-- p_from..p_to, query p_cq namespaced for p_conv): at most p_cap of
-- p_user's matches below p_before, in no particular order, through the GIN.
-- "+ 0": conditions checked on the GIN's rows, never indexes of their own
-- (a generic plan would AND the GIN's bitmap with one of every message
-- below p_before). A set-returning SQL function, inlined into its caller.
CREATE FUNCTION sb_search_probe(p_user bigint, p_conv bigint, p_from bigint, p_to bigint, p_cq tsquery,
                                p_before bigint, p_cap int)
RETURNS SETOF bigint LANGUAGE sql STABLE AS $$
    SELECT m.id FROM messages m
    WHERE m.search_lex @@ p_cq AND m.conversation_id + 0 = p_conv
      AND m.event_seq >= p_from AND m.event_seq <= p_to AND m.id + 0 < p_before
      AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = p_user AND h.message_id = m.id)
    LIMIT p_cap
$$;

-- The snippet of a result (as 051 and 120 made it, now in one place): the
-- body around the matches of p_q, HTML-escaped, each match in <mark>; \x02
-- and \x03 mark the matches while escaping (taken out of the body first).
-- A single expression, so it is inlined into its caller.
CREATE FUNCTION sb_search_snippet(p_body text, p_q tsquery) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT replace(replace(replace(replace(replace(
               ts_headline('simple', translate(p_body, chr(2) || chr(3), '  '), p_q,
                           'StartSel=' || chr(2) || ', StopSel=' || chr(3)
                           || ', MaxWords=24, MinWords=8, ShortWord=0, MaxFragments=2, FragmentDelimiter=" … "'),
               '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), chr(2), '<mark>'), chr(3), '</mark>')
$$;

-- One page of p_user's search: the messages matching the tsquery text p_q
-- in the periods of p_user's memberships, not hidden for p_user, optionally
-- in p_conv, newest first (id descending), with id < p_id when p_id is
-- given (the cursor: the last id of the previous page); p_limit rows; each
-- item a Message with "snippet" and "_pos" (its id, the next cursor).
-- p_rank is not used any more (kept so that the signature, and the
-- statement the server sends, stay those of 051 and 120).
-- plan_cache_mode = force_generic_plan: each statement is planned once per
-- connection; left to itself the plan cache kept re-planning the merge (its
-- custom plans looked cheaper than the generic one, which is the same
-- plan): 8-10 % more CPU on the queries that merge.
CREATE OR REPLACE FUNCTION sb_search(p_user bigint, p_q text, p_conv bigint, p_rank real, p_id bigint, p_limit int)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_q tsquery := to_tsquery('simple', p_q);
    v_before bigint := coalesce(p_id, 9223372036854775807);
    v_ids bigint[];
    v_dc bigint[];   -- the dense periods: conversation,
    v_df bigint[];   -- from_seq,
    v_dt bigint[];   -- to_seq (no bound: the largest bigint),
    v_dq tsquery[];  -- namespaced query
    v_more bigint[];
    v_sparse bigint[];
BEGIN
    -- The probe: per period, at most 24 matches through the GIN. A period
    -- with fewer has given all its matches (v_ids); the others are dense
    -- (v_dc, v_df, v_dt, v_dq), for now.
    -- (OFFSET 0: each period's namespaced query and probe are computed
    -- once, not once per reference.)
    WITH pr AS MATERIALIZED (
        SELECT p.conversation_id AS c, p.from_seq AS f, p.t, p.cq, x.ids
        FROM (SELECT p.conversation_id, p.from_seq, coalesce(p.to_seq, 9223372036854775807) AS t,
                     sb_search_conv_query(p.conversation_id, v_q) AS cq
              FROM memberships p
              WHERE p.user_id = p_user AND (p_conv IS NULL OR p.conversation_id = p_conv)
              OFFSET 0) p,
        LATERAL (SELECT ARRAY(SELECT i FROM sb_search_probe(p_user, p.conversation_id, p.from_seq, p.t, p.cq,
                                                            v_before, 24) i) AS ids
                 OFFSET 0) x)
    SELECT ARRAY(SELECT i FROM pr, unnest(pr.ids) i WHERE cardinality(pr.ids) < 24),
           array_agg(c ORDER BY c, f) FILTER (WHERE cardinality(ids) >= 24),
           array_agg(f ORDER BY c, f) FILTER (WHERE cardinality(ids) >= 24),
           array_agg(t ORDER BY c, f) FILTER (WHERE cardinality(ids) >= 24),
           array_agg(cq ORDER BY c, f) FILTER (WHERE cardinality(ids) >= 24)
    INTO v_ids, v_dc, v_df, v_dt, v_dq
    FROM pr;
    IF v_dc IS NOT NULL THEN
        -- In a conversation of more than 24^2 messages, probe on up to
        -- sqrt(messages) matches; the periods that have fewer are sparse.
        WITH big AS (
            SELECT d.k, ceil(sqrt(cv.last_seq::float8))::int AS cap
            FROM unnest(v_dc) WITH ORDINALITY d(c, k) JOIN conversations cv ON cv.id = d.c
            WHERE cv.last_seq > 576),
        re AS MATERIALIZED (
            SELECT big.k, big.cap, ARRAY(SELECT i FROM sb_search_probe(p_user, v_dc[big.k], v_df[big.k],
                                                                        v_dt[big.k], v_dq[big.k], v_before,
                                                                        big.cap) i) AS ids
            FROM big)
        SELECT ARRAY(SELECT i FROM re, unnest(re.ids) i WHERE cardinality(re.ids) < re.cap),
               ARRAY(SELECT k FROM re WHERE cardinality(re.ids) < re.cap)
        INTO v_more, v_sparse;
        IF cardinality(v_sparse) > 0 THEN
            v_ids := v_ids || v_more;
            SELECT array_agg(c ORDER BY k), array_agg(f ORDER BY k), array_agg(t ORDER BY k), array_agg(q ORDER BY k)
            INTO v_dc, v_df, v_dt, v_dq
            FROM unnest(v_dc, v_df, v_dt, v_dq) WITH ORDINALITY u(c, f, t, q, k)
            WHERE k <> ALL (v_sparse);
        END IF;
    END IF;
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
            'snippet', sb_search_snippet(m.body, q.q),
            '_pos', pg.id::text)
        ORDER BY pg.id DESC), '[]'::jsonb))
    FROM page pg JOIN messages m ON m.id = pg.id, q);
END
$$;
