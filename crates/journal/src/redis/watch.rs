//! Listening to the sentinels' failover events for our master, so that the writer stops
//! acknowledging writes on a primary that is being replaced as soon as any sentinel says so
//! (`fence`), instead of finding out ~1 s later from a short `WAIT`. redis-rs does not follow
//! sentinel events by itself (redis-rs issue 1438).
//!
//! One pub/sub connection per configured sentinel, `PSUBSCRIBE`d to the failover channels. What
//! Redis 7.0.15 publishes (src/sentinel.c), in order, on the sentinel that runs the failover:
//! `+try-failover` (at once for `SENTINEL FAILOVER`), `+elected-leader`,
//! `+failover-state-select-slave`, `+selected-slave`, `+failover-state-send-slaveof-noone`, then
//! `+failover-state-wait-promotion` when `REPLICAOF NO ONE` has been sent (the window opens
//! here, one or two 100 ms timer ticks after `+try-failover`), `+promoted-slave`,
//! `+failover-state-reconf-slaves`, `+slave-reconf-sent`/`-inprog`/`-done` per replica (the
//! window closes when the last one is re-pointed), `+failover-end` (or
//! `+failover-end-for-timeout`), `+switch-master <name> <old ip> <old port> <new ip> <new port>`;
//! or `-failover-abort-not-elected`, `-no-good-slave`, `-slave-timeout`. The other sentinels
//! publish `+switch-master` when the new configuration reaches them (about when the promotion
//! is seen). Every event but `+switch-master` carries
//! `<type> <name> <ip> <port> [@ <master name> <master ip> <master port>]`.
//!
//! Each connection goes through the sentinels' `Access` (password, TLS), like the look-ups in
//! `sentinel`, reconnects with backoff (100 ms doubling to 5 s) and PINGs every second, so a
//! sentinel that stops answering is noticed (and one that refuses the password says so). On
//! every (re)subscription, and every second while its sentinel has a failover under way, the
//! watcher reads `SENTINEL MASTER <name>` (flag `failover_in_progress`) and hands it to the
//! fence: events missed while disconnected, and an end or abort that never arrives, are made up
//! for.
//!
//! The watcher runs as tasks on the writer thread's runtime: they only await I/O and take the
//! fence's lock for a few map operations, so they never hold the writer up, and the writer never
//! waits for them. They end with that runtime.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use redis::{AsyncConnectionConfig, Msg, Value};
use tokio::time::{timeout, MissedTickBehavior};

use super::fence::{Fences, Signal};
use crate::access::Access;

/// Channels subscribed to on every sentinel.
const PATTERNS: [&str; 9] = [
    "+try-failover",
    "+elected-leader",
    "+failover-*",
    "+selected-slave",
    "+promoted-slave",
    "+slave-reconf-*",
    "-slave-reconf-*",
    "-failover-abort-*",
    "+switch-master",
];
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Between two PINGs of a subscription, and two readings of a sentinel's failover state while
/// it has one under way.
const TICK: Duration = Duration::from_secs(1);

/// What a failover event means for the primary it names, or `None` for an event that is not
/// about a failover of `master`.
pub(super) fn parse_event(channel: &str, payload: &str, master: &str) -> Option<(String, Signal)> {
    let words: Vec<&str> = payload.split_whitespace().collect();
    if channel == "+switch-master" {
        return match words.as_slice() {
            [name, old_ip, old_port, new_ip, new_port, ..] if *name == master => Some((
                format!("{old_ip}:{old_port}"),
                Signal::Switched {
                    to: format!("{new_ip}:{new_port}"),
                },
            )),
            _ => None,
        };
    }
    let signal = match channel {
        "+failover-end" | "+failover-end-for-timeout" => Signal::Over,
        c if c.starts_with("-failover-abort-") => Signal::Over,
        "+try-failover" | "+elected-leader" | "+selected-slave" | "+promoted-slave" => {
            Signal::Progress
        }
        c if c.starts_with("+failover-state-")
            || c.starts_with("+slave-reconf-")
            || c.starts_with("-slave-reconf-") =>
        {
            Signal::Progress
        }
        _ => return None,
    };
    // `master <name> <ip> <port>`, or `<type> <name> <ip> <port> @ <master> <ip> <port>`.
    let about_master = match words.as_slice() {
        ["master", rest @ ..] => rest,
        _ => {
            let at = words.iter().position(|w| *w == "@")?;
            &words[at + 1..]
        }
    };
    match about_master {
        [name, ip, port, ..] if *name == master => Some((format!("{ip}:{port}"), signal)),
        _ => None,
    }
}

