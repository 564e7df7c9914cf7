//! Shared bits of the example tools.
#![deny(missing_docs)]

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

/// Parses the command line; a usage error becomes one clear line on stderr (not clap's
/// multi-line usage text) and exit code 2; `--help` and `--version` behave as usual, and
/// a command that needs a subcommand but got no arguments at all prints its help on
/// stderr with exit code 2.
pub fn parse_args<T: Parser>(tool: &str) -> T {
    parse_args_from(tool, std::env::args_os())
}

/// [`parse_args`] of a command line the tool has prepared (the program name first).
pub fn parse_args_from<T, I>(tool: &str, args: I) -> T
where
    T: Parser,
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString> + Clone,
{
    match T::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => match usage_line(&e) {
            Some(line) => {
                eprintln!("{tool}: {line} (see --help)");
                std::process::exit(2);
            }
            None => e.exit(),
        },
    }
}

/// Prints a usage error of the tool as one line on stderr and exits with code 2.
pub fn usage_error(tool: &str, message: &str) -> ! {
    eprintln!("{tool}: {message} (see --help)");
    std::process::exit(2);
}

/// The one-line form of a clap error, naming what is missing or wrong; `None` for the
/// outcomes that are not errors (help, version, help shown in place of an error).
pub fn usage_line(e: &clap::Error) -> Option<String> {
    let strings = |kind| match e.get(kind) {
        Some(ContextValue::Strings(v)) => Some(v.join(" ")),
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::MissingRequiredArgument => {
            if let Some(args) = strings(ContextKind::InvalidArg) {
                return Some(format!(
                    "the following required arguments were not provided: {args}"
                ));
            }
        }
        ErrorKind::MissingSubcommand => {
            if let Some(ContextValue::Strings(v)) = e.get(ContextKind::ValidSubcommand) {
                let valid: Vec<&str> = v
                    .iter()
                    .map(String::as_str)
                    .filter(|s| *s != "help")
                    .collect();
                // "mptcp-pm endpoint" -> "endpoint: ", as the tool's name comes first.
                let parent = strings(ContextKind::InvalidSubcommand).unwrap_or_default();
                let parent = match parent.split_once(' ') {
                    Some((_, sub)) => format!("{sub}: "),
                    None => String::new(),
                };
                return Some(format!("{parent}missing subcommand: {}", valid.join(", ")));
            }
        }
        _ => {}
    }
    // Otherwise clap's message: its first paragraph, on one line.
    let text = e.to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = first.join(" ");
    let line = line.trim_start_matches("error: ");
    Some(if line.is_empty() {
        "invalid arguments".to_string()
    } else {
        line.to_string()
    })
}
