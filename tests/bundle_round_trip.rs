//! A bundle carries a profile's records to another profile exactly: ids,
//! fields, timestamps and tie order survive; a second import changes
//! nothing; a damaged bundle imports nothing. Guards against a backup that
//! silently loses or reorders a user's data, or half-imports a bad file.

mod common;
use common::TestProfile;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn populate(t: &TestProfile) {
    t.ok(
        "threads.create",
        json!({"id": "th1", "title": "Trip", "metadata": {"k": 1}}),
    );
    for i in 0..5 {
        t.ok(
            "messages.append",
            json!({"thread_id": "th1", "role": "user", "content": format!("m{i}"), "created_at": 1000}),
        );
    }
    t.ok(
        "tasks.create",
        json!({"id": "task1", "title": "Book", "thread_id": "th1"}),
    );
    t.ok(
        "tasks.update",
        json!({"id": "task1", "status": "completed"}),
    );
    t.ok(
        "memory.upsert",
        json!({"id": "mem1", "value": "likes trains", "scope": "thread", "scope_ref": "th1",
               "thread_id": "th1", "embedding": {"model": "m", "vector": [0.25, -1.5, 3.0]}}),
    );
    t.ok(
        "memory.upsert",
        json!({"id": "mem2", "value": "plain", "scope": "global"}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://a.example/x", "title": "A", "visited_at": 10, "tab_id": "tab1"}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://b.example/", "visited_at": 20, "tab_id": "tab1"}),
    );
    t.ok(
        "visits.record",
        json!({"url": "https://c.example/", "visited_at": 20}),
    );
    t.ok(
        "tabs.bind_thread",
        json!({"tab_id": "tab1", "thread_id": "th1"}),
    );
    let top = t.ok("bookmarks.create_folder", json!({"name": "Travel"}))["folder"]["id"].clone();
    let sub = t.ok(
        "bookmarks.create_folder",
        json!({"name": "Rail", "parent_id": top}),
    )["folder"]["id"]
        .clone();
    t.ok("bookmarks.add", json!({"url": "https://rail.example/", "title": "Rail", "folder_id": sub, "tags": ["z", "a"]}));
    t.ok("bookmarks.add", json!({"url": "https://top.example/"}));
}

/// Everything a user would look at, without local numeric ids.
fn snapshot(t: &TestProfile) -> Value {
    let strip = |mut v: Value, keys: &[&str]| {
        for item in v["items"].as_array_mut().unwrap() {
            for k in keys {
                item.as_object_mut().unwrap().remove(*k);
            }
        }
        v["items"].clone()
    };
    json!({
        "threads": t.ok("threads.list", json!({}))["items"],
        "messages": t.ok("messages.list", json!({"thread_id": "th1"}))["items"],
        "tasks": t.ok("tasks.list", json!({}))["items"],
        "events": t.ok("tasks.events", json!({"task_id": "task1"}))["items"],
        "memories": strip(t.ok("memory.list", json!({})), &["last_accessed_at"]),
        "history": strip(t.ok("history.list", json!({})), &["id"]),
        "bookmarks": strip(t.ok("bookmarks.list", json!({})), &["id", "folder_id", "created_at_"]),
        "tabs": strip(t.ok("tabs.list", json!({})), &["current_history_id"]),
    })
}

fn export(t: &TestProfile, request: Value) -> Value {
    let mut request = request;
    request["wait"] = json!(true);
    t.ok("bundle.export", request)
}

fn import(t: &TestProfile, path: &str, extra: Value) -> Value {
    let mut request = json!({"path": path, "wait": true});
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    t.ok("bundle.import", request)
}

#[test]
fn round_trip_keeps_every_record_and_reimport_changes_nothing() {
    let a = TestProfile::new();
    populate(&a);
    let out = export(&a, json!({}));
    let path = out["path"].as_str().unwrap().to_owned();
    assert!(out["job_id"].is_string());
    let manifest = &out["manifest"];
    assert_eq!(manifest["format"], "hydra-bundle");
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["components"]["messages"]["count"], 5);
    assert_eq!(manifest["components"]["browser_history"]["count"], 3);

    // The checksums are over each component's exact lines.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut by_component: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for line in text.lines().skip(1) {
        let v: Value = serde_json::from_str(line).unwrap();
        let bytes = by_component
            .entry(v["c"].as_str().unwrap().to_owned())
            .or_default();
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    for (component, bytes) in &by_component {
        let sha = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        assert_eq!(
            manifest["components"][component]["sha256"],
            json!(sha),
            "{component}"
        );
    }

    let b = TestProfile::new();
    let result = import(&b, &path, json!({}));
    assert_eq!(
        result["imported"]["messages"],
        json!({"inserted": 5, "updated": 0, "skipped": 0})
    );
    assert_eq!(result["imported"]["tabs"]["inserted"], 1);
    assert_eq!(snapshot(&a), snapshot(&b));
    // The tab points at the re-resolved visit of the new profile.
    let tab = b.ok("tabs.get", json!({"id": "tab1"}))["tab"].clone();
    let newest =
        b.ok("history.list", json!({"tab_id": "tab1", "limit": 1}))["items"][0]["id"].clone();
    assert_eq!(tab["current_history_id"], newest);
    assert_eq!(tab["thread_id"], "th1");
    // Embeddings came along: a search finds the same memory with the same score.
    let search = |t: &TestProfile| {
        t.ok(
            "memory.search",
            json!({"embedding": {"model": "m", "vector": [0.25, -1.5, 3.0]}}),
        )["items"][0]
            .clone()
    };
    assert_eq!(search(&b)["score"], search(&a)["score"]);
    assert_eq!(
        search(&b)["memory"]["embedding"],
        json!({"model": "m", "dim": 3})
    );

    let before = snapshot(&b);
    let again = import(&b, &path, json!({}));
    for (component, counts) in again["imported"].as_object().unwrap() {
        assert_eq!(counts["inserted"], 0, "{component}");
        assert_eq!(counts["updated"], 0, "{component}");
    }
    assert_eq!(snapshot(&b), before);
    // Import wrote no task events and touched no thread.
    assert_eq!(
        b.ok("tasks.events", json!({"task_id": "task1"}))["items"],
        a.ok("tasks.events", json!({"task_id": "task1"}))["items"]
    );
}

