//! `hydra`: the command-line face of hydra_core.
//!
//! ```text
//! hydra --profile DIR [--pretty] call OP [JSON|-]   run one operation, print its envelope
//! hydra ops [--json]                                 list the operations (--json: the registry)
//! hydra help [OP]                                    help, or one operation's fields
//! hydra [--profile DIR] demo                         a short end-to-end tour
//! ```
//! A profile is required except for `demo` (default `./hydra-demo-profile`),
//! `ops` and `help`: a mistyped command never creates a profile anywhere.
//! The exit code is 0 for a success envelope, 1 for an error envelope, 2 for
//! a usage error. The envelope goes to stdout; a failure is also explained
//! in plain words on stderr, and a job the command started shows a progress
//! bar on stderr when it is a terminal.

use clap::{CommandFactory, Parser, Subcommand};
use hydra_core::error::ErrorCode;
use hydra_core::{ops, CloseOptions, OpenOptions, Profile};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const DEMO_PROFILE: &str = "./hydra-demo-profile";

/// The progress bar of the job a command runs; cleared before the envelope
/// is printed, so the two never interleave on a terminal.
static PROGRESS: std::sync::OnceLock<ProgressBar> = std::sync::OnceLock::new();

/// Command-line access to a hydra_core profile: every operation of the
/// library, as JSON in and JSON out.
#[derive(Parser)]
#[command(
    name = "hydra",
    version,
    disable_help_subcommand = true,
    after_help = "Operations and their fields: `hydra ops`, `hydra help OP`, docs/operations.md.\n\
                  Example: hydra --profile ~/.hydra call history.list '{\"limit\": 5}'"
)]
struct Cli {
    /// The profile directory (created if missing). Required except for `demo`.
    #[arg(long, short = 'p', value_name = "DIR", global = true)]
    profile: Option<PathBuf>,
    /// Pretty-print the JSON envelope.
    #[arg(long, global = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one operation and print its envelope, e.g. `call history.list '{"limit":5}'`.
    Call {
        /// The operation, e.g. `history.list` (`hydra ops` lists them).
        op: String,
        /// The JSON request (default `{}`); `-` reads it from stdin.
        json: Option<String>,
    },
    /// List the operations with their read/write flag and summary.
    Ops {
        /// Print the registry as JSON: `meta.operations` plus the error codes.
        #[arg(long)]
        json: bool,
    },
    /// Print help, or an operation's summary and fields (`hydra help history.list`).
    Help {
        /// An operation name.
        op: Option<String>,
    },
    /// A short end-to-end tour on a profile (default ./hydra-demo-profile).
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Call { op, json } => {
            let Some(dir) = &cli.profile else {
                return usage_error("`call` needs a profile: hydra --profile DIR call OP [JSON]");
            };
            if let Err(code) = known_operation(op) {
                return code;
            }
            let request = match json.as_deref() {
                None => "{}".to_owned(),
                Some("-") => {
                    let mut text = String::new();
                    if std::io::stdin().read_to_string(&mut text).is_err() {
                        return usage_error("stdin is not UTF-8 text");
                    }
                    text
                }
                Some(text) => text.to_owned(),
            };
            with_profile(dir, |p| call(p, op, &request, cli.pretty))
        }
        Command::Ops { json: false } => {
            for op in ops::OPERATIONS {
                let access = if op.read_only { "read " } else { "write" };
                println!("{:<26} {access}  {}", op.name, op.summary);
            }
            ExitCode::SUCCESS
        }
        Command::Ops { json: true } => match registry() {
            Ok(registry) => {
                println!("{}", to_text(&registry, cli.pretty));
                ExitCode::SUCCESS
            }
            Err(e) => failure(e),
        },
        Command::Help { op: None } => {
            let _ = Cli::command().print_help();
            ExitCode::SUCCESS
        }
        Command::Help { op: Some(op) } => match known_operation(op) {
            Ok(()) => help_for(op),
            Err(code) => code,
        },
        Command::Demo => {
            let dir = cli.profile.clone().unwrap_or_else(|| DEMO_PROFILE.into());
            with_profile(&dir, demo)
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\nFor more information, try '--help'.");
    ExitCode::from(2)
}

/// `Ok` for an operation of the registry; else a usage error naming the
/// closest operation ("did you mean").
fn known_operation(op: &str) -> Result<(), ExitCode> {
    if ops::OPERATIONS.iter().any(|o| o.name == op) {
        return Ok(());
    }
    let closest = ops::OPERATIONS
        .iter()
        .map(|o| (strsim::jaro_winkler(op, o.name), o.name))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let hint = match closest {
        Some((_, name)) => format!("\n\n  tip: did you mean '{name}'?"),
        None => "\n\n  tip: `hydra ops` lists the operations".to_owned(),
    };
    Err(usage_error(&format!("unknown operation '{op}'{hint}")))
}

/// The registry as the bindings' type generator reads it:
/// `{"operations": <meta.operations items>, "error_codes": [...]}`. Read
/// through `meta.operations` itself (on a scratch profile), so whatever the
/// catalogue carries (schemas, errors) is passed on unchanged.
fn registry() -> hydra_core::Result<Value> {
    let scratch = tempfile::tempdir()?;
    let profile = Profile::open(OpenOptions::new(scratch.path()))?;
    let catalogue = ops::call_json(&profile, "meta.operations", b"{}");
    profile.close(CloseOptions::default())?;
    let catalogue: Value = serde_json::from_str(&catalogue?).expect("responses are JSON");
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    Ok(json!({"operations": catalogue["items"], "error_codes": codes}))
}

/// `hydra help OP`: the summary, then the request fields from the
/// operation's `request_schema` when the registry carries one.
fn help_for(op: &str) -> ExitCode {
    let registry = match registry() {
        Ok(registry) => registry,
        Err(e) => return failure(e),
    };
    let Some(entry) = registry["operations"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["name"] == op))
    else {
        return usage_error(&format!("unknown operation '{op}'"));
    };
    let access = if entry["read_only"] == true {
        "reads only"
    } else {
        "writes"
    };
    println!(
        "{op} ({access})\n  {}\n",
        entry["summary"].as_str().unwrap_or("")
    );
    match entry.get("request_schema").filter(|s| s.is_object()) {
        Some(schema) => {
            println!("Request fields:");
            print_fields(schema, schema, "  ");
        }
        None => println!("Request fields: see docs/operations.md"),
    }
    println!("\nExample: hydra --profile DIR call {op} '{{...}}'");
    ExitCode::SUCCESS
}

