-- Placement (which granted target serves an org's provider and region) changes only when a target or a grant
-- does. Each such statement moves the epoch; the API reads it with the caller's token, in the same round trip, and
-- caches placements by it, so a cached placement is never stale.
CREATE TABLE placement_epoch
(
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch     bigint  NOT NULL
);
INSERT INTO placement_epoch (singleton, epoch) VALUES (true, 1);

CREATE FUNCTION move_placement_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE placement_epoch SET epoch = epoch + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER targets_move_placement_epoch
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON targets
    FOR EACH STATEMENT EXECUTE FUNCTION move_placement_epoch();
CREATE TRIGGER target_grants_move_placement_epoch
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON target_grants
    FOR EACH STATEMENT EXECUTE FUNCTION move_placement_epoch();
