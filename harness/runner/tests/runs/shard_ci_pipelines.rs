//! The example pipelines under docs/ci/ do what they assume: the `meterbench
//! run` lines they run, expanded as the CI engine would for each bench, are
//! accepted by the real CLI and split the cases into shards that are
//! disjoint and cover every case; their `meterbench junit merge` line is
//! accepted and merges one file per bench.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::{meterbench, root};

fn read(name: &str) -> String {
    std::fs::read_to_string(root().join("docs/ci").join(name)).unwrap()
}

fn yaml(name: &str) -> serde_json::Value {
    serde_saphyr::from_str(&read(name))
        .unwrap_or_else(|e| panic!("docs/ci/{name} is not valid YAML: {e}"))
}

/// Every string in a parsed YAML document, split into lines.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.extend(s.lines().map(str::to_string)),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The meterbench command lines, from `meterbench` to the end of the command.
fn commands(lines: &[String], sub: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let at = l.find(&format!("meterbench {sub}"))?;
            let cmd = &l[at..];
            let end = cmd.find("||").unwrap_or(cmd.len());
            Some(cmd[..end].trim().trim_end_matches(['\'', '"']).to_string())
        })
        .collect()
}

/// `${X}`, `$X` and `${{ matrix.x }}` as the engine would fill them in.
fn expand(cmd: &str, vars: &[(&str, String)]) -> String {
    let mut out = cmd.to_string();
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{{ {name} }}}}"), value)
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "unexpanded variable in `{out}`");
    out
}

/// Splits like a shell does for these simple lines (quotes, no escapes).
fn words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    for c in cmd.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The trials `meterbench run ... --list` names.
fn listed(args: &[String]) -> BTreeSet<String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = meterbench(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}

/// Runs a pipeline's `meterbench run` line as `--list` on the virtual rig
/// (the lab's rig files are not in the repository), keeping every other
/// argument as the pipeline wrote it. Returns its shard and its trials.
fn run_line_as_list(cmd: &str) -> (String, BTreeSet<String>) {
    let mut args: Vec<String> = words(cmd).into_iter().skip(1).collect();
    assert_eq!(args[0], "run", "{cmd}");
    let shard = args
        .iter()
        .position(|a| a == "--shard")
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| panic!("no --shard in `{cmd}`"));
    if let Some(i) = args.iter().position(|a| a == "--rig") {
        args[i + 1] = "rigs/virtual.yaml".into();
    }
    args.push("--list".into());
    (shard, listed(&args))
}

/// Checks the shards the pipeline runs are 1/n..n/n, disjoint, and cover every case.
fn check_shards(file: &str, runs: Vec<String>) {
    assert!(!runs.is_empty(), "{file} runs no `meterbench run`");
    let all = listed(&["run".into(), "--list".into()]);
    assert!(all.len() > 10, "{all:?}");
    let mut union = BTreeSet::new();
    let mut shards = Vec::new();
    for cmd in &runs {
        let (shard, trials) = run_line_as_list(cmd);
        assert!(!trials.is_empty(), "{file}: shard {shard} runs nothing");
        for t in &trials {
            assert!(union.insert(t.clone()), "{file}: {t} is in two shards");
        }
        shards.push(shard);
    }
    assert_eq!(union, all, "{file}: the shards do not cover every case");
    let n = shards.len();
    let mut want: Vec<String> = (1..=n).map(|i| format!("{i}/{n}")).collect();
    shards.sort();
    want.sort();
    assert_eq!(shards, want, "{file}");
}

