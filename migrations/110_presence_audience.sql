-- 110_presence_audience: who is told when a user goes online or offline
-- (issue 20, docs/api.md "Online state").
--
-- A `presence` push goes to the users who share a direct conversation with
-- the user and to the co-members of groups of at most p_group_max members
-- (SB_PRESENCE_GROUP_MAX). Members of larger groups read online state on
-- demand (the member list, GET /users/:id): a login in a group of n members
-- would otherwise cost n pushes, n^2 for a wave of logins.
--
-- sb_presence_hidden(subject, viewer) is THE hook that hides a user's
-- online state from a viewer: every path that reveals it (these pushes, the
-- member list, the online count, GET /users/:id) asks it. It is true when
-- the subject blocks the viewer (api.md: a blocked user cannot see the
-- blocker's presence), read from the `blocks` table of the safety issue's
-- migration (080_moderation) once that table exists; before, nothing is
-- hidden. (plpgsql: the blocks query is planned only when it runs, so this
-- migration does not depend on 080 being applied first.)

CREATE FUNCTION sb_presence_hidden(p_subject bigint, p_viewer bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_subject = p_viewer OR to_regclass('blocks') IS NULL THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = p_subject AND b.blocked_id = p_viewer);
END $$;

-- The users to push p_user's online transitions to.
CREATE FUNCTION sb_presence_audience(p_user bigint, p_group_max int) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT m2.user_id
    FROM members m1
    JOIN conversations c ON c.id = m1.conversation_id
    JOIN members m2 ON m2.conversation_id = m1.conversation_id
    WHERE m1.user_id = p_user AND m2.user_id <> p_user
      AND (c.kind = 'direct'
           -- a group's size, counted no further than the limit
           OR (SELECT count(*) FROM (SELECT 1 FROM members m3 WHERE m3.conversation_id = c.id
                                     LIMIT p_group_max + 1) k) <= p_group_max)
      AND NOT sb_presence_hidden(p_user, m2.user_id)
$$;

-- Members page of a conversation p_user belongs to, ordered by user id,
-- now with each member's stored last_seen_at and whether p_user may see
-- their online state (the server adds `online` from its live table).
CREATE OR REPLACE FUNCTION sb_members_list(p_user bigint, p_conv bigint, p_after bigint, p_limit int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM members WHERE conversation_id = p_conv AND user_id = p_user) THEN
        RETURN sb_err('not_found', 'no such conversation');
    END IF;
    SELECT COALESCE(jsonb_agg(jsonb_build_object('user_id', x.user_id::text, 'role', x.role,
                                                 'joined_at', sb_ts(x.joined_at),
                                                 'last_seen_at', CASE WHEN x.hidden THEN NULL
                                                                      ELSE sb_ts(x.last_seen_at) END,
                                                 '_hidden', x.hidden) ORDER BY x.user_id), '[]')
    INTO v FROM (SELECT m.user_id, m.role, m.joined_at, u.last_seen_at,
                        m.user_id <> p_user AND sb_presence_hidden(m.user_id, p_user) AS hidden
                 FROM members m JOIN users u ON u.id = m.user_id
                 WHERE m.conversation_id = p_conv AND m.user_id > COALESCE(p_after, 0)
                 ORDER BY m.user_id LIMIT p_limit) x;
    RETURN jsonb_build_object('items', v);
END $$;
