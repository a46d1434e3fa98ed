//! Chat messages: what the wire carries, and the table that remembers them. A
//! broadcast reaches only the sockets connected at that moment; stored, a
//! message is shown to whoever joins later, and replayed to a client whose
//! connection dropped, as Socket.IO's "connection state recovery" does in Node.

use serde::{Deserialize, Serialize};
use sqlx::{Sqlite, SqlitePool, Transaction};
use step03_passport_like_auth::User;

/// Messages a client gets when it enters a room.
pub const HISTORY_LIMIT: i64 = 50;

// ANCHOR: chat_message
/// A message as every client receives it: `{"id": 7, "room": "general",
/// "user": {"id": 1, "username": "alice"}, "text": "hi", "ts": 1700000000000}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    /// Grows with every message, in every room: a client remembers the last one
    /// it saw, and asks for what came after it when it reconnects.
    pub id: i64,
    pub room: String,
    /// The socket's user, never something the client said. (A [`User`] has no
    /// password hash.)
    pub user: User,
    pub text: String,
    /// When it was stored, in milliseconds since 1970 (JS `Date.now()`).
    pub ts: i64,
}
// ANCHOR_END: chat_message

/// A message on its way into the table.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub user: User,
    pub text: String,
    /// The client's own id for it: sent again (a retry after a lost
    /// acknowledgement), the message is stored once.
    pub client_offset: Option<String>,
}

/// What storing a message did.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// Stored now: broadcast it.
    New(ChatMessage),
    /// Stored before under the same `(user, client_offset)`: acknowledge it
    /// again, do not broadcast it again.
    Again(ChatMessage),
}

/// Messages of a room, oldest first, and whether older ones were left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub messages: Vec<ChatMessage>,
    pub truncated: bool,
}

/// A message and its sender's name, as every query reads them.
const SELECT: &str = "SELECT m.id, m.room, m.user_id, u.username, m.text, m.ts
    FROM messages m JOIN users u ON u.id = m.user_id";
type Row = (i64, String, i64, String, String, i64);

fn from_row((id, room, user_id, username, text, ts): Row) -> ChatMessage {
    ChatMessage { id, room, user: User { id: user_id, username }, text, ts }
}

/// The `messages` table. Cheap to clone (pools are handles).
#[derive(Clone, Debug)]
pub struct MessageStore {
    pool: SqlitePool,
    /// One connection of its own for writing: SQLite has one writer at a time
    /// anyway, and this one never waits behind readers for a connection.
    writer: SqlitePool,
}

// ANCHOR: message_store
impl MessageStore {
    pub fn new(pool: SqlitePool) -> Self {
        let options = pool.connect_options().as_ref().clone();
        let writer = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        Self { pool, writer }
    }

    /// Stores `new` in `room`, with the id and time the database gives it.
    pub async fn store(
        &self,
        room: &str,
        new: &NewMessage,
    ) -> Result<Stored, sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        let stored = insert_one(&mut tx, room, new).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// The id of the newest message of `room`, or 0 if it has none.
    pub async fn last_id(&self, room: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COALESCE(MAX(id), 0) FROM messages WHERE room = ?",
        )
        .bind(room)
        .fetch_one(&self.pool)
        .await
    }

    // ANCHOR_END: message_store
    // ANCHOR: newest
    /// The `limit` newest messages of `room` with an id in `after+1 ..= upto`,
    /// oldest first. With `after = 0`, a room's history; with `after` = the
    /// last id a client saw, what it missed.
    pub async fn newest(
        &self,
        room: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Page, sqlx::Error> {
        let limit = limit.max(0); // SQLite reads LIMIT -1 as "no limit"
        // One more than asked: if it comes, some were left out.
        let sql = format!(
            "{SELECT} WHERE m.room = ? AND m.id > ? AND m.id <= ?
             ORDER BY m.id DESC LIMIT ?"
        );
        let mut rows: Vec<Row> = sqlx::query_as(&sql)
            .bind(room)
            .bind(after)
            .bind(upto)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        // Or some were deleted (`trim`): the client is told so.
        let trimmed = sqlx::query_scalar::<_, i64>(TRIMMED).bind(room);
        let trimmed = trimmed.fetch_optional(&self.pool).await?.unwrap_or(0);
        let truncated = rows.len() as i64 > limit || after < trimmed;
        rows.truncate(limit as usize);
        let messages = rows.into_iter().rev().map(from_row).collect();
        Ok(Page { messages, truncated })
    }
}
// ANCHOR_END: newest

// ANCHOR: trim
/// Up to which id a room's messages were deleted (a trigger keeps it).
const TRIMMED: &str = "SELECT deleted_upto FROM room_trims WHERE room = ?";
/// Deletes the 200 oldest messages of a room beyond its newest `cap`.
const TRIM: &str = "DELETE FROM messages WHERE id IN (SELECT id FROM messages
    WHERE room = ?1 AND id <= (SELECT id FROM messages WHERE room = ?1
    ORDER BY id DESC LIMIT 1 OFFSET ?2) ORDER BY id LIMIT 200)";

