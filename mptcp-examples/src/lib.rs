//! Shared bits of the example tools.
#![deny(missing_docs)]

pub mod exporter;
pub mod netstat;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command, Parser};

/// Parses the command line (plus `--generate`, which prints the tool's man page or
/// completion script); a usage error becomes one clear line on stderr (not clap's
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
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let mut cmd = T::command().arg(generate_arg());
    if args
        .iter()
        .skip(1)
        .any(|a| a.as_encoded_bytes().starts_with(b"--generate"))
    {
        // `--generate` stands alone, even where the tool otherwise needs a subcommand.
        cmd = cmd.subcommand_required(false).arg_required_else_help(false);
    }
    let parsed = cmd.try_get_matches_from_mut(&args).and_then(|mut m| {
        match m.remove_one::<String>(GENERATE) {
            Some(what) => {
                generate(cmd, &what);
                std::process::exit(0)
            }
            None => T::try_parse_from(&args),
        }
    });
    match parsed {
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

/// The option every tool has: `--generate man|bash|zsh|fish|elvish|powershell`.
const GENERATE: &str = "generate";

/// `--generate WHAT`: given alone, it prints the tool's man page or a shell's completion
/// script, made from the tool's own clap definition, and exits.
fn generate_arg() -> Arg {
    Arg::new(GENERATE)
        .long(GENERATE)
        .value_name("WHAT")
        .value_parser(["man", "bash", "zsh", "fish", "elvish", "powershell"])
        .exclusive(true)
        .help("Print this tool's man page (man) or a shell's completion script, then exit")
}

/// Writes the man page or the completion script `what` names to standard output (a
/// reader that stops early, such as `head`, is not an error).
fn generate(mut cmd: Command, what: &str) {
    use clap_complete::Shell;
    use std::io::Write;
    let mut text = Vec::new();
    let shell = match what {
        "bash" => Some(Shell::Bash),
        "zsh" => Some(Shell::Zsh),
        "fish" => Some(Shell::Fish),
        "elvish" => Some(Shell::Elvish),
        "powershell" => Some(Shell::PowerShell),
        _ => None,
    };
    let made = match shell {
        Some(shell) => {
            let name = cmd.get_name().to_string();
            clap_complete::generate(shell, &mut cmd, name, &mut text);
            Ok(())
        }
        None => clap_mangen::Man::new(cmd).render(&mut text),
    };
    let written = made.and_then(|()| std::io::stdout().lock().write_all(&text));
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("cannot write the {what} text: {e}");
            std::process::exit(1);
        }
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
