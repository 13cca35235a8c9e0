-- Records the sink could not store: undecodable bytes, or an event a store refuses for its
-- data (a value out of range, a constraint). One row per record and store; a replayed batch
-- finds its row already there. "offset" is quoted: it is an SQL keyword.

CREATE TABLE sink_dead_letters (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    store       text        NOT NULL,
    error       text        NOT NULL,
    raw_event   bytea,
    event_type  text,
    event_id    text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset", store)
);
CREATE INDEX sink_dead_letters_recorded_idx ON sink_dead_letters (recorded_at);
