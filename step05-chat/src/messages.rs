//! Chat messages: what the wire carries, and the table that remembers them.
//!
//! A Socket.IO broadcast reaches only the sockets connected at that moment.
//! Storing every message lets a user who joins later see the recent history
//! ([`MessageStore::recent`]), and a user whose connection dropped for a few
//! seconds catch up on exactly what they missed ([`MessageStore::since`]), the
//! way Socket.IO's "connection state recovery" does in Node.

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use step03_passport_like_auth::User;

use crate::db::now_millis;

/// How many messages a client gets when it joins a room, and at most per
/// catch-up.
pub const HISTORY_LIMIT: i64 = 50;

// ANCHOR: chat_message
/// A message as every client receives it, serialized as `{"id": 7, "room":
/// "general", "user": {"id": 1, "username": "alice"}, "text": "hi", "ts":
/// 1700000000000}`.
///
/// `user` is whoever the server authenticated on the socket, never something
/// the client said: the payload a client sends is only ever read for `room` and
/// `text` (see [`crate::validation::parse_chat_message`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    /// Grows with every message, in every room: a client remembers the last one
    /// it saw and asks for everything after it when it reconnects.
    pub id: i64,
    /// The room it was sent to.
    pub room: String,
    /// The sender. A [`User`] carries no password hash, so this is safe to send
    /// to everyone.
    pub user: User,
    /// The text, already trimmed and length-checked.
    pub text: String,
    /// When the server stored it, in milliseconds since the Unix epoch (`new
    /// Date(ts)` in JS).
    pub ts: i64,
}
// ANCHOR_END: chat_message

/// One `messages` row joined with its sender's name: the flat shape SQL
/// returns, before it is nested into a [`ChatMessage`].
#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    room: String,
    user_id: i64,
    username: String,
    text: String,
    ts: i64,
}

impl From<MessageRow> for ChatMessage {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            room: row.room,
            user: User {
                id: row.user_id,
                username: row.username,
            },
            text: row.text,
            ts: row.ts,
        }
    }
}

/// A message on its way into the table: checked text, the sender from the
/// session, and the sender's own id for it, if the client gave one (see
/// [`Stored::Again`]).
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The author, from the socket's session.
    pub user: User,
    /// Checked text.
    pub text: String,
    /// The client's id for this message: the same id sent twice is stored once.
    pub client_offset: Option<String>,
}

/// What [`MessageStore::insert_batch`] did with one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// Stored now: broadcast it.
    New(ChatMessage),
    /// Stored before, under the same `(user, client_offset)`: a client retrying
    /// a message it got no acknowledgement for. Acknowledge it again; do not
    /// broadcast it again.
    Again(ChatMessage),
}

impl Stored {
    /// The message, however it got stored.
    pub fn message(&self) -> &ChatMessage {
        match self {
            Stored::New(message) | Stored::Again(message) => message,
        }
    }
}

/// Some messages of a room, oldest first, and whether older ones were left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// True if the room has older messages in the asked range than `messages`
    /// holds.
    pub truncated: bool,
}

/// The `messages` table.
///
/// Cloning is cheap (the pool is a handle), so every socket handler can hold
/// one.
#[derive(Clone, Debug)]
pub struct MessageStore {
    pool: SqlitePool,
    /// One connection of its own for storing messages. SQLite takes one writer
    /// at a time anyway, and a writer with its own connection never queues
    /// behind readers (a flood of reconnections reading their history) for a
    /// connection from the pool.
    writer: SqlitePool,
}

// ANCHOR: message_store
impl MessageStore {
    /// A store over a pool from [`crate::db::open_database`], which has created
    /// the table.
    pub fn new(pool: SqlitePool) -> Self {
        let options = pool.connect_options().as_ref().clone();
        let writer = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        Self { pool, writer }
    }

    /// Stores a message from `user` and returns it as it should be broadcast,
    /// with the id and timestamp the database gave it. (The chat itself stores
    /// messages in batches, through [`Self::insert_batch`]; this is the
    /// one-message form.)
    ///
    /// `text` and `room` must already be validated; `user` must exist (the
    /// foreign key refuses a message from a deleted user).
    pub async fn insert(
        &self,
        room: &str,
        user: &User,
        text: &str,
    ) -> Result<ChatMessage, sqlx::Error> {
        let new = NewMessage {
            user: user.clone(),
            text: text.to_owned(),
            client_offset: None,
        };
        let mut tx = self.writer.begin().await?;
        let stored = insert_one(&mut tx, room, &new).await?;
        tx.commit().await?;
        Ok(stored.message().clone())
    }

