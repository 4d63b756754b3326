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
-- generation never repeats. SQL Server's sequence cache belongs to the
-- instance, not to a session, so values are still handed out in increasing
-- order; cached values lost in a crash leave gaps, never a step back.
CREATE SEQUENCE [$(SCHEMA)].[proxy_reservation_generation]
    AS bigint START WITH 1 INCREMENT BY 1 NO CYCLE CACHE 100;
GO

-- The columns id, ip_address, target_domain, app_id, reserved_at,
-- ttl_seconds and released keep the names and meanings of the original
-- design (as in store-postgres), so its applications can share the table: a
-- row expires at DATEADD(second, ttl_seconds, reserved_at). The extra
-- columns have defaults or allow NULL. Times are UTC on the server's clock
-- (SYSUTCDATETIME()); no application clock is ever written here.
--
-- The key columns use a binary collation: SQL Server's default collations
-- are usually case-insensitive, and every collation ignores trailing spaces
-- in comparisons. Keys arrive normalised (canonical IP text; domains
-- lower-case ASCII, punycode, no spaces), so one key has one spelling and
-- a binary comparison is exact and cheap. app_id is Unicode and compared
-- literally too ('App' and 'app' are two apps, as everywhere else).
CREATE TABLE [$(SCHEMA)].[proxy_reservation] (
    id            bigint IDENTITY(1, 1) NOT NULL,
    ip_address    varchar(45)  COLLATE Latin1_General_100_BIN2 NOT NULL,
    target_domain varchar(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    app_id        nvarchar(64) COLLATE Latin1_General_100_BIN2 NOT NULL,
    reserved_at   datetime2(7) NOT NULL
        CONSTRAINT df_proxy_reservation_reserved_at DEFAULT (SYSUTCDATETIME()),
    ttl_seconds   int NOT NULL
        CONSTRAINT df_proxy_reservation_ttl_seconds DEFAULT (1800),
    released      bit NOT NULL
        CONSTRAINT df_proxy_reservation_released DEFAULT (0),
    -- Fencing token: strictly increasing per key, also across purges.
    generation    bigint NOT NULL
        CONSTRAINT df_proxy_reservation_generation
        DEFAULT (NEXT VALUE FOR [$(SCHEMA)].[proxy_reservation_generation]),
    -- When the row was released: by its holder or an operator (before its
    -- expiry), or by a takeover (set to the moment it expired).
    released_at   datetime2(7) NULL,
    -- 1 while the row is a cooldown hold owned by nobody.
    cooling_down  bit NOT NULL
        CONSTRAINT df_proxy_reservation_cooling_down DEFAULT (0),
    CONSTRAINT pk_proxy_reservation PRIMARY KEY CLUSTERED (id)
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
CREATE NONCLUSTERED INDEX ix_proxy_reservation_unreleased
    ON [$(SCHEMA)].[proxy_reservation] (reserved_at) INCLUDE (ttl_seconds)
    WHERE released = 0;
GO
