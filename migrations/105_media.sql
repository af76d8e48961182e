-- 105_media: uploaded media (docs/api.md "Media"), who may read it, and the
-- hooks chat's SQL gets from it. Chat (layer 8) sits below media (layer 9):
-- chat's functions keep their names and contracts and are wrapped here, so
-- chat's C code needs no change:
--   * sb_message_json fills "media" with the media's metadata (sb_media_json)
--     instead of {id};
--   * sb_message_send_locked refuses a media_id its sender may not read
--     (422 validation_failed, details {media_id}); sb_message_send_batch
--     sends batches that carry media through it (item by item, under the
--     same stream locks), so every send is checked and answered with the
--     metadata;
--   * sb_conversation_update refuses a group avatar the caller may not read;
--   * a trigger on users refuses a profile avatar its user may not read
--     (SQLSTATE SBVAL, mapped to 422 by rest_db_error).

CREATE TABLE media (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{22}$'),
    owner_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    mime        text NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    width       int,
    height      int,
    duration_ms bigint,
    filename    text CHECK (char_length(filename) <= 255),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_owner_created ON media (owner_id, created_at);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_created ON media (created_at);
CREATE INDEX messages_media_id ON messages (media_id) WHERE media_id IS NOT NULL;
CREATE INDEX users_avatar_media_id ON users (avatar_media_id) WHERE avatar_media_id IS NOT NULL;
CREATE INDEX conversations_avatar_media_id ON conversations (avatar_media_id) WHERE avatar_media_id IS NOT NULL;

-- May p_user read media p_media? Its uploader; a member who can see a
-- (not deleted) message carrying it; anyone signed in for a profile avatar
-- (profiles are visible to every user); members of a group whose avatar it is.
CREATE FUNCTION sb_media_readable(p_user bigint, p_media text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM media WHERE id = p_media AND owner_id = p_user)
        OR EXISTS (SELECT 1 FROM media x WHERE x.id = p_media AND (
               EXISTS (SELECT 1 FROM messages m WHERE m.media_id = p_media AND m.deleted_at IS NULL
                         AND sb_message_visible(m.id, p_user))
            OR EXISTS (SELECT 1 FROM users u WHERE u.avatar_media_id = p_media)
            OR EXISTS (SELECT 1 FROM conversations c JOIN members mb ON mb.conversation_id = c.id
                         AND mb.user_id = p_user WHERE c.avatar_media_id = p_media)))
$$;

-- The "media" object of a Message: {id, mime, size, width?, height?,
-- duration_ms?, filename?} ({id} alone for an id with no row).
CREATE FUNCTION sb_media_json(p_media text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT jsonb_strip_nulls(jsonb_build_object(
                'id', x.id, 'mime', x.mime, 'size', x.size, 'width', x.width, 'height', x.height,
                'duration_ms', x.duration_ms, 'filename', x.filename))
            FROM media x WHERE x.id = p_media), jsonb_build_object('id', p_media))
$$;

-- Media to delete: uploaded before p_before and referenced by nothing (no
-- message, not deleted for everyone; no profile or group avatar). Deletes
-- up to p_limit of them and returns the sha256 of each deleted row whose
-- content no other row shares any more (the files to remove). The caller
-- holds the sweep's advisory lock.
CREATE FUNCTION sb_media_sweep(p_before timestamptz, p_limit int) RETURNS SETOF text
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM media x WHERE x.id IN (
            SELECT y.id FROM media y
            WHERE y.created_at < p_before
              AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.media_id = y.id)
              AND NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_media_id = y.id)
              AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.avatar_media_id = y.id)
            ORDER BY y.created_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED)
        RETURNING x.id, x.sha256
    )
    -- (the statement's snapshot still shows the rows it deletes)
    SELECT DISTINCT g.sha256 FROM gone g
    WHERE NOT EXISTS (SELECT 1 FROM media z WHERE z.sha256 = g.sha256
                        AND z.id NOT IN (SELECT id FROM gone))
$$;

-- A message's "media" is its metadata.
CREATE OR REPLACE FUNCTION sb_message_json(m messages) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', m.id::text,
        'conversation_id', m.conversation_id::text,
        'seq', m.seq,
        'sender_id', m.sender_id::text,
        'client_id', m.client_id,
        'kind', m.kind,
        'body', CASE WHEN m.deleted_at IS NULL THEN m.body END,
        'media', CASE WHEN m.deleted_at IS NULL AND m.media_id IS NOT NULL
                      THEN sb_media_json(m.media_id) END,
        'location', CASE WHEN m.deleted_at IS NULL THEN m.location END,
        'contact', CASE WHEN m.deleted_at IS NULL THEN m.contact END,
        'reply_to', m.reply_to::text,
        'forward_of', m.forward_of::text,
        'reactions', COALESCE((
            SELECT jsonb_object_agg(emoji, users) FROM (
                SELECT emoji, jsonb_agg(user_id::text ORDER BY created_at, user_id) AS users
                FROM reactions WHERE message_id = m.id GROUP BY emoji) r), '{}'::jsonb),
        'edited_at', sb_ts(m.edited_at),
        'deleted', m.deleted_at IS NOT NULL,
        'inserted_at', sb_ts(m.inserted_at))
