-- pgbench script: the bare equivalent of one loop of the store harness
-- (testkit::bench::run_store_bench): reserve a random key of 100 000 with
-- INSERT ... ON CONFLICT ... DO NOTHING RETURNING id, and if that reserved
-- it, release it by id. Same table shape as the store's (run
-- `cargo run --release -p store-postgres --example postgres-bench` once to create
-- proxy_bench.proxy_reservation), no expiry takeover, no generation check.
--
--   pgbench -M prepared -c 8 -T 20 -n -f store-postgres/bench/reserve_release.sql \
--       postgres://postgres@127.0.0.1:5432/test
\set n random(0, 99999)
\set id 0
INSERT INTO proxy_bench.proxy_reservation (ip_address, target_domain, app_id, reserved_at, ttl_seconds)
VALUES ('10.' || (:n::int >> 16) || '.' || ((:n::int >> 8) & 255) || '.' || (:n::int & 255),
        'd' || (:n::int % 64) || '.pgbench.bench.test', 'pgbench', now(), 30)
ON CONFLICT (ip_address, target_domain) WHERE released = false DO NOTHING
RETURNING id \aset
\if :id > 0
UPDATE proxy_bench.proxy_reservation SET released = true, released_at = now() WHERE id = :id;
\endif