/// How the watcher reaches the sentinels.
pub(super) struct Settings {
    pub(super) master: String,
    /// The sentinels' credentials and TLS.
    pub(super) access: Access,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
}

/// Starts one watching task per sentinel on the current runtime.
pub(super) fn spawn(sentinels: &[String], settings: Settings, fences: &Arc<Fences>) {
    let settings = Arc::new(settings);
    for (source, addr) in sentinels.iter().enumerate() {
        let watcher = Watcher {
            source,
            addr: addr.clone(),
            settings: settings.clone(),
            fences: fences.clone(),
        };
        tokio::spawn(watcher.run());
    }
}

struct Watcher {
    /// The sentinel's index in the configuration: its mark in the fence.
    source: usize,
    addr: String,
    settings: Arc<Settings>,
    fences: Arc<Fences>,
}

impl Watcher {
    async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut down = false;
        loop {
            let lost = self.listen(&mut backoff, &mut down).await;
            if !down {
                tracing::warn!(
                    sentinel = %self.addr, error = %lost,
                    "not subscribed to this sentinel's failover events; reconnecting"
                );
                down = true;
            }
            // Backoff between attempts to reach a sentinel, not a wait for a condition.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Subscribes and handles events until the subscription fails; returns why.
    async fn listen(&self, backoff: &mut Duration, down: &mut bool) -> String {
        let access = &self.settings.access;
        let client = match access.client(&self.addr) {
            Ok(client) => client,
            Err(e) => return e.to_string(),
        };
        let pubsub = match timeout(self.settings.connect_timeout, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => return format!("connect: {}", access.describe(&e)),
            Err(_) => return "connect: timed out".into(),
        };
        let (mut sink, mut events) = pubsub.split();
        match timeout(
            self.settings.response_timeout,
            sink.psubscribe(&PATTERNS[..]),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return format!("PSUBSCRIBE: {}", access.describe(&e)),
            Err(_) => return "PSUBSCRIBE: timed out".into(),
        }
        *backoff = BACKOFF_MIN;
        if *down {
            tracing::info!(sentinel = %self.addr, "subscribed to this sentinel's failover events again");
            *down = false;
        } else {
            tracing::debug!(sentinel = %self.addr, "subscribed to the sentinel's failover events");
        }
        // Subscribed first, read second: nothing published in between is missed, and events
        // queued meanwhile are applied after the reading, in order.
        self.reconcile().await;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => self.handle(&event),
                    None => return "the connection closed".into(),
                },
                _ = tick.tick() => {
                    match timeout(self.settings.response_timeout, sink.ping::<Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return format!("PING: {}", access.describe(&e)),
                        Err(_) => return "PING: no reply in time".into(),
                    }
                    if self.fences.is_marked(self.source) {
                        self.reconcile().await;
                    }
                }
            }
        }
    }

    fn handle(&self, event: &Msg) {
        let channel = event.get_channel_name();
        let Ok(payload) = event.get_payload::<String>() else {
            return;
        };
        if let Some((primary, signal)) = parse_event(channel, &payload, &self.settings.master) {
            let successor = match &signal {
                Signal::Switched { to } => Some(to.as_str()),
                _ => None,
            };
            tracing::info!(
                sentinel = %self.addr, event = channel, redis.primary = %primary,
                redis.successor = successor, "sentinel failover event"
            );
            self.fences
                .observe(self.source, &primary, signal, Instant::now());
        }
    }

    /// Hands the sentinel's own view of the failover to the fence; keeps the mark as it is when
    /// the sentinel cannot say.
    async fn reconcile(&self) {
        match self.failover_in_progress().await {
            Ok(state) => self.fences.reconcile(self.source, state, Instant::now()),
            Err(e) => tracing::debug!(
                sentinel = %self.addr, error = %e,
                "cannot read the sentinel's failover state"
            ),
        }
    }

    /// `Some(primary)` when the sentinel has a failover of it under way.
    async fn failover_in_progress(&self) -> Result<Option<String>, String> {
        let access = &self.settings.access;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.response_timeout));
        let mut conn = access
            .connect(&self.addr, &config)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let reply: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.settings.master)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("SENTINEL MASTER: {}", access.describe(&e)))?;
        Ok(master_in_failover(&reply))
    }
}

