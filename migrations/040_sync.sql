-- 040_sync: what the sync read path keeps besides the event log
-- (docs/sync.md, "Retention").

-- The prune watermark: every event at or before (tx, id) in the stable order
-- may have been deleted. Prunes delete a prefix of that order, so a cursor
-- before the watermark may have missed events and is answered 410
-- cursor_expired. One row.
CREATE TABLE sync_prune (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    tx   xid8 NOT NULL,
    id   bigint NOT NULL
);
INSERT INTO sync_prune (tx, id) VALUES ('0', 0);
