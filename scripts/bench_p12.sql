-- bench_p12.sql — the P12 corpus (scripts/bench.sh, docs/benchmarks.md):
-- :nusers users, :nconv groups of 10 members, :permsg messages in each,
-- and one conversation of :bigmsg messages for the export figure; 1,000
-- search queries (a word and the prefix of another, as typed). Inserted
-- with generate_series, in one transaction, as the chat core numbers them
-- (seq, event_seq inside the members' period). Words: 5 hex characters of
-- md5(k), k log-uniform over 1..20,000 (a few very common words, a long
-- tail of rare ones). Run with psql -v nusers= -v nconv= -v permsg= -v bigmsg=
-- -v tag= ; skipped (by bench.sh) when bench_p12 already holds :tag.
\set ON_ERROR_STOP 1
BEGIN;
CREATE TABLE IF NOT EXISTS bench_p12 (tag text PRIMARY KEY, first_user bigint, nusers int,
                                      big_conv bigint, big_users bigint[], messages bigint);
CREATE TABLE IF NOT EXISTS bench_p12_queries (tag text, i int, user_id bigint, q text, tsq text,
                                              PRIMARY KEY (tag, i));
DELETE FROM bench_p12_queries WHERE tag = :'tag';

CREATE TEMP TABLE p12_users ON COMMIT DROP AS
WITH ins AS (
    INSERT INTO users (username, display_name, password_hash)
    SELECT 'p12_' || :'tag' || '_' || g, 'P12 user ' || g, 'not-a-hash'
    FROM generate_series(1, :nusers) g
    RETURNING id)
SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM ins;

SELECT array_agg(id ORDER BY k) AS ids FROM p12_users \gset
SELECT COALESCE(max(id), 0) + 1000 AS conv_base FROM conversations \gset
INSERT INTO conversations (id, kind, title, created_by, last_seq)
SELECT :conv_base + g, 'group', 'p12 ' || g, (:'ids'::bigint[])[1], :permsg
FROM generate_series(0, :nconv - 1) g;
INSERT INTO conversations (id, kind, title, created_by, last_seq)
VALUES (:conv_base + :nconv, 'group', 'p12 export', (:'ids'::bigint[])[1], :bigmsg);
SELECT setval(pg_get_serial_sequence('conversations', 'id'), :conv_base + :nconv + 1);
-- each group: 10 members, spread over the users; the export one: users 0 and 1
CREATE TEMP TABLE p12_members ON COMMIT DROP AS
SELECT :conv_base + g AS conv, (:'ids'::bigint[])[1 + (g * 7 + k * 97) % :nusers] AS user_id, k AS slot
FROM generate_series(0, :nconv - 1) g, generate_series(0, 9) k
UNION ALL
SELECT :conv_base + :nconv, id, k FROM p12_users WHERE k < 2;
INSERT INTO members (conversation_id, user_id, role, from_seq, read_seq, delivered_seq)
SELECT conv, user_id, CASE WHEN slot = 0 THEN 'owner' ELSE 'member' END, 1, 0, 0 FROM p12_members;
INSERT INTO memberships (conversation_id, user_id, from_seq)
SELECT conv, user_id, 1 FROM p12_members;
INSERT INTO streams (stream, last_seq)
SELECT :conv_base + g, :permsg + 1 FROM generate_series(0, :nconv - 1) g
UNION ALL SELECT :conv_base + :nconv, :bigmsg + 1;

-- messages: sender = one of the 10 members, 6 to 14 words
INSERT INTO messages (conversation_id, seq, event_seq, sender_id, client_id, kind, body)
SELECT :conv_base + c, s, s + 1,
       (:'ids'::bigint[])[1 + (c * 7 + (s % 10) * 97) % :nusers],
       'p12-' || :'tag' || '-' || c || '-' || s, 'text',
       (SELECT string_agg(substr(md5(floor(power(20000, random()))::int::text), 1, 5), ' ')
        FROM generate_series(1, 6 + (s + c) % 9) w WHERE s > 0)
FROM generate_series(0, :nconv - 1) c, generate_series(1, :permsg) s;
INSERT INTO messages (conversation_id, seq, event_seq, sender_id, client_id, kind, body)
SELECT :conv_base + :nconv, s, s + 1, (:'ids'::bigint[])[1 + s % 2],
       'p12-' || :'tag' || '-big-' || s, 'text',
       'message ' || s || ' ' || repeat('lorem ipsum dolor sit amet ', 10)
FROM generate_series(1, :bigmsg) s;

-- queries: the first 100 users search for a word and the prefix of another
INSERT INTO bench_p12_queries (tag, i, user_id, q, tsq)
SELECT :'tag', i, (:'ids'::bigint[])[1 + i % least(100, :nusers)], w1 || ' ' || left(w2, 3),
       '''' || w1 || ''' & ''' || left(w2, 3) || ''':*'
FROM generate_series(1, 1000) i,
     LATERAL (SELECT substr(md5(floor(power(20000, random()))::int::text), 1, 5) AS w1,
                     substr(md5(floor(power(20000, random()))::int::text), 1, 5) AS w2
              WHERE i > 0) w;

INSERT INTO bench_p12 (tag, first_user, nusers, big_conv, big_users, messages)
SELECT :'tag', min(id), :nusers, :conv_base + :nconv,
       (SELECT array_agg(id ORDER BY k) FROM p12_users WHERE k < 2), :nconv::bigint * :permsg
FROM p12_users
ON CONFLICT (tag) DO UPDATE SET first_user = EXCLUDED.first_user, big_conv = EXCLUDED.big_conv,
    big_users = EXCLUDED.big_users, messages = EXCLUDED.messages;
COMMIT;
ANALYZE;
