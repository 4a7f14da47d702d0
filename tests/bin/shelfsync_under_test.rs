//! The `shelfsync` command line, built in this package for the integration tests.

fn main() -> std::process::ExitCode {
    shelfsync_cli::main()
}
