fn main() {
    // Before any other thread exists (the daemon's own settings are in its `run`).
    nodetune::daemon::memory::tune_allocator();
    // Errors are reported by their messages, never with a backtrace, so anyhow need not
    // capture one per error (an unwind of the stack each time, e.g. for every scrape of a
    // collector whose source is missing) even when RUST_BACKTRACE is set for panics.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    std::process::exit(nodetune::cli::main());
}
