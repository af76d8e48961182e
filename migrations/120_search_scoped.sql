-- 120_search_scoped: search costs in proportion to the searcher's own
-- conversations, not to the corpus (docs/search.md, docs/benchmarks.md P12).
--
-- 051 indexed to_tsvector('simple', body) in one GIN: every search scanned
-- the postings of its words over ALL messages, and a prefix ('hel':*)
-- materialised every posting of every word with that prefix, before the
-- membership filter threw nearly all of them away. Here each lexeme is
-- namespaced by its conversation: the message "Hello world" of
-- conversation 42 is indexed as 'c42_hello':1 'c42_world':2. A GIN entry
-- tree is sorted bytewise, so a search in conversation 42 reads only the
-- entries beginning with 'c42_' -- its exact words, and for a prefix only
-- the words of that conversation beginning with it -- whose posting lists
-- hold only that conversation's messages. sb_search runs one such index
-- scan per membership period of the searcher. Positions are kept (the
-- vector is the same one, renamed), so ts_rank is unchanged.

-- The index vector of a message body in conversation p_conv: the lexemes
-- of to_tsvector('simple', body) with their positions, each prefixed by
-- 'c<p_conv>_'. Lexemes longer than 2000 bytes (which no query word, cut
-- at 64 bytes, matches exactly) are left out so the prefixed lexeme stays
-- under the 2047-byte lexeme limit. tsvector text quotes each lexeme in
-- '...' with quotes doubled, so the regexp, matching whole quoted lexemes
-- from left to right, never starts inside one.
CREATE FUNCTION sb_search_lex(p_conv bigint, p_body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT regexp_replace(
               ts_delete(v, ARRAY(SELECT l FROM unnest(tsvector_to_array(v)) l WHERE octet_length(l) > 2000))::text,
               '''((?:[^'']|'''')*)''', '''c' || p_conv::text || '_\1''', 'g')::tsvector
    FROM to_tsvector('simple'::regconfig, p_body) v
$$;

-- p_q (a tsquery over plain words, as to_tsquery('simple', ...) makes it)
-- with every lexeme namespaced for conversation p_conv, operators, prefix
-- marks and weights kept: the query to match against sb_search_lex.
CREATE FUNCTION sb_search_conv_query(p_conv bigint, p_q tsquery) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT regexp_replace(p_q::text, '''((?:[^'']|'''')*)''', '''c' || p_conv::text || '_\1''', 'g')::tsquery
$$;

-- The old vector and its index (DROP COLUMN drops both; a metadata change).
ALTER TABLE messages DROP COLUMN search_tsv;

-- Generated, so it never disagrees with the row: deleting for everyone
-- clears it in the same UPDATE, ciphertext is never indexed, an edit
-- re-indexes. (Adding it rewrites the table once.)
ALTER TABLE messages ADD COLUMN search_lex tsvector GENERATED ALWAYS AS (
    CASE WHEN deleted_at IS NULL AND kind <> 'ciphertext' AND body IS NOT NULL
         THEN sb_search_lex(conversation_id, body) END) STORED;

-- fastupdate off: with a pending list, every index scan (one per membership
-- period of the searcher) would read the whole list (up to
-- gin_pending_list_limit) of recent inserts, whatever the conversation;
-- without it an insert updates the entries of its own conversation, which
-- sit together in the entry tree.
CREATE INDEX messages_search_lex_idx ON messages USING gin (search_lex) WITH (fastupdate = off);

-- Same contract as 051's: one page of p_user's search (the tsquery text
-- p_q; in the periods of p_user's memberships; not hidden for p_user;
-- optionally in p_conv; by ts_rank then newest first, after (p_rank, p_id);
-- p_limit rows; each item a Message with "snippet" and "_pos").
-- The plan: p_user's membership periods (memberships_user_idx), and for
-- each, a bitmap scan of messages_search_lex_idx with the query namespaced
-- for its conversation, the period's event_seq bounds and message_hidden
-- checked on the matches only; ranks computed for the caller's matches
-- only; snippets (ts_headline) and Message JSON for the page's rows only.
CREATE OR REPLACE FUNCTION sb_search(p_user bigint, p_q text, p_conv bigint, p_rank real, p_id bigint, p_limit int)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
BEGIN
    RETURN (WITH q AS MATERIALIZED (SELECT to_tsquery('simple', p_q) AS q),
    periods AS MATERIALIZED (
        SELECT p.conversation_id, p.from_seq, p.to_seq, sb_search_conv_query(p.conversation_id, q.q) AS cq
        FROM q, memberships p
        WHERE p.user_id = p_user AND (p_conv IS NULL OR p.conversation_id = p_conv)),
    hits AS MATERIALIZED (
        SELECT m.id, ts_rank(m.search_lex, p.cq) AS rank, m.conversation_id AS mc, p.conversation_id AS pc
        FROM periods p
        JOIN messages m ON m.search_lex @@ p.cq
                       AND m.event_seq >= p.from_seq AND (p.to_seq IS NULL OR m.event_seq <= p.to_seq)
        WHERE NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = p_user AND h.message_id = m.id)),
    page AS MATERIALIZED (
        SELECT id, rank FROM hits
        WHERE mc = pc AND (p_id IS NULL OR (rank, id) < (p_rank, p_id))
        ORDER BY rank DESC, id DESC
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
    FROM page pg JOIN messages m ON m.id = pg.id, q);
END
$$;
