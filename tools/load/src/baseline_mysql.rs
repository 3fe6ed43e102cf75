//! Baseline (a), `mysql-per-mutation`: the design this project exists to avoid. Every vote or
//! message is its own MariaDB transaction (an upsert or insert plus the room's counter
//! `UPDATE`, committed with InnoDB's default durability), from one connection per client thread.

use std::time::{Duration, Instant};

use crate::{stats::Recorder, workload::Workload};

/// Clients beyond this share nothing more: MariaDB's default `max_connections` is 151.
pub const MAX_CONNECTIONS: usize = 64;

#[cfg(feature = "mysql")]
mod imp {
    use diesel::{
        connection::SimpleConnection, prelude::*, sql_query, sql_types::Text, MysqlConnection,
    };

    use super::*;
    use crate::mix::{Mixer, Op};

    const SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS baseline_rooms (
            id VARCHAR(64) NOT NULL PRIMARY KEY,
            pro BIGINT NOT NULL DEFAULT 0,
            con BIGINT NOT NULL DEFAULT 0,
            messages BIGINT NOT NULL DEFAULT 0
        ) ENGINE=InnoDB;
        CREATE TABLE IF NOT EXISTS baseline_votes (
            room_id VARCHAR(64) NOT NULL,
            user_name VARCHAR(64) NOT NULL,
            side VARCHAR(3) NOT NULL,
            PRIMARY KEY (room_id, user_name)
        ) ENGINE=InnoDB;
        CREATE TABLE IF NOT EXISTS baseline_messages (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            room_id VARCHAR(64) NOT NULL,
            user_name VARCHAR(64) NOT NULL,
            text VARCHAR(2000) NOT NULL,
            sent_at DATETIME(3) NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        DELETE FROM baseline_messages; DELETE FROM baseline_votes; DELETE FROM baseline_rooms;
    ";

    pub fn run(
        url: &str,
        w: &Workload,
        window: impl FnOnce(Instant, Instant),
    ) -> anyhow::Result<(Recorder, Duration)> {
        let mut setup = MysqlConnection::establish(url).map_err(|e| {
            anyhow::anyhow!("connecting to {}: {e}", roomstate_core::redact::url(url))
        })?;
        setup.batch_execute(SCHEMA)?;
        for r in 0..w.rooms {
            sql_query("INSERT INTO baseline_rooms (id) VALUES (?)")
                .bind::<Text, _>(format!("r{r}"))
                .execute(&mut setup)?;
        }
        let clients = w.clients().min(MAX_CONNECTIONS);
        let start = Instant::now();
        let measure_from = start + w.warmup;
        let end = measure_from + w.duration;
        window(measure_from, end);
        let interval = w
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(clients as f64 / r));
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let url = url.to_owned();
                let (room, user) = (format!("r{}", c % w.rooms), format!("u{c}"));
                let mixer = Mixer::new(w.seed ^ c as u64, w.message_percent);
                std::thread::spawn(move || {
                    client(&url, &room, &user, mixer, interval, measure_from, end)
                })
            })
            .collect();
        let mut total = Recorder::new();
        for thread in threads {
            let recorder = thread
                .join()
                .map_err(|_| anyhow::anyhow!("a baseline client thread panicked"))??;
            total.merge(&recorder);
        }
        Ok((total, w.duration))
    }

    fn client(
        url: &str,
        room: &str,
        user: &str,
        mut mixer: Mixer,
        interval: Option<Duration>,
        measure_from: Instant,
        end: Instant,
    ) -> anyhow::Result<Recorder> {
        let mut conn = MysqlConnection::establish(url).map_err(|e| {
            anyhow::anyhow!("connecting to {}: {e}", roomstate_core::redact::url(url))
        })?;
        let mut recorder = Recorder::new();
        let mut next_due = Instant::now();
        while Instant::now() < end {
            let due = match interval {
                Some(interval) => {
                    if let Some(wait) = next_due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let due = next_due;
                    next_due += interval;
                    due
                }
                None => Instant::now(),
            };
            if interval.is_some() && due >= measure_from && due < end {
                recorder.sent_late(due.elapsed());
            }
            let op = mixer.next_op();
            let result = conn.transaction::<_, diesel::result::Error, _>(|conn| {
                match &op {
                    Op::Vote(side) | Op::Switch(side) => {
                        sql_query(
                            "INSERT INTO baseline_votes (room_id, user_name, side) VALUES (?, ?, ?) \
                             ON DUPLICATE KEY UPDATE side = VALUES(side)",
                        )
                        .bind::<Text, _>(room)
                        .bind::<Text, _>(user)
                        .bind::<Text, _>(*side)
                        .execute(conn)?;
                        let (pro, con) = if *side == "pro" { (1, -1) } else { (-1, 1) };
                        let (pro, con) = if matches!(op, Op::Vote(_)) {
                            (pro.max(0), con.max(0))
                        } else {
                            (pro, con)
                        };
                        sql_query(format!(
                            "UPDATE baseline_rooms SET pro = pro + {pro}, con = con + {con} WHERE id = ?"
                        ))
                        .bind::<Text, _>(room)
                        .execute(conn)?;
                    }
                    Op::Say(text) => {
                        sql_query(
                            "INSERT INTO baseline_messages (room_id, user_name, text, sent_at) \
                             VALUES (?, ?, ?, NOW(3))",
                        )
                        .bind::<Text, _>(room)
                        .bind::<Text, _>(user)
                        .bind::<Text, _>(text.as_str())
                        .execute(conn)?;
                        sql_query("UPDATE baseline_rooms SET messages = messages + 1 WHERE id = ?")
                            .bind::<Text, _>(room)
                            .execute(conn)?;
                    }
                }
                Ok(())
            });
            if due >= measure_from && due < end {
                match result {
                    Ok(()) => recorder.ack(op.kind(), due.elapsed()),
                    Err(_) => recorder.fail(),
                }
            }
        }
        Ok(recorder)
    }
}

/// Runs the baseline; returns what it measured and over how long. `window` is told the measured
/// window (from, until) once the tables are set up, before the clients start.
pub fn run(
    url: &str,
    w: &Workload,
    window: impl FnOnce(Instant, Instant),
) -> anyhow::Result<(Recorder, Duration)> {
    #[cfg(feature = "mysql")]
    {
        imp::run(url, w, window)
    }
    #[cfg(not(feature = "mysql"))]
    {
        let _ = (url, w, window);
        anyhow::bail!("the mysql baseline needs a build with `--features mysql`")
    }
}
