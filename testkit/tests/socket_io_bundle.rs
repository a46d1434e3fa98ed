//! The pages load the Socket.IO client from its CDN with an SRI hash; the headless-browser
//! tests serve the npm package's file instead. Both are only the same if the hashes agree.

#[test]
fn npm_bundle_has_the_sri_hash_the_pages_pin() {
    let bundle = testkit::socket_io_browser_bundle();
    assert_eq!(testkit::sri_sha384(&bundle), testkit::SOCKET_IO_SRI);
}
