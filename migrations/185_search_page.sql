-- 185_search_page: the search page built whole in Postgres (items text and
-- next cursor id), so that the server sends it without parsing and
-- re-serialising it (docs/benchmarks.md P12, "Session 7": JSON decoding and
-- encoding were half of the server's CPU per search). The algorithm is
-- 170's (the probe per membership period, then the k-way merge of the
-- dense periods newest first); the query is namespaced with one regexp per
-- search instead of one per period, and the page at the end differs.
-- sb_search (the statement of servers before this migration, during a
-- rolling upgrade) now answers from sb_search_page.

-- One page of p_user's search: the messages matching the tsquery text p_q
-- in the periods of p_user's memberships, not hidden for p_user, optionally
-- in p_conv, newest first (id descending), with id < p_before when it is
-- given (the cursor: the last id of the previous page). items: the JSON
-- array text of at most p_limit Messages, each with "snippet"; next_id: the
-- last item's id when more follow (the next cursor), else NULL.
-- plan_cache_mode = force_generic_plan, jit = off: as 170 says.
CREATE OR REPLACE FUNCTION sb_search_page(p_user bigint, p_q text, p_conv bigint, p_before bigint, p_limit int,
                               OUT items text, OUT next_id bigint)
LANGUAGE plpgsql STABLE SET jit = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_q tsquery := to_tsquery('simple', p_q);
    -- v_q namespaced for "conversation \x01" (sb_search_conv_query's
    -- regexp once per search, then a plain replace per period); NULL, and
    -- the regexp per period, if v_q's text has a \x01 of its own.
    v_tpl text := CASE WHEN strpos(v_q::text, chr(1)) = 0
                       THEN regexp_replace(v_q::text, '''((?:[^'']|'''')*)''', '''c' || chr(1) || '_\1''', 'g') END;
    v_before bigint := coalesce(p_before, 9223372036854775807);
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
                     CASE WHEN v_tpl IS NULL THEN sb_search_conv_query(p.conversation_id, v_q)
                          ELSE replace(v_tpl, chr(1), p.conversation_id::text)::tsquery END AS cq
              FROM memberships p
              WHERE p.user_id = p_user AND (p_conv IS NULL OR p.conversation_id = p_conv)
              OFFSET 0) p,
        LATERAL (SELECT ARRAY(SELECT i FROM sb_search_probe(p_user, p.conversation_id, p.from_seq, p.t, p.cq,
                                                            v_before, 24) i) AS ids
                 OFFSET 0) x)
    SELECT ARRAY(SELECT i FROM pr, unnest(pr.ids) i WHERE cardinality(pr.ids) < 24),
           array_agg(c) FILTER (WHERE cardinality(ids) >= 24),
           array_agg(f) FILTER (WHERE cardinality(ids) >= 24),
           array_agg(t) FILTER (WHERE cardinality(ids) >= 24),
           array_agg(cq) FILTER (WHERE cardinality(ids) >= 24)
    INTO v_ids, v_dc, v_df, v_dt, v_dq
    FROM pr;
    -- (The four arrays are aligned without an ORDER BY: one aggregation
    -- feeds each row of pr to all of them in turn; an ORDER BY cost four
    -- sorts per search. The merge below does not depend on their order:
    -- ids are unique, so the largest head is never a tie.)
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
    -- reading rows until the next match. p_limit + 1 steps at most.
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
            WHERE mg.k <= p_limit)
        SELECT array_agg(out) INTO v_more FROM mg WHERE k > 0;
        v_ids := v_ids || v_more;
    END IF;
    -- The page: p_limit + 1 ids tell whether more follow; the extra one
    -- is not built (FILTER is checked before the aggregate's argument).
    WITH q AS MATERIALIZED (SELECT v_q AS q),
    page AS MATERIALIZED (
        SELECT id, row_number() OVER (ORDER BY id DESC) AS n
        FROM (SELECT DISTINCT id FROM unnest(v_ids) id ORDER BY id DESC LIMIT p_limit + 1) d)
    SELECT COALESCE(jsonb_agg(sb_message_json(m) || jsonb_build_object('snippet', sb_search_snippet(m.body, q.q))
                              ORDER BY pg.id DESC) FILTER (WHERE pg.n <= p_limit), '[]'::jsonb)::text,
           CASE WHEN max(pg.n) > p_limit THEN min(pg.id) FILTER (WHERE pg.n <= p_limit) END
    INTO items, next_id
    FROM page pg JOIN messages m ON m.id = pg.id, q;
END
$$;

-- 051's statement (servers before 185): {"items": [Message + "snippet" +
-- "_pos"]}, p_limit rows (the caller asks one more than its page); p_rank
-- unused since 170.
CREATE OR REPLACE FUNCTION sb_search(p_user bigint, p_q text, p_conv bigint, p_rank real, p_id bigint, p_limit int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('items', COALESCE((
        SELECT jsonb_agg(x.e || jsonb_build_object('_pos', x.e->>'id') ORDER BY x.k)
        FROM jsonb_array_elements(p.items::jsonb) WITH ORDINALITY x(e, k)), '[]'::jsonb))
    FROM sb_search_page(p_user, p_q, p_conv, p_id, p_limit) p
$$;
