import CourierCore
import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL schema: the SQLite store's tables as they stand after its migration v16, in
/// PostgreSQL's words. Names are snake_case (PostgreSQL folds unquoted names to lower case);
/// the user table is `courier_user` (`user` is a reserved word). Text that is sorted (names,
/// paths, version keys) compares byte by byte (`COLLATE "C"`), as in SQLite, whatever the
/// database's locale. Times are `timestamptz`,
/// flags `boolean`. The rules a store keeps (CourierCore's) are constraints here too, as in
/// SQLite's v16: one unfinished task per package (a partial unique index), versions only going
/// up and an active administrator always (triggers that raise `field|text` messages).
enum PostgresSchema {
    /// Applied in order, each once, each in its own transaction; `courier_migration` says which ran.
    static let migrations: [(name: String, sql: [String])] = [
        ("v1-as-sqlite-v16", [
            """
            CREATE TABLE settings (
                id integer PRIMARY KEY CHECK (id = 1), virtual_domain text, global_host text, app_key text,
                signing_key_pem text, signing_key_fingerprint text,
                official_needs_approval boolean NOT NULL DEFAULT false, gray_needs_approval boolean NOT NULL DEFAULT false,
                update_req_rate integer NOT NULL DEFAULT 1800)
            """,
            "INSERT INTO settings (id) VALUES (1)",
            """
            CREATE TABLE courier_user (
                id bigserial PRIMARY KEY, name text COLLATE "C" NOT NULL UNIQUE, password_hash text NOT NULL, role text NOT NULL,
                created_at timestamptz NOT NULL, disabled boolean NOT NULL DEFAULT false)
            """,
            "CREATE UNIQUE INDEX courier_user_name_folded ON courier_user (lower(name))",
            """
            CREATE TABLE session (
                id_hash text PRIMARY KEY, user_id bigint NOT NULL REFERENCES courier_user (id) ON DELETE CASCADE,
                csrf_token text NOT NULL, expires_at timestamptz NOT NULL)
            """,
            """
            CREATE TABLE api_token (
                id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES courier_user (id) ON DELETE CASCADE,
                token_hash text NOT NULL UNIQUE, scopes text NOT NULL, created_at timestamptz NOT NULL, name text NOT NULL DEFAULT '',
                expires_at timestamptz, last_used_at timestamptz, revoked_at timestamptz, revoked_by text)
            """,
            "CREATE TABLE app (id text COLLATE \"C\" PRIMARY KEY, name text NOT NULL, type text, created_at timestamptz NOT NULL)",
            """
            CREATE TABLE package (
                id bigserial PRIMARY KEY, app_id text NOT NULL REFERENCES app (id) ON DELETE RESTRICT, version text NOT NULL,
                version_key text COLLATE "C" NOT NULL, type text NOT NULL, android_min text, android_max text, ios_min text, ios_max text,
                main_url text, extend_info text NOT NULL, download_policy text NOT NULL, install_policy text NOT NULL,
                status text NOT NULL, blob text NOT NULL, size bigint NOT NULL, md5 text NOT NULL, tar_offset bigint NOT NULL,
                tar_size bigint NOT NULL, file_count integer NOT NULL, created_at timestamptz NOT NULL, created_by text NOT NULL,
                more_settings text NOT NULL DEFAULT '{}', UNIQUE (app_id, version))
            """,
            """
            CREATE TABLE package_file (
                package_id bigint NOT NULL REFERENCES package (id) ON DELETE CASCADE, path text COLLATE "C" NOT NULL, size bigint NOT NULL,
                sha256 text NOT NULL, tar_offset bigint NOT NULL, PRIMARY KEY (package_id, path))
            """,
            """
            CREATE TABLE audit (
                id bigserial PRIMARY KEY, at text NOT NULL, "user" text COLLATE "C" NOT NULL, action text COLLATE "C" NOT NULL, subject text NOT NULL,
                detail text NOT NULL, hash text NOT NULL, app_id text, previous_id bigint)
            """,
            "CREATE INDEX audit_by_app ON audit (app_id, id)",
            // The chain's head: appending locks this row, so appends from every node queue up
            // and each links to the one before; a tail deleted by hand leaves it pointing past
            // the last row (a gap in the ids from a rolled-back append does not).
            "CREATE TABLE audit_head (id integer PRIMARY KEY CHECK (id = 1), last_id bigint NOT NULL, last_hash text NOT NULL)",
            "INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '')",
            """
            CREATE TABLE whitelist (
                id bigserial PRIMARY KEY, name text COLLATE "C" NOT NULL UNIQUE, kind text NOT NULL, created_at timestamptz NOT NULL,
                revision integer NOT NULL DEFAULT 0)
            """,
            """
            CREATE TABLE whitelist_value (
                whitelist_id bigint NOT NULL REFERENCES whitelist (id) ON DELETE CASCADE, value text NOT NULL,
                PRIMARY KEY (whitelist_id, value))
            """,
            """
            CREATE TABLE task (
                id bigserial PRIMARY KEY, package_id bigint NOT NULL REFERENCES package (id) ON DELETE RESTRICT, app_id text NOT NULL,
                version text NOT NULL, type text NOT NULL, mode text NOT NULL, whitelist_ids text NOT NULL, end_time timestamptz,
                user_count integer, percentage double precision, rules text NOT NULL, description_markdown text NOT NULL,
                status text NOT NULL, rolled_back boolean NOT NULL, created_by text NOT NULL, created_at timestamptz NOT NULL,
                approval text NOT NULL DEFAULT '', approval_for text NOT NULL DEFAULT '', requested_by text, requested_at timestamptz,
                decided_by text, decided_at timestamptz, decision_comment text NOT NULL DEFAULT '', admitted_count integer)
            """,
            "CREATE INDEX task_by_app ON task (app_id)",
            "CREATE INDEX task_by_package ON task (package_id)",
            "CREATE INDEX task_approval ON task (approval)",
            "CREATE UNIQUE INDEX task_one_unfinished_per_package ON task (package_id) WHERE status NOT IN ('finished', 'rejected')",
            """
            CREATE TABLE admission (
                task_id bigint NOT NULL REFERENCES task (id) ON DELETE CASCADE, device_id text NOT NULL, PRIMARY KEY (task_id, device_id))
            """,
            """
            CREATE TABLE task_event (
                task_id bigint NOT NULL REFERENCES task (id) ON DELETE CASCADE, event text NOT NULL, count bigint NOT NULL,
                PRIMARY KEY (task_id, event))
            """,
            """
            CREATE TABLE event_seen (
                hour bigint NOT NULL, task_id bigint NOT NULL, event text NOT NULL, device_id text NOT NULL,
                PRIMARY KEY (hour, task_id, event, device_id))
            """,
            """
            CREATE TABLE gave_up (
                task_id bigint NOT NULL REFERENCES task (id) ON DELETE CASCADE, device_key bigint NOT NULL, PRIMARY KEY (task_id, device_key))
            """,
            """
            CREATE TABLE batch_import (
                id bigserial PRIMARY KEY, key text NOT NULL UNIQUE, created_by text NOT NULL, created_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL, status text NOT NULL)
            """,
            """
            CREATE TABLE batch_import_row (
                import_id bigint NOT NULL REFERENCES batch_import (id) ON DELETE CASCADE, n integer NOT NULL, file_name text NOT NULL,
                app_id text, new_app boolean NOT NULL, type text, file_count integer NOT NULL, size bigint NOT NULL, fields text NOT NULL,
                error text, refused boolean NOT NULL, package_id bigint, PRIMARY KEY (import_id, n))
            """,
            """
            CREATE TABLE patch (
                package_id bigint NOT NULL REFERENCES package (id) ON DELETE CASCADE,
                base_package_id bigint NOT NULL REFERENCES package (id) ON DELETE CASCADE, app_id text NOT NULL, version text NOT NULL,
                base text NOT NULL, blob text, size bigint NOT NULL, changed_files integer NOT NULL, removed_files integer NOT NULL,
                created_at timestamptz NOT NULL, PRIMARY KEY (package_id, base_package_id))
            """,
            "CREATE INDEX patch_blob ON patch (blob)",
            "CREATE TABLE catalogue_version (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)",
            "INSERT INTO catalogue_version (id, version) VALUES (1, 0)",
            "CREATE TABLE lease (name text PRIMARY KEY, holder text NOT NULL, expires_at double precision NOT NULL)",
            // The rules, as in SQLite's v16 (AppFacts.checkNext, AdministratorRule).
            """
            CREATE FUNCTION package_version_rises() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM package WHERE app_id = NEW.app_id AND version_key >= NEW.version_key) THEN
                    RAISE EXCEPTION 'version|The version must be greater than the app''s highest version.';
                END IF;
                RETURN NEW;
            END $$
            """,
            "CREATE TRIGGER package_version_rises BEFORE INSERT ON package FOR EACH ROW EXECUTE FUNCTION package_version_rises()",
            """
            CREATE FUNCTION user_keeps_an_administrator() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF OLD.role = 'admin' AND NOT OLD.disabled
                   AND NOT EXISTS (SELECT 1 FROM courier_user WHERE role = 'admin' AND NOT disabled) THEN
                    RAISE EXCEPTION 'The last active administrator stays: add or enable another administrator first.';
                END IF;
                RETURN NEW;
            END $$
            """,
            "CREATE TRIGGER user_keeps_an_administrator AFTER UPDATE OF role, disabled ON courier_user FOR EACH ROW EXECUTE FUNCTION user_keeps_an_administrator()",
        ]),
        // The sign-in throttle's counts, shared by the nodes (SignInLedger); a backup does not
        // carry them. One row per key an attempt counts under, all with the attempt's id.
        ("v2-sign-in-attempts", [
            "CREATE TABLE sign_in_attempt (id text NOT NULL, key text NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (id, key))",
            "CREATE INDEX sign_in_attempt_by_key ON sign_in_attempt (key, at)",
            "CREATE INDEX sign_in_attempt_by_time ON sign_in_attempt (at)",
        ]),
        // How many devices each time window holds, kept by the database as admissions come and
        // go (one statement-level trigger each way): `admit` reads one row instead of counting a
        // million. Derived from `admission`, so a backup does not carry it; a restore rebuilds it.
        ("v3-admission-counts", [
            // Nodes of the version before may still be admitting: none may add a row between the
            // count below and the trigger that follows.
            "LOCK TABLE admission IN SHARE ROW EXCLUSIVE MODE",
            "CREATE TABLE admission_count (task_id bigint PRIMARY KEY REFERENCES task (id) ON DELETE CASCADE, n bigint NOT NULL)",
            "INSERT INTO admission_count (task_id, n) SELECT task_id, COUNT(*) FROM admission GROUP BY task_id",
            """
            CREATE FUNCTION admission_added() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO admission_count (task_id, n) SELECT task_id, COUNT(*) FROM added GROUP BY task_id
                ON CONFLICT (task_id) DO UPDATE SET n = admission_count.n + excluded.n;
                RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER admission_added AFTER INSERT ON admission REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION admission_added()",
            """
            CREATE FUNCTION admission_removed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE admission_count c SET n = c.n - g.k FROM (SELECT task_id, COUNT(*) AS k FROM removed GROUP BY task_id) g
                WHERE c.task_id = g.task_id;
                RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER admission_removed AFTER DELETE ON admission REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION admission_removed()",
        ]),
        // Release health (issue 21), as SQLite's v18: hourly counters, sketches, ramps.
        ("v4-release-health", [
            "ALTER TABLE task ADD COLUMN ramp text NOT NULL DEFAULT ''",
            """
            CREATE TABLE task_hour (task_id bigint NOT NULL REFERENCES task (id) ON DELETE CASCADE, hour bigint NOT NULL,
                event text COLLATE "C" NOT NULL, count bigint NOT NULL, PRIMARY KEY (task_id, hour, event))
            """,
            """
            CREATE TABLE sketch (kind text COLLATE "C" NOT NULL, subject text COLLATE "C" NOT NULL, hour bigint NOT NULL,
                registers text NOT NULL, PRIMARY KEY (kind, subject, hour))
            """,
            """
            CREATE TABLE revocation (package_id bigint PRIMARY KEY REFERENCES package (id) ON DELETE CASCADE, app_id text COLLATE "C" NOT NULL,
                version text COLLATE "C" NOT NULL, reason text NOT NULL, revoked_by text NOT NULL, revoked_at timestamptz NOT NULL)
            """,
            """
            CREATE TABLE webhook (id integer PRIMARY KEY CHECK (id = 1), url text NOT NULL, secret text NOT NULL, set_by text NOT NULL,
                set_at timestamptz NOT NULL)
            """,
        ]),
    ]

