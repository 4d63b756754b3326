-- proxy-reserve: reservation table for SQLite (store-sqlite).
--
-- Times are milliseconds since the Unix epoch on SQLite's clock
-- (unixepoch('subsec')); no application clock is ever written here.
-- STRICT keeps a stray writer from storing text where a number belongs.

CREATE TABLE proxy_reservation (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ip_address     TEXT    NOT NULL,
    target_domain  TEXT    NOT NULL,
    app_id         TEXT    NOT NULL,
    reserved_at    INTEGER NOT NULL,
    ttl_seconds    INTEGER NOT NULL DEFAULT 1800,
    released       INTEGER NOT NULL DEFAULT 0 CHECK (released IN (0, 1)),
    -- Fencing token: drawn from proxy_generation_counter, so it keeps
    -- increasing per key even after old rows are purged.
    generation     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    -- 1 while the row is a cooldown hold owned by nobody.
    cooling_down   INTEGER NOT NULL DEFAULT 0 CHECK (cooling_down IN (0, 1)),
    released_at    INTEGER,
    -- 'released' (by its holder or an operator) or 'expired' (ended by its
    -- TTL and released when the key was taken over).
    release_reason TEXT CHECK (release_reason IN ('released', 'expired')),
    CHECK ((released = 0) = (released_at IS NULL)),
    CHECK ((released = 0) = (release_reason IS NULL))
) STRICT;

-- The arbiter: at most one unreleased row (held, cooling down, or expired but
-- not yet taken over) per key. Every reserver relies on this index, never on
-- a read followed by a write.
CREATE UNIQUE INDEX uq_proxy_reservation_ip_address
    ON proxy_reservation (ip_address, target_domain)
    WHERE released = 0;

-- Listings by domain and by app, newest first.
CREATE INDEX ix_proxy_reservation_domain
    ON proxy_reservation (target_domain, reserved_at);
CREATE INDEX ix_proxy_reservation_app
    ON proxy_reservation (app_id, reserved_at);

-- Purge of released history, and of expired rows nobody took over.
CREATE INDEX ix_proxy_reservation_released_at
    ON proxy_reservation (released_at)
    WHERE released = 1;
CREATE INDEX ix_proxy_reservation_expires_at
    ON proxy_reservation (expires_at)
    WHERE released = 0;

-- One row: the last generation handed out. A global counter is strictly
-- increasing per key as well, and unlike MAX(generation) it survives purges.
-- Writers take `last_generation + 1` in the statement that grants a lease or
-- starts a cooldown; the triggers below record it in that same statement, so
-- each grant stays a single atomic statement.
CREATE TABLE proxy_generation_counter (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_generation INTEGER NOT NULL
) STRICT;

INSERT INTO proxy_generation_counter (id, last_generation) VALUES (1, 0);

CREATE TRIGGER proxy_reservation_generation_on_insert
AFTER INSERT ON proxy_reservation
BEGIN
    UPDATE proxy_generation_counter
    SET last_generation = NEW.generation
    WHERE id = 1 AND last_generation < NEW.generation;
END;

CREATE TRIGGER proxy_reservation_generation_on_update
AFTER UPDATE OF generation ON proxy_reservation
BEGIN
    UPDATE proxy_generation_counter
    SET last_generation = NEW.generation
    WHERE id = 1 AND last_generation < NEW.generation;
END;
