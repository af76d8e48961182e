-- 150_calls_node_heartbeat: the grace timer's presence without a write per
-- presence row per tick (P9 in docs/benchmarks.md; docs/calls.md "Timers").
--
-- Before: every node's tick (every 250 ms) refreshed seen_at on EVERY
-- call_presence row it held (2,000 rows at 1,000 live calls: 8,000 row
-- updates a second), and while it ran the end of a call (sb_call_apply's
-- DELETE of the call's presence) and every join/leave of call:<id> waited
-- for its row locks (measured: that DELETE 14 ms on average, the tick 49 ms).
-- Now a node refreshes ONE row, its heartbeat in call_nodes; a presence row
-- counts as fresh while n > 0 and its node's heartbeat (or the row itself,
-- for a node whose first tick is still to come) is younger than p_stale_ms.
-- A node that died stops its heartbeat: its rows count as absent after
-- max(2 s, 4 ticks), as before.
--
-- Presence counts and the tick's gone marks are soft state, rebuilt by the
-- nodes (a rejoin counts again, the next tick marks again): they are
-- committed without waiting for the WAL flush (synchronous_commit off for
-- their transaction only), so they no longer hold their row locks through
-- an fsync. Every call transition (sb_call_create, sb_call_apply, the
-- offer kept for recovery) still commits durably.

CREATE TABLE call_nodes (
    node    text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION sb_call_presence(p_call bigint, p_user bigint, p_node text, p_delta int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO call_presence AS cp (call_id, user_id, node, n, seen_at)
    VALUES (p_call, p_user, p_node, greatest(p_delta, 0), now())
    ON CONFLICT (call_id, user_id, node) DO UPDATE SET n = greatest(cp.n + p_delta, 0), seen_at = now();
    IF p_delta > 0 THEN
        UPDATE call_participants SET gone_since = NULL
        WHERE call_id = p_call AND user_id = p_user AND gone_since IS NOT NULL;
    END IF;
EXCEPTION WHEN foreign_key_violation THEN
    NULL; -- the call is gone
END $$;

CREATE OR REPLACE FUNCTION sb_call_tick(p_node text, p_grace_ms int, p_stale_ms int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_out jsonb;
    v_fresh timestamptz := now() - make_interval(secs => p_stale_ms / 1000.0);
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO call_nodes AS cn (node, seen_at) VALUES (p_node, now())
    ON CONFLICT (node) DO UPDATE SET seen_at = now();
    DELETE FROM call_presence WHERE n <= 0 AND seen_at < now() - interval '1 minute';
    UPDATE call_participants p SET gone_since = now()
    FROM calls c
    WHERE c.id = p.call_id AND c.state <> 'ended' AND p.gone_since IS NULL
      AND p.state IN ('joined', 'connected')
      AND NOT EXISTS (SELECT 1 FROM call_presence cp WHERE cp.call_id = p.call_id
                      AND cp.user_id = p.user_id AND cp.n > 0
                      AND (cp.seen_at > v_fresh
                           OR EXISTS (SELECT 1 FROM call_nodes cn WHERE cn.node = cp.node
                                      AND cn.seen_at > v_fresh)));
    UPDATE call_participants p SET gone_since = NULL
    WHERE p.gone_since IS NOT NULL
      AND EXISTS (SELECT 1 FROM call_presence cp WHERE cp.call_id = p.call_id
                  AND cp.user_id = p.user_id AND cp.n > 0
                  AND (cp.seen_at > v_fresh
                       OR EXISTS (SELECT 1 FROM call_nodes cn WHERE cn.node = cp.node
                                  AND cn.seen_at > v_fresh)));
    SELECT coalesce(jsonb_agg(x), '[]') INTO v_out FROM (
        SELECT jsonb_build_object('call_id', c.id::text,
                                  'event', CASE WHEN c.state = 'connecting' THEN 'connect_timeout'
                                                ELSE 'ring_timeout' END) AS x
        FROM calls c WHERE c.due_at <= now() AND c.state <> 'ended'
        UNION ALL
        SELECT jsonb_build_object('call_id', p.call_id::text, 'event', 'grace_timeout',
                                  'user_id', p.user_id::text)
        FROM call_participants p JOIN calls c ON c.id = p.call_id
        WHERE c.state <> 'ended' AND p.state IN ('joined', 'connected')
          AND p.gone_since <= now() - make_interval(secs => p_grace_ms / 1000.0)
        LIMIT 500) s;
    RETURN v_out;
END $$;
