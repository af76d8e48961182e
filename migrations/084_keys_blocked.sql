-- 084_keys_blocked: the key directory's block hook (050_keys.sql,
-- sb_keys_blocked) made real: a user who blocks the requester has, for the
-- requester, no keys (GET /api/v1/keys/:user_id answers 404; targets.md S9),
-- and no one-time prekey of theirs is taken.
CREATE OR REPLACE FUNCTION sb_keys_blocked(p_requester bigint, p_target bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT sb_blocks(p_target, p_requester) $$;
