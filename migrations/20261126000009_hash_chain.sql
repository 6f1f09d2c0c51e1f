-- Tamper evidence: a hash chain over the event store and over the audit log, kept in seal tables beside them
-- (the sealed rows are never updated). Sealing walks each table in commit order - (xid, position) below
-- pg_snapshot_xmin, as the relay does - and gives each row the next number of its chain (`chain_seq`, gapless)
-- and `hash = sha256(previous hash || canonical row)`, the canonical row being the row as jsonb text (keys
-- sorted, timestamps in UTC). A row changed after it was sealed no longer matches its hash; a deleted row
-- leaves a seal without its row; `polaris admin verify` recomputes both chains. The relay role seals as it
-- goes, so appending never waits on a chain lock and a long transaction holds nobody up.
CREATE TABLE chain_heads
(
    chain         text PRIMARY KEY CHECK (chain IN ('events', 'audit')),
    length        bigint NOT NULL DEFAULT 0,
    head          bytea  NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000',
    last_xid      xid8   NOT NULL DEFAULT '0',
    last_position bigint NOT NULL DEFAULT 0
);
INSERT INTO chain_heads (chain) VALUES ('events'), ('audit');

CREATE TABLE event_seals
(
    chain_seq bigint PRIMARY KEY,
    position  bigint NOT NULL UNIQUE,
    hash      bytea  NOT NULL
);

CREATE TABLE audit_seals
(
    chain_seq bigint PRIMARY KEY,
    position  bigint NOT NULL UNIQUE,
    hash      bytea  NOT NULL
);

-- Audit entries get the inserting transaction's id, so they are sealed in commit order too.
ALTER TABLE audit_entries ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX audit_entries_seal_order ON audit_entries (xid, position);

-- The canonical text of a row. jsonb's text form is deterministic; callers fix the time zone to UTC.
CREATE FUNCTION polaris_chain_input(r jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE AS
$$ SELECT r::text $$;

-- Seals up to max_rows committed rows of one chain, under the chain head's row lock (one sealer at a time).
-- Returns how many rows it sealed.
CREATE FUNCTION polaris_seal(chain_name text, max_rows integer) RETURNS integer
    LANGUAGE plpgsql
    SET timezone TO 'UTC' AS
$$
DECLARE
    h      chain_heads%ROWTYPE;
    r      record;
    sealed integer := 0;
BEGIN
    SELECT * INTO h FROM chain_heads WHERE chain = chain_name FOR UPDATE;
    IF chain_name = 'events' THEN
        FOR r IN SELECT e.xid, e.position, polaris_chain_input(to_jsonb(e)) AS input FROM events e
                 WHERE (e.xid, e.position) > (h.last_xid, h.last_position)
                   AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY e.xid, e.position LIMIT max_rows
            LOOP
                h.length := h.length + 1;
                h.head := sha256(h.head || convert_to(r.input, 'UTF8'));
                INSERT INTO event_seals VALUES (h.length, r.position, h.head);
                h.last_xid := r.xid;
                h.last_position := r.position;
                sealed := sealed + 1;
            END LOOP;
    ELSE
        FOR r IN SELECT a.xid, a.position, polaris_chain_input(to_jsonb(a)) AS input FROM audit_entries a
                 WHERE (a.xid, a.position) > (h.last_xid, h.last_position)
                   AND a.xid < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY a.xid, a.position LIMIT max_rows
            LOOP
                h.length := h.length + 1;
                h.head := sha256(h.head || convert_to(r.input, 'UTF8'));
                INSERT INTO audit_seals VALUES (h.length, r.position, h.head);
                h.last_xid := r.xid;
                h.last_position := r.position;
                sealed := sealed + 1;
            END LOOP;
    END IF;
    UPDATE chain_heads SET length = h.length, head = h.head, last_xid = h.last_xid, last_position = h.last_position
    WHERE chain = chain_name;
    RETURN sealed;
END
$$;
