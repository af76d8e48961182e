-- 125_account_media: deleting an account (082, DELETE /api/v1/me) deletes
-- the user's media that nothing left for the others references. Media
-- (layer 9) sits above accounts (layer 6): accounts' statement only marks
-- the users row deleted, and this trigger on that change deletes, in the
-- same transaction, every media row the user uploaded that is referenced by
--   * no message that stays for someone else (a message carrying it in a
--     conversation with another member, or sent by another user: messages
--     stay for the others, so their media stays readable), and
--   * no profile avatar (the user's own is cleared by the same statement)
--     and no group avatar.
-- Their files are removed by the media sweep (media_sweep.c), which deletes
-- files that no media row names any more once they are past its grace
-- period (so another user's identical upload keeps the file).
CREATE FUNCTION sb_media_account_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM media x
    WHERE x.owner_id = NEW.id
      AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.media_id = x.id
                        AND (m.sender_id <> NEW.id
                             OR EXISTS (SELECT 1 FROM members mb WHERE mb.conversation_id = m.conversation_id
                                          AND mb.user_id <> NEW.id)))
      AND NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_media_id = x.id AND u.id <> NEW.id)
      AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.avatar_media_id = x.id);
    RETURN NULL;
END $$;
CREATE TRIGGER users_deleted_media AFTER UPDATE OF deleted_at ON users
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION sb_media_account_deleted();
