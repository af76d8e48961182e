-- 100_calls_fast: call transitions with less work per write (docs/calls.md,
-- "Persistence"; P9 in docs/benchmarks.md) and the answering device in the
-- callee's events (answered_elsewhere on user:<id>).
--
-- * The Call object carries its `version` (+1 per transition): a node keeps
--   the newest Call it saw on call:<id> and decides the next event on it,
--   writing sb_call_apply on that version at once; the conditional UPDATE
--   lets it through only when nothing changed since (else the node loads
--   and decides again), so a transition costs one statement, not two, and
--   there is still one conditional write per transition.
-- * A lost race answers {"stale": true, "call"}: the call as it is now,
--   read after the winner committed, which the node decides again on
--   (again one conditional write) instead of loading it first.
-- * sb_call_events builds the Call object once and returns it: the
--   transition's answer and every participant's event share it.
-- * In the event of a callee who answered (joined from a device), the
--   payload carries "answered_on": the session id of that device. The
--   user:<id> edge (calls/call_view.c through sync's event view hook) shows
--   the callee's other devices the call ended, answered_elsewhere, and
--   strips the key for the answering device; GET /sync applies the same
--   view. The caller's stream never carries it.

CREATE OR REPLACE FUNCTION sb_call_json(p_call bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
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
    FROM calls c WHERE c.id = p_call
$$;

-- Appends call:updated (p_type_invitee for the invitees) to every
-- participant's stream and returns the Call object. An invitee who joined
-- from a device gets "answered_on": that device's session id.
DROP FUNCTION sb_call_events(bigint, text);
CREATE FUNCTION sb_call_events(p_call bigint, p_type_invitee text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_call jsonb := sb_call_json(p_call);
    v_json jsonb := jsonb_build_object('call', v_call);
    r record;
BEGIN
    FOR r IN SELECT p.user_id, (p.user_id = c.caller_id) AS is_caller, p.session_id
             FROM call_participants p JOIN calls c ON c.id = p.call_id
             WHERE p.call_id = p_call ORDER BY -p.user_id LOOP
        PERFORM sb_event_append(-r.user_id,
                                CASE WHEN r.is_caller THEN 'call:updated' ELSE p_type_invitee END,
                                CASE WHEN r.is_caller OR r.session_id IS NULL THEN v_json
                                     ELSE v_json || jsonb_build_object('answered_on', r.session_id) END);
    END LOOP;
    RETURN v_call;
END $$;

-- The creation itself: 081_blocks_enforce.sql renamed it *_unchecked behind
-- the block check, so this replaces the inner function and keeps the check.
CREATE OR REPLACE FUNCTION sb_call_create_unchecked(p_user bigint, p_session text, p_other bigint, p_conv bigint,
                               p_media text, p_ring_ms int, p_max int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
    v_conv bigint := p_conv;
    v_users bigint[];
    v_key text;
    v_ex calls;
    v_id bigint;
    v_busy boolean := false;
    v_call jsonb;
BEGIN
    IF p_conv IS NOT NULL THEN
        SELECT kind INTO v_kind FROM conversations WHERE id = p_conv;
        IF v_kind IS NULL OR NOT EXISTS (SELECT 1 FROM members WHERE conversation_id = p_conv AND user_id = p_user) THEN
            RETURN sb_err('not_found', 'no such conversation');
        END IF;
        SELECT array_agg(user_id ORDER BY user_id) INTO v_users FROM members WHERE conversation_id = p_conv;
        IF v_kind = 'direct' THEN
            SELECT user_id INTO p_other FROM members WHERE conversation_id = p_conv AND user_id <> p_user;
            IF p_other IS NULL THEN
                RETURN sb_err('validation_failed', 'nobody else is in this conversation',
                              '{"conversation_id":"has no other member"}');
            END IF;
        ELSIF array_length(v_users, 1) > p_max THEN
            RETURN sb_err('validation_failed', 'a group call holds at most ' || p_max || ' participants',
                          jsonb_build_object('conversation_id', 'has more than ' || p_max || ' members'));
        ELSIF array_length(v_users, 1) < 2 THEN
            RETURN sb_err('validation_failed', 'nobody else is in this conversation',
                          '{"conversation_id":"has no other member"}');
        END IF;
    ELSE
        IF p_other = p_user THEN
            RETURN sb_err('validation_failed', 'cannot call yourself', '{"user_id":"is yourself"}');
        END IF;
        IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_other AND banned_at IS NULL) THEN
            RETURN sb_err('not_found', 'no such user');
        END IF;
        v_kind := 'direct';
        SELECT id INTO v_conv FROM conversations
        WHERE direct_key = least(p_user, p_other)::text || ':' || greatest(p_user, p_other)::text;
    END IF;
    IF v_kind = 'direct' THEN
        v_users := ARRAY[least(p_user, p_other), greatest(p_user, p_other)];
        v_key := v_users[1]::text || ':' || v_users[2]::text;
    END IF;

    PERFORM sb_call_lock_users(v_users);

    IF v_kind = 'direct' THEN
        SELECT * INTO v_ex FROM calls WHERE pair_key = v_key;
    ELSE
        SELECT * INTO v_ex FROM calls WHERE conversation_id = v_conv AND kind = 'group' AND state <> 'ended';
    END IF;
    IF v_ex.id IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM call_participants WHERE call_id = v_ex.id AND user_id = p_user
                   AND state IN ('invited', 'ringing'))
           AND (v_kind = 'group' OR v_ex.state IN ('dialing', 'ringing')) THEN
            RETURN jsonb_build_object('glare', v_ex.id::text);
        END IF;
        IF EXISTS (SELECT 1 FROM call_participants WHERE call_id = v_ex.id AND user_id = p_user
                   AND state IN ('joined', 'connected')) THEN
            RETURN jsonb_build_object('call', sb_call_json(v_ex.id), 'created', false, 'busy', false);
        END IF;
    END IF;
    IF sb_call_user_busy(p_user, false, NULL) THEN
        RETURN sb_err('conflict', 'you are already in a call');
    END IF;
    IF v_kind = 'direct' AND sb_call_user_busy(p_other, true, NULL) THEN
        v_busy := true;
    END IF;

    INSERT INTO calls (conversation_id, kind, caller_id, media, state, end_reason, pair_key, due_at, ended_at)
    VALUES (v_conv, v_kind, p_user, p_media,
            CASE WHEN v_busy THEN 'ended' ELSE 'dialing' END,
            CASE WHEN v_busy THEN 'busy' END,
            CASE WHEN v_busy THEN NULL ELSE v_key END,
            CASE WHEN v_busy THEN NULL ELSE now() + make_interval(secs => p_ring_ms / 1000.0) END,
            CASE WHEN v_busy THEN now() END)
    RETURNING id INTO v_id;
    INSERT INTO call_participants (call_id, user_id, state, session_id)
    SELECT v_id, u, CASE WHEN u = p_user THEN (CASE WHEN v_busy THEN 'left' ELSE 'joined' END)
                         WHEN v_busy THEN 'busy' ELSE 'invited' END,
           CASE WHEN u = p_user THEN p_session END
    FROM unnest(v_users) u;
    v_call := sb_call_events(v_id, CASE WHEN v_busy THEN 'call:updated' ELSE 'call:incoming' END);
    RETURN jsonb_build_object('call', v_call, 'created', true, 'busy', v_busy);
END $$;

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
            gone_since = NULL,
            offer = CASE WHEN p_actor_state IN ('joined', 'connected', 'ringing') THEN offer END
        WHERE call_id = p_call AND user_id = p_actor;
    END IF;
    IF p_pending_missed THEN
        UPDATE call_participants SET state = 'missed', offer = NULL
        WHERE call_id = p_call AND state IN ('invited', 'ringing');
    END IF;
    IF p_state = 'ended' THEN
        UPDATE call_participants SET
            state = CASE WHEN state IN ('invited', 'ringing') THEN p_end_pending
                         WHEN state IN ('joined', 'connected') THEN p_end_active ELSE state END,
            offer = NULL, gone_since = NULL
        WHERE call_id = p_call;
        DELETE FROM call_presence WHERE call_id = p_call;
    END IF;
    RETURN jsonb_build_object('call', sb_call_events(p_call, 'call:updated'));
END $$;