impl MessageStore {
    /// Deletes the messages of `room` older than its newest `cap` (none if
    /// `i64::MAX`), 200 at a time: short writes, between which the senders'
    /// messages go in.
    pub async fn trim(self, room: String, cap: i64) {
        let mut more = cap < i64::MAX;
        while more {
            let batch = sqlx::query(TRIM).bind(&room).bind(cap);
            match batch.execute(&self.writer).await {
                Ok(done) => more = done.rows_affected() > 0,
                Err(error) => return tracing::error!(%error, %room, "trim"),
            }
        }
    }
    // ANCHOR_END: trim

    /// For several messages in one transaction ("The chat under load").
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

// ANCHOR: insert_one
/// Inserts one message inside `tx`. A `(user, client_offset)` already in the
/// table is not an error: the earlier message comes back, as
/// [`Stored::Again`].
pub async fn insert_one(
    tx: &mut Transaction<'_, Sqlite>,
    room: &str,
    new: &NewMessage,
) -> Result<Stored, sqlx::Error> {
    let ts = crate::db::now_millis();
    let done = sqlx::query(
        "INSERT INTO messages (room, user_id, text, ts, client_offset)
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
        let (id, room, user) =
            (done.last_insert_rowid(), room.to_owned(), new.user.clone());
        return Ok(Stored::New(ChatMessage {
            id,
            room,
            user,
            text: new.text.clone(),
            ts,
        }));
    }
    let sql = format!("{SELECT} WHERE m.user_id = ? AND m.client_offset = ?");
    let earlier: Row = sqlx::query_as(&sql)
        .bind(new.user.id)
        .bind(&new.client_offset)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Stored::Again(from_row(earlier)))
}
// ANCHOR_END: insert_one

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::{open_temp_database, temp_database_url};
    use crate::db::{now_millis, open_database};
    use crate::users::SqliteUserStore;
    use step03_passport_like_auth::UserStore;

    async fn create_user(pool: &SqlitePool, name: &str) -> User {
        SqliteUserStore::new(pool.clone())
            .create(name, "$argon2id$not-checked-here")
            .await
            .expect("create user")
    }

    /// Shorthands: one message without a client offset, and a room's newest.
    impl MessageStore {
        async fn insert(
            &self,
            room: &str,
            user: &User,
            text: &str,
        ) -> Result<ChatMessage, sqlx::Error> {
            let (user, text) = (user.clone(), text.to_owned());
            let new = NewMessage { user, text, client_offset: None };
            let (Stored::New(message) | Stored::Again(message)) =
                self.store(room, &new).await?;
            Ok(message)
        }

        async fn recent(
            &self,
            room: &str,
            limit: i64,
        ) -> Result<Vec<ChatMessage>, sqlx::Error> {
            Ok(self.newest(room, 0, i64::MAX, limit).await?.messages)
        }
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
        let first =
            store.insert("general", &alice, "hello").await.expect("insert");
        let second =
            store.insert("general", &alice, "again").await.expect("insert");

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
        let user = User { id: 1, username: "alice".to_owned() };
        let (room, text) = ("general".to_owned(), "hi".to_owned());
        let message =
            ChatMessage { id: 7, room, user, text, ts: 1_700_000_000 };
        let wire = r#"{"id":7,"room":"general","user":{"id":1,"username":"alice"},"text":"hi","ts":1700000000}"#;

        assert_eq!(serde_json::to_string(&message).expect("serialize"), wire);
        let back: ChatMessage =
            serde_json::from_str(wire).expect("deserialize");
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

        let recent =
            store.recent("general", HISTORY_LIMIT).await.expect("recent");

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
        store.insert("general", &alice, "hi all").await.expect("insert");
        store.insert("rust", &bob, "hi rustaceans").await.expect("insert");
        store.insert("general", &bob, "hi alice").await.expect("insert");

        let general =
            store.recent("general", HISTORY_LIMIT).await.expect("recent");

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
    async fn newest_returns_the_newest_of_a_window_and_says_if_some_were_left_out()
     {
        let (_dir, pool) = open_temp_database().await;
        let alice = create_user(&pool, "alice").await;
        let store = MessageStore::new(pool);
        let mut sent = Vec::new();
        for n in 1..=6 {
            sent.push(
                store
                    .insert("general", &alice, &format!("m{n}"))
                    .await
                    .expect("insert"),
            );
            // Messages in another room in between must not leak in.
            store.insert("other", &alice, "elsewhere").await.expect("insert");
        }

        let window = store
            .newest("general", sent[0].id, sent[4].id, 2)
            .await
            .expect("newest");

        assert_eq!(texts(&window.messages), ["m4", "m5"]);
        assert!(window.truncated, "m2 and m3 were left out");
        let all = store
            .newest("general", sent[3].id, i64::MAX, 10)
            .await
            .expect("newest");
        assert_eq!(texts(&all.messages), ["m5", "m6"]);
        assert!(!all.truncated);
        // SQLite reads `LIMIT -1` as "no limit": here it is none.
        let none = store.newest("general", 0, i64::MAX, -1).await;
        assert!(none.expect("newest").messages.is_empty());
    }

    #[tokio::test]
    async fn a_message_from_a_user_who_does_not_exist_is_refused() {
        let (_dir, pool) = open_temp_database().await;
        let store = MessageStore::new(pool);
        let ghost = User { id: 999, username: "ghost".to_owned() };

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
            store.recent("general", HISTORY_LIMIT).await.expect("recent"),
            vec![sent]
        );
    }
}
