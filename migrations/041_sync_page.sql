-- 041_sync_page: the per-user sync read as a function, so that its plan is
-- cached per connection instead of made for every page (docs/sync.md).
--
-- The stable events visible to p_user after (p_tx, p_id), at most p_limit,
-- in (tx, id) order. The user's streams are its private stream -p_user and,
-- for every membership period, its conversation between the positions of
-- the events that opened and closed the period (within a stream, position
-- order is seq order); periods that closed at or before the cursor are
-- skipped. Each stream is read by the (stream, tx, id) index for at most
-- p_limit positions (index-only), those are merged, and only the first
-- p_limit are fetched whole. Columns: the horizon, the prune watermark
-- "tx:id", then per event tx, id, type, payload (a single row with NULL
-- event columns when there is none).
CREATE FUNCTION sb_sync_page(p_user bigint, p_tx xid8, p_id bigint, p_limit int)
RETURNS TABLE (r_horizon text, r_watermark text, r_tx text, r_id text, r_type text, r_payload text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),
    p AS MATERIALIZED (
        SELECT mb.conversation_id AS stream,
               COALESCE(lo.tx, '0'::xid8) AS lo_tx, COALESCE(lo.id, 0) AS lo_id,
               CASE WHEN mb.to_seq IS NULL THEN '18446744073709551615'::xid8 ELSE hi.tx END AS hi_tx,
               CASE WHEN mb.to_seq IS NULL THEN 9223372036854775807 ELSE hi.id END AS hi_id
        FROM memberships mb
        LEFT JOIN events lo ON lo.stream = mb.conversation_id AND lo.seq = mb.from_seq
        LEFT JOIN events hi ON hi.stream = mb.conversation_id AND hi.seq = mb.to_seq
        WHERE mb.user_id = p_user
        UNION ALL
        SELECT -p_user, '0'::xid8, 0, '18446744073709551615'::xid8, 9223372036854775807),
    m AS (SELECT * FROM p WHERE p.hi_tx IS NOT NULL AND (p.hi_tx, p.hi_id) > (p_tx, p_id)),
    k AS (
        SELECT ks.tx, ks.id FROM m CROSS JOIN h CROSS JOIN LATERAL (
            SELECT x.tx, x.id FROM events x
            WHERE x.stream = m.stream AND (x.tx, x.id) > (p_tx, p_id) AND x.tx < h.x
              AND (x.tx, x.id) >= (m.lo_tx, m.lo_id) AND (x.tx, x.id) <= (m.hi_tx, m.hi_id)
            ORDER BY x.tx, x.id LIMIT p_limit) ks
        ORDER BY ks.tx, ks.id LIMIT p_limit)
    SELECT h.x::text, (SELECT w.tx::text || ':' || w.id FROM sync_prune w),
           e.tx::text, e.id::text, e.type, e.payload::text
    FROM h LEFT JOIN (k JOIN events e ON e.id = k.id) ON true
    ORDER BY k.tx, k.id;
END $$;
