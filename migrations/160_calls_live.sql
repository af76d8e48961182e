-- 160_calls_live: a call's reads and the timer tick cost the same whatever
-- the number of past calls (P9 in docs/benchmarks.md, "Session 6").
--
-- * Every participant of an ended call is in a final state (declined,
--   missed, busy, left: sb_call_apply's end moves invited/ringing and
--   joined/connected out), so the live participations are exactly the rows
--   in invited, ringing, joined or connected. call_participants_live_idx
--   indexes only those: the busy checks of POST /calls, GET /calls/active
--   and the tick's scans read the live rows only, not the user's or the
--   whole table's history. Before, the tick's "gone mark cleared" UPDATE
--   read every call_participants row ever written (WHERE gone_since IS NOT
--   NULL, no index) every tick (250 ms) on every node, and the busy check
--   read each of the user's past calls.
-- * The reads on the setup path (sb_call_json, sb_call_load) and the busy
--   and active lookups were SQL functions, which PostgreSQL plans again on
--   every call (their body cannot be inlined: it has a FROM); as PL/pgSQL
--   their plans are cached per connection. Measured with pgbench on one
--   call (1 client, extended protocol): sb_call_load 0.43-0.67 -> 0.12-0.17
--   ms, sb_call_json 0.34 -> 0.10 ms. Same queries, same results.
--
-- Nothing about a transition changes: still one conditional UPDATE of the
-- call row per transition, the same events, durably committed.

CREATE INDEX call_participants_live_idx ON call_participants (user_id)
    WHERE state IN ('invited', 'ringing', 'joined', 'connected');

CREATE OR REPLACE FUNCTION sb_call_json(p_call bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
    SELECT jsonb_build_object(
        'id', c.id::text,
        'conversation_id', c.conversation_id::text,
        'kind', c.kind,
        'caller_id', c.caller_id::text,
        'participants', (SELECT jsonb_agg(jsonb_build_object('user_id', p.user_id::text, 'state', p.state)
                                          ORDER BY p.user_id <> c.caller_id, p.user_id)
                         FROM call_participants p WHERE p.call_id = c.id),
        'media', c.media,
        'state', c.state,
        'end_reason', c.end_reason,
        'version', c.version,
        'created_at', sb_ts(c.created_at),
        'answered_at', sb_ts(c.answered_at),
        'ended_at', sb_ts(c.ended_at),
        'duration_ms', CASE WHEN c.answered_at IS NOT NULL AND c.ended_at IS NOT NULL
                            THEN (extract(epoch FROM c.ended_at - c.answered_at) * 1000)::bigint END)
    FROM calls c WHERE c.id = p_call);
END $$;

CREATE OR REPLACE FUNCTION sb_call_load(p_call bigint, p_user bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
    SELECT jsonb_build_object(
        'call', sb_call_json(c.id),
        'version', c.version,
        'kind', c.kind,
        'state', c.state,
        'actor', (SELECT jsonb_build_object('state', p.state, 'session_id', p.session_id,
                                            'is_caller', p.user_id = c.caller_id)
                  FROM call_participants p WHERE p.call_id = c.id AND p.user_id = p_user),
        'n_active', (SELECT count(*) FROM call_participants p WHERE p.call_id = c.id
                     AND p.state IN ('joined', 'connected')),
        'n_pending', (SELECT count(*) FROM call_participants p WHERE p.call_id = c.id
                      AND p.state IN ('invited', 'ringing')))
    FROM calls c
    WHERE c.id = p_call
      AND (p_user IS NULL OR EXISTS (SELECT 1 FROM call_participants p
                                     WHERE p.call_id = c.id AND p.user_id = p_user)));
END $$;

CREATE OR REPLACE FUNCTION sb_call_user_busy(p_user bigint, p_pending boolean, p_except bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM call_participants p JOIN calls c ON c.id = p.call_id
                   WHERE p.user_id = p_user
                     AND p.state IN ('invited', 'ringing', 'joined', 'connected')
                     AND c.state <> 'ended' AND c.id <> COALESCE(p_except, 0)
                     AND (p.state IN ('joined', 'connected')
                          OR (p_pending AND p.state IN ('invited', 'ringing'))));
END $$;

CREATE OR REPLACE FUNCTION sb_call_active(p_user bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((
        SELECT jsonb_build_object(
            'call', sb_call_json(c.id),
            'offer', (SELECT o.offer FROM call_offers o WHERE o.call_id = c.id AND o.user_id = p_user),
            'ring_remaining_ms', CASE WHEN c.state IN ('dialing', 'ringing') AND c.due_at IS NOT NULL
                THEN greatest(0, (extract(epoch FROM c.due_at - now()) * 1000)::bigint) ELSE 0 END)
        FROM call_participants p JOIN calls c ON c.id = p.call_id
        WHERE p.user_id = p_user AND c.state <> 'ended'
          AND p.state IN ('invited', 'ringing', 'joined', 'connected')
        ORDER BY c.id DESC LIMIT 1),
        jsonb_build_object('call', NULL, 'offer', NULL, 'ring_remaining_ms', 0));
END $$;

-- As in 150, but every scan of call_participants is over the live rows
-- (state joined/connected: a gone mark is only ever set on those, and a
-- transition or the end of the call clears it), so the index above serves
-- it once the table holds more history than live calls; and the fresh
-- presence is read once per tick (a hashed NOT IN / IN: the columns are
-- NOT NULL, so it means NOT EXISTS / EXISTS) instead of one index probe of
-- call_presence per live participant: at 1,000 live calls the tick read
-- ~7,000 pages every 250 ms (7 ms), most of it these probes.
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
      AND (p.call_id, p.user_id) NOT IN (
          SELECT cp.call_id, cp.user_id FROM call_presence cp
          WHERE cp.n > 0 AND (cp.seen_at > v_fresh
                              OR cp.node IN (SELECT cn.node FROM call_nodes cn WHERE cn.seen_at > v_fresh)));
    UPDATE call_participants p SET gone_since = NULL
    WHERE p.gone_since IS NOT NULL
      AND p.state IN ('joined', 'connected')
      AND (p.call_id, p.user_id) IN (
          SELECT cp.call_id, cp.user_id FROM call_presence cp
          WHERE cp.n > 0 AND (cp.seen_at > v_fresh
                              OR cp.node IN (SELECT cn.node FROM call_nodes cn WHERE cn.seen_at > v_fresh)));
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
