fn main() -> std::process::ExitCode {
    cleannvr::cli::main()
}
