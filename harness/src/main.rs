//! The handshake-matrix command; everything lives in the library.

fn main() -> std::process::ExitCode {
    harness::cli::main()
}
