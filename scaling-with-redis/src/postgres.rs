//! The cluster's database: PostgreSQL, which every node reaches over the network (a SQLite
//! file can only be shared by processes on one machine). Step 3's [`UserStore`] and the
//! chat's [`MessageLog`] over it, with migrations of their own; the code shape is step 5's.

use std::sync::Arc;

use chat_under_load::log::{LogFuture, Logged, MessageLog};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use step03_passport_like_auth::{CreateUserError, StoreError, User, UserStore};
use step05_chat::messages::{ChatMessage, NewMessage, Page, Stored};
use tokio::sync::mpsc;

/// Whether `database_url` names a PostgreSQL database (else it is step 5's SQLite).
pub fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

// ANCHOR: open
/// Connects to the database at `database_url` (`postgres://user:password@host/db`) and brings
/// its tables up to date. Several nodes starting at once are fine: sqlx takes a PostgreSQL
/// advisory lock around the migrations, so one node runs them and the others wait.
pub async fn open(database_url: &str) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        // A database that is down makes requests fail after 5 s, not hang.
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(database_url)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}
// ANCHOR_END: open

fn now_millis() -> i64 {
    i64::try_from(step01_http_vs_socket::now_ms()).unwrap_or(i64::MAX)
}

/// Step 3's [`UserStore`] over the `users` table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgUserStore {
    pool: PgPool,
}

impl PgUserStore {
    pub fn new(pool: PgPool) -> Self {
        PgUserStore { pool }
    }
}

impl UserStore for PgUserStore {
    async fn find_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, username FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::new)?;
        Ok(row.map(|(id, username)| User { id, username }))
    }

    async fn find_with_epoch(&self, id: i64) -> Result<Option<(User, i64)>, StoreError> {
        let row: Option<(i64, String, i64)> =
            sqlx::query_as("SELECT id, username, session_epoch FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::new)?;
        Ok(row.map(|(id, username, epoch)| (User { id, username }, epoch)))
    }

    async fn end_sessions(
        &self,
        id: i64,
        new_password_hash: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        // One statement: the new hash and the new epoch are stored together or not at all.
        sqlx::query_scalar(
            "UPDATE users SET session_epoch = session_epoch + 1, \
             password_hash = coalesce($1, password_hash) \
             WHERE id = $2 RETURNING session_epoch",
        )
        .bind(new_password_hash)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)
    }

    async fn find_credentials(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT id, username, password_hash FROM users WHERE lower(username) = lower($1)",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(row.map(|(id, username, hash)| (User { id, username }, hash)))
    }

    async fn create(&self, username: &str, password_hash: &str) -> Result<User, CreateUserError> {
        let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) \
             RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(id) => Ok(User {
                id,
                username: username.to_owned(),
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(CreateUserError::Taken),
            Err(e) => Err(StoreError::new(e).into()),
        }
    }
}

/// Messages delivered by this node, for the other nodes (see [`crate::feed`]).
#[derive(Debug)]
pub struct Delivered {
    pub room: String,
    /// The id of the room's message before the first of `messages`.
    pub after: i64,
    pub messages: Arc<[ChatMessage]>,
}

/// The chat's [`MessageLog`] in PostgreSQL, shared by every node.
#[derive(Clone, Debug)]
pub struct PgMessageLog {
    pool: PgPool,
    /// Where what this node delivered goes, to be published to the others.
    delivered: mpsc::Sender<Delivered>,
}

impl PgMessageLog {
    pub fn new(pool: PgPool, delivered: mpsc::Sender<Delivered>) -> Self {
        PgMessageLog { pool, delivered }
    }
}

/// A message and its sender's name, as every query reads them.
const SELECT: &str = "SELECT m.id, m.room, m.user_id, u.username, m.text, m.ts
    FROM messages m JOIN users u ON u.id = m.user_id";
type Row = (i64, String, i64, String, String, i64);

/// Up to which id the room's messages were deleted by retention (0: none).
const TRIMMED: &str = "SELECT COALESCE((SELECT deleted_upto FROM room_heads WHERE room = $1), 0)";

/// Deletes the 200 oldest messages of room `$1` beyond its newest `$2`, notes the newest id
/// deleted in the room's row, and counts what it deleted.
const TRIM: &str = "WITH doomed AS (
        SELECT id FROM messages WHERE room = $1 AND id <= (
            SELECT id FROM messages WHERE room = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)
        ORDER BY id LIMIT 200),
    deleted AS (DELETE FROM messages WHERE id IN (SELECT id FROM doomed) RETURNING id),
    noted AS (UPDATE room_heads
        SET deleted_upto = GREATEST(deleted_upto, (SELECT MAX(id) FROM deleted))
        WHERE room = $1 AND EXISTS (SELECT 1 FROM deleted))
    SELECT COUNT(*) FROM deleted";

fn from_row((id, room, user_id, username, text, ts): Row) -> ChatMessage {
    ChatMessage {
        id,
        room,
        user: User {
            id: user_id,
            username,
        },
        text,
        ts,
    }
}

