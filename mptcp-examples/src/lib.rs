//! Shared bits of the example tools.
#![deny(missing_docs)]

use clap::Parser;

/// Parses the command line; a usage error becomes one clear line on stderr (not clap's
/// multi-line usage text) and exit code 2; `--help` and `--version` behave as usual.
pub fn parse_args<T: Parser>(tool: &str) -> T {
    match T::try_parse() {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "{tool}: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    }
}
