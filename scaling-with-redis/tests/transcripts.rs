//! The console session of the chapter's "Run it": two nodes started in the background of one
//! terminal, behind one Redis. Played against the real binary and compared with the file the
//! chapter includes (`book/src/transcripts/`; see `testkit::transcript`).
//! `UPDATE_TRANSCRIPTS=1` rewrites it from what the program prints.

use testkit::RedisServer;
use testkit::transcript::Session;

#[test]
fn transcript_the_redis_chapter_run_it_two_nodes() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    // `redis-server --port 6379 ... &`, on a free port instead (the nodes do not print it).
    let redis = runtime.block_on(RedisServer::start());
    // `export SESSION_SECRET=$(openssl rand -hex 64)`: one key for both nodes.
    let secret = "0123456789abcdef".repeat(8);
    Session::new(
        "scaling-with-redis",
        env!("CARGO_BIN_EXE_scaling-with-redis"),
    )
    .export(&[("REDIS_URL", &redis.url), ("SESSION_SECRET", &secret)])
    .play("scaling-with-redis/two-nodes.console");
}
