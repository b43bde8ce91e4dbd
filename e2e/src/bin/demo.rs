//! `make demo`: the example ImagePipeline made real on this machine against
//! emulated AWS, images sent through it both ways, a report of where they
//! landed and of what the warehouse's views make of them (evaluated here
//! with SQLite), then everything destroyed and stopped, also on Ctrl-C.
//!
//! Usage: `imagepipeline-demo [MANIFEST]` (default `examples/imagepipeline.yaml`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use imagepipeline_e2e::warehouse::AnalystView;
use imagepipeline_e2e::{HarnessError, LocalPipeline, OWNER_TAG, Report, SampleRun, Samples, repo_root};

/// What a shell reports for a program ended by Ctrl-C.
fn interrupted() -> ExitCode {
    ExitCode::from(130)
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn progress(line: &str) {
    println!("    {line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let manifest = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("examples/imagepipeline.yaml"));
    step("starting emulated AWS (moto server) and a Kafka broker (tansu) on loopback");
    let mut pipeline = match LocalPipeline::start(&manifest).await {
        Ok(pipeline) => pipeline,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut was_interrupted = false;
    let outcome = tokio::select! {
        outcome = demo(&mut pipeline) => outcome,
        _ = tokio::signal::ctrl_c() => {
            println!("\n==> interrupted: destroying what was made, then stopping");
            was_interrupted = true;
            Ok(())
        }
    };
    if let Err(err) = &outcome {
        eprintln!("\nerror: {err}");
    }

    let manifest_path = pipeline.manifest.path.display().to_string();
    step(&format!("imagepipeline destroy -f {manifest_path}"));
    let started = Instant::now();
    let destroyed = tokio::select! {
        destroyed = pipeline.destroy(progress) => destroyed,
        _ = tokio::signal::ctrl_c() => {
            println!("\n==> interrupted again: stopping without waiting for destroy (the emulator keeps nothing)");
            return interrupted();
        }
    };
    let cleaned = match destroyed {
        Ok(()) => match pipeline.leftovers().await {
            Ok(left) if left.is_empty() => {
                println!(
                    "    destroyed in {:.1} s; no AWS resource tagged {OWNER_TAG}={} is left",
                    started.elapsed().as_secs_f64(),
                    pipeline.manifest.owner
                );
                true
            }
            Ok(left) => {
                eprintln!("error: still tagged as the pipeline's after destroy: {left:?}");
                false
            }
            Err(err) => {
                eprintln!("error: cannot list what is left: {err}");
                false
            }
        },
        Err(err) => {
            eprintln!("error: {err}");
            false
        }
    };
    drop(pipeline);
    step("stopped upload-api, stream-bridge, the Kafka broker and the AWS emulator");
    match (outcome.is_ok() && cleaned, was_interrupted) {
        (_, true) => interrupted(),
        (true, false) => ExitCode::SUCCESS,
        (false, false) => ExitCode::FAILURE,
    }
}

async fn demo(pipeline: &mut LocalPipeline) -> Result<(), HarnessError> {
    let manifest = pipeline.manifest.clone();
    let path = manifest.path.display().to_string();
    println!("    AWS emulator   {}", pipeline.aws.endpoint_url());
    println!(
        "    Kafka broker   {} with topics {} ({} partitions) and {}, made here as the brokers would at first boot",
        pipeline.kafka.bootstrap_servers(),
        manifest.topic,
        manifest.partitions,
        manifest.dead_letter_topic()
    );
    println!(
        "    (emulated instances never boot: the demo plays the brokers' part, writing for each broker instance \
         the heartbeat its boot script would, `serving` while the local broker answers; and with no internet \
         here, the manifest is copied with spec.kafka.distribution.s3Uri = a stand-in archive placed in the \
         emulator instead of Apache's)"
    );

    step(&format!("imagepipeline plan -f {path}"));
    let plan = pipeline.plan().await?;
    for line in plan.text.lines().filter(|l| !l.starts_with("  ")) {
        progress(line);
    }

    step(&format!("imagepipeline apply -f {path}"));
    let started = Instant::now();
    let status = pipeline.apply(progress).await?;
    println!(
        "    {} in {:.1} s",
        status.phase.as_deref().unwrap_or("?"),
        started.elapsed().as_secs_f64()
    );

    step("starting upload-api and stream-bridge against what apply made");
    let upload = pipeline.start_upload_api().await?;
    let bridge = pipeline.start_stream_bridge().await?;
    println!("    upload-api     http://{upload}  (bearer key in a local keys file)");
    println!(
        "    stream-bridge  http://{bridge}/metrics, consuming {} from {}",
        manifest.topic,
        pipeline.kafka.bootstrap_servers()
    );
    println!(
        "    (on AWS the upload API runs on the Auto Scaling Group's instances and the bridge in the cluster; \
         emulated instances never boot)"
    );

    let samples = Samples::load()?;
    step(&format!(
        "sending {} images through the API and {} through Kafka, plus one bad file and one poison record",
        samples.upload.len(),
        samples.kafka.len()
    ));
    let run = SampleRun::send(pipeline, &samples).await?;
    let status = pipeline
        .status()
        .cloned()
        .ok_or_else(|| HarnessError::Scenario("no status after apply".into()))?;
    // The emulator has no Redshift: the views are evaluated here.
    let warehouse = pipeline.local_warehouse(&run.landed).await?;
    let analysts = AnalystView::of(&warehouse)?;
    step("what landed where");
    println!(
        "{}",
        Report {
            manifest: &manifest,
            status: &status,
            run: &run,
            analysts: &analysts,
        }
    );

    step(&format!(
        "imagepipeline plan -f {path}  (after apply: nothing to change)"
    ));
    let plan = pipeline.plan().await?;
    for line in plan
        .text
        .lines()
        .filter(|l| !l.starts_with("  ") || plan.changes_pending)
    {
        progress(line);
    }

    step(&format!(
        "imagepipeline apply -f {path}  (again: changes nothing, prints the status)"
    ));
    for line in pipeline.apply_for_status_table().await?.lines() {
        progress(line);
    }
    Ok(())
}
