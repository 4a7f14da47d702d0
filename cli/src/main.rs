//! The `shelfsync` binary (see `shelfsync --help`).

fn main() -> std::process::ExitCode {
    shelfsync_cli::main()
}
