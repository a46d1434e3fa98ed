fn main() {
    println!(
        "This step is not written yet: it is built in the chapter \"{}\".",
        step05_chat::CHAPTER
    );
}
