//! What a cluster of engines keeps in Redis beside the rooms' logs: the nodes and their
//! heartbeats, and who owns each room. The engine decides (who is alive, who takes what); this
//! only reads and writes, on the writer's connection, behind the writes queued before.
//!
//! Keys: `roomstate:nodes` (hash: node id -> `NodeRecord` JSON, rewritten by every heartbeat of
//! that node) and each room's owner hash (`roomstate:{<room>}:owner`: `node`, `epoch`), which
//! only the journal's function writes (claims, releases, deletes).

use redis::{aio::MultiplexedConnection, Value};
use roomstate_core::room::RoomId;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{recover, unavailable, Keys, ROOMS_PER_PIPELINE};
use crate::{Epoch, JournalError};

/// One node as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    /// Where other nodes reach it (`cluster.advertise_url`).
    pub advertise_url: String,
    /// Rooms it owned at its last heartbeat (new rooms go to the least loaded).
    pub rooms: u64,
    /// Grows with every heartbeat of one run of the node; with `started_ms`, what tells an
    /// observer that the node is still beating (it never compares clocks).
    pub beat: u64,
    /// When this run of the node started (its own clock): a node restarted under the same id
    /// is a new run, which owns nothing of what the old one held until it claims it again.
    pub started_ms: u64,
    /// It is handing its rooms over (SIGTERM): no new rooms go to it.
    pub leaving: bool,
}

/// Who owns a room: the node its owner hash names (`""` after a release: nobody) and the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    pub epoch: Epoch,
}

/// Where a call's answer goes.
type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// A cluster request to the writer thread.
pub(super) enum Call {
    /// Write this node's record, answer every node's.
    Heartbeat {
        me: NodeRecord,
        reply: Reply<Vec<NodeRecord>>,
    },
    /// Remove a node's record (it left, or died and owns nothing any more).
    Forget { node: String, reply: Reply<()> },
    /// The owners of these rooms (`None`: no owner hash: never claimed, or closed).
    Owners {
        rooms: Vec<RoomId>,
        reply: Reply<Vec<Option<Owner>>>,
    },
    /// Every open room with its owner.
    OpenRooms {
        reply: Reply<Vec<(RoomId, Option<Owner>)>>,
    },
}

/// Runs `call` and answers it; the error it answered, if Redis could not be reached (the writer
/// then checks whether the connection itself is gone).
pub(super) async fn serve(
    conn: &mut MultiplexedConnection,
    keys: &Keys<'_>,
    call: Call,
) -> Option<JournalError> {
    match call {
        Call::Heartbeat { me, reply } => answer(reply, heartbeat(conn, keys, &me).await),
        Call::Forget { node, reply } => {
            let result = redis::cmd("HDEL")
                .arg(keys.nodes())
                .arg(&node)
                .query_async::<i64>(conn)
                .await
                .map(drop)
                .map_err(|e| unavailable("forgetting a node", e));
            answer(reply, result)
        }
        Call::Owners { rooms, reply } => answer(reply, owners(conn, keys, &rooms).await),
        Call::OpenRooms { reply } => {
            let result = async {
                let rooms: Vec<RoomId> = recover::list_rooms(conn, keys)
                    .await?
                    .iter()
                    .filter_map(|r| RoomId::parse(r).ok())
                    .collect();
                let owners = owners(conn, keys, &rooms).await?;
                Ok(rooms.into_iter().zip(owners).collect())
            }
            .await;
            answer(reply, result)
        }
    }
}

/// Sends `result`; its error if it is `Unavailable`.
fn answer<T>(reply: Reply<T>, result: Result<T, JournalError>) -> Option<JournalError> {
    let unreachable = match &result {
        Err(error @ JournalError::Unavailable(_)) => Some(error.clone()),
        _ => None,
    };
    let _ = reply.send(result);
    unreachable
}

/// Answers a call that could not reach the writer thread.
pub(super) fn refuse(call: Call, error: JournalError) {
    match call {
        Call::Heartbeat { reply, .. } => drop(reply.send(Err(error))),
        Call::Forget { reply, .. } => drop(reply.send(Err(error))),
        Call::Owners { reply, .. } => drop(reply.send(Err(error))),
        Call::OpenRooms { reply } => drop(reply.send(Err(error))),
    }
}

async fn heartbeat(
    conn: &mut MultiplexedConnection,
    keys: &Keys<'_>,
    me: &NodeRecord,
) -> Result<Vec<NodeRecord>, JournalError> {
    let json = serde_json::to_string(me)
        .map_err(|e| JournalError::Corrupt(format!("node record not encodable: {e}")))?;
    let mut pipe = redis::pipe();
    pipe.cmd("HSET")
        .arg(keys.nodes())
        .arg(&me.id)
        .arg(json)
        .ignore();
    pipe.cmd("HGETALL").arg(keys.nodes());
    let (all,): (Vec<(String, String)>,) = pipe
        .query_async(conn)
        .await
        .map_err(|e| unavailable("heartbeat", e))?;
    let mut nodes = Vec::with_capacity(all.len());
    for (id, json) in all {
        match serde_json::from_str::<NodeRecord>(&json) {
            Ok(record) => nodes.push(record),
            // Another version's record, or garbage: not a node this one can work with.
            Err(error) => tracing::warn!(node.id = %id, %error, "unreadable node record; ignored"),
        }
    }
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(nodes)
}

async fn owners(
    conn: &mut MultiplexedConnection,
    keys: &Keys<'_>,
    rooms: &[RoomId],
) -> Result<Vec<Option<Owner>>, JournalError> {
    let mut owners = Vec::with_capacity(rooms.len());
    for chunk in rooms.chunks(ROOMS_PER_PIPELINE) {
        let mut pipe = redis::pipe();
        for room in chunk {
            pipe.cmd("HMGET")
                .arg(keys.owner(room.as_str()))
                .arg("node")
                .arg("epoch");
        }
        let replies: Vec<Value> = pipe
            .query_async(&mut *conn)
            .await
            .map_err(|e| unavailable("reading room owners", e))?;
        if replies.len() != chunk.len() {
            return Err(unavailable("reading room owners", "short pipeline reply"));
        }
        for reply in replies {
            let (node, epoch): (Option<String>, Option<u64>) =
                redis::from_redis_value(reply).map_err(|e| unavailable("room owner reply", e))?;
            owners.push(epoch.map(|epoch| Owner {
                node: node.unwrap_or_default(),
                epoch: Epoch(epoch),
            }));
        }
    }
    Ok(owners)
}
