//! Drives a roomstate engine the way clients use it: real WebSockets (a `vote`/`say` frame, then
//! its `ack`) or real HTTP (`PUT /votes`, `POST /messages`), closed or open loop; one engine, or
//! the nodes of a cluster with each client on one of them.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use actix_codec::Framed;
use anyhow::{bail, Context as _};
use awc::{
    ws::{Codec, Frame, Message},
    BoxedSocket, Client,
};
use futures_util::{future::join_all, SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::{
    mix::{Kind, Mixer, Op},
    peek::{self, Type},
    workload::{Run, Workload},
};

/// How long after the end of a run answers are still awaited.
const ANSWER_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Ws,
    Http,
}

impl Transport {
    /// `ws` or `http`, as the JSON summaries name it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Http => "http",
        }
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .max_http_version(awc::http::Version::HTTP_11)
        .finish()
}

/// Creates the rooms; returns their ids.
pub async fn create_rooms(base: &str, rooms: usize) -> anyhow::Result<Vec<String>> {
    let http = client();
    let mut ids = Vec::with_capacity(rooms);
    for chunk in (0..rooms).collect::<Vec<_>>().chunks(64) {
        let made = join_all(chunk.iter().map(|i| {
            let http = &http;
            async move {
                let mut resp = http
                    .post(format!("{base}/rooms"))
                    .send_json(&json!({ "title": format!("load room {i}") }))
                    .await
                    .map_err(|e| anyhow::anyhow!("POST /rooms: {e}"))?;
                let body: Value = resp.json().await.context("POST /rooms body")?;
                match body["id"].as_str() {
                    Some(id) if resp.status() == 201 => Ok(id.to_owned()),
                    _ => bail!("POST /rooms answered {}: {body}", resp.status()),
                }
            }
        }))
        .await;
        for id in made {
            ids.push(id?);
        }
    }
    Ok(ids)
}

/// Runs the workload against the engine at `base` (e.g. `http://127.0.0.1:8080`), or against
/// several nodes of a cluster: the rooms are created through the first, and each client sticks
/// to one node, taking them in turn (so every room has clients on every node).
/// Returns the rooms it created.
pub async fn run(
    bases: &[String],
    transport: Transport,
    w: &Workload,
    run: &Run,
) -> anyhow::Result<Vec<String>> {
    let first = bases.first().context("no engine URL")?;
    let rooms = create_rooms(first, w.rooms).await?;
    drive(bases, &rooms, transport, w, run).await?;
    Ok(rooms)
}

