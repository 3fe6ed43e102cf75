//! Two engines on one local data dir are not a cluster: both would write the same local journal,
//! each taking the other's events for its own. The second one must exit non-zero at start,
//! saying why (the local journal's file lock), and the first one keeps serving its rooms with
//! its seqs unbroken.

use std::{path::Path, time::Duration};

use roomstate_testkit::{engine::run_to_exit, ports::free_ports};

use crate::support::app;

#[actix_rt::test]
async fn a_second_engine_on_the_same_local_data_dir_exits_saying_why() {
    let first = app::start();
    let room = first.create_room("one data dir, one engine").await;
    first.join(&room, "alice").await;
    let (status, before) = first.vote(&room, "alice", "pro").await;
    assert_eq!(status, 200, "{before}");

    // Its own port and admin token: only the data dir is shared.
    let port = free_ports(1)[0];
    let env = [
        (
            "ROOMSTATE__DATA_DIR".to_owned(),
            first.data_dir().display().to_string(),
        ),
        ("ROOMSTATE__ADMIN__TOKEN".to_owned(), "second".to_owned()),
        (
            "ROOMSTATE__HTTP__BIND".to_owned(),
            format!("127.0.0.1:{port}"),
        ),
    ];
    let second = run_to_exit(Path::new(app::ENGINE), &[], &env, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !second.status.success(),
        "the second engine must exit non-zero: {second:?}"
    );
    assert!(
        second.stderr.contains("in use by another roomstate engine"),
        "the second engine must say the data dir is in use: {}",
        second.stderr
    );
    assert!(
        !second
            .stdout
            .contains(roomstate_core::banner::LISTENING_ON.trim_end()),
        "the second engine must not have served: {}",
        second.stdout
    );

    // The first one still serves, its seqs unbroken.
    let (status, after) = first.vote(&room, "alice", "con").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after["seq"].as_u64(),
        before["seq"].as_u64().map(|s| s + 1),
        "{before} then {after}"
    );
    assert_eq!(first.room(&room).await["title"], "one data dir, one engine");
}
