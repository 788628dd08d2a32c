fn main() {
    // Collector threads each get a glibc malloc arena by default, which multiplies resident
    // memory for no gain in a small agent: one arena is plenty.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    std::process::exit(nodetune::cli::main());
}
