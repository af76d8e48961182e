-- 003_event_write: the two functions every write path uses to append to the
-- durable event log (docs/sync.md, "The write rule").

-- Takes the stream's write lock. Must be the first thing a write transaction
-- does, before anything that assigns it an xid: then lock order = xid order
-- = seq order = commit order within the stream.
CREATE FUNCTION sb_stream_lock(p_stream bigint) RETURNS void
LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock(p_stream) $$;

-- Appends one event to a stream and returns its seq. The caller's
-- transaction holds sb_stream_lock(p_stream). Wakes the tailers at commit.
CREATE FUNCTION sb_event_append(p_stream bigint, p_type text, p_payload jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
BEGIN
    INSERT INTO streams AS st (stream, last_seq) VALUES (p_stream, 1)
    ON CONFLICT (stream) DO UPDATE SET last_seq = st.last_seq + 1
    RETURNING last_seq INTO s;
    INSERT INTO events (stream, seq, type, payload) VALUES (p_stream, s, p_type, p_payload);
    PERFORM pg_notify('sb_events', '');
    RETURN s;
END $$;
