//! `hydra`: the command-line face of hydra_core.
//!
//! ```text
//! hydra [--profile DIR] [--pretty] call OP [JSON|-]   run one operation, print its envelope
//! hydra [--profile DIR] ops                           list the operations
//! hydra [--profile DIR] demo                          a short end-to-end tour
//! ```
//! The profile defaults to `./hydra-demo-profile`. The exit code is 0 for a
//! success envelope, 1 for an error envelope, 2 for a usage error.

use hydra_core::{ops, CloseOptions, OpenOptions, Profile};
use std::io::Read;
use std::process::ExitCode;

const USAGE: &str = "usage: hydra [--profile DIR] [--pretty] (call OP [JSON|-] | ops | demo)";
const DEFAULT_PROFILE: &str = "./hydra-demo-profile";

struct Args {
    profile: String,
    pretty: bool,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        profile: DEFAULT_PROFILE.to_owned(),
        pretty: false,
        command: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--profile" => args.profile = it.next().ok_or("--profile needs a directory")?,
            "--pretty" => args.pretty = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            _ => args.command.push(arg),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let command: Vec<&str> = args.command.iter().map(String::as_str).collect();
    match command.as_slice() {
        ["call", op] => with_profile(&args, |p| call(p, op, "{}".to_owned(), args.pretty)),
        ["call", op, json] => {
            let request = if *json == "-" {
                let mut text = String::new();
                if std::io::stdin().read_to_string(&mut text).is_err() {
                    eprintln!("stdin is not UTF-8 text");
                    return ExitCode::from(2);
                }
                text
            } else {
                json.to_string()
            };
            with_profile(&args, |p| call(p, op, request, args.pretty))
        }
        ["ops"] => {
            for op in ops::OPERATIONS {
                let access = if op.read_only { "read " } else { "write" };
                println!("{:<26} {access}  {}", op.name, op.summary);
            }
            ExitCode::SUCCESS
        }
        ["demo"] => with_profile(&args, demo),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Opens the profile, runs `f`, closes it; an open failure prints its
/// envelope and exits 1.
fn with_profile(args: &Args, f: impl FnOnce(&Profile) -> ExitCode) -> ExitCode {
    let profile = match Profile::open(OpenOptions::new(&args.profile)) {
        Ok(p) => p,
        Err(e) => {
            println!("{}", ops::envelope(&Err(e)));
            return ExitCode::from(1);
        }
    };
    let code = f(&profile);
    if let Err(e) = profile.close(CloseOptions::default()) {
        println!("{}", ops::envelope(&Err(e)));
        return ExitCode::from(1);
    }
    code
}

fn call(profile: &Profile, op: &str, request: String, pretty: bool) -> ExitCode {
    let result = ops::call_json(profile, op, request.as_bytes());
    let ok = result.is_ok();
    let text = ops::envelope(&result);
    if pretty {
        let value: serde_json::Value = serde_json::from_str(&text).expect("envelopes are JSON");
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialize")
        );
    } else {
        println!("{text}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The tour: each step is one operation through the same JSON dispatcher the
/// C ABI uses, printed with its request and the data it returned.
fn demo(profile: &Profile) -> ExitCode {
    println!("hydra demo on profile {}", profile.dir().display());
    let steps: &[(&str, &str, &str)] = &[
        (
            "meta.version",
            "{}",
            "which library, ABI, schema and SQLite this is",
        ),
        (
            "profile.info",
            "{}",
            "where the profile lives and how big it is",
        ),
        (
            "profile.maintenance",
            r#"{"optimize":true,"checkpoint":true}"#,
            "tidy the database",
        ),
    ];
    for (op, request, why) in steps {
        println!("\n== {op} {request}   ({why})");
        let result = ops::call_json(profile, op, request.as_bytes());
        println!("{}", ops::envelope(&result));
        if result.is_err() {
            return ExitCode::from(1);
        }
    }
    println!(
        "\n{} operations are available: `hydra ops` lists them.",
        ops::OPERATIONS.len()
    );
    ExitCode::SUCCESS
}
