//! The SQL tables of the store, as `diesel print-schema` writes them for the SQLite migrations
//! (diesel.toml). The MySQL migrations create the same columns; their DATETIME(3) columns are read
//! and written through `Timestamp` here, because a `MultiConnection` speaks only the shared types.
//! The `schema_matches_migrations` tests compare this file with what each backend's migrations make.

// @generated automatically by Diesel CLI.

diesel::table! {
    room_messages (room_id, seq) {
        room_id -> Text,
        seq -> BigInt,
        user_name -> Text,
        text -> Text,
        sent_at -> Timestamp,
    }
}

diesel::table! {
    room_votes (room_id, user_name) {
        room_id -> Text,
        user_name -> Text,
        side -> Text,
    }
}

diesel::table! {
    rooms (id) {
        id -> Text,
        title -> Text,
        created_at -> Timestamp,
        closed_at -> Nullable<Timestamp>,
        participants -> BigInt,
        participants_peak -> BigInt,
        pro -> BigInt,
        con -> BigInt,
        messages -> BigInt,
        seq -> BigInt,
    }
}

diesel::joinable!(room_messages -> rooms (room_id));
diesel::joinable!(room_votes -> rooms (room_id));

diesel::allow_tables_to_appear_in_same_query!(room_messages, room_votes, rooms,);
