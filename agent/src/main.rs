fn main() {
    // Collector threads each get a glibc malloc arena by default, which multiplies resident
    // memory for no gain in a small agent: one arena is plenty.
    //
    // The scrape's big buffers (the body, hundreds of kB to MBs on a big host) are mapped
    // for the scrape and unmapped after it. glibc's default raises its mmap threshold to the
    // size of the first such buffer freed, and its trim threshold to twice that: every later
    // body then comes from the heap, whose free top is kept up to twice the body's size, so
    // resident memory grew with the host by about twice the body per unit (docs/benchmarks.md,
    // "Cost as the host grows"). Fixed thresholds keep both at 128 KiB.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
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