#[test]
fn newer_wins_updates_and_skip_existing_does_not() {
    let a = TestProfile::ticking();
    a.ok("threads.create", json!({"id": "th1", "title": "old"}));
    let first = export(&a, json!({"components": ["threads"]}))["path"]
        .as_str()
        .unwrap()
        .to_owned();
    a.tick();
    a.ok("threads.update", json!({"id": "th1", "title": "new"}));
    let second = export(&a, json!({"components": ["threads"]}))["path"]
        .as_str()
        .unwrap()
        .to_owned();

    let b = TestProfile::new();
    import(&b, &first, json!({}));
    let skipped = import(&b, &second, json!({"policy": "skip_existing"}));
    assert_eq!(
        skipped["imported"]["threads"],
        json!({"inserted": 0, "updated": 0, "skipped": 1})
    );
    assert_eq!(
        b.ok("threads.get", json!({"id": "th1"}))["thread"]["title"],
        "old"
    );
    let dry = import(&b, &second, json!({"dry_run": true}));
    assert_eq!(dry["imported"]["threads"]["updated"], 1);
    assert_eq!(
        b.ok("threads.get", json!({"id": "th1"}))["thread"]["title"],
        "old",
        "dry run wrote"
    );
    let updated = import(&b, &second, json!({}));
    assert_eq!(updated["imported"]["threads"]["updated"], 1);
    assert_eq!(
        b.ok("threads.get", json!({"id": "th1"}))["thread"]["title"],
        "new"
    );
    // The older bundle does not win back.
    let older = import(&b, &first, json!({}));
    assert_eq!(older["imported"]["threads"]["skipped"], 1);
}

