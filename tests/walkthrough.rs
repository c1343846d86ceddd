//! The README's walk-through, executed: its shell sessions run against the stack `make run` brings
//! up (the same control plane, moto, operator and `localstack` AWSProvider), and each command's
//! output must show what the README shows — so the documentation and the behaviour cannot drift
//! apart. In the README's expected output `...` stands for any text and an age (`12s`, `3m`) for any
//! age; commands that need tools the stack does not provide (`make`, `source`, `aws`) are not run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use local_stack::{Stack, StackOptions};
use regex::Regex;

/// How long a `kubectl get` may take to show what the README shows (the reconciler's first pass).
const SETTLE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One command of a shell session and the output the README shows for it.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
}

/// The shell sessions (```console blocks) of the README's "Walk-through" section, as steps.
fn walkthrough_steps(readme: &str) -> Vec<Step> {
    let section = readme
        .split("\n## Walk-through\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Walk-through section");
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            let command = command.split("  #").next().unwrap_or(command).trim();
            steps.push(Step {
                command: command.to_owned(),
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.to_owned());
        }
    }
    steps
}

/// Whether the step is run here: `make`, `source` and `aws` need what the stack does not provide.
fn runnable(command: &str) -> bool {
    !["make ", "source ", "aws "]
        .iter()
        .any(|prefix| command.starts_with(prefix))
}

/// The expected output as one pattern over the output with its whitespace collapsed: the lines in
/// order, `...` any text, an age any age.
fn pattern(expected: &[String]) -> Regex {
    let age = Regex::new(r"^\d+[smhd]$").expect("pattern");
    let lines: Vec<String> = expected
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && *line != "...")
        .map(|line| {
            line.split("...")
                .map(|piece| {
                    piece
                        .split_whitespace()
                        .map(|token| {
                            if age.is_match(token) {
                                r"\d+[smhd]".to_owned()
                            } else {
                                regex::escape(token)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(r"\s+")
                })
                .collect::<Vec<_>>()
                .join(".*?")
        })
        .collect();
    Regex::new(&format!("(?s){}", lines.join(r".*?"))).expect("pattern of the expected output")
}

/// Runs one command in the repository with the stack's kubeconfig and kubectl, `cargo run -q --`
/// standing for the operator binary; stdout and stderr together.
fn run(stack: &Stack, command: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_infra-operator");
    let command = command.replace("cargo run -q --", bin);
    let kubectl_dir = stack.kubectl_bin().parent().unwrap_or(Path::new("."));
    let path = format!(
        "{}:{}",
        kubectl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-c", &format!("{command} 2>&1")])
        .current_dir(repo())
        .env("KUBECONFIG", stack.kubeconfig())
        .env("PATH", path)
        .output()
        .expect("run bash");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_readme_walkthrough_shows_what_happens() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let steps = walkthrough_steps(&readme);
    let runnable_steps = steps.iter().filter(|s| runnable(&s.command)).count();
    assert!(
        runnable_steps >= 6,
        "the walk-through lost its commands: {steps:#?}"
    );
    let stack = Stack::start(StackOptions {
        repo_root: repo(),
        operator_bin: PathBuf::from(env!("CARGO_BIN_EXE_infra-operator")),
        operator_args: Some(vec!["run".to_owned()]),
        moto: true,
        dir: None,
    })
    .unwrap_or_else(|e| panic!("local stack: {e}"));
    stack
        .create_local_provider()
        .expect("the localstack provider");
    for step in steps.iter().filter(|s| runnable(&s.command)) {
        let expected = pattern(&step.expected);
        // A read is retried while the reconciler catches up; anything else runs once.
        let retried = step.command.starts_with("kubectl get");
        let deadline = Instant::now() + SETTLE;
        loop {
            let output = run(&stack, &step.command);
            if expected.is_match(&output) {
                break;
            }
            if !retried || Instant::now() >= deadline {
                panic!(
                    "README walk-through: `{}` printed\n{output}\nwhere the README shows\n{}",
                    step.command,
                    step.expected.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn expected_output_patterns_allow_only_ages_and_ellipses_to_differ() {
    let table = [
        "NAME   READY   AGE".to_owned(),
        "app    true    12s".to_owned(),
    ];
    let table = pattern(&table);
    assert!(table.is_match("NAME READY AGE\napp true 3m\n"));
    assert!(!table.is_match("NAME READY AGE\napp false 3m\n"));
    let refusal = ["Error from server (Forbidden): ... denied the request:".to_owned()];
    assert!(pattern(&refusal).is_match(
        "Error from server (Forbidden): error when creating \"x\": admission webhook \"v\" denied the request: [rule]"
    ));
    let steps = walkthrough_steps(
        "# x\n\n## Walk-through\n\n```console\n$ kubectl get x   # note\nout\n```\n\n```yaml\n$ no\n```\n\n## Next\n",
    );
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].command, "kubectl get x");
    assert_eq!(steps[0].expected, ["out"]);
}