/// Runs the pipeline's merge line in a folder holding one JUnit file per
/// bench where the line expects them.
fn check_merge(file: &str, lines: &[String], benches: &[&str]) {
    let merges = commands(lines, "junit merge");
    assert_eq!(merges.len(), 1, "{file}: {merges:?}");
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = words(&merges[0]).into_iter().skip(1).collect();
    let out_file = args[args.iter().position(|a| a == "--out").unwrap() + 1].clone();
    for arg in args
        .iter()
        .skip(3)
        .filter(|a| a.ends_with(".xml") && **a != out_file)
    {
        let names: Vec<String> = if arg.contains('*') {
            benches.iter().map(|b| arg.replace('*', b)).collect()
        } else {
            vec![arg.clone()]
        };
        for name in names {
            let stem = Path::new(&name).file_stem().unwrap().to_str().unwrap();
            let rig = stem.strip_prefix("junit-").unwrap_or(stem);
            let path = dir.path().join(&name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(
                &path,
                format!(
                    r#"<testsuites name="meterbench"><testsuite name="{rig}" tests="1" failures="0" errors="0"><properties><property name="rig" value="{rig}"/></properties><testcase name="reg-initial" classname="{rig}.reg.yaml"/></testsuite></testsuites>"#
                ),
            )
            .unwrap();
        }
    }
    // The shell expands the glob; so do we.
    let mut expanded = Vec::new();
    for a in &args {
        if a.contains('*') {
            let (folder, pattern) = a.rsplit_once('/').unwrap_or(("", a));
            let (pre, post) = pattern.split_once('*').unwrap();
            let mut found: Vec<String> = std::fs::read_dir(dir.path().join(folder))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(pre) && n.ends_with(post))
                .map(|n| {
                    if folder.is_empty() {
                        n
                    } else {
                        format!("{folder}/{n}")
                    }
                })
                .collect();
            found.sort();
            expanded.extend(found);
        } else {
            expanded.push(a.clone());
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_meterbench"))
        .current_dir(dir.path())
        .args(&expanded)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{file}: {expanded:?}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{} tests", benches.len())),
        "{file}: {text}"
    );
    let merged = std::fs::read_to_string(dir.path().join(&out_file)).unwrap();
    for b in benches {
        assert!(
            merged.contains(&format!(r#"value="{b}""#)),
            "{file}: {merged}"
        );
    }
}

#[test]
fn gitlab_pipeline_shards_over_its_benches_and_merges_their_junit() {
    let doc = yaml("gitlab-ci.yml");
    let benches: Vec<String> = doc["bench"]["parallel"]["matrix"][0]["BENCH"]
        .as_array()
        .expect("bench: parallel: matrix: - BENCH: [...]")
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect();
    let mut lines = Vec::new();
    strings(&doc, &mut lines);
    let run = commands(&lines, "run");
    assert_eq!(run.len(), 1, "{run:?}");
    let total = benches.len();
    // GitLab numbers a parallel job's instances 1..=n in CI_NODE_INDEX.
    let runs = benches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            expand(
                &run[0],
                &[
                    ("BENCH", b.clone()),
                    ("CI_NODE_INDEX", (i + 1).to_string()),
                    ("CI_NODE_TOTAL", total.to_string()),
                ],
            )
        })
        .collect();
    check_shards("gitlab-ci.yml", runs);
    let names: Vec<&str> = benches.iter().map(String::as_str).collect();
    check_merge("gitlab-ci.yml", &lines, &names);
    // Runners are chosen by tag: the bench's own.
    assert_eq!(doc["bench"]["tags"][1], "$BENCH");
}

#[test]
fn github_workflow_shards_over_its_benches_and_merges_their_junit() {
    let doc = yaml("github-actions.yml");
    let include = doc["jobs"]["bench"]["strategy"]["matrix"]["include"]
        .as_array()
        .expect("jobs.bench.strategy.matrix.include")
        .clone();
    let mut lines = Vec::new();
    strings(&doc["jobs"]["bench"], &mut lines);
    let run = commands(&lines, "run");
    assert_eq!(run.len(), 1, "{run:?}");
    let runs = include
        .iter()
        .map(|m| {
            expand(
                &run[0],
                &[
                    ("matrix.bench", m["bench"].as_str().unwrap().to_string()),
                    ("matrix.shard", m["shard"].to_string()),
                ],
            )
        })
        .collect();
    check_shards("github-actions.yml", runs);
    let runs_on = doc["jobs"]["bench"]["runs-on"].to_string();
    assert!(
        runs_on.contains("self-hosted") && runs_on.contains("matrix.bench"),
        "{runs_on}"
    );
    let mut merge_lines = Vec::new();
    strings(&doc["jobs"]["junit-merge"], &mut merge_lines);
    let benches: Vec<String> = include
        .iter()
        .map(|m| format!("junit-{}", m["bench"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = benches
        .iter()
        .map(|b| b.strip_prefix("junit-").unwrap())
        .collect();
    check_merge("github-actions.yml", &merge_lines, &names);
}

#[test]
fn jenkins_pipeline_locks_each_bench_shards_and_merges() {
    let text = read("Jenkinsfile");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let runs = commands(&lines, "run");
    assert_eq!(runs.len(), 2, "{runs:?}");
    for bench in ["bench-01", "bench-02"] {
        assert!(
            text.contains(&format!("lock(resource: '{bench}')")),
            "no lockable resource for {bench}"
        );
    }
    check_shards("Jenkinsfile", runs);
    check_merge("Jenkinsfile", &lines, &["bench-01", "bench-02"]);
}
