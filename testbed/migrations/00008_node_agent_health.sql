-- +goose Up
-- The health a node's own agent imposed on it (draining or down, as its Slurm reports the node); '' when it
-- imposed none. A "ready" report lifts only that: a drain staff set stays until staff lift it.
ALTER TABLE testbed_nodes ADD COLUMN agent_health TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE testbed_nodes DROP COLUMN agent_health;
