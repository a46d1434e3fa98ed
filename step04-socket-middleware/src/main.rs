fn main() {
    println!(
        "This step is not written yet: it is built in the chapter \"{}\".",
        step04_socket_middleware::CHAPTER
    );
}
