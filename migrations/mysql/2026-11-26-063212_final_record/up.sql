-- The final record of a closed room (MySQL/MariaDB). Same tables, columns and keys as
-- migrations/sqlite; src/store/schema.rs is written for both.
--
-- * Ids and user names are ASCII by contract and compared byte for byte (ascii_bin): the default
--   utf8mb4_general_ci would make 'Alice' and 'alice' one primary key and sort differently from Rust.
-- * Titles and texts are utf8mb4 (emoji), binary collation; VARCHAR(n) counts characters like the
--   engine's limits do.
-- * DATETIME(3), not TIMESTAMP: no session time zone conversion and no 2038 limit; milliseconds
--   round-trip exactly.
-- * MySQL DDL is not transactional: IF NOT EXISTS lets a migration that died half-way be re-run.

CREATE TABLE IF NOT EXISTS rooms (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    title VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at DATETIME(3) NOT NULL,
    closed_at DATETIME(3) NULL,
    participants BIGINT NOT NULL,
    participants_peak BIGINT NOT NULL,
    pro BIGINT NOT NULL,
    con BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS room_votes (
    room_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    side VARCHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    PRIMARY KEY (room_id, user_name),
    CONSTRAINT room_votes_side CHECK (side IN ('pro', 'con')),
    CONSTRAINT room_votes_room FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS room_messages (
    room_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq BIGINT NOT NULL,
    user_name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    text VARCHAR(2000) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    sent_at DATETIME(3) NOT NULL,
    PRIMARY KEY (room_id, seq),
    CONSTRAINT room_messages_room FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
