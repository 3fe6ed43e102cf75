//! `Router`: what the HTTP and socket edges call for rooms. Without a cluster it is the
//! registry. In a cluster, a room open here goes to the registry; a room another node owns goes
//! to that node (the answer, refusals included, comes back as the owner gave it); a socket for
//! such a room goes to this node's mirror of it; and a room whose owner is being replaced is
//! `503` with a retry hint until the takeover is done.
//!
//! An owner is read from the journal once and cached; a call that finds it wrong (the node does
//! not answer, or says it does not own the room) reads it again and retries, a few times.

use std::{cell::Cell, pin::pin, sync::Arc, time::Duration};

use actix_web::http::Method;
use futures_util::future::{join_all, select, Either};
use roomstate_core::room::{ChatMessage, Command, IdempotencyKey, RoomId, RoomView, UserName, Via};

use super::{
    client::CallError,
    wire::{
        AppliedAnswer, AttachCall, CommandCall, CreateCall, MessagesAnswer, RoomsAnswer, SyncCall,
        SyncedSocket, WireSocket,
    },
    Cluster,
};
use crate::room::{
    failure::{RegistryFailure, RoomFailure},
    link::RoomLink,
    messages::Applied,
    outbound::SessionId,
    registry::Registry,
};

/// Tries per call: the owner may move once (or the cache be stale) between two tries.
const TRIES: usize = 3;
/// How much longer than its owner's close timeout a forwarded close is waited for.
const CLOSE_CALL_MARGIN: Duration = Duration::from_secs(5);

/// Where a room's calls go.
enum Route {
    /// Open here, or not open anywhere (the registry answers from the store).
    Here,
    /// Owned by a live node elsewhere.
    Remote { node: String, url: String },
    /// Its owner is gone or being replaced: a takeover is due.
    Moving,
}

/// A client's command on its way to its room, wherever that is. Forwarded to an owner, a
/// message without an idempotency key gets one: a forward whose answer was lost is sent again
/// (to the same owner, or to the next one, which knows the keys from the journal), and must not
/// post the message twice. Once forwarded, the command keeps that key when the room comes here
/// after all (this node took it over from the owner that did not answer, and replayed what it
/// had made durable); a command never forwarded is applied here as the client sent it.
struct Forwarded {
    command: Command,
    keyed: Command,
    sent: Cell<bool>,
}

impl Forwarded {
    fn new(command: Command) -> Self {
        let keyed = match &command {
            Command::Say {
                user,
                text,
                key: None,
            } => Command::Say {
                user: user.clone(),
                text: text.clone(),
                key: Some(IdempotencyKey::generate()),
            },
            command => command.clone(),
        };
        Self {
            command,
            keyed,
            sent: Cell::new(false),
        }
    }

    /// The command for its owner on another node.
    fn to_owner(&self) -> Command {
        self.sent.set(true);
        self.keyed.clone()
    }

    /// The command for the room here.
    fn here(&self) -> Command {
        if self.sent.get() {
            self.keyed.clone()
        } else {
            self.command.clone()
        }
    }
}

/// `call`'s outcome, or `None` once `node` stops being the room's owner as far as this node can
/// tell (judged dead, or the room taken over here) while the call still waits: a paused owner
/// would otherwise hold its callers until the call's timeout. Calling the new owner instead is
/// safe: the old one can make nothing durable any more (fenced), whatever it already made
/// durable the new one replayed, and every forwarded command is idempotent (see `Forwarded`).
async fn while_owner<T>(
    cluster: &Cluster,
    room: &RoomId,
    node: &str,
    call: impl std::future::Future<Output = T>,
) -> Option<T> {
    let replaced = async {
        loop {
            actix_rt::time::sleep(cluster.owner_check_every()).await;
            if !cluster.still_owner(room, node) {
                return;
            }
        }
    };
    match select(pin!(call), pin!(replaced)).await {
        Either::Left((answer, _)) => Some(answer),
        Either::Right(((), _)) => None,
    }
}

fn moving() -> RegistryFailure {
    RoomFailure::Unavailable(
        "the room is moving to another node of the cluster; retry in a moment".into(),
    )
    .into()
}

/// Rooms, wherever they are.
#[derive(Clone)]
pub(crate) struct Router {
    registry: Arc<Registry>,
    cluster: Option<Arc<Cluster>>,
}

