fn main() {
    std::process::exit(nodetune::cli::main());
}
