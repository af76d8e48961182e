/* migrate.h — the database schema, as numbered SQL files applied in order.
 *
 * A migration is a file "<version>_<name>.sql" in the migrations folder
 * (version: decimal digits, unique; "001_accounts.sql"). migrate_run applies
 * every file whose version is not yet in schema_migrations(version, name,
 * applied_at), in increasing version order, each in its own transaction
 * together with its schema_migrations row, so each is applied exactly once.
 * A session-level advisory lock serialises concurrent runs (several nodes
 * starting at once): the second waits, then finds nothing left to do.
 * Migration files must not contain transaction control (BEGIN/COMMIT) or
 * statements that cannot run inside a transaction (CREATE INDEX
 * CONCURRENTLY). Blocking libpq: call it before the reactors start. */
#ifndef SB_MIGRATE_H
#define SB_MIGRATE_H

#include <stddef.h>

/* Applies the pending migrations of `dir` to the database at conninfo.
 * Returns 0 on success (logging each migration applied), or -1 with a
 * message in err (the failing migration is rolled back; earlier ones stay
 * applied). A database that has a version this folder lacks is not an
 * error (a newer node migrated it). */
int migrate_run(const char *conninfo, const char *dir, char *err, size_t errlen);

/* Parses a migration file name: returns its version (>= 0) and points
 * name / namelen at the part between "_" and ".sql", or -1 if the file is
 * not a migration ("<digits>_<name>.sql", name non-empty). */
long long migrate_parse_name(const char *file, const char **name, size_t *namelen);

#endif