$$;

-- Sends: a media_id must name media the sender may read.
ALTER FUNCTION sb_message_send_locked(bigint, bigint, text, text, text, text, bigint, bigint, jsonb, jsonb)
    RENAME TO sb_message_send_locked_media_unchecked;
CREATE FUNCTION sb_message_send_locked(p_user bigint, p_conv bigint, p_client_id text, p_kind text,
                                p_body text, p_media_id text, p_reply_to bigint, p_forward_of bigint,
                                p_location jsonb, p_contact jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF p_media_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM messages WHERE sender_id = p_user AND client_id = p_client_id)
       AND NOT sb_media_readable(p_user, p_media_id) THEN
        RETURN sb_err('validation_failed', 'media_id is not media you uploaded or can see',
                      '{"media_id":"no such media"}');
    END IF;
    RETURN sb_message_send_locked_media_unchecked(p_user, p_conv, p_client_id, p_kind, p_body, p_media_id,
                                            p_reply_to, p_forward_of, p_location, p_contact);
END $$;

-- The single send (005) is the locked one under its stream lock.
CREATE OR REPLACE FUNCTION sb_message_send(p_user bigint, p_conv bigint, p_client_id text, p_kind text,
                                p_body text, p_media_id text, p_reply_to bigint, p_forward_of bigint,
                                p_location jsonb, p_contact jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sb_stream_lock(p_conv);
    RETURN sb_message_send_locked(p_user, p_conv, p_client_id, p_kind, p_body, p_media_id,
                                  p_reply_to, p_forward_of, p_location, p_contact);
END $$;

ALTER FUNCTION sb_message_send_batch(jsonb) RENAME TO sb_message_send_batch_text;
CREATE FUNCTION sb_message_send_batch(p_items jsonb) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    v_conv bigint;
    it jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_items) e WHERE jsonb_typeof(e->'m') = 'string') THEN
        RETURN QUERY SELECT * FROM sb_message_send_batch_text(p_items);
        RETURN;
    END IF;
    -- media in the batch: every stream lock first, ascending, then item by item
    FOR v_conv IN SELECT DISTINCT (e->>'c')::bigint FROM jsonb_array_elements(p_items) e ORDER BY 1
    LOOP
        PERFORM sb_stream_lock(v_conv);
    END LOOP;
    FOR it IN SELECT e FROM jsonb_array_elements(p_items) WITH ORDINALITY AS x(e, n) ORDER BY n
    LOOP
        RETURN NEXT sb_message_send_locked(
            (it->>'u')::bigint, (it->>'c')::bigint, it->>'i', it->>'k', it->>'b', it->>'m',
            (it->>'r')::bigint, (it->>'f')::bigint,
            CASE WHEN jsonb_typeof(it->'l') = 'object' THEN it->'l' END,
            CASE WHEN jsonb_typeof(it->'o') = 'object' THEN it->'o' END)::text;
    END LOOP;
    RETURN;
END $$;

-- Group avatars: media the caller may read.
ALTER FUNCTION sb_conversation_update(bigint, bigint, jsonb) RENAME TO sb_conversation_update_unchecked;
CREATE FUNCTION sb_conversation_update(p_user bigint, p_conv bigint, p_patch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(p_patch->'avatar_media_id') = 'string'
       AND EXISTS (SELECT 1 FROM members WHERE conversation_id = p_conv AND user_id = p_user)
       AND NOT sb_media_readable(p_user, p_patch->>'avatar_media_id') THEN
        RETURN sb_err('validation_failed', 'avatar_media_id is not media you uploaded or can see',
                      '{"avatar_media_id":"no such media"}');
    END IF;
    RETURN sb_conversation_update_unchecked(p_user, p_conv, p_patch);
END $$;

-- Profile avatars: media the user may read (PATCH /me updates users itself).
CREATE FUNCTION sb_users_avatar_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.avatar_media_id IS NOT NULL AND NEW.avatar_media_id IS DISTINCT FROM OLD.avatar_media_id
       AND NOT sb_media_readable(NEW.id, NEW.avatar_media_id) THEN
        RAISE EXCEPTION 'avatar_media_id' USING ERRCODE = 'SBVAL', DETAIL = 'no such media';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER users_avatar_check BEFORE UPDATE OF avatar_media_id ON users
    FOR EACH ROW EXECUTE FUNCTION sb_users_avatar_check();

-- The sweep, one node at a time: nothing (an empty set) when another node
-- holds the sweep's lock (transaction-scoped: released as this returns).
CREATE FUNCTION sb_media_sweep_locked(p_before timestamptz, p_limit int) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('sb_media_sweep')) THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM sb_media_sweep(p_before, p_limit);
END $$;
