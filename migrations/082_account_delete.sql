-- 082_account_delete: deleted accounts (DELETE /api/v1/me, docs/api.md).
-- The users row stays (messages keep their sender for the others) but its
-- profile becomes the "deleted account" placeholder at once: display_name
-- 'Deleted account', about and avatar cleared, username '~<id>' (a form no
-- sign-up can choose). The former username is kept in deleted_username and
-- stays reserved until SB_ACCOUNT_USERNAME_GRACE_S after deleted_at.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
ALTER TABLE users ADD COLUMN deleted_username text;
ALTER TABLE users DROP CONSTRAINT users_username_format;
ALTER TABLE users ADD CONSTRAINT users_username_format
    CHECK (username ~ '^[a-z0-9_.]{3,32}$' OR (deleted_at IS NOT NULL AND username ~ '^~[0-9]+$'));
CREATE INDEX users_deleted_username_idx ON users (deleted_username) WHERE deleted_username IS NOT NULL;
