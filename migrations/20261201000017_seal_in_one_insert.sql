-- polaris_seal writes a call's seals in one INSERT instead of one per row. The chain is unchanged: the same rows
-- in the same order, the same canonical text, the same hashes. Under 2,400 commands/s its row-by-row inserts took
-- 479 ms of the function's 2,173 (pg_stat_statements over 20,000 commands), the function a quarter of the append's
-- own time.
CREATE OR REPLACE FUNCTION polaris_seal(chain_name text, max_rows integer) RETURNS integer
    LANGUAGE plpgsql
    SET timezone TO 'UTC' AS
$$
DECLARE
    h         chain_heads%ROWTYPE;
    r         record;
    rows_of   text := CASE chain_name WHEN 'events' THEN 'events' ELSE 'audit_entries' END;
    seals_of  text := CASE chain_name WHEN 'events' THEN 'event_seals' ELSE 'audit_seals' END;
    seqs      bigint[] := '{}';
    positions bigint[] := '{}';
    hashes    bytea[]  := '{}';
BEGIN
    SELECT * INTO h FROM chain_heads WHERE chain = chain_name FOR UPDATE;
    FOR r IN EXECUTE format(
            'SELECT t.xid, t.position, polaris_chain_input(to_jsonb(t)) AS input FROM %I t '
            'WHERE (t.xid, t.position) > ($1, $2) AND t.xid < pg_snapshot_xmin(pg_current_snapshot()) '
            'ORDER BY t.xid, t.position LIMIT $3', rows_of)
        USING h.last_xid, h.last_position, max_rows
        LOOP
            h.length := h.length + 1;
            h.head := sha256(h.head || convert_to(r.input, 'UTF8'));
            seqs := seqs || h.length;
            positions := positions || r.position;
            hashes := hashes || h.head;
            h.last_xid := r.xid;
            h.last_position := r.position;
        END LOOP;
    EXECUTE format('INSERT INTO %I (chain_seq, position, hash) SELECT * FROM unnest($1, $2, $3)', seals_of)
        USING seqs, positions, hashes;
    UPDATE chain_heads SET length = h.length, head = h.head, last_xid = h.last_xid, last_position = h.last_position
    WHERE chain = chain_name;
    RETURN cardinality(seqs);
END
$$;