impl Router {
    pub(crate) fn new(registry: Arc<Registry>, cluster: Option<Arc<Cluster>>) -> Self {
        Self { registry, cluster }
    }

    /// The rooms open on this node.
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    async fn route(&self, cluster: &Cluster, id: &RoomId) -> Result<Route, RegistryFailure> {
        if self.registry.get(id).is_some() {
            return Ok(Route::Here);
        }
        let Some(mut owner) = cluster.owner(id).await? else {
            return Ok(Route::Here);
        };
        if owner.node == cluster.me() {
            // Cached from when this node opened it: it may have closed or moved since.
            match cluster.owner_now(id).await? {
                Some(now) => owner = now,
                None => return Ok(Route::Here),
            }
        }
        if owner.node == cluster.me() {
            cluster.forget_owner(id);
            // Closed here a moment ago: its lease goes with its log, which its actor deletes
            // now. The store has its record.
            if self.registry.closed_lately(id) {
                return Ok(Route::Here);
            }
            // Owned by this node's id and not open here: being created or taken over right
            // now, or held by a run of this node that ended (the next scan takes it back).
            return Ok(Route::Moving);
        }
        match cluster.url_of_live(&owner.node) {
            Some(url) => Ok(Route::Remote {
                node: owner.node,
                url,
            }),
            None => {
                cluster.forget_owner(id);
                Ok(Route::Moving)
            }
        }
    }

    /// Runs `remote` against the room's owner, or `here` when the room is open here (or
    /// nowhere), re-reading the owner when a try finds it wrong.
    async fn routed<T, H, HF, R, RF>(
        &self,
        id: &RoomId,
        kind: &'static str,
        here: H,
        remote: R,
    ) -> Result<T, RegistryFailure>
    where
        H: Fn() -> HF,
        HF: std::future::Future<Output = Result<T, RegistryFailure>>,
        R: Fn(String, String) -> RF,
        RF: std::future::Future<Output = Result<T, CallError>>,
    {
        let Some(cluster) = &self.cluster else {
            return here().await;
        };
        // Boxed: a forward's future (an HTTP call to the owner) is many times the size of the
        // local path's, and every caller's future would otherwise carry its size, a single
        // engine's included (actix-web allocates each request's handler future whole).
        Box::pin(self.routed_in(cluster, id, kind, here, remote)).await
    }

    /// `routed` in a cluster. Its own function (with `routed`'s bounds) so that `mutate`, which
    /// prepares its forward only in a cluster, can box it directly: called through `routed`,
    /// the single engine's mutate future would carry `routed`'s inline local path as well.
    async fn routed_in<T, H, HF, R, RF>(
        &self,
        cluster: &Cluster,
        id: &RoomId,
        kind: &'static str,
        here: H,
        remote: R,
    ) -> Result<T, RegistryFailure>
    where
        H: Fn() -> HF,
        HF: std::future::Future<Output = Result<T, RegistryFailure>>,
        R: Fn(String, String) -> RF,
        RF: std::future::Future<Output = Result<T, CallError>>,
    {
        for _ in 0..TRIES {
            match self.route(cluster, id).await? {
                Route::Here => match here().await {
                    // Its actor here stopped since the route was read: the room moved away
                    // (nothing was applied); read its owner again.
                    Err(RegistryFailure::Room(RoomFailure::Stopped)) => {
                        tracing::debug!(room.id = %id, "the room left this node while a call waited on it; reading the owner again");
                        cluster.forget_owner(id);
                    }
                    answered => return answered,
                },
                Route::Moving => return Err(moving()),
                Route::Remote { node, url } => {
                    cluster.metrics().forwarded(kind);
                    let Some(answered) =
                        while_owner(cluster, id, &node, remote(node.clone(), url)).await
                    else {
                        tracing::debug!(room.id = %id, node.id = %node, "the room's owner was replaced while a call waited on it; calling the new one");
                        cluster.forget_owner(id);
                        continue;
                    };
                    match answered {
                        Ok(answer) => return Ok(answer),
                        Err(CallError::Refused { code, message }) => {
                            return Err(RoomFailure::Refused { code, message }.into())
                        }
                        Err(error) => {
                            tracing::debug!(room.id = %id, %error, "the room's owner did not answer the call; reading the owner again");
                            cluster.forget_owner(id);
                        }
                    }
                }
            }
        }
        Err(moving())
    }

