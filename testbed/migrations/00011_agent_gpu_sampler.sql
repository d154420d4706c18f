-- +goose Up
-- Whether an agent measures its host's GPUs (nvidia-smi) and sends the measurements with its heartbeats: the
-- GPUs of its sandboxes are charted from them (testbed_gpu_samples), or "not measured" when it cannot.
ALTER TABLE testbed_agents ADD COLUMN gpu_sampler BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE testbed_agents DROP COLUMN gpu_sampler;
