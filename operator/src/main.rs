//! `imagepipeline`: the operator's command line.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use imagepipeline_operator::cli::{self, CliError, OutputFormat};
use imagepipeline_operator::controller::{self, run::RunArgs};
use imagepipeline_operator::kubectl_ipl;
use imagepipeline_operator::warehouse_cli::{self, WarehouseError, format::QueryFormat};
use imagepipeline_operator::{crd::crd_yaml, manifest};

/// Turns ImagePipeline resources into AWS image-ingestion pipelines.
///
/// AWS region, endpoint and credentials come from the SDK's standard
/// configuration (AWS_REGION, AWS_ENDPOINT_URL, the credentials chain); each
/// pipeline's resources are made in its spec.region.
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
    /// Run the controller: reconcile every ImagePipeline (in-cluster, or the
    /// cluster of KUBECONFIG) until SIGTERM.
    Run(RunArgs),
    /// Show, per component, what `apply` would create, update or delete in
    /// the live AWS account; changes nothing.
    Plan {
        /// Manifest holding one or more ImagePipelines.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// Exit 0 when there are no changes, 2 when changes are pending, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make AWS match the manifest and wait until every component is ready,
    /// showing progress per component, then print the status.
    Apply {
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// How to print the final status.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Give up after this long, e.g. `45m`.
        #[arg(long, default_value = "45m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Delete what `apply` made; with `deletionPolicy: Retain` the bucket and
    /// table stay, and the Redshift cluster's data stays as a final snapshot,
    /// all tagged as retained.
    Destroy {
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// Give up after this long, e.g. `45m`.
        #[arg(long, default_value = "45m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// The pipelines' Redshift warehouses.
    Warehouse {
        #[command(subcommand)]
        command: WarehouseCommand,
    },
    /// Run one SQL statement in the pipeline's Redshift warehouse through the
    /// Redshift Data API, as its master user, and print the result.
    Query {
        /// Manifest holding exactly one ImagePipeline.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// How to print the result.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = QueryFormat::Table)]
        output: QueryFormat,
        /// Cancel the statement if it has not finished after this long, e.g. `30s`.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// The statement, e.g. "SELECT source, COUNT(*) FROM images.images GROUP BY source"
        /// (the views are in the schema named after spec.analytics.database).
        sql: String,
    },
}

#[derive(Subcommand)]
enum WarehouseCommand {
    /// Print every statement the operator runs in each pipeline's warehouse,
    /// in order, with the pipeline's names filled in.
    Ddl {
        /// Manifest holding one or more ImagePipelines.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
    },
}

/// The same binary installed as `kubectl-ipl`: a kubectl plugin working on
/// live ImagePipelines (`kubectl ipl status photos -n media`).
#[derive(Parser)]
#[command(name = "kubectl ipl", bin_name = "kubectl ipl", version, about)]
struct Plugin {
    #[command(subcommand)]
    command: PluginCommand,
    #[command(flatten)]
    target: kubectl_ipl::Target,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// The pipeline as a tree: each component with its condition, the AWS
    /// resources and Kubernetes objects it made, the last AWS error (code and
    /// request id) and the last drift corrected.
    Status {
        /// The ImagePipeline's name.
        name: String,
    },
    /// Ask the operator to reconcile the pipeline now (sets the
    /// imagepipeline.io/reconcile-requested-at annotation).
    Resync {
        /// The ImagePipeline's name.
        name: String,
    },
    /// Show what a reconcile would change in AWS for the live pipeline, with
    /// your AWS credentials; changes nothing.
    Plan {
        /// The ImagePipeline's name.
        name: String,
        /// Exit 0 when there are no changes, 2 when changes are pending, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
}

const CHANGES_PENDING: u8 = 2;

/// Whether the binary was started as `kubectl-ipl` (by kubectl, or by hand).
fn invoked_as_plugin() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .is_some_and(|stem| stem == "kubectl-ipl")
}

fn main() -> ExitCode {
    if invoked_as_plugin() {
        init_command_logging();
        return match run_plugin(Plugin::parse()) {
            Ok(code) => code,
            Err(Failure::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(failure) => report(&failure),
        };
    }
    let command = Cli::parse().command;
    if let Command::Run(args) = command {
        // The controller logs what it does; the other commands only warn.
        ingest_core::service::init_logging(args.log_json);
        return match runtime().map(|runtime| runtime.block_on(controller::run::run(args))) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            // The controller's output is its log: the failure is one log line.
            Ok(Err(err)) => {
                tracing::error!("{}", Failure::Run(err));
                ExitCode::FAILURE
            }
            Err(err) => {
                tracing::error!("{err}");
                ExitCode::FAILURE
            }
        };
    }
    init_command_logging();
    match run(command) {
        Ok(code) => code,
        // A reader that stopped early (`| head`) is not an error of ours.
        Err(Failure::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    }
}

/// The commands other than `run` print their failure once, as `error: …`,
/// so the log only carries warnings from underneath (the SDK retrying, say).
fn init_command_logging() {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

fn run_plugin(plugin: Plugin) -> Result<ExitCode, Failure> {
    let runtime = runtime()?;
    let mut stdout = io::stdout().lock();
    let (client, namespace) = runtime.block_on(kubectl_ipl::connect(&plugin.target))?;
    match plugin.command {
        PluginCommand::Status { name } => {
            runtime.block_on(kubectl_ipl::status(&client, &namespace, &name, &mut stdout))?;
        }
        PluginCommand::Resync { name } => {
            let at = runtime.block_on(kubectl_ipl::resync(&client, &namespace, &name))?;
            writeln!(
                stdout,
                "imagepipeline.imagepipeline.io/{name} annotated: reconcile requested at {at}"
            )?;
        }
        PluginCommand::Plan {
            name,
            detailed_exitcode,
        } => {
            let changes = runtime.block_on(kubectl_ipl::plan(&client, &namespace, &name, &mut stdout))?;
            if detailed_exitcode && changes {
                return Ok(ExitCode::from(CHANGES_PENDING));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(failure: &Failure) -> ExitCode {
    eprintln!("error: {failure}");
    ExitCode::FAILURE
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Cli(#[from] CliError),
    #[error("cannot write to standard output: {0}")]
    Output(#[from] io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    #[error(transparent)]
    Run(controller::run::RunError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Plugin(#[from] kubectl_ipl::PluginError),
}

fn run(command: Command) -> Result<ExitCode, Failure> {
    let mut stdout = io::stdout().lock();
    match command {
        Command::Crd => stdout.write_all(crd_yaml().as_bytes())?,
        // Handled in main, before logging is set up.
        Command::Run(_) => {}
        Command::Plan {
            file,
            detailed_exitcode,
        } => {
            let manifest = manifest::load_manifest(&file)?;
            let mut changes = false;
            for pipeline in &manifest.pipelines {
                changes |= runtime()?.block_on(cli::plan(pipeline, &manifest.secrets, &mut stdout))?;
            }
            if detailed_exitcode && changes {
                return Ok(ExitCode::from(CHANGES_PENDING));
            }
        }
        Command::Apply {
            file,
            output,
            timeout,
        } => {
            let manifest = manifest::load_manifest(&file)?;
            for pipeline in &manifest.pipelines {
                let status = runtime()?.block_on(cli::apply(
                    pipeline,
                    &manifest.secrets,
                    timeout,
                    &mut io::stderr(),
                ))?;
                stdout.write_all(cli::render_status(pipeline, &status, output).as_bytes())?;
            }
        }
        Command::Destroy { file, timeout } => {
            let manifest = manifest::load_manifest(&file)?;
            for pipeline in &manifest.pipelines {
                runtime()?.block_on(cli::destroy(
                    pipeline,
                    &manifest.secrets,
                    timeout,
                    &mut io::stderr(),
                ))?;
                writeln!(stdout, "ImagePipeline {}: destroyed", pipeline_label(pipeline))?;
            }
        }
        Command::Warehouse {
            command: WarehouseCommand::Ddl { file },
        } => {
            let manifest = manifest::load_manifest(&file)?;
            let several = manifest.pipelines.len() > 1;
            for (index, pipeline) in manifest.pipelines.iter().enumerate() {
                let script = runtime()?.block_on(warehouse_cli::ddl(pipeline, several))?;
                // A blank line between two pipelines' scripts.
                let gap = if index > 0 { "\n" } else { "" };
                write!(stdout, "{gap}{script}")?;
            }
        }
        Command::Query {
            file,
            output,
            timeout,
            sql,
        } => {
            let manifest = manifest::load_manifest(&file)?;
            let pipeline = warehouse_cli::only_pipeline(&manifest.pipelines, &file)?;
            let outcome =
                runtime()?.block_on(warehouse_cli::query(pipeline, &manifest.secrets, &sql, timeout))?;
            stdout.write_all(warehouse_cli::format::render(&outcome, output).as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pipeline_label(pipeline: &imagepipeline_operator::api::ImagePipeline) -> String {
    use kube::ResourceExt;
    format!(
        "{}/{}",
        pipeline.namespace().unwrap_or_default(),
        pipeline.name_any()
    )
}
