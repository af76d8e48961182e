-- 043_sync_page_bytes: sb_sync_page also stops at about 4 MiB of payload, so
-- one page is bounded in memory whatever the events hold (message bodies go
-- up to SB_MESSAGE_MAX_BYTES each). The first event is always returned;
-- r_more tells the caller that events were left out for size (has_more).
-- Otherwise as in 041_sync_page.sql.
DROP FUNCTION sb_sync_page(bigint, xid8, bigint, int);
CREATE FUNCTION sb_sync_page(p_user bigint, p_tx xid8, p_id bigint, p_limit int)
RETURNS TABLE (r_horizon text, r_watermark text, r_tx text, r_id text, r_type text,
               r_payload text, r_more boolean)
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
    k AS MATERIALIZED (
        SELECT ks.tx, ks.id FROM m CROSS JOIN h CROSS JOIN LATERAL (
            SELECT x.tx, x.id FROM events x
            WHERE x.stream = m.stream AND (x.tx, x.id) > (p_tx, p_id) AND x.tx < h.x
              AND (x.tx, x.id) >= (m.lo_tx, m.lo_id) AND (x.tx, x.id) <= (m.hi_tx, m.hi_id)
            ORDER BY x.tx, x.id LIMIT p_limit) ks
        ORDER BY ks.tx, ks.id LIMIT p_limit),
    z AS (
        SELECT e.tx, e.id, e.type, e.payload,
               sum(octet_length(e.payload::text)) OVER (ORDER BY e.tx, e.id) - octet_length(e.payload::text) AS before
        FROM k JOIN events e ON e.id = k.id),
    f AS (SELECT * FROM z WHERE z.before < 4194304)
    SELECT h.x::text, (SELECT w.tx::text || ':' || w.id FROM sync_prune w),
           f.tx::text, f.id::text, f.type, f.payload::text,
           (SELECT count(*) FROM f) < (SELECT count(*) FROM k)
    FROM h LEFT JOIN f ON true
    ORDER BY f.tx, f.id;
END $$;
