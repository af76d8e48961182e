-- 051_search: full-text search over messages (api.md "Messages",
-- GET /api/v1/search/messages; docs/search.md).
--
-- A stored generated tsvector with the `simple` configuration (no stemming,
-- no stop words: words of any language are indexed as they are written,
-- lower-cased) over the body (text or caption) of messages that are neither
-- deleted nor end-to-end encrypted: deleting a message for everyone clears
-- its vector in the same UPDATE, and `ciphertext` bodies are never indexed.
ALTER TABLE messages ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
    CASE WHEN deleted_at IS NULL AND kind <> 'ciphertext' AND body IS NOT NULL
         THEN to_tsvector('simple'::regconfig, body) END) STORED;
CREATE INDEX messages_search_idx ON messages USING gin (search_tsv);

-- One page of p_user's search: messages matching the tsquery text p_q
-- (built by the server: quoted words joined by &, the last one maybe a
-- prefix), in the periods of p_user's memberships (removed members keep
-- finding what they could see, nothing after), not hidden for p_user
-- (delete for me), optionally in conversation p_conv; ordered by ts_rank,
-- then newest first (id), after the position (p_rank, p_id) when given;
-- p_limit rows. Each item is the Message with "snippet" (the body around
-- the matches, HTML-escaped, matches in <mark>...</mark>) and "_pos" (the
-- position, for the next cursor).
CREATE FUNCTION sb_search(p_user bigint, p_q text, p_conv bigint, p_rank real, p_id bigint, p_limit int)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH q AS MATERIALIZED (SELECT to_tsquery('simple', p_q) AS q),
    page AS MATERIALIZED (
        SELECT m.id, ts_rank(m.search_tsv, q.q) AS rank
        FROM q, messages m
        WHERE m.search_tsv @@ q.q
          AND (p_conv IS NULL OR m.conversation_id = p_conv)
          AND EXISTS (SELECT 1 FROM memberships p
                      WHERE p.user_id = p_user AND p.conversation_id = m.conversation_id
                        AND m.event_seq >= p.from_seq AND (p.to_seq IS NULL OR m.event_seq <= p.to_seq))
          AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = p_user AND h.message_id = m.id)
          AND (p_id IS NULL OR (ts_rank(m.search_tsv, q.q), m.id) < (p_rank, p_id))
        ORDER BY 2 DESC, 1 DESC
        LIMIT p_limit)
    SELECT jsonb_build_object('items', COALESCE(jsonb_agg(
        sb_message_json(m) || jsonb_build_object(
            'snippet', replace(replace(replace(replace(replace(
                ts_headline('simple', translate(m.body, chr(2) || chr(3), '  '), q.q,
                            'StartSel=' || chr(2) || ', StopSel=' || chr(3)
                            || ', MaxWords=24, MinWords=8, ShortWord=0, MaxFragments=2, FragmentDelimiter=" … "'),
                '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), chr(2), '<mark>'), chr(3), '</mark>'),
            '_pos', pg.rank::text || ':' || pg.id::text)
        ORDER BY pg.rank DESC, pg.id DESC), '[]'::jsonb))
    FROM page pg JOIN messages m ON m.id = pg.id, q
$$;
