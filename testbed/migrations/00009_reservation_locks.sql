-- +goose Up
-- One row per pool and GPU model, locked (SELECT … FOR UPDATE on Postgres; SQLite's immediate transactions
-- serialise every writer) by Reserve around its capacity check and insert, so that two testbed replicas can
-- never both book the last devices of a window (docs/deployment.md, "Sessions, revocation and replicas").
-- Reservations book GPU counts, not devices: "the sum of overlapping counts stays within capacity" is no
-- constraint a database can state, so the check is serialised instead.
CREATE TABLE testbed_reservation_locks (
    pool_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    PRIMARY KEY (pool_id, gpu_model)
);

-- +goose Down
DROP TABLE testbed_reservation_locks;
