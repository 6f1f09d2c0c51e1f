-- Tamper evidence: a hash chain over the event store and over the audit log. Each row gets the next number of
-- its chain (`chain_seq`, gapless) and `chain_hash = sha256(previous chain_hash || canonical row)`, where the
-- canonical row is the row as jsonb (keys sorted, timestamps in UTC) without the two chain columns. A row changed
-- after the fact no longer matches its hash; a deleted row leaves a gap; `polaris admin verify` recomputes both
-- chains and reports each. The head (length and last hash) is kept in chain_heads; anchoring it elsewhere (it
-- is printed by verify) also catches a rewrite of the tail.
--
-- Rows are linked by a BEFORE INSERT trigger that takes the chain head's row lock, so a chain's order is commit
-- order and concurrent writers queue on it for the rest of their (short) transaction.
CREATE TABLE chain_heads
(
    chain  text PRIMARY KEY CHECK (chain IN ('events', 'audit')),
    length bigint NOT NULL,
    head   bytea  NOT NULL
);

ALTER TABLE events ADD COLUMN chain_seq bigint UNIQUE, ADD COLUMN chain_hash bytea;
ALTER TABLE audit_entries ADD COLUMN chain_seq bigint UNIQUE, ADD COLUMN chain_hash bytea;

-- The canonical text of a row. jsonb's text form is deterministic; the callers fix the time zone to UTC.
CREATE FUNCTION polaris_chain_input(r jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE AS
$$ SELECT (r - 'chain_seq' - 'chain_hash')::text $$;

CREATE FUNCTION polaris_chain_link() RETURNS trigger
    LANGUAGE plpgsql
    SET timezone TO 'UTC' AS
$$
DECLARE
    n    bigint;
    prev bytea;
BEGIN
    SELECT length, head INTO n, prev FROM chain_heads WHERE chain = TG_ARGV[0] FOR UPDATE;
    NEW.chain_seq := n + 1;
    NEW.chain_hash := sha256(prev || convert_to(polaris_chain_input(to_jsonb(NEW)), 'UTF8'));
    UPDATE chain_heads SET length = NEW.chain_seq, head = NEW.chain_hash WHERE chain = TG_ARGV[0];
    RETURN NEW;
END
$$;

-- Link what is already there, in the order it was written, before the triggers take over.
DO
$$
DECLARE
    prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    n    bigint := 0;
    r    record;
BEGIN
    SET LOCAL timezone TO 'UTC';
    FOR r IN SELECT position FROM events ORDER BY position
        LOOP
            n := n + 1;
            UPDATE events e SET chain_seq = n,
                                chain_hash = sha256(prev || convert_to(polaris_chain_input(to_jsonb(e)), 'UTF8'))
            WHERE e.position = r.position
            RETURNING e.chain_hash INTO prev;
        END LOOP;
    INSERT INTO chain_heads VALUES ('events', n, prev);
    prev := '\x0000000000000000000000000000000000000000000000000000000000000000';
    n := 0;
    FOR r IN SELECT position FROM audit_entries ORDER BY position
        LOOP
            n := n + 1;
            UPDATE audit_entries a SET chain_seq = n,
                                       chain_hash = sha256(prev || convert_to(polaris_chain_input(to_jsonb(a)), 'UTF8'))
            WHERE a.position = r.position
            RETURNING a.chain_hash INTO prev;
        END LOOP;
    INSERT INTO chain_heads VALUES ('audit', n, prev);
END
$$;

CREATE TRIGGER events_chain BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION polaris_chain_link('events');
CREATE TRIGGER audit_entries_chain BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION polaris_chain_link('audit');
