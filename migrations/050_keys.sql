-- 050_keys: the end-to-end-encryption key directory (api.md "End-to-end
-- encryption key directory", docs/keys.md). The server stores public keys
-- only (base64 text, validated and bounded by the caller, keys/keys.c) and
-- never sees plaintext.

-- One bundle per user: the identity key, the current signed prekey and the
-- optional last-resort prekey. A new identity key replaces the bundle.
CREATE TABLE e2e_bundles (
    user_id             bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    identity_key        text NOT NULL,
    signed_prekey_id    bigint NOT NULL,
    signed_prekey       text NOT NULL,
    signed_prekey_sig   text NOT NULL,
    last_resort_id      bigint,
    last_resort_key     text,
    last_resort_sig     text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One-time prekeys: each row is handed out once (deleted as it is).
CREATE TABLE e2e_prekeys (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id      bigint NOT NULL,
    public_key  text NOT NULL,
    PRIMARY KEY (user_id, key_id)
);

-- prekeys_low bookkeeping, apart from the bundle row so that concurrent
-- fetches (which hold the bundle row FOR SHARE) can set it without waiting
-- for each other's share locks: low_notified is set by the fetch that takes
-- the count below the threshold (once per crossing) and cleared by an
-- upload that brings it back to the threshold or above.
CREATE TABLE e2e_prekey_state (
    user_id       bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    low_notified  boolean NOT NULL DEFAULT false
);

-- HOOK for the blocks issue: true when p_target has blocked p_requester
-- (then GET /keys/:user_id answers 404, as if the user had no keys). No
-- blocks exist yet: the blocks migration replaces this function
-- (CREATE OR REPLACE) with the real check.
CREATE FUNCTION sb_keys_blocked(p_requester bigint, p_target bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT false $$;

-- Uploads keys for p_user. p_keys is the validated request body:
-- {identity_key, signed_prekey:{id,public_key,signature},
--  one_time_prekeys:[{id,public_key}], last_resort_prekey?:{id,public_key,signature}}.
-- A different identity key (or the first upload) replaces the whole bundle
-- (stored one-time prekeys and last-resort key are dropped); the same one
-- rotates the signed prekey, replaces the last-resort key when given and
-- adds the one-time prekeys. At most p_max one-time prekeys stay stored;
-- their ids are unique per user. A changed identity key appends
-- keys:changed {user_id} to the private stream of every contact (users who
-- share a conversation): those streams are locked first, in ascending
-- stream order, before any write (docs/sync.md, "The write rule"; no other
-- write locks two user streams, and none holding a user stream waits for a
-- conversation, so this cannot deadlock). Returns {"count", "changed"} or
-- an sb_err.
CREATE FUNCTION sb_keys_put(p_user bigint, p_keys jsonb, p_max int, p_low int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_old text;
    v_new text := p_keys->>'identity_key';
    v_replace boolean;
    v_announce boolean;
    v_contacts bigint[];
    v_c bigint;
    v_count int;
    v_dup text;
BEGIN
    -- one upload per user at a time (two-key advisory space: never taken
    -- by the stream locks, which use the one-bigint form)
    PERFORM pg_advisory_xact_lock(50, hashint8(p_user));
    SELECT identity_key INTO v_old FROM e2e_bundles WHERE user_id = p_user;
    v_replace := v_old IS NULL OR v_old <> v_new;
    v_announce := v_old IS NOT NULL AND v_old <> v_new;
    IF v_announce THEN
        SELECT array_agg(c ORDER BY -c) INTO v_contacts FROM sb_contacts(p_user) c;
        FOREACH v_c IN ARRAY COALESCE(v_contacts, '{}') LOOP
            PERFORM sb_stream_lock(-v_c);
        END LOOP;
    END IF;
    -- the checks that need the database (reads: no xid yet)
    IF NOT v_replace THEN
        SELECT string_agg(k->>'id', ',') INTO v_dup
        FROM jsonb_array_elements(p_keys->'one_time_prekeys') k
        WHERE EXISTS (SELECT 1 FROM e2e_prekeys p WHERE p.user_id = p_user AND p.key_id = (k->>'id')::bigint);
        IF v_dup IS NOT NULL THEN
            RETURN sb_err('validation_failed', 'one-time prekey ids already stored: ' || v_dup,
                          jsonb_build_object('one_time_prekeys', 'ids already stored: ' || v_dup));
        END IF;
        SELECT count(*) INTO v_count FROM e2e_prekeys WHERE user_id = p_user;
    ELSE
        v_count := 0;
    END IF;
    IF v_count + jsonb_array_length(p_keys->'one_time_prekeys') > p_max THEN
        RETURN sb_err('validation_failed',
                      format('at most %s one-time prekeys may be stored (%s are)', p_max, v_count),
                      jsonb_build_object('one_time_prekeys', format('at most %s may be stored', p_max)));
    END IF;
    -- writes: the bundle row first (fetches hold it FOR SHARE)
    INSERT INTO e2e_bundles AS b (user_id, identity_key, signed_prekey_id, signed_prekey, signed_prekey_sig,
                                  last_resort_id, last_resort_key, last_resort_sig)
    VALUES (p_user, v_new, (p_keys->'signed_prekey'->>'id')::bigint, p_keys->'signed_prekey'->>'public_key',
            p_keys->'signed_prekey'->>'signature', (p_keys->'last_resort_prekey'->>'id')::bigint,
            p_keys->'last_resort_prekey'->>'public_key', p_keys->'last_resort_prekey'->>'signature')
    ON CONFLICT (user_id) DO UPDATE SET
        identity_key = EXCLUDED.identity_key,
        signed_prekey_id = EXCLUDED.signed_prekey_id,
        signed_prekey = EXCLUDED.signed_prekey,
        signed_prekey_sig = EXCLUDED.signed_prekey_sig,
        last_resort_id = CASE WHEN v_replace OR p_keys ? 'last_resort_prekey' THEN EXCLUDED.last_resort_id ELSE b.last_resort_id END,
        last_resort_key = CASE WHEN v_replace OR p_keys ? 'last_resort_prekey' THEN EXCLUDED.last_resort_key ELSE b.last_resort_key END,
        last_resort_sig = CASE WHEN v_replace OR p_keys ? 'last_resort_prekey' THEN EXCLUDED.last_resort_sig ELSE b.last_resort_sig END,
        updated_at = now();
    IF v_replace THEN
        DELETE FROM e2e_prekeys WHERE user_id = p_user;
    END IF;
    INSERT INTO e2e_prekeys (user_id, key_id, public_key)
    SELECT p_user, (k->>'id')::bigint, k->>'public_key'
    FROM jsonb_array_elements(p_keys->'one_time_prekeys') k;
    v_count := v_count + jsonb_array_length(p_keys->'one_time_prekeys');
    -- back at the threshold or above: the next drop below it notifies again
    INSERT INTO e2e_prekey_state AS s (user_id, low_notified) VALUES (p_user, false)
    ON CONFLICT (user_id) DO UPDATE SET low_notified = false
    WHERE s.low_notified AND v_count >= p_low;
    IF v_announce THEN
        FOREACH v_c IN ARRAY COALESCE(v_contacts, '{}') LOOP
            PERFORM sb_event_append(-v_c, 'keys:changed', jsonb_build_object('user_id', p_user::text));
        END LOOP;
    END IF;
    RETURN jsonb_build_object('count', v_count, 'changed', v_announce);
END $$;

-- The bundle of p_target for p_requester, taking one one-time prekey: the
-- lowest id not being taken by a concurrent fetch (one DELETE ... RETURNING
-- over a FOR UPDATE SKIP LOCKED pick, so no key is handed out twice and
-- concurrent fetches do not wait for each other). None left: one_time_prekey
-- is null and the last-resort prekey (if any) is in the answer. When the
-- count left drops below p_low and the owner was not yet told, "low" holds
-- the count (the caller sends prekeys_low). Returns
-- {identity_key, signed_prekey, one_time_prekey, last_resort_prekey?, low?}
-- or an sb_err (not_found: no such user, no keys, or blocked).
CREATE FUNCTION sb_keys_fetch(p_requester bigint, p_target bigint, p_low int) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    b e2e_bundles;
    v_id bigint;
    v_pk text;
    v_count int;
    r jsonb;
BEGIN
    IF sb_keys_blocked(p_requester, p_target) THEN
        RETURN sb_err('not_found', 'this user has no keys');
    END IF;
    -- FOR SHARE: an upload replacing the bundle waits, so the prekey taken
    -- below belongs to the identity read here
    SELECT * INTO b FROM e2e_bundles WHERE user_id = p_target FOR SHARE;
    IF b.user_id IS NULL THEN
        RETURN sb_err('not_found', 'this user has no keys');
    END IF;
    DELETE FROM e2e_prekeys p
    WHERE (p.user_id, p.key_id) = (SELECT q.user_id, q.key_id FROM e2e_prekeys q
                                   WHERE q.user_id = p_target ORDER BY q.key_id
                                   LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING p.key_id, p.public_key INTO v_id, v_pk;
    r := jsonb_build_object(
        'user_id', p_target::text,
        'identity_key', b.identity_key,
        'signed_prekey', jsonb_build_object('id', b.signed_prekey_id, 'public_key', b.signed_prekey,
                                            'signature', b.signed_prekey_sig),
        'one_time_prekey', CASE WHEN v_id IS NOT NULL
                                THEN jsonb_build_object('id', v_id, 'public_key', v_pk) END);
    IF v_id IS NULL AND b.last_resort_key IS NOT NULL THEN
        r := r || jsonb_build_object('last_resort_prekey', jsonb_build_object(
            'id', b.last_resort_id, 'public_key', b.last_resort_key, 'signature', b.last_resort_sig));
    END IF;
    IF v_id IS NOT NULL THEN
        -- a fresh snapshot: sees every fetch committed so far
        SELECT count(*) INTO v_count FROM e2e_prekeys WHERE user_id = p_target;
        IF v_count < p_low THEN
            UPDATE e2e_prekey_state SET low_notified = true
            WHERE user_id = p_target AND NOT low_notified;
            IF FOUND THEN
                r := r || jsonb_build_object('low', v_count);
            END IF;
        END IF;
    END IF;
    RETURN r;
END $$;
