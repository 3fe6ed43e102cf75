//! The floor's routes: the part of docs/api.md that `roomstate-load run` uses (create a room,
//! join, vote, post a message, open a socket) plus reading a room, with the contract's bodies,
//! statuses and error body. Bodies are parsed into the same shapes the engine parses (unknown
//! fields refused, names checked); every other path is `404 not_found`.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use roomstate_core::{
    protocol::ErrorCode,
    room::{validate_title, RoomId, Side, UserName},
};
use serde::Deserialize;

use crate::{error, rooms::Rooms, socket, tally::Refusal};

/// The engine's default `limits.max_body_bytes`.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    title: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    user: UserName,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    side: Side,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SayBody {
    user: UserName,
    text: String,
}

#[derive(Deserialize)]
struct SocketQuery {
    user: Option<String>,
}

/// Registers the routes on an app.
pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(error::json_config(MAX_BODY_BYTES))
        .route("/rooms", web::post().to(create))
        .route("/rooms/{id}", web::get().to(view))
        .route("/rooms/{id}/join", web::post().to(join))
        .route("/rooms/{id}/leave", web::post().to(leave))
        .route("/rooms/{id}/votes/{user}", web::put().to(vote))
        .route("/rooms/{id}/votes/{user}", web::delete().to(retract))
        .route("/rooms/{id}/messages", web::post().to(say))
        .route("/rooms/{id}/ws", web::get().to(open_socket))
        .default_service(web::to(|| async {
            Refusal::new(ErrorCode::NotFound, "no such route").error_response()
        }));
}

/// A room id from the path; one that cannot exist is simply not found.
fn room_id(text: &str) -> Result<RoomId, Refusal> {
    RoomId::parse(text).map_err(|_| Refusal::new(ErrorCode::NotFound, format!("no room {text}")))
}

fn user_name(text: &str) -> Result<UserName, Refusal> {
    UserName::parse(text).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))
}

async fn create(
    rooms: web::Data<Rooms>,
    body: web::Json<CreateRoom>,
) -> Result<HttpResponse, Refusal> {
    let title = body.into_inner().title;
    validate_title(&title).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
    Ok(HttpResponse::Created().json(rooms.create(title)))
}

async fn view(rooms: web::Data<Rooms>, id: web::Path<String>) -> Result<HttpResponse, Refusal> {
    let id = room_id(&id)?;
    let view = rooms.with(&id, |t| Ok(t.view()))?;
    Ok(HttpResponse::Ok().json(view))
}

async fn join(
    rooms: web::Data<Rooms>,
    id: web::Path<String>,
    body: web::Json<UserBody>,
) -> Result<HttpResponse, Refusal> {
    let id = room_id(&id)?;
    let view = rooms.with(&id, |t| {
        t.join_http(&body.user);
        Ok(t.view())
    })?;
    Ok(HttpResponse::Ok().json(view))
}

async fn leave(
    rooms: web::Data<Rooms>,
    id: web::Path<String>,
    body: web::Json<UserBody>,
) -> Result<HttpResponse, Refusal> {
    let id = room_id(&id)?;
    let view = rooms.with(&id, |t| {
        t.leave_http(&body.user);
        Ok(t.view())
    })?;
    Ok(HttpResponse::Ok().json(view))
}

async fn vote(
    rooms: web::Data<Rooms>,
    path: web::Path<(String, String)>,
    body: web::Json<VoteBody>,
) -> Result<HttpResponse, Refusal> {
    let (id, user) = path.into_inner();
    let user = user_name(&user)?;
    let id = room_id(&id)?;
    let count = rooms.with(&id, |t| t.vote(&user, body.side))?;
    Ok(HttpResponse::Ok().json(count))
}

async fn retract(
    rooms: web::Data<Rooms>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Refusal> {
    let (id, user) = path.into_inner();
    let user = user_name(&user)?;
    let id = room_id(&id)?;
    let count = rooms.with(&id, |t| t.retract(&user))?;
    Ok(HttpResponse::Ok().json(count))
}

async fn say(
    rooms: web::Data<Rooms>,
    id: web::Path<String>,
    body: web::Json<SayBody>,
) -> Result<HttpResponse, Refusal> {
    let id = room_id(&id)?;
    let seq = rooms.with(&id, |t| t.say(&body.user, &body.text))?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "seq": seq })))
}

/// `GET /rooms/{id}/ws?user=U`: refused before the upgrade for a bad user or an unknown room.
async fn open_socket(
    rooms: web::Data<Rooms>,
    id: web::Path<String>,
    query: web::Query<SocketQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let id = room_id(&id)?;
    let user = user_name(query.user.as_deref().unwrap_or_default())?;
    rooms.with(&id, |_| Ok(()))?;
    socket::start(rooms, id, user, &req, payload)
}
