fn main() {
    // Collector threads each get a glibc malloc arena by default, which multiplies resident
    // memory for no gain in a small agent: one arena is plenty.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // Errors are reported by their messages, never with a backtrace, so anyhow need not
    // capture one per error (an unwind of the stack each time, e.g. for every scrape of a
    // collector whose source is missing) even when RUST_BACKTRACE is set for panics.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    std::process::exit(nodetune::cli::main());
}