/// Checks, before a run, that the engine at `base` takes `token` as its admin token
/// (`GET /admin/stats`), so that a run whose rooms cannot be closed afterwards is refused
/// before it is measured: a wrong token, or a server with no admin routes here (the bare-handler
/// floor, or an engine that serves them only on `http.internal_bind`).
pub async fn check_admin(base: &str, token: &str) -> anyhow::Result<()> {
    let mut resp = client()
        .get(format!("{base}/admin/stats"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {base}/admin/stats: {e}"))?;
    match resp.status().as_u16() {
        200 => Ok(()),
        404 => bail!(
            "GET {base}/admin/stats answered 404: no admin routes there (the floor, or an engine \
             that serves them on http.internal_bind only), so --admin-token cannot close rooms"
        ),
        _ => {
            let body = resp.body().await.unwrap_or_default();
            bail!(
                "GET {base}/admin/stats with the admin token answered {}: {}",
                resp.status(),
                String::from_utf8_lossy(&body)
            )
        }
    }
}

/// Closes `rooms` through the engine at `base` as its admin (`POST /admin/rooms/{id}/close` with
/// `token` as the bearer token), as the end of a debate does: each room's final record goes to
/// the engine's SQL store and its keys leave the Redis journal. After a measured run, so that the
/// next run starts from a journal without this one's rooms, as the baselines delete their keys:
/// rooms left open keep their logs and message archives in Redis, which then grows from run to
/// run, and so does each rewrite of its append-only file (a child process that takes a core for
/// seconds on a 2-core machine, in the middle of whatever run is measured then).
///
/// Returns how many it closed and, if one could not be closed, why (the rest are still tried).
/// A close the engine answers `503` (its journal or store unavailable for 15 s) is tried once
/// more.
pub async fn close_rooms(
    base: &str,
    token: &str,
    rooms: &[String],
) -> (usize, Option<anyhow::Error>) {
    let http = client();
    let (mut closed, mut first_error) = (0, None);
    for chunk in rooms.chunks(16) {
        for result in join_all(chunk.iter().map(|id| close_room(&http, base, token, id))).await {
            match result {
                Ok(()) => closed += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    (closed, first_error)
}

/// Closes one room (see `close_rooms`), trying once more after a `503`.
async fn close_room(http: &Client, base: &str, token: &str, id: &str) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..2 {
        let mut resp = http
            .post(format!("{base}/admin/rooms/{id}/close"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("closing room {id}: {e}"))?;
        let status = resp.status();
        if status == 200 {
            return Ok(());
        }
        let body = resp.body().await.unwrap_or_default();
        last = Some(anyhow::anyhow!(
            "closing room {id} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
        if status != 503 {
            break;
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("closing room {id}: no answer")))
}

/// Drives `rooms` (created already) with `w.users` clients each; client `k` (room by room)
/// talks to `bases[k % bases.len()]` for the whole run.
pub async fn drive(
    bases: &[String],
    rooms: &[String],
    transport: Transport,
    w: &Workload,
    run: &Run,
) -> anyhow::Result<()> {
    if bases.is_empty() {
        bail!("no engine URL");
    }
    let mut tasks = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        for u in 0..w.users {
            let base = &bases[(r * w.users + u) % bases.len()];
            let user = format!("u{u}");
            let seed = w.seed ^ ((r as u64) << 20) ^ u as u64;
            let mixer = Mixer::new(seed, w.message_percent);
            match transport {
                Transport::Ws => {
                    let url = format!(
                        "{}/rooms/{room}/ws?user={user}",
                        base.replacen("http", "ws", 1)
                    );
                    let framed = connect(&url).await?;
                    tasks.push(actix_rt::spawn(ws_client(
                        framed,
                        r,
                        mixer,
                        w.client_interval(),
                        run.clone(),
                    )));
                }
                Transport::Http => {
                    let http = client();
                    let mut resp = http
                        .post(format!("{base}/rooms/{room}/join"))
                        .send_json(&json!({ "user": user }))
                        .await
                        .map_err(|e| anyhow::anyhow!("join: {e}"))?;
                    if resp.status() != 200 {
                        bail!("join answered {}: {:?}", resp.status(), resp.body().await);
                    }
                    let urls = HttpUrls {
                        room: r,
                        vote: format!("{base}/rooms/{room}/votes/{user}"),
                        say: format!("{base}/rooms/{room}/messages"),
                        user,
                    };
                    tasks.push(actix_rt::spawn(http_client(
                        http,
                        urls,
                        mixer,
                        w.client_interval(),
                        run.clone(),
                    )));
                }
            }
        }
    }
    for task in tasks {
        task.await.context("client task")?;
    }
    Ok(())
}

/// Opens a WebSocket and waits for its first frame (the room's state).
pub async fn connect(url: &str) -> anyhow::Result<Framed<BoxedSocket, Codec>> {
    let (_, mut framed) = client()
        .ws(url)
        .max_frame_size(1 << 20)
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("WebSocket {url}: {e}"))?;
    // The first frame is the room's state.
    match tokio::time::timeout(Duration::from_secs(30), framed.next()).await {
        Ok(Some(Ok(Frame::Text(_)))) => Ok(framed),
        other => bail!("no first state frame from {url}: {other:?}"),
    }
}

fn frame_of(op: &Op, req: u64) -> Value {
    match op {
        Op::Vote(side) | Op::Switch(side) => {
            json!({"type": "vote", "side": side, "req": req.to_string()})
        }
        Op::Say(text) => json!({"type": "say", "text": text, "req": req.to_string()}),
    }
}

/// One socket: in closed loop one request at a time; in open loop a request every `interval`,
/// however many are outstanding (latency counts from when each was due). `room` is the index of
/// its room in the run.
async fn ws_client(
    mut framed: Framed<BoxedSocket, Codec>,
    room: usize,
    mut mixer: Mixer,
    interval: Option<Duration>,
    run: Run,
) {
    let mut outstanding: HashMap<String, (Instant, Kind)> = HashMap::new();
    let mut next_req: u64 = 0;
    let mut next_due = Instant::now();
    loop {
        let may_send = match interval {
            None => outstanding.is_empty(),
            Some(_) => Instant::now() >= next_due,
        };
        if may_send && !run.over() {
            let op = mixer.next_op();
            next_req += 1;
            let due = if interval.is_some() {
                next_due
            } else {
                Instant::now()
            };
            outstanding.insert(next_req.to_string(), (due, op.kind()));
            if interval.is_some() {
                run.sending(due);
            }
            if framed
                .send(Message::Text(frame_of(&op, next_req).to_string().into()))
                .await
                .is_err()
            {
                run.failed(due);
                return;
            }
            if let Some(interval) = interval {
                next_due += interval;
            }
            continue;
        }
        if run.over() && outstanding.is_empty() {
            let _ = framed.send(Message::Close(None)).await;
            return;
        }
        let grace_end = run.end + ANSWER_GRACE;
        let wait_until = match interval {
            Some(_) if !run.over() => next_due.min(run.end),
            _ => grace_end,
        };
        let frame = tokio::time::timeout_at(wait_until.into(), framed.next()).await;
        let frame = match frame {
            Err(_) if Instant::now() >= grace_end => {
                // Answers that never came count as failures.
                for (due, _) in outstanding.values() {
                    run.failed(*due);
                }
                return;
            }
            Err(_) => continue,
            Ok(None) | Ok(Some(Err(_))) => {
                for (due, _) in outstanding.values() {
                    run.failed(*due);
                }
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Frame::Text(bytes) = frame else { continue };
        // Only an answer's type and `req` matter here: the rest of a frame is not parsed.
        let frame = peek::peek(&bytes);
        let ok = match frame.kind {
            Type::Ack => true,
            Type::Error => false,
            _ => continue,
        };
        let Some((due, kind)) = frame.req.and_then(|r| outstanding.remove(r)) else {
            continue;
        };
        run.answered(due, kind, ok);
        if ok {
            run.room_acked(room, due);
        }
    }
}

struct HttpUrls {
    /// The room's index in the run.
    room: usize,
    vote: String,
    say: String,
    user: String,
}

async fn http_request(http: &Client, urls: &HttpUrls, op: &Op) -> Result<bool, ()> {
    let sent = match op {
        Op::Vote(side) | Op::Switch(side) => {
            http.put(&urls.vote)
                .send_json(&json!({ "side": side }))
                .await
        }
        Op::Say(text) => {
            http.post(&urls.say)
                .send_json(&json!({ "user": urls.user, "text": text }))
                .await
        }
    };
    let mut resp = sent.map_err(|_| ())?;
    let _ = resp.body().await;
    Ok(resp.status().is_success())
}

/// One HTTP client (its own keep-alive connection pool).
async fn http_client(
    http: Client,
    urls: HttpUrls,
    mut mixer: Mixer,
    interval: Option<Duration>,
    run: Run,
) {
    let urls = std::rc::Rc::new(urls);
    let http = std::rc::Rc::new(http);
    let mut next_due = Instant::now();
    let mut inflight = Vec::new();
    while !run.over() {
        let op = mixer.next_op();
        match interval {
            None => {
                let sent = Instant::now();
                match http_request(&http, &urls, &op).await {
                    Ok(ok) => {
                        run.answered(sent, op.kind(), ok);
                        if ok {
                            run.room_acked(urls.room, sent);
                        }
                    }
                    Err(()) => run.failed(sent),
                }
            }
            Some(interval) => {
                tokio::time::sleep_until(next_due.into()).await;
                let due = next_due;
                next_due += interval;
                let (http, urls, run) = (http.clone(), urls.clone(), run.clone());
                inflight.push(actix_rt::spawn(async move {
                    run.sending(due);
                    match http_request(&http, &urls, &op).await {
                        Ok(ok) => {
                            run.answered(due, op.kind(), ok);
                            if ok {
                                run.room_acked(urls.room, due);
                            }
                        }
                        Err(()) => run.failed(due),
                    }
                }));
            }
        }
    }
    for task in inflight {
        let _ = task.await;
    }
}
