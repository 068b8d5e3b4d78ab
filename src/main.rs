//! The `widthlab` binary: parse the command line, run it (see `widthlab::cli`).

fn main() {
    std::process::exit(widthlab::cli::main());
}