    /// Opens a room, on the least-loaded live node.
    pub(crate) async fn create(&self, title: String) -> Result<RoomView, RoomFailure> {
        let Some(cluster) = &self.cluster else {
            return self.registry.create(title).await;
        };
        roomstate_core::room::validate_title(&title)?;
        if self.registry.is_stopping() {
            return Err(RoomFailure::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        let (node, url) = cluster.place_new_room();
        let id = RoomId::generate();
        if node != cluster.me() {
            cluster.metrics().forwarded("create");
            let call = CreateCall {
                title: title.clone(),
                id: Some(id.clone()),
            };
            let created = cluster
                .client()
                .call::<_, RoomView>(
                    &node,
                    &url,
                    Method::POST,
                    "/internal/cluster/rooms",
                    Some(&call),
                )
                .await;
            match created {
                Ok(view) => return Ok(view),
                Err(CallError::Refused { code, message }) => {
                    return Err(RoomFailure::Refused { code, message })
                }
                // That node cannot take it now, or its answer was lost: this one opens it under
                // the same id. If the other made it after all, the claim of the id is refused,
                // and the room it made is the answer.
                Err(error) => {
                    tracing::debug!(node.id = %node, room.id = %id, %error, "new room not placed on its node; opening it here");
                    return match self.create_here(cluster, id.clone(), title).await {
                        Ok(view) => Ok(view),
                        Err(failure) => Box::pin(self.view(&id)).await.map_err(|_| failure),
                    };
                }
            }
        }
        self.create_here(cluster, id, title).await
    }

    /// Opens room `id` on this node: claims it first, so its owner is known before it exists
    /// (a claim the journal refuses when the room exists already).
    pub(crate) async fn create_here(
        &self,
        cluster: &Cluster,
        id: RoomId,
        title: String,
    ) -> Result<RoomView, RoomFailure> {
        let claim = cluster.claim_new(&id).await?;
        self.registry.create_claimed(id, title, claim.epoch).await
    }

    /// Applies a client's command, wherever its room is.
    pub(crate) async fn mutate(
        &self,
        id: &RoomId,
        command: Command,
        via: Via,
    ) -> Result<Applied, RegistryFailure> {
        let Some(cluster) = &self.cluster else {
            // A single engine: no forward to prepare.
            return self.registry.mutate(id, command, via).await;
        };
        let path = format!("/internal/cluster/rooms/{id}/commands");
        let forwarded = Forwarded::new(command);
        // Boxed, as in `routed`: the single engine's path above stays small.
        Box::pin(self.routed_in(
            cluster,
            id,
            "command",
            || self.registry.mutate(id, forwarded.here(), via),
            |node, url| {
                let call = CommandCall {
                    command: forwarded.to_owner().into(),
                    socket: None,
                };
                let path = path.clone();
                async move { self.call_applied(&node, &url, &path, &call).await }
            },
        ))
        .await
    }

    /// A `POST` to the owner whose answer is an applied command (a seq and the view).
    async fn call_applied<B: serde::Serialize>(
        &self,
        node: &str,
        url: &str,
        path: &str,
        call: &B,
    ) -> Result<Applied, CallError> {
        let answer: AppliedAnswer = self
            .client()
            .call(node, url, Method::POST, path, Some(call))
            .await?;
        Ok(Applied {
            seq: answer.seq,
            view: answer.view,
        })
    }

    fn client(&self) -> super::client::NodeClient {
        match &self.cluster {
            Some(cluster) => cluster.client().clone(),
            None => super::client::NodeClient::new(String::new()),
        }
    }

    /// The room's view: from its owner, or from the store once it is closed.
    pub(crate) async fn view(&self, id: &RoomId) -> Result<RoomView, RegistryFailure> {
        let path = format!("/internal/cluster/rooms/{id}");
        self.routed(
            id,
            "view",
            || self.registry.view(id),
            |node, url| {
                let path = path.clone();
                async move {
                    self.client()
                        .call::<(), RoomView>(&node, &url, Method::GET, &path, None)
                        .await
                }
            },
        )
        .await
    }

    /// Durable messages with `seq > after`, oldest first, at most `limit`.
    pub(crate) async fn messages(
        &self,
        id: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, RegistryFailure> {
        let path = format!("/internal/cluster/rooms/{id}/messages?after={after}&limit={limit}");
        self.routed(
            id,
            "messages",
            || self.registry.messages(id, after, limit),
            |node, url| {
                let path = path.clone();
                async move {
                    let answer: MessagesAnswer = self
                        .client()
                        .call::<(), _>(&node, &url, Method::GET, &path, None)
                        .await?;
                    Ok(answer.messages)
                }
            },
        )
        .await
    }

    /// Closes a room, wherever it is; closing a closed room answers its final view again.
    pub(crate) async fn close(&self, id: &RoomId) -> Result<RoomView, RegistryFailure> {
        let path = format!("/internal/cluster/rooms/{id}/close");
        // The owner answers within its close timeout (the store's, and 5 s more): waiting less
        // would take a slow close for an owner that is gone.
        let within = self.registry.close_timeout() + CLOSE_CALL_MARGIN;
        self.routed(
            id,
            "close",
            || self.registry.close(id),
            |node, url| {
                let path = path.clone();
                async move {
                    self.client()
                        .call_within::<(), RoomView>(&node, &url, Method::POST, &path, None, within)
                        .await
                }
            },
        )
        .await
    }

    /// Views of every open room of the cluster, newest first. A node that does not answer in
    /// time is left out (its rooms are being taken over).
    pub(crate) async fn views(&self) -> Vec<RoomView> {
        let mut views = self.registry.views().await;
        let Some(cluster) = &self.cluster else {
            return views;
        };
        let peers = cluster.live_peers();
        let client = cluster.client().clone();
        let asked = join_all(peers.iter().map(|(node, url)| {
            let client = client.clone();
            async move {
                cluster.metrics().forwarded("rooms");
                let answer = client
                    .call::<(), RoomsAnswer>(
                        node,
                        url,
                        Method::GET,
                        "/internal/cluster/rooms",
                        None,
                    )
                    .await;
                (node, answer)
            }
        }))
        .await;
        for (node, answer) in asked {
            match answer {
                Ok(answer) => views.extend(answer.rooms),
                Err(error) => {
                    tracing::debug!(node.id = %node, %error, "a node's rooms are left out of the list")
                }
            }
        }
        views.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        views.dedup_by(|a, b| a.id == b.id);
        views
    }

    /// What a new socket for the room talks to: the room here, or this node's mirror of it.
    pub(crate) async fn socket_link(&self, id: &RoomId) -> Result<RoomLink, RegistryFailure> {
        let Some(cluster) = &self.cluster else {
            let room = self.registry.room_for_socket(id).await?;
            return Ok(RoomLink::to(&room));
        };
        match self.route(cluster, id).await? {
            Route::Here => {
                let room = self.registry.room_for_socket(id).await?;
                Ok(RoomLink::to(&room))
            }
            Route::Moving => Err(moving()),
            Route::Remote { .. } => {
                if self.registry.is_stopping() {
                    return Err(
                        RoomFailure::Unavailable("the server is shutting down".into()).into(),
                    );
                }
                let mirror = cluster.mirrors().mirror(id, self.clone());
                Ok(RoomLink::to(&mirror))
            }
        }
    }

    /// A socket on this node for a room this node mirrors opened: its user joins at the owner.
    pub(crate) async fn attach_socket(
        &self,
        id: &RoomId,
        session: SessionId,
        user: &UserName,
    ) -> Result<Applied, RegistryFailure> {
        let me = self.me();
        let path = format!("/internal/cluster/rooms/{id}/sockets");
        self.routed(
            id,
            "socket",
            || {
                self.registry
                    .attach_remote(id, me.clone(), session, user.clone())
            },
            |node, url| {
                let call = AttachCall {
                    node: me.clone(),
                    session,
                    user: user.clone(),
                };
                let path = path.clone();
                async move { self.call_applied(&node, &url, &path, &call).await }
            },
        )
        .await
    }

    /// A command from a socket on this node for a room this node mirrors.
    pub(crate) async fn socket_mutate(
        &self,
        id: &RoomId,
        session: SessionId,
        command: Command,
    ) -> Result<Applied, RegistryFailure> {
        let me = self.me();
        let path = format!("/internal/cluster/rooms/{id}/commands");
        let forwarded = Forwarded::new(command);
        self.routed(
            id,
            "command",
            || {
                self.registry
                    .remote_mutate(id, me.clone(), session, forwarded.here())
            },
            |node, url| {
                let call = CommandCall {
                    command: forwarded.to_owner().into(),
                    socket: Some(WireSocket {
                        node: me.clone(),
                        session,
                    }),
                };
                let path = path.clone();
                async move { self.call_applied(&node, &url, &path, &call).await }
            },
        )
        .await
    }

    /// A socket on this node for a room this node mirrors closed.
    pub(crate) async fn detach_socket(&self, id: &RoomId, session: SessionId) {
        let me = self.me();
        let path = format!("/internal/cluster/rooms/{id}/sockets/{me}/{session}");
        let detached = self
            .routed(
                id,
                "socket",
                || async {
                    self.registry.detach_remote(id, me.clone(), session);
                    Ok(())
                },
                |node, url| {
                    let path = path.clone();
                    async move {
                        self.client()
                            .send::<()>(&node, &url, Method::DELETE, &path, None)
                            .await
                    }
                },
            )
            .await;
        if let Err(error) = detached {
            // The owner is gone or moving: the next owner never learnt of the socket, or the
            // next sync sets it right.
            tracing::debug!(room.id = %id, %error, "socket departure not told to the owner");
        }
    }

    /// Every socket this node holds of a room it mirrors, told to the owner.
    pub(crate) async fn sync_sockets(
        &self,
        id: &RoomId,
        sockets: Vec<(SessionId, UserName)>,
    ) -> Result<(), RegistryFailure> {
        let me = self.me();
        let path = format!("/internal/cluster/rooms/{id}/sockets/{me}");
        self.routed(
            id,
            "socket",
            || async { self.registry.sync_remote(id, me.clone(), sockets.clone()) },
            |node, url| {
                let call = SyncCall {
                    sockets: sockets
                        .iter()
                        .map(|(session, user)| SyncedSocket {
                            session: *session,
                            user: user.clone(),
                        })
                        .collect(),
                };
                let path = path.clone();
                async move {
                    self.client()
                        .send(&node, &url, Method::PUT, &path, Some(&call))
                        .await
                }
            },
        )
        .await
    }

    fn me(&self) -> String {
        self.cluster
            .as_ref()
            .map(|c| c.me().to_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserName {
        UserName::parse("ann").expect("a valid name")
    }

    #[test]
    fn a_forwarded_message_always_carries_a_key_and_a_clients_key_is_kept() {
        let keyless = Command::Say {
            user: user(),
            text: "hi".into(),
            key: None,
        };
        let Command::Say { key: Some(key), .. } = Forwarded::new(keyless).to_owner() else {
            panic!("a forwarded message without a key gets one");
        };
        assert!(IdempotencyKey::parse(key.as_str()).is_ok());

        let own = IdempotencyKey::parse("client-1").expect("a valid key");
        let keyed_by_client = Command::Say {
            user: user(),
            text: "hi".into(),
            key: Some(own),
        };
        let forwarded = Forwarded::new(keyed_by_client.clone());
        assert_eq!(forwarded.to_owner(), keyed_by_client);
        assert_eq!(forwarded.here(), keyed_by_client);
        let vote = Command::Vote {
            user: user(),
            side: roomstate_core::room::Side::Pro,
        };
        assert_eq!(Forwarded::new(vote.clone()).to_owner(), vote);
    }

    #[test]
    fn a_message_applied_here_after_a_forward_keeps_the_forwards_key() {
        let keyless = Command::Say {
            user: user(),
            text: "hi".into(),
            key: None,
        };
        // Never forwarded: applied as the client sent it.
        assert_eq!(Forwarded::new(keyless.clone()).here(), keyless);
        // Forwarded to an owner that did not answer, then taken over here: the owner may
        // have made it durable under the forward's key, which the replay knows.
        let forwarded = Forwarded::new(keyless);
        let sent = forwarded.to_owner();
        assert!(matches!(&sent, Command::Say { key: Some(_), .. }));
        assert_eq!(forwarded.here(), sent);
        assert_eq!(forwarded.to_owner(), sent, "the same key on every try");
    }
}
