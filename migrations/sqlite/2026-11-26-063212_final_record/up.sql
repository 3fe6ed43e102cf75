-- The final record of a closed room (SQLite). Kept in step with migrations/mysql by hand:
-- same tables, columns and keys; src/store/schema.rs is `diesel print-schema` of this backend.
-- Timestamps are UTC, written by diesel as text with milliseconds.

CREATE TABLE rooms (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    title TEXT NOT NULL CHECK (length(title) <= 200),
    created_at TIMESTAMP NOT NULL,
    closed_at TIMESTAMP,
    participants BIGINT NOT NULL,
    participants_peak BIGINT NOT NULL,
    pro BIGINT NOT NULL,
    con BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    seq BIGINT NOT NULL
);

CREATE TABLE room_votes (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_name TEXT NOT NULL CHECK (length(user_name) BETWEEN 1 AND 64),
    side TEXT NOT NULL CHECK (side IN ('pro', 'con')),
    PRIMARY KEY (room_id, user_name)
) WITHOUT ROWID;

CREATE TABLE room_messages (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    user_name TEXT NOT NULL CHECK (length(user_name) BETWEEN 1 AND 64),
    text TEXT NOT NULL CHECK (length(text) <= 2000),
    sent_at TIMESTAMP NOT NULL,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