/// From a `SENTINEL MASTER` reply (field, value, ...): the master's address when its flags say
/// `failover_in_progress`.
fn master_in_failover(fields: &[String]) -> Option<String> {
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair.first().map(String::as_str) == Some(name))
            .and_then(|pair| pair.get(1))
    };
    let in_progress = field("flags")?
        .split(',')
        .any(|flag| flag == "failover_in_progress");
    match (in_progress, field("ip"), field("port")) {
        (true, Some(ip), Some(port)) => Some(format!("{ip}:{port}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "roomstate";

    fn parsed(channel: &str, payload: &str) -> Option<(String, Signal)> {
        parse_event(channel, payload, M)
    }

    #[test]
    fn the_start_of_a_failover_names_the_old_primary() {
        let old = Some(("127.0.0.1:21695".to_owned(), Signal::Progress));
        // As logged by a 7.0.15 sentinel during SENTINEL FAILOVER.
        assert_eq!(
            parsed("+try-failover", "master roomstate 127.0.0.1 21695"),
            old
        );
        assert_eq!(
            parsed(
                "+selected-slave",
                "slave 127.0.0.1:16308 127.0.0.1 16308 @ roomstate 127.0.0.1 21695"
            ),
            old
        );
        assert_eq!(
            parsed(
                "+failover-state-send-slaveof-noone",
                "slave 127.0.0.1:16308 127.0.0.1 16308 @ roomstate 127.0.0.1 21695"
            ),
            old
        );
        assert_eq!(
            parsed(
                "+promoted-slave",
                "slave 127.0.0.1:16308 127.0.0.1 16308 @ roomstate 127.0.0.1 21695"
            ),
            old
        );
        assert_eq!(
            parsed(
                "+slave-reconf-sent",
                "slave 127.0.0.1:23605 127.0.0.1 23605 @ roomstate 127.0.0.1 21695"
            ),
            old
        );
        assert_eq!(
            parsed(
                "+failover-state-reconf-slaves",
                "master roomstate 127.0.0.1 21695"
            ),
            old
        );
    }

    #[test]
    fn the_end_an_abort_and_the_switch() {
        let over = Some(("127.0.0.1:21695".to_owned(), Signal::Over));
        assert_eq!(
            parsed("+failover-end", "master roomstate 127.0.0.1 21695"),
            over
        );
        assert_eq!(
            parsed(
                "+failover-end-for-timeout",
                "master roomstate 127.0.0.1 21695"
            ),
            over
        );
        assert_eq!(
            parsed(
                "-failover-abort-not-elected",
                "master roomstate 127.0.0.1 21695"
            ),
            over
        );
        assert_eq!(
            parsed(
                "+switch-master",
                "roomstate 127.0.0.1 21695 127.0.0.1 16308"
            ),
            Some((
                "127.0.0.1:21695".to_owned(),
                Signal::Switched {
                    to: "127.0.0.1:16308".into()
                }
            ))
        );
    }

    #[test]
    fn other_masters_and_other_events_are_ignored() {
        assert_eq!(parsed("+try-failover", "master other 127.0.0.1 1"), None);
        assert_eq!(
            parsed("+switch-master", "other 127.0.0.1 1 127.0.0.1 2"),
            None
        );
        assert_eq!(parsed("+switch-master", "roomstate 127.0.0.1"), None);
        assert_eq!(parsed("+sdown", "master roomstate 127.0.0.1 1"), None);
        assert_eq!(parsed("+new-epoch", "1"), None);
        assert_eq!(parsed("+selected-slave", "slave without master"), None);
    }

    #[test]
    fn a_sentinel_reports_its_failover_in_its_master_flags() {
        let reply = |flags: &str| -> Vec<String> {
            [
                "name",
                "roomstate",
                "ip",
                "127.0.0.1",
                "port",
                "6379",
                "flags",
                flags,
            ]
            .map(String::from)
            .to_vec()
        };
        assert_eq!(
            master_in_failover(&reply("master,failover_in_progress")),
            Some("127.0.0.1:6379".into())
        );
        assert_eq!(master_in_failover(&reply("master")), None);
        assert_eq!(master_in_failover(&reply("s_down,master,o_down")), None);
        assert_eq!(master_in_failover(&[]), None);
    }
}
