//! The `selfinstruct` binary: everything lives in the library; see `pipeline::cli`.

fn main() -> std::process::ExitCode {
    pipeline::cli::main()
}
