-- 161_call_offer_async: the offer kept for kill-state recovery commits
-- without waiting for its WAL flush (P9 in docs/benchmarks.md, "Session 6").
--
-- The kept offer (151) is a copy of a signal the relay has already
-- delivered live; it only serves GET /calls/active after an app kill. It
-- was committed durably: 2 of the 8 WAL flushes of every call (the offer,
-- then the answer dropping it), queued with the transitions' flushes
-- (sampled during P9 at 1,000 live calls: a tenth of the backends waiting
-- on WALWrite were these copies). Like the presence counts and the tick's
-- marks (150), it now commits with synchronous_commit off for its own
-- transaction: visible to every reader at once, lost only if PostgreSQL
-- itself crashes in the next few hundred ms (wal_writer_delay x 3), and then
-- the recovering callee waits for the caller's next offer (restart) instead.
-- Every transition and creation still commits durably.

CREATE OR REPLACE FUNCTION sb_call_offer(p_call bigint, p_from bigint, p_to bigint, p_type text, p_data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
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