impl MessageLog for PgMessageLog {
    fn insert_batch<'a>(
        &'a self,
        room: &'a str,
        batch: &'a [NewMessage],
    ) -> LogFuture<'a, Vec<Result<Logged, sqlx::Error>>> {
        Box::pin(async move {
            match insert_all(&self.pool, room, batch).await {
                Ok(logged) => logged.into_iter().map(Ok).collect(),
                // One bad message (its sender deleted meanwhile) must not sink the others.
                Err(_) if batch.len() > 1 => {
                    let mut one_by_one = Vec::with_capacity(batch.len());
                    for new in batch {
                        let single = insert_all(&self.pool, room, std::slice::from_ref(new));
                        one_by_one.push(single.await.map(|mut logged| logged.remove(0)));
                    }
                    one_by_one
                }
                Err(error) => vec![Err(error)],
            }
        })
    }

    fn newest<'a>(
        &'a self,
        room: &'a str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> LogFuture<'a, Result<Page, sqlx::Error>> {
        Box::pin(async move {
            let limit = limit.clamp(0, i64::MAX - 1);
            let sql = format!(
                "{SELECT} WHERE m.room = $1 AND m.id > $2 AND m.id <= $3 \
                 ORDER BY m.id DESC LIMIT $4"
            );
            // One more than asked: if it comes, some were left out.
            let mut rows: Vec<Row> = sqlx::query_as(&sql)
                .bind(room)
                .bind(after)
                .bind(upto)
                .bind(limit + 1)
                .fetch_all(&self.pool)
                .await?;
            let trimmed: i64 = sqlx::query_scalar(TRIMMED)
                .bind(room)
                .fetch_one(&self.pool)
                .await?;
            let truncated = rows.len() as i64 > limit || after < trimmed;
            rows.truncate(limit as usize);
            let messages = rows.into_iter().rev().map(from_row).collect();
            Ok(Page {
                messages,
                truncated,
            })
        })
    }

    fn last_id<'a>(&'a self, room: &'a str) -> LogFuture<'a, Result<i64, sqlx::Error>> {
        Box::pin(async move {
            sqlx::query_scalar(
                "SELECT COALESCE((SELECT last_id FROM room_heads WHERE room = $1), 0)",
            )
            .bind(room)
            .fetch_one(&self.pool)
            .await
        })
    }

    fn shared(&self) -> bool {
        true
    }

    // ANCHOR: trim
    /// Retention: deletes `room`'s oldest messages beyond its newest `cap`, 200 per statement
    /// (short, between the senders' transactions), and moves the room's `deleted_upto` in the
    /// same statement.
    fn trim<'a>(&'a self, room: &'a str, cap: i64) -> LogFuture<'a, ()> {
        Box::pin(async move {
            let mut more = cap < i64::MAX;
            while more {
                let batch = sqlx::query_scalar::<_, i64>(TRIM).bind(room).bind(cap);
                match batch.fetch_one(&self.pool).await {
                    Ok(deleted) => more = deleted > 0,
                    Err(error) => return tracing::error!(%error, %room, "trim"),
                }
            }
        })
    }
    // ANCHOR_END: trim

    fn delivered(&self, room: &str, after: i64, messages: &Arc<[ChatMessage]>) {
        let delivered = Delivered {
            room: room.to_owned(),
            after,
            messages: messages.clone(),
        };
        // Never wait here: the room's sequencer is calling. A notice dropped (Redis far
        // behind) is not a message lost: the other nodes read it from the database when the
        // next notice of the room, or their sweep, shows them the gap.
        if self.delivered.try_send(delivered).is_err() {
            tracing::warn!(
                room,
                "the notices to the other nodes are behind: dropped one"
            );
        }
    }
}

// ANCHOR: insert_all
/// Stores `batch` in `room` in ONE transaction that first locks the room's row in
/// `room_heads`: every node's inserts into this room wait for each other there, so the
/// room's ids grow in commit order, and each new message learns the id of the room's message
/// before it (`after`), from whichever node that came.
async fn insert_all(
    pool: &PgPool,
    room: &str,
    batch: &[NewMessage],
) -> Result<Vec<Logged>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // An upsert that changes nothing still locks the row until the commit.
    let head: i64 = sqlx::query_scalar(
        "INSERT INTO room_heads (room, last_id) VALUES ($1, 0)
         ON CONFLICT (room) DO UPDATE SET last_id = room_heads.last_id
         RETURNING last_id",
    )
    .bind(room)
    .fetch_one(&mut *tx)
    .await?;
    let mut last = head;
    let mut logged = Vec::with_capacity(batch.len());
    for new in batch {
        let stored = insert_one(&mut tx, room, new).await?;
        let after = match &stored {
            Stored::New(message) => Some(std::mem::replace(&mut last, message.id)),
            Stored::Again(_) => None,
        };
        logged.push(Logged { stored, after });
    }
    if last != head {
        sqlx::query("UPDATE room_heads SET last_id = $2 WHERE room = $1")
            .bind(room)
            .bind(last)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(logged)
}
// ANCHOR_END: insert_all

/// Inserts one message inside `tx`; a `(user, client_offset)` already stored brings back the
/// earlier message (as step 5's `insert_one`).
async fn insert_one(
    tx: &mut Transaction<'_, Postgres>,
    room: &str,
    new: &NewMessage,
) -> Result<Stored, sqlx::Error> {
    let ts = now_millis();
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO messages (room, user_id, text, ts, client_offset)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, client_offset) DO NOTHING
         RETURNING id",
    )
    .bind(room)
    .bind(new.user.id)
    .bind(&new.text)
    .bind(ts)
    .bind(&new.client_offset)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = id {
        return Ok(Stored::New(ChatMessage {
            id,
            room: room.to_owned(),
            user: new.user.clone(),
            text: new.text.clone(),
            ts,
        }));
    }
    let sql = format!("{SELECT} WHERE m.user_id = $1 AND m.client_offset = $2");
    let earlier: Row = sqlx::query_as(&sql)
        .bind(new.user.id)
        .bind(&new.client_offset)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Stored::Again(from_row(earlier)))
}

/// The newest id of each of `rooms` (those that have messages).
pub async fn room_heads(
    pool: &PgPool,
    rooms: &[String],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT room, last_id FROM room_heads WHERE room = ANY($1)")
        .bind(rooms)
        .fetch_all(pool)
        .await
}
