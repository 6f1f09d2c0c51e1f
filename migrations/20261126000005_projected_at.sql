-- When the projector last changed each cluster row: commit-to-read-model lag is projected_at - events.recorded_at.
-- Wall-clock bookkeeping, not state: read-model rebuild checksums leave it out.
ALTER TABLE clusters ADD COLUMN projected_at timestamptz NOT NULL DEFAULT clock_timestamp();
