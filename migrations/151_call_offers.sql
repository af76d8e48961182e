-- 151_call_offers: the offer kept for kill-state recovery gets a table of
-- its own (P9 in docs/benchmarks.md; docs/calls.md "Signal relay").
--
-- The offer addressed to a participant (until they answer) was a column of
-- their call_participants row, so the offer and answer copies (sent beside
-- the relay, one durable write each) and the participant's own transitions
-- (its `connected`, written by sb_call_apply) locked the same row: the
-- callee's `connected` waited for the commit of its `answer` copy, on the
-- setup path. Now call_offers holds them: (call_id, user_id) -> the offer,
-- still written durably, and sb_call_apply's participant updates no longer
-- wait for it. Same rules: an `offer` is kept for its addressee, their
-- `answer` drops it, and it goes when they leave the call (any state but
-- ringing, joined, connected), are marked missed, or the call ends.
-- GET /calls/active (sb_call_active) reads it from here.

CREATE TABLE call_offers (
    call_id bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    user_id bigint NOT NULL,
    offer   jsonb NOT NULL,
    PRIMARY KEY (call_id, user_id)
);
INSERT INTO call_offers (call_id, user_id, offer)
SELECT call_id, user_id, offer FROM call_participants WHERE offer IS NOT NULL;

-- p_type 'offer' keeps it for p_to (a participant of the call), 'answer'
-- from p_from drops the offer addressed to p_from.
CREATE OR REPLACE FUNCTION sb_call_offer(p_call bigint, p_from bigint, p_to bigint, p_type text, p_data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_type = 'offer' THEN
        INSERT INTO call_offers AS o (call_id, user_id, offer)
        SELECT p_call, p_to, jsonb_build_object('from', p_from::text, 'type', 'offer', 'data', p_data)
        FROM call_participants p WHERE p.call_id = p_call AND p.user_id = p_to
        ON CONFLICT (call_id, user_id) DO UPDATE SET offer = excluded.offer;
    ELSIF p_type = 'answer' THEN
        DELETE FROM call_offers WHERE call_id = p_call AND user_id = p_from;
    END IF;
EXCEPTION WHEN foreign_key_violation THEN
    NULL; -- the call is gone
END $$;

CREATE OR REPLACE FUNCTION sb_call_active(p_user bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT jsonb_build_object(
            'call', sb_call_json(c.id),
            'offer', (SELECT o.offer FROM call_offers o WHERE o.call_id = c.id AND o.user_id = p_user),
            'ring_remaining_ms', CASE WHEN c.state IN ('dialing', 'ringing') AND c.due_at IS NOT NULL
                THEN greatest(0, (extract(epoch FROM c.due_at - now()) * 1000)::bigint) ELSE 0 END)
        FROM call_participants p JOIN calls c ON c.id = p.call_id
        WHERE p.user_id = p_user AND c.state <> 'ended'
          AND p.state IN ('invited', 'ringing', 'joined', 'connected')
        ORDER BY c.id DESC LIMIT 1),
        jsonb_build_object('call', NULL, 'offer', NULL, 'ring_remaining_ms', 0))
$$;

CREATE OR REPLACE FUNCTION sb_call_apply(p_call bigint, p_version bigint, p_actor bigint, p_session text,
                              p_state text, p_actor_state text, p_reason text, p_due text,
                              p_connect_ms int, p_answered boolean, p_connected boolean,
                              p_pending_missed boolean, p_end_pending text, p_end_active text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_users bigint[];
BEGIN
    SELECT array_agg(user_id) INTO v_users FROM call_participants WHERE call_id = p_call;
    IF v_users IS NULL THEN
        RETURN sb_err('not_found', 'no such call');
    END IF;
    PERFORM sb_call_lock_users(v_users);
    UPDATE calls SET
        version = version + 1,
        state = p_state,
        end_reason = CASE WHEN p_state = 'ended' THEN p_reason END,
        answered_at = CASE WHEN p_answered THEN now() ELSE answered_at END,
        connected_at = CASE WHEN p_connected THEN now() ELSE connected_at END,
        ended_at = CASE WHEN p_state = 'ended' THEN now() END,
        pair_key = CASE WHEN p_state = 'ended' THEN NULL ELSE pair_key END,
        due_at = CASE WHEN p_state = 'ended' OR p_due = 'none' THEN NULL
                      WHEN p_due = 'connect' THEN now() + make_interval(secs => p_connect_ms / 1000.0)
                      ELSE due_at END
    WHERE id = p_call AND version = p_version AND state <> 'ended';
    IF NOT FOUND THEN
        -- another writer won: the call as it is now, to decide again on
        RETURN jsonb_build_object('stale', true, 'call', sb_call_json(p_call));
    END IF;
    IF p_actor IS NOT NULL AND p_actor_state IS NOT NULL THEN
        UPDATE call_participants SET
            state = p_actor_state,
            session_id = CASE WHEN p_actor_state = 'joined' AND session_id IS NULL THEN p_session
                              ELSE session_id END,
            gone_since = NULL
        WHERE call_id = p_call AND user_id = p_actor;
        IF p_actor_state NOT IN ('joined', 'connected', 'ringing') THEN
            DELETE FROM call_offers WHERE call_id = p_call AND user_id = p_actor;
        END IF;
    END IF;
    IF p_pending_missed THEN
        DELETE FROM call_offers o USING call_participants p
        WHERE o.call_id = p_call AND p.call_id = p_call AND p.user_id = o.user_id
          AND p.state IN ('invited', 'ringing');
        UPDATE call_participants SET state = 'missed'
        WHERE call_id = p_call AND state IN ('invited', 'ringing');
    END IF;
    IF p_state = 'ended' THEN
        UPDATE call_participants SET
            state = CASE WHEN state IN ('invited', 'ringing') THEN p_end_pending
                         WHEN state IN ('joined', 'connected') THEN p_end_active ELSE state END,
            gone_since = NULL
        WHERE call_id = p_call;
        DELETE FROM call_offers WHERE call_id = p_call;
        DELETE FROM call_presence WHERE call_id = p_call;
    END IF;
    RETURN jsonb_build_object('call', sb_call_events(p_call, 'call:updated'));
END $$;

ALTER TABLE call_participants DROP COLUMN offer;
