fn main() {
    println!(
        "This step is not written yet: it is built in the chapter \"{}\".",
        step03_passport_like_auth::CHAPTER
    );
}
