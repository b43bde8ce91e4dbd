//! The GitHub workflows checked offline as actionlint checks them, with the
//! tools `make test` already has: every step's script passes shellcheck as
//! the runner's bash runs it, every action is pinned, every `needs` names a
//! job of the workflow and every job runs somewhere. A workflow is only run
//! on a tag or a pull request, too late to find a typo.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::{files_in, output_text, yaml};

/// `run` text with every `${{ expression }}` replaced by a plain word of the
/// same length, as actionlint does before shellcheck: the runner pastes the
/// expression's value in before bash sees the script.
fn without_expressions(run: &str) -> String {
    let mut script = String::with_capacity(run.len());
    let mut rest = run;
    while let Some(start) = rest.find("${{") {
        let Some(len) = rest[start..].find("}}").map(|end| end + 2) else {
            break;
        };
        script.push_str(&rest[..start]);
        script.push_str(&"_".repeat(len));
        rest = &rest[start + len..];
    }
    script.push_str(rest);
    script
}

/// The named items of a `needs` (one name or a list).
fn needs(job: &Value) -> Vec<String> {
    match &job["needs"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The jobs whose outputs or results a job's expressions read
/// (`needs.<job>.…`): only a job it needs has them.
fn jobs_read(job: &Value) -> BTreeSet<String> {
    let text = job.to_string();
    text.match_indices("needs.")
        .map(|(at, _)| {
            text[at + "needs.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn workflows_pass_the_checks_actionlint_makes() {
    let workflows = files_in(".github/workflows", ".yml");
    assert!(workflows.len() >= 3, "{workflows:?}");
    let scripts = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    let mut problems = Vec::new();
    for path in &workflows {
        let workflow = yaml(path);
        let jobs = workflow["jobs"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: no jobs"));
        let names: BTreeSet<&str> = jobs.keys().map(String::as_str).collect();
        for (name, job) in jobs {
            if job["runs-on"].is_null() && job["uses"].is_null() {
                problems.push(format!("{path}: job {name} has no runs-on"));
            }
            let needed = needs(job);
            for needed in &needed {
                if !names.contains(needed.as_str()) {
                    problems.push(format!(
                        "{path}: job {name} needs {needed}, which is not a job of it"
                    ));
                }
            }
            for read in jobs_read(job) {
                if !needed.contains(&read) {
                    problems.push(format!(
                        "{path}: job {name} reads needs.{read} without needing it"
                    ));
                }
            }
            for (index, step) in job["steps"].as_array().into_iter().flatten().enumerate() {
                if let Some(action) = step["uses"].as_str() {
                    let pinned = action
                        .split_once('@')
                        .is_some_and(|(_, at)| !at.is_empty() && !["main", "master"].contains(&at));
                    if !pinned && !action.starts_with("./") && !action.starts_with("docker://") {
                        problems.push(format!("{path}: job {name} step {index} uses {action} unpinned"));
                    }
                }
                let Some(run) = step["run"].as_str() else {
                    continue;
                };
                let shell = step["shell"].as_str().unwrap_or("bash");
                if shell != "bash" {
                    continue;
                }
                // What the runner runs for `shell: bash`: bash -e with the
                // step's text as the file.
                let file = scripts.path().join(format!(
                    "{}-{name}-{index}.sh",
                    path.trim_start_matches(".github/workflows/")
                        .trim_end_matches(".yml")
                ));
                std::fs::write(
                    &file,
                    format!("#!/usr/bin/env bash\nset -e\n{}", without_expressions(run)),
                )
                .unwrap();
                written.push(file);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        written.len() >= workflows.len(),
        "the workflows' scripts were not found: {written:?}"
    );
    let output = Command::new("shellcheck")
        .args(&written)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run shellcheck ({e}): install it with scripts/prerequisites.sh install")
        });
    assert!(
        output.status.success(),
        "shellcheck finds problems in the workflows' run steps (file names: workflow-job-step):\n{}",
        output_text(&output)
    );
}

#[test]
fn expressions_become_words_of_their_length() {
    assert_eq!(
        without_expressions("echo \"${{ github.ref_name }}\" ${{x}} ${HOME}"),
        format!(
            "echo \"{}\" {} ${{HOME}}",
            "_".repeat("${{ github.ref_name }}".len()),
            "_".repeat("${{x}}".len())
        )
    );
    assert_eq!(without_expressions("a ${{ unclosed"), "a ${{ unclosed");
}

#[test]
fn the_jobs_an_expression_reads_are_found() {
    let job = serde_json::json!({
        "if": "${{ needs.version.outputs.tag != '' }}",
        "steps": [{"run": "echo ${{ needs.build-images.result }}"}],
    });
    assert_eq!(
        jobs_read(&job),
        BTreeSet::from(["version".to_owned(), "build-images".to_owned()])
    );
}
