-- Machine calibration for `./scripts/bench api`: the kind of run the reference
-- figures quote ("pgbench, single-row insert transactions under forced RLS":
-- 5,971/s on the machine the original stack was measured on). Run here, it
-- tells how this machine compares, so the original stack's figures can be
-- scaled to it. The table is the bench's own, created by scripts/bench: one
-- row per transaction, ~500 bytes, row-level security forced, as xentri_api.
\set org random(1, 100)
BEGIN;
SELECT set_config('role', 'xentri_api', true),
       set_config('app.org_id', '00000000-0000-7000-8000-' || lpad(:org::text, 12, '0'), true);
INSERT INTO bench_rls_insert (org_id, payload)
VALUES (current_setting('app.org_id')::uuid,
        '{"soul_id":"soul-pgbench","display_name":"Bench Soul 42","revision":42,"locale":"en-GB","tags":["bench","load","soul"],"bio":"Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. "}');
COMMIT;
