-- pgbench script: the store's own two statements (as PostgresStore sends
-- them for the default table in schema proxy_bench): the reserve attempt
-- INSERT ... ON CONFLICT ... DO UPDATE ... WHERE <expired>, and the release
-- by key, id and generation. Compare with reserve_release.sql (the bare
-- equivalent) to see what the statements cost on the server, apart from
-- the client library.
--
--   pgbench -M prepared -c 8 -T 20 -n -f store-postgres/bench/store_statements.sql \
--       postgres://postgres@127.0.0.1:5432/test
\set n random(0, 99999)
\set id 0
INSERT INTO proxy_bench.proxy_reservation AS r (ip_address, target_domain, app_id, reserved_at, ttl_seconds) VALUES (('10.' || (:n::int >> 16) || '.' || ((:n::int >> 8) & 255) || '.' || (:n::int & 255))::varchar, ('d' || (:n::int % 64) || '.pgbench-store.bench.test')::varchar, 'pgbench'::varchar, clock_timestamp(), 30::integer) ON CONFLICT (ip_address, target_domain) WHERE released = false DO UPDATE SET id = EXCLUDED.id, generation = EXCLUDED.generation, app_id = EXCLUDED.app_id, reserved_at = clock_timestamp(), ttl_seconds = EXCLUDED.ttl_seconds, cooling_down = false, released_at = NULL WHERE (r.reserved_at + r.ttl_seconds * interval '1 second') <= clock_timestamp() RETURNING r.id, r.generation AS gen, r.reserved_at, (r.reserved_at + r.ttl_seconds * interval '1 second') AS expires_at \aset
\if :id > 0
UPDATE proxy_bench.proxy_reservation AS r SET released = true, released_at = clock_timestamp() WHERE r.ip_address = ('10.' || (:n::int >> 16) || '.' || ((:n::int >> 8) & 255) || '.' || (:n::int & 255))::varchar AND r.target_domain = ('d' || (:n::int % 64) || '.pgbench-store.bench.test')::varchar AND r.released = false AND r.id = :id::bigint AND r.generation = :gen::bigint AND r.cooling_down = false AND (r.reserved_at + r.ttl_seconds * interval '1 second') > clock_timestamp();
\endif