#[test]
fn a_damaged_bundle_imports_nothing_and_fails_its_job() {
    let a = TestProfile::new();
    populate(&a);
    let path = export(&a, json!({}))["path"].as_str().unwrap().to_owned();
    let mut bytes = std::fs::read(&path).unwrap();
    let last_record = bytes.len() - 10;
    bytes[last_record] ^= 0x01;
    let damaged = a.dir.path().join("damaged.hydra");
    std::fs::write(&damaged, &bytes).unwrap();

    let b = TestProfile::new();
    let err = b.err(
        "bundle.import",
        json!({"path": damaged, "wait": true}),
        "corrupt",
    );
    assert!(!err.message.contains("example"), "{}", err.message);
    assert_eq!(b.ok("threads.list", json!({}))["items"], json!([]));
    assert_eq!(b.ok("history.list", json!({}))["items"], json!([]));
    let failed = b.ok("jobs.list", json!({"type": ["bundle_import"]}))["items"][0].clone();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "corrupt");

    // Without wait the call only queues the job.
    let queued = b.ok("bundle.import", json!({"path": damaged}));
    assert_eq!(
        queued.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["job_id"]
    );
    let job = b.ok(
        "jobs.wait",
        json!({"id": queued["job_id"], "timeout_ms": 10_000}),
    )["job"]
        .clone();
    assert_eq!(job["status"], "failed");
    // A missing file fails inside the job too.
    b.err(
        "bundle.import",
        json!({"path": "/definitely/missing.hydra", "wait": true}),
        "not_found",
    );
}

#[test]
fn requests_are_checked_before_any_job_exists() {
    let t = TestProfile::new();
    t.err(
        "bundle.export",
        json!({"components": ["threads", "chats"]}),
        "invalid_argument",
    );
    t.err(
        "bundle.export",
        json!({"components": []}),
        "invalid_argument",
    );
    t.err(
        "bundle.export",
        json!({"path": "relative.hydra"}),
        "invalid_argument",
    );
    t.err(
        "bundle.export",
        json!({"path": "/no/such/dir/x.hydra"}),
        "invalid_argument",
    );
    t.err("bundle.export", json!({"thread_id": "nope"}), "not_found");
    t.err(
        "bundle.import",
        json!({"path": "/x", "policy": "Newer_wins"}),
        "invalid_argument",
    );
    t.err("bundle.import", json!({}), "invalid_argument");
    assert_eq!(t.ok("jobs.list", json!({}))["items"], json!([]));
}

#[test]
fn list_shows_the_profiles_bundles() {
    let t = TestProfile::new();
    assert_eq!(t.ok("bundle.list", json!({}))["items"], json!([]));
    t.ok("threads.create", json!({"id": "x"}));
    let out = export(&t, json!({}));
    let listed = t.ok("bundle.list", json!({}))["items"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["path"], out["path"]);
    assert_eq!(listed[0]["manifest"], out["manifest"]);
    assert!(listed[0]["path"]
        .as_str()
        .unwrap()
        .starts_with(t.profile.dir().join("bundles").to_str().unwrap()));
}