/// The properties of a JSON Schema object, one line each, following `$ref`s
/// into `$defs` / `definitions` one level deep.
fn print_fields(root: &Value, schema: &Value, indent: &str) {
    let schema = resolve(root, schema);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        println!("{indent}(none)");
        return;
    };
    for (name, field) in properties {
        let field = resolve(root, field);
        let need = if required.contains(&name.as_str()) {
            "required"
        } else {
            "optional"
        };
        let about = field["description"].as_str().unwrap_or("");
        println!(
            "{indent}{name:<22} {:<18} {need:<9} {about}",
            type_name(root, field)
        );
    }
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or(schema),
        None => schema,
    }
}

/// A short JSON type name for a schema (`string`, `integer|null`, `array`).
fn type_name(root: &Value, schema: &Value) -> String {
    let schema = resolve(root, schema);
    if let Some(values) = schema["enum"].as_array() {
        let names: Vec<String> = values.iter().map(Value::to_string).collect();
        return names.join("|");
    }
    match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        _ => ["anyOf", "oneOf"]
            .iter()
            .find_map(|k| schema[*k].as_array())
            .map(|alts| {
                alts.iter()
                    .map(|alt| type_name(root, alt))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .unwrap_or_else(|| "any".to_owned()),
    }
}

/// Opens the profile, runs `f`, closes it. While the profile is open, a job
/// it runs draws a progress bar on stderr (only on a terminal).
fn with_profile(dir: &std::path::Path, f: impl FnOnce(&Profile) -> ExitCode) -> ExitCode {
    let profile = match Profile::open(OpenOptions::new(dir)) {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let bar = PROGRESS.get_or_init(job_progress_bar).clone();
    let events_bar = bar.clone();
    profile.set_event_callback(Some(Arc::new(move |event: &Value| {
        show_job(&events_bar, &event["job"]);
    })));
    let code = f(&profile);
    let closed = profile.close(CloseOptions::default());
    bar.finish_and_clear();
    match closed {
        Ok(closed) => {
            if !closed.erased {
                eprintln!(
                    "hydra: deleted data is not erased yet: another program holds the \
                     database open; erasure completes when it lets go or at the next open"
                );
            }
            code
        }
        Err(e) => failure(e),
    }
}

/// Prints an error envelope on stdout and explains it on stderr; exit 1.
fn failure(e: hydra_core::Error) -> ExitCode {
    let envelope = ops::envelope(&Err(e));
    println!("{envelope}");
    explain(&serde_json::from_str(&envelope).expect("envelopes are JSON"));
    ExitCode::from(1)
}

/// One plain line on stderr for an error envelope: the code, the field path
/// when there is one, and the message.
fn explain(envelope: &Value) {
    let error = &envelope["error"];
    let code = error["code"].as_str().unwrap_or("internal");
    let message = error["message"].as_str().unwrap_or("");
    match error["details"]["field"].as_str().filter(|f| !f.is_empty()) {
        Some(field) => {
            let reason = message
                .strip_prefix(field)
                .and_then(|m| m.strip_prefix(": "))
                .unwrap_or(message);
            eprintln!("error ({code}) in field `{field}`: {reason}")
        }
        None => eprintln!("error ({code}): {message}"),
    }
}

fn job_progress_bar() -> ProgressBar {
    // A hidden target unless stderr is a terminal (indicatif checks).
    let bar = ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        // The ETA is the library's (`eta_s`), in the prefix: indicatif's own
        // guess from the position would be wrong for time-bounded steps.
        ProgressStyle::with_template("{spinner} {msg:30} [{bar:30}] {pos}/{len} {prefix}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}

/// Draws a `job.updated` event: steps as the bar's position, the job's phase
/// as its message, the library's ETA when it has one.
fn show_job(bar: &ProgressBar, job: &Value) {
    if bar.is_finished() {
        return;
    }
    let progress = &job["progress"];
    bar.set_prefix(match progress["eta_s"].as_f64() {
        Some(eta) => format!("eta {}s", eta.round()),
        None => String::new(),
    });
    let phase = progress["phase"].as_str().unwrap_or("");
    bar.set_message(format!("{} {phase}", job["type"].as_str().unwrap_or("job")));
    if let Some(total) = progress["steps_total"].as_u64() {
        bar.set_length(total);
    }
    if let Some(done) = progress["steps_completed"].as_u64() {
        bar.set_position(done);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    if job["status"] != "queued" && job["status"] != "running" {
        bar.finish_and_clear();
    }
}

fn to_text(value: &Value, pretty: bool) -> String {
    if pretty {
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    } else {
        value.to_string()
    }
}

fn call(profile: &Profile, op: &str, request: &str, pretty: bool) -> ExitCode {
    let result = ops::call_json(profile, op, request.as_bytes());
    if let Some(bar) = PROGRESS.get() {
        bar.finish_and_clear();
    }
    let ok = result.is_ok();
    let envelope: Value =
        serde_json::from_str(&ops::envelope(&result)).expect("envelopes are JSON");
    println!("{}", to_text(&envelope, pretty));
    if ok {
        ExitCode::SUCCESS
    } else {
        explain(&envelope);
        ExitCode::from(1)
    }
}

/// The tour: each step is one operation through the same JSON dispatcher the
/// C ABI uses, printed with its request and the data it returned. Ids are
/// generated by the library, so the tour runs again on the same profile.
fn demo(profile: &Profile) -> ExitCode {
    println!("hydra demo on profile {}", profile.dir().display());
    let run = |op: &str, request: Value, why: &str| -> Option<Value> {
        println!("\n== {op} {request}   ({why})");
        let result = ops::call_json(profile, op, request.to_string().as_bytes());
        println!("{}", ops::envelope(&result));
        result
            .ok()
            .map(|data| serde_json::from_str(&data).expect("responses are JSON"))
    };
    let tour = || -> Option<()> {
        run(
            "meta.version",
            json!({}),
            "which library, ABI, schema and SQLite this is",
        )?;
        let turn = run(
            "chat",
            json!({"message": "Plan a weekend in Lyon", "tab_id": "demo-tab", "reply": "Start at Vieux Lyon."}),
            "a chat turn bound to a browser tab; the reply is given here (a host would register a model)",
        )?;
        let thread_id = turn["thread_id"].clone();
        run(
            "tasks.create",
            json!({"title": "Book the train", "thread_id": thread_id}),
            "a task beside the conversation",
        )?;
        run(
            "memory.upsert",
            json!({"value": "prefers trains to planes", "scope": "user", "thread_id": thread_id,
                   "embedding": {"model": "demo-3d", "vector": [0.9, 0.1, 0.2]}}),
            "a memory with an embedding",
        )?;
        run(
            "memory.search",
            json!({"embedding": {"model": "demo-3d", "vector": [1.0, 0.0, 0.2]}, "limit": 3}),
            "exact cosine search",
        )?;
        run(
            "visits.record_batch",
            json!({"visits": [
                {"url": "https://www.lyon-france.example/", "title": "Visit Lyon", "tab_id": "demo-tab"},
                {"url": "https://tracker.example/pixel", "title": "Tracker"}
            ]}),
            "browsing history, one transaction",
        )?;
        run("history.list", json!({"limit": 5}), "newest visits first")?;
        run(
            "history.purge",
            json!({"host": "tracker.example"}),
            "a privacy purge: the rows leave every file",
        )?;
        run(
            "documents.upsert",
            json!({"url": "https://www.lyon-france.example/food", "title": "Eating in Lyon",
            "text": "Bouchons serve quenelles and praline tart.\n\nThe Halles Paul Bocuse market opens early.",
            "chunks": [
                {"text": "Bouchons serve quenelles and praline tart.", "embedding": {"model": "demo-3d", "vector": [0.8, 0.3, 0.1]}},
                {"text": "The Halles Paul Bocuse market opens early.", "embedding": {"model": "demo-3d", "vector": [0.2, 0.9, 0.1]}}
            ]}),
            "a page kept for retrieval: chunks with embeddings",
        )?;
        run(
            "documents.upsert",
            json!({"url": "https://tracker.example/offers", "title": "Offers", "text": "Cheap trains to Lyon this weekend."}),
            "a second page, cut into chunks by the library",
        )?;
        run(
            "documents.search",
            json!({"query": "market Lyon", "match": "any", "embedding": {"model": "demo-3d", "vector": [0.1, 1.0, 0.0]}, "limit": 3}),
            "hybrid search: words and embedding fused by rank",
        )?;
        run(
            "chat",
            json!({"message": "Where should we eat?", "thread_id": thread_id, "reply": "Try a bouchon.",
                   "retrieve": {"query": "quenelles bouchons", "limit": 2}}),
            "a chat turn with the retrieved chunks in context.documents",
        )?;
        run(
            "privacy.forget_site",
            json!({"host": "tracker.example"}),
            "forget a site: its visits, pages, chunks and embeddings; bookmarks are kept",
        )?;
        run(
            "hydraflow.context",
            json!({"thread_id": thread_id}),
            "what the shell shows beside the conversation",
        )?;
        run(
            "bundle.export",
            json!({"wait": true}),
            "a verifiable backup, written as a job",
        )?;
        run("jobs.list", json!({"limit": 3}), "the durable jobs ledger")?;
        run(
            "overview",
            json!({}),
            "counts and storage sizes for a dashboard",
        )?;
        Some(())
    };
    if tour().is_none() {
        return ExitCode::from(1);
    }
    println!(
        "\n{} operations are available: `hydra ops` lists them.",
        ops::OPERATIONS.len()
    );
    ExitCode::SUCCESS
}
