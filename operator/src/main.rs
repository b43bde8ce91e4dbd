//! `imagepipeline`: the operator's command line.

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use imagepipeline_operator::{api::ImagePipeline, crd::crd_yaml, manifest};
use kube::ResourceExt;

/// Turns ImagePipeline resources into AWS image-ingestion pipelines.
#[derive(Parser)]
#[command(name = "imagepipeline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the ImagePipeline CustomResourceDefinition as YAML.
    Crd,
    /// Show what `apply` would do for a manifest; changes nothing.
    ///
    /// For now this checks the manifest exactly as `kubectl apply` would
    /// (schema and validation rules) and prints it with defaults filled in;
    /// comparing it with the live AWS account comes with the reconcile engine.
    Plan {
        /// Manifest holding one or more ImagePipelines.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let output = match Cli::parse().command {
        Command::Crd => crd_yaml(),
        Command::Plan { file } => match manifest::load(&file) {
            Ok(pipelines) => plan_report(&pipelines),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    match io::stdout().lock().write_all(output.as_bytes()) {
        // A reader that stopped early (`| head`) is not an error of ours.
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write to standard output: {error}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

fn plan_report(pipelines: &[ImagePipeline]) -> String {
    let mut report = String::new();
    for pipeline in pipelines {
        let name = format!(
            "{}/{}",
            pipeline.namespace().unwrap_or_default(),
            pipeline.name_any()
        );
        report.push_str(&format!(
            "ImagePipeline {name}: valid. Spec with defaults applied:\n"
        ));
        let spec = serde_saphyr::to_string(&pipeline.spec).expect("a spec serializes to YAML");
        for line in spec.lines() {
            report.push_str(&format!("  {line}\n"));
        }
    }
    report.push_str(
        "\nComparing this with the live AWS account is not implemented yet: `plan` checks manifests only.\n",
    );
    report
}