    // ANCHOR: insert_batch
    /// Stores `batch` (all for `room`, in order) in ONE transaction: one
    /// commit, one wait for the disk, however many messages. Returns, for each,
    /// the stored message, or the one stored earlier with the same `(user,
    /// client_offset)`.
    ///
    /// If the transaction fails (say one sender was deleted meanwhile), each
    /// message is stored on its own instead, so one bad message does not sink
    /// the others.
    pub async fn insert_batch(
        &self,
        room: &str,
        batch: &[NewMessage],
    ) -> Vec<Result<Stored, sqlx::Error>> {
        match self.insert_all(room, batch).await {
            Ok(stored) => stored.into_iter().map(Ok).collect(),
            Err(_) if batch.len() > 1 => {
                let mut one_by_one = Vec::with_capacity(batch.len());
                for new in batch {
                    one_by_one.push(
                        self.insert_all(room, std::slice::from_ref(new)).await,
                    );
                }
                let first = |stored: Vec<Stored>| stored.into_iter().next();
                one_by_one
                    .into_iter()
                    .map(|r| {
                        r.and_then(|s| first(s).ok_or(sqlx::Error::RowNotFound))
                    })
                    .collect()
            }
            Err(error) => vec![Err(error)],
        }
    }

    async fn insert_all(
        &self,
        room: &str,
        batch: &[NewMessage],
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        let mut stored = Vec::with_capacity(batch.len());
        for new in batch {
            stored.push(insert_one(&mut tx, room, new).await?);
        }
        tx.commit().await?;
        Ok(stored)
    }
    // ANCHOR_END: insert_batch

    /// The id of the newest message of `room`, or 0 if it has none.
    pub async fn last_id(&self, room: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COALESCE(MAX(id), 0) FROM messages WHERE room = ?",
        )
        .bind(room)
        .fetch_one(&self.pool)
        .await
    }

    /// The `limit` newest messages of `room`, oldest first: the order a chat
    /// window shows them.
    pub async fn recent(
        &self,
        room: &str,
        limit: i64,
    ) -> Result<Vec<ChatMessage>, sqlx::Error> {
        Ok(self.newest(room, 0, i64::MAX, limit).await?.messages)
    }

    /// The `limit` newest messages of `room` with an id in `after+1 ..= upto`,
    /// oldest first, and whether there were more (older ones, left out).
    ///
    /// With `after = 0` this is a room's history as of message `upto`; with
    /// `after` = the last id a client saw, it is what that client missed (see
    /// `chat::enter_general`).
    pub async fn newest(
        &self,
        room: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Page, sqlx::Error> {
        let limit = sql_limit(limit);
        // "The newest N" needs a descending scan; the reader wants them
        // ascending. Asking SQL for the newest N + 1 (the extra one only says
        // "there is more") and reversing here is simpler than a nested query.
        let mut rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT m.id, m.room, m.user_id, u.username, m.text, m.ts
             FROM messages m JOIN users u ON u.id = m.user_id
             WHERE m.room = ? AND m.id > ? AND m.id <= ?
             ORDER BY m.id DESC
             LIMIT ?",
        )
        .bind(room)
        .bind(after)
        .bind(upto)
        .bind(limit.saturating_add(1))
        .fetch_all(&self.pool)
        .await?;
        let truncated = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        rows.reverse();
        Ok(Page {
            messages: rows.into_iter().map(ChatMessage::from).collect(),
            truncated,
        })
    }

    /// Up to `limit` messages of `room` sent after message `after_id`, oldest
    /// first.
    ///
    /// If more than `limit` were missed, the client gets the oldest `limit` and
    /// can ask again from the last id it received.
    pub async fn since(
        &self,
        room: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ChatMessage>, sqlx::Error> {
        let rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT m.id, m.room, m.user_id, u.username, m.text, m.ts
             FROM messages m JOIN users u ON u.id = m.user_id
             WHERE m.room = ? AND m.id > ?
             ORDER BY m.id ASC
             LIMIT ?",
        )
        .bind(room)
        .bind(after_id)
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ChatMessage::from).collect())
    }
}
// ANCHOR_END: message_store

