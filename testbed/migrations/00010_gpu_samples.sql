-- +goose Up
-- GPU utilisation and memory of running sandboxes whose devices the testbed host can measure (nvidia-smi):
-- one row per sandbox and sampling instant, the sandbox's devices taken together (mean utilisation, summed
-- memory). utilization_pct is -1 when the driver does not report it (MIG instances). Declared devices are
-- never sampled: nothing says they exist.
CREATE TABLE testbed_gpu_samples (
    sandbox_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    utilization_pct INTEGER NOT NULL,
    memory_used_mib BIGINT NOT NULL,
    memory_total_mib BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, at_ms)
);

-- +goose Down
DROP TABLE testbed_gpu_samples;