/// `path`'s bundle with the first record of `component` changed by `edit`,
/// the manifest's checksum of that component recomputed: a well-formed
/// bundle whose record breaks a rule.
fn edited_bundle(path: &str, component: &str, edit: impl Fn(&mut Value), out: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut manifest: Value = serde_json::from_str(&lines[0]).unwrap();
    let mut edited = false;
    let mut bytes = Vec::new();
    for line in lines.iter_mut().skip(1) {
        let mut v: Value = serde_json::from_str(line).unwrap();
        if v["c"] != component {
            continue;
        }
        if !edited {
            edit(&mut v["r"]);
            *line = serde_json::to_string(&v).unwrap();
            edited = true;
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    assert!(edited, "no {component} record");
    let sha = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    manifest["components"][component]["sha256"] = json!(sha);
    lines[0] = serde_json::to_string(&manifest).unwrap();
    std::fs::write(out, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_record_breaking_the_id_or_time_rules_imports_nothing() {
    let a = TestProfile::new();
    populate(&a);
    let path = export(&a, json!({}))["path"].as_str().unwrap().to_owned();
    let cases: &[(&str, &str, Value)] = &[
        ("threads", "id", json!("bad id!")),
        ("threads", "created_at", json!(-5)),
        ("messages", "id", json!("m 1")),
        ("messages", "parent_id", json!("no/such")),
        ("tasks", "due_at", json!(-1)),
        ("task_events", "id", json!("bad ev!")),
        ("memories", "last_accessed_at", json!(-3)),
        ("browser_history", "visited_at", json!(-1)),
        ("browser_history", "tab_id", json!("tab one")),
        ("bookmarks", "updated_at", json!(-2)),
        ("tabs", "id", json!("bad tab!")),
    ];
    for (component, field, bad) in cases {
        let out = a.dir.path().join(format!("{component}-{field}.hydra"));
        edited_bundle(&path, component, |r| r[*field] = bad.clone(), &out);
        for dry_run in [true, false] {
            let b = TestProfile::new();
            let err = b.err(
                "bundle.import",
                json!({"path": out, "wait": true, "dry_run": dry_run}),
                "invalid_argument",
            );
            assert_eq!(
                err.details["field"],
                json!(format!("record.{field}")),
                "{component}.{field}"
            );
            assert_eq!(b.ok("threads.list", json!({}))["items"], json!([]));
            assert_eq!(b.ok("history.list", json!({}))["items"], json!([]));
            assert_eq!(b.ok("tabs.list", json!({}))["items"], json!([]));
        }
    }
    // The unedited bundle imports (the edits alone were refused).
    let b = TestProfile::new();
    import(&b, &path, json!({}));
    assert_eq!(b.ok("threads.list", json!({}))["items"][0]["id"], "th1");
}

/// `path`'s bundle with its record lines in another order: `arrange` gets
/// each component's lines (in file order, components in the order the
/// library writes them) and returns every line once. The manifest stays
/// valid as long as each component's lines keep their order.
fn rearranged_bundle(
    path: &str,
    arrange: impl Fn(Vec<Vec<String>>) -> Vec<String>,
    out: &std::path::Path,
) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().map(str::to_owned);
    let manifest = lines.next().unwrap();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for line in lines {
        let component = serde_json::from_str::<Value>(&line).unwrap()["c"]
            .as_str()
            .unwrap()
            .to_owned();
        match groups.last_mut() {
            Some((c, group)) if *c == component => group.push(line),
            _ => groups.push((component, vec![line])),
        }
    }
    let count = groups.iter().map(|(_, g)| g.len()).sum::<usize>();
    let arranged = arrange(groups.into_iter().map(|(_, g)| g).collect());
    assert_eq!(arranged.len(), count);
    std::fs::write(out, [vec![manifest], arranged].concat().join("\n") + "\n").unwrap();
}

/// The components last first, each one's lines in file order.
fn last_first(groups: Vec<Vec<String>>) -> Vec<String> {
    groups.into_iter().rev().flatten().collect()
}

/// One line of each component in turn, last component first.
fn interleaved(groups: Vec<Vec<String>>) -> Vec<String> {
    let mut queues: Vec<std::collections::VecDeque<String>> =
        groups.into_iter().rev().map(Into::into).collect();
    let mut out = Vec::new();
    while queues.iter().any(|q| !q.is_empty()) {
        for q in &mut queues {
            out.extend(q.pop_front());
        }
    }
    out
}

#[test]
fn the_order_of_the_components_lines_changes_nothing() {
    // Any line order is a valid bundle (each component's checksum covers
    // its own lines in order): a message before its thread, a task event
    // before its task, a tab before the visit it shows. The import must
    // give what the library's own order (referenced records first) gives:
    // the same records, links, counts, policies and dry runs, and a
    // re-import that changes nothing.
    let a = TestProfile::new();
    populate(&a);
    let path = export(&a, json!({}))["path"].as_str().unwrap().to_owned();
    let reference = TestProfile::new();
    let counts =
        |t: &TestProfile, path: &str, extra: Value| import(t, path, extra)["imported"].clone();
    let dry = counts(&reference, &path, json!({"dry_run": true}));
    let first = counts(&reference, &path, json!({}));
    let again = counts(&reference, &path, json!({}));
    let skipping = counts(&reference, &path, json!({"policy": "skip_existing"}));
    assert_eq!(first["messages"]["inserted"], 5);
    assert_eq!(dry, first);
    let expected = snapshot(&reference);
    assert_eq!(expected, snapshot(&a));

    for (name, arrange) in [
        (
            "last_first",
            last_first as fn(Vec<Vec<String>>) -> Vec<String>,
        ),
        ("interleaved", interleaved),
    ] {
        let out = a.dir.path().join(format!("{name}.hydra"));
        rearranged_bundle(&path, arrange, &out);
        let out = out.to_str().unwrap();
        let b = TestProfile::new();
        assert_eq!(counts(&b, out, json!({"dry_run": true})), dry, "{name}");
        assert_eq!(
            b.ok("threads.list", json!({}))["items"],
            json!([]),
            "{name}"
        );
        assert_eq!(counts(&b, out, json!({})), first, "{name}");
        assert_eq!(snapshot(&b), expected, "{name}");
        // The tab shows its visit, re-resolved; links to the thread stay.
        let tab = b.ok("tabs.get", json!({"id": "tab1"}))["tab"].clone();
        let newest =
            b.ok("history.list", json!({"tab_id": "tab1", "limit": 1}))["items"][0]["id"].clone();
        assert_eq!(tab["current_history_id"], newest, "{name}");
        assert_eq!(tab["thread_id"], "th1", "{name}");
        assert_eq!(
            b.ok("tasks.get", json!({"id": "task1"}))["task"]["thread_id"],
            "th1",
            "{name}"
        );
        assert_eq!(counts(&b, out, json!({})), again, "{name}");
        assert_eq!(
            counts(&b, out, json!({"policy": "skip_existing"})),
            skipping,
            "{name}"
        );
        assert_eq!(snapshot(&b), expected, "{name}");
    }
}

#[test]
fn a_reference_to_a_component_left_out_of_the_import_becomes_null() {
    // "In the bundle" means in a component being imported: a visit keeps
    // its `tab_id` only when its tab is imported too (or stored), a task
    // its thread likewise.
    let a = TestProfile::new();
    populate(&a);
    let path = export(&a, json!({}))["path"].as_str().unwrap().to_owned();
    let b = TestProfile::new();
    import(
        &b,
        &path,
        json!({"components": ["browser_history", "tasks"]}),
    );
    let visits = b.ok("history.list", json!({}))["items"].clone();
    assert_eq!(visits.as_array().unwrap().len(), 3);
    for visit in visits.as_array().unwrap() {
        assert_eq!(visit["tab_id"], Value::Null, "{visit}");
    }
    assert_eq!(
        b.ok("tasks.get", json!({"id": "task1"}))["task"]["thread_id"],
        Value::Null
    );
    // With the tabs, the visits keep theirs.
    let c = TestProfile::new();
    import(
        &c,
        &path,
        json!({"components": ["browser_history", "tabs"]}),
    );
    let tabbed = c.ok("history.list", json!({"tab_id": "tab1"}))["items"].clone();
    assert_eq!(tabbed.as_array().unwrap().len(), 2);
}
