//! Build script: only tells cargo to rebuild when the embedded UI in `web/`
//! changes (include_dir cannot track files on stable Rust).

fn main() {
    println!("cargo:rerun-if-changed=web");
}
