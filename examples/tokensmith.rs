//! The `tokensmith` command as an example: `cargo run --example tokensmith -- --sandbox fib info`.
//! The code is the binary's (`src/bin/tokensmith/`, also built as a binary with the `cli`
//! feature).

#[path = "../src/bin/tokensmith/main.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