/// Inserts one message inside `tx`. A `(user, client_offset)` already in the
/// table is not an error: the earlier message is returned as [`Stored::Again`].
async fn insert_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    room: &str,
    new: &NewMessage,
) -> Result<Stored, sqlx::Error> {
    let ts = now_millis();
    let done = sqlx::query(
        "INSERT INTO messages (room, user_id, text, ts, client_offset) \
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (user_id, client_offset) DO NOTHING",
    )
    .bind(room)
    .bind(new.user.id)
    .bind(&new.text)
    .bind(ts)
    .bind(&new.client_offset)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Stored::New(ChatMessage {
            id: done.last_insert_rowid(),
            room: room.to_owned(),
            user: new.user.clone(),
            text: new.text.clone(),
            ts,
        }));
    }
    let earlier: MessageRow = sqlx::query_as(
        "SELECT m.id, m.room, m.user_id, u.username, m.text, m.ts
         FROM messages m JOIN users u ON u.id = m.user_id
         WHERE m.user_id = ? AND m.client_offset = ?",
    )
    .bind(new.user.id)
    .bind(&new.client_offset)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Stored::Again(earlier.into()))
}

/// SQLite reads a negative `LIMIT` as "no limit at all"; a caller asking for -1
/// messages means none, not the whole table.
fn sql_limit(limit: i64) -> i64 {
    limit.max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{open_database, open_temp_database, temp_database_url};
    use crate::users::SqliteUserStore;
    use step03_passport_like_auth::UserStore;

    async fn create_user(pool: &SqlitePool, name: &str) -> User {
        SqliteUserStore::new(pool.clone())
            .create(name, "$argon2id$not-checked-here")
            .await
            .expect("create user")
    }

    fn texts(messages: &[ChatMessage]) -> Vec<&str> {
        messages.iter().map(|m| m.text.as_str()).collect()
    }

    #[tokio::test]
    async fn insert_returns_the_stored_message_with_a_fresh_id_and_timestamp() {
        let (_dir, pool) = open_temp_database().await;
        let alice = create_user(&pool, "alice").await;
        let store = MessageStore::new(pool);
        let before = now_millis();

        let first = store
            .insert("general", &alice, "hello")
            .await
            .expect("insert");
        let second = store
            .insert("general", &alice, "again")
            .await
            .expect("insert");

        assert_eq!(first.room, "general");
        assert_eq!(first.user, alice);
        assert_eq!(first.text, "hello");
        assert!(first.ts >= before && first.ts <= now_millis());
        assert!(second.id > first.id);
        assert_eq!(
            store.recent("general", 10).await.expect("recent"),
            vec![first, second]
        );
    }

    #[test]
    fn serializes_to_exactly_the_wire_shape() {
        let message = ChatMessage {
            id: 7,
            room: "general".to_owned(),
            user: User {
                id: 1,
                username: "alice".to_owned(),
            },
            text: "hi".to_owned(),
            ts: 1_700_000_000_000,
        };

        let json = serde_json::to_value(&message).expect("serialize");

        assert_eq!(
            json,
            serde_json::json!({
                "id": 7,
                "room": "general",
                "user": {"id": 1, "username": "alice"},
                "text": "hi",
                "ts": 1_700_000_000_000_i64,
            })
        );
        let back: ChatMessage =
            serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, message);
    }

    #[tokio::test]
    async fn recent_returns_the_newest_messages_oldest_first() {
        let (_dir, pool) = open_temp_database().await;
        let alice = create_user(&pool, "alice").await;
        let store = MessageStore::new(pool);
        for n in 1..=60 {
            store
                .insert("general", &alice, &format!("message {n}"))
                .await
                .expect("insert");
        }

        let recent = store
            .recent("general", HISTORY_LIMIT)
            .await
            .expect("recent");

        let expected: Vec<String> =
            (11..=60).map(|n| format!("message {n}")).collect();
        assert_eq!(texts(&recent), expected);
        assert!(recent.windows(2).all(|pair| pair[0].id < pair[1].id));
    }

    #[tokio::test]
    async fn recent_only_returns_the_asked_room_with_each_senders_name() {
        let (_dir, pool) = open_temp_database().await;
        let alice = create_user(&pool, "alice").await;
        let bob = create_user(&pool, "bob").await;
        let store = MessageStore::new(pool);
        store
            .insert("general", &alice, "hi all")
            .await
            .expect("insert");
        store
            .insert("rust", &bob, "hi rustaceans")
            .await
            .expect("insert");
        store
            .insert("general", &bob, "hi alice")
            .await
            .expect("insert");

        let general = store
            .recent("general", HISTORY_LIMIT)
            .await
            .expect("recent");

        assert_eq!(texts(&general), ["hi all", "hi alice"]);
        assert_eq!(general[0].user, alice);
        assert_eq!(general[1].user, bob);
        assert!(
            store
                .recent("empty", HISTORY_LIMIT)
                .await
                .expect("recent")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn since_returns_exactly_the_later_messages_in_order() {
        let (_dir, pool) = open_temp_database().await;
        let alice = create_user(&pool, "alice").await;
        let store = MessageStore::new(pool);
        let mut sent = Vec::new();
        for n in 1..=5 {
            sent.push(
                store
                    .insert("general", &alice, &format!("m{n}"))
                    .await
                    .expect("insert"),
            );
            // Messages in another room in between must not leak into the
            // catch-up.
            store
                .insert("other", &alice, "elsewhere")
                .await
                .expect("insert");
        }
        let last_seen = sent[1].id;

        let missed = store
            .since("general", last_seen, HISTORY_LIMIT)
            .await
            .expect("since");

        assert_eq!(missed, sent[2..].to_vec());
    }

    #[tokio::test]
    async fn since_returns_at_most_limit_starting_with_the_oldest_missed() {
        let (_dir, pool) = open_temp_database().await;
        let alice = create_user(&pool, "alice").await;
        let store = MessageStore::new(pool);
        for n in 1..=10 {
            store
                .insert("general", &alice, &format!("m{n}"))
                .await
                .expect("insert");
        }

        let first_page = store.since("general", 0, 3).await.expect("since");
        let last_id = first_page.last().map_or(0, |m| m.id);
        let second_page =
            store.since("general", last_id, 3).await.expect("since");

        assert_eq!(texts(&first_page), ["m1", "m2", "m3"]);
        assert_eq!(texts(&second_page), ["m4", "m5", "m6"]);
    }

    #[tokio::test]
    async fn since_the_newest_id_is_empty() {
        let (_dir, pool) = open_temp_database().await;
        let alice = create_user(&pool, "alice").await;
        let store = MessageStore::new(pool);
        let newest = store
            .insert("general", &alice, "last")
            .await
            .expect("insert");

        let missed = store
            .since("general", newest.id, HISTORY_LIMIT)
            .await
            .expect("since");

        assert!(missed.is_empty());
    }

    #[tokio::test]
    async fn a_negative_limit_returns_nothing_rather_than_everything() {
        let (_dir, pool) = open_temp_database().await;
        let alice = create_user(&pool, "alice").await;
        let store = MessageStore::new(pool);
        store
            .insert("general", &alice, "hello")
            .await
            .expect("insert");

        assert!(
            store
                .recent("general", -1)
                .await
                .expect("recent")
                .is_empty()
        );
        assert!(
            store
                .since("general", 0, -1)
                .await
                .expect("since")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_message_from_a_user_who_does_not_exist_is_refused() {
        let (_dir, pool) = open_temp_database().await;
        let store = MessageStore::new(pool);
        let ghost = User {
            id: 999,
            username: "ghost".to_owned(),
        };

        let result = store.insert("general", &ghost, "boo").await;

        let refused = matches!(
            result,
            Err(sqlx::Error::Database(ref e)) if e.is_foreign_key_violation()
        );
        assert!(refused, "expected a foreign key violation, got {result:?}");
    }

    #[tokio::test]
    async fn users_and_messages_survive_reopening_the_database() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = temp_database_url(&dir);
        let pool = open_database(&url).await.expect("first open");
        let alice = create_user(&pool, "alice").await;
        let sent = MessageStore::new(pool.clone())
            .insert("general", &alice, "still here?")
            .await
            .expect("insert");
        pool.close().await;

        let pool = open_database(&url).await.expect("second open");
        let users = SqliteUserStore::new(pool.clone());
        let store = MessageStore::new(pool);

        assert_eq!(
            users.find_by_id(alice.id).await.expect("find"),
            Some(alice)
        );
        assert_eq!(
            store
                .recent("general", HISTORY_LIMIT)
                .await
                .expect("recent"),
            vec![sent]
        );
    }
}
