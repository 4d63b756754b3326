-- proxy-reserve: reservation table for SQL Server (store-mssql).
--
-- $(SCHEMA) is the store's schema (dbo unless configured). It is sqlcmd's
-- scripting-variable syntax, so a DBA can also run this file by hand:
--     sqlcmd -S host -d database -v SCHEMA=dbo -i 0001_proxy_reservation.sql
-- store-mssql runs it through MssqlStore::migrate(), one GO-separated batch
-- at a time inside one transaction, and records it in
-- $(SCHEMA).proxy_reservation_migrations.
--
-- Writes to a table with a filtered index fail (error 1934) unless the
-- session has these SET options; the store sets and checks them on every
-- connection, and the objects below must be created with them too.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET ANSI_PADDING ON;
SET ANSI_WARNINGS ON;
SET ARITHABORT ON;
SET CONCAT_NULL_YIELDS_NULL ON;
SET NUMERIC_ROUNDABORT OFF;
GO

-- Fencing generations. A sequence, not MAX(generation) + 1: it keeps
-- increasing for every key even after old rows are purged. NO CYCLE: a
-- generation never repeats. Cached values lost in a crash leave gaps, never
-- a step back.
CREATE SEQUENCE [$(SCHEMA)].[proxy_reservation_generation]
    AS bigint START WITH 1 INCREMENT BY 1 NO CYCLE CACHE 100;
GO

-- Times are UTC on the server's clock (SYSUTCDATETIME()); no application
-- clock is ever written here.
--
-- The key columns use a binary collation: SQL Server's default collations
-- are usually case-insensitive, and every collation ignores trailing spaces
-- in comparisons. Keys arrive normalised (canonical IP text; domains
-- lower-case ASCII, punycode, no spaces), so one key has one spelling and
-- a binary comparison is exact and cheap. app_id is Unicode and compared
-- literally too ('App' and 'app' are two apps, as everywhere else).
CREATE TABLE [$(SCHEMA)].[proxy_reservation] (
    id             bigint IDENTITY(1, 1) NOT NULL,
    ip_address     varchar(45)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    target_domain  varchar(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    app_id         nvarchar(64) COLLATE Latin1_General_100_BIN2 NOT NULL,
    reserved_at    datetime2(7) NOT NULL,
    ttl_seconds    int NOT NULL
        CONSTRAINT df_proxy_reservation_ttl_seconds DEFAULT (1800),
    released       bit NOT NULL
        CONSTRAINT df_proxy_reservation_released DEFAULT (0),
    -- Fencing token, from proxy_reservation_generation.
    generation     bigint NOT NULL,
    expires_at     datetime2(7) NOT NULL,
    released_at    datetime2(7) NULL,
    -- 'released' (by its holder or an operator) or 'expired' (ended by its
    -- TTL and released when the key was taken over).
    release_reason varchar(8) NULL,
    -- 1 while the row is a cooldown hold owned by nobody.
    cooldown       bit NOT NULL
        CONSTRAINT df_proxy_reservation_cooldown DEFAULT (0),
    CONSTRAINT pk_proxy_reservation PRIMARY KEY CLUSTERED (id),
    CONSTRAINT ck_proxy_reservation_ttl_seconds CHECK (ttl_seconds > 0),
    CONSTRAINT ck_proxy_reservation_release_reason
        CHECK (release_reason IN ('released', 'expired')),
    CONSTRAINT ck_proxy_reservation_released_at
        CHECK ((released = 0 AND released_at IS NULL AND release_reason IS NULL)
            OR (released = 1 AND released_at IS NOT NULL AND release_reason IS NOT NULL))
);
GO

-- The arbiter: at most one unreleased row (held, cooling down, or expired
-- but not yet taken over) per key. Every reserver relies on this index,
-- never on a read followed by a write.
CREATE UNIQUE NONCLUSTERED INDEX uq_proxy_reservation_ip_address
    ON [$(SCHEMA)].[proxy_reservation] (ip_address, target_domain)
    WHERE released = 0;

-- Listings by domain and by app, newest first.
CREATE NONCLUSTERED INDEX ix_proxy_reservation_domain
    ON [$(SCHEMA)].[proxy_reservation] (target_domain, reserved_at DESC);
CREATE NONCLUSTERED INDEX ix_proxy_reservation_app
    ON [$(SCHEMA)].[proxy_reservation] (app_id, reserved_at DESC);

-- Purge of released history, and of expired rows nobody took over.
CREATE NONCLUSTERED INDEX ix_proxy_reservation_released_at
    ON [$(SCHEMA)].[proxy_reservation] (released_at)
    WHERE released = 1;
CREATE NONCLUSTERED INDEX ix_proxy_reservation_expires_at
    ON [$(SCHEMA)].[proxy_reservation] (expires_at)
    WHERE released = 0;
GO