    /// Brings the database up to date. Several nodes starting together queue on an advisory
    /// lock; each finds what the first one applied.
    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        try await client.withConnection { c in
            try await c.query("SELECT pg_advisory_lock(\(lockKey))", logger: logger)
            do {
                try await c.query("CREATE TABLE IF NOT EXISTS courier_migration (name text PRIMARY KEY, applied_at timestamptz NOT NULL)",
                                  logger: logger)
                var applied = Set<String>()
                for try await name in try await c.query("SELECT name FROM courier_migration", logger: logger).decode(String.self) {
                    applied.insert(name)
                }
                for m in migrations where !applied.contains(m.name) {
                    try await c.query("BEGIN", logger: logger)
                    do {
                        for statement in m.sql { try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                        try await c.query("INSERT INTO courier_migration (name, applied_at) VALUES (\(m.name), now())", logger: logger)
                        try await c.query("COMMIT", logger: logger)
                    } catch {
                        _ = try? await c.query("ROLLBACK", logger: logger)
                        throw error
                    }
                    logger.info("migration applied", metadata: ["name": "\(m.name)"])
                }
            } catch {
                _ = try? await c.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
                throw error
            }
            try await c.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
        }
    }

    /// "Courier" in ASCII: the advisory lock migrations take.
    static let lockKey: Int64 = 0x436F_7572_6965_72
}
