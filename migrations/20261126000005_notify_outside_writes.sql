-- A NOTIFY inside the write transaction takes PostgreSQL's notification lock
-- from pre-commit until the commit ends, serialising every appending
-- transaction's commit (no group commit). The api and the job scheduler now
-- notify after their commit, coalesced; the relay also polls.
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
