//! The input and output steps of a tuning Job: `download` fetches the training data before
//! the trainer starts, `push` publishes the adapter it wrote as an OCI image, and `pull`
//! fetches such an image back into a directory.
#![deny(missing_docs)]

pub mod cli;
pub mod digest;
pub mod docker_config;
pub mod download;
pub mod error;
pub mod layer;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod retry;

pub use error::Error;

/// Runs one subcommand; `push` prints the pushed manifest digest on stdout.
pub async fn run(command: cli::Command) -> Result<(), Error> {
    match command {
        cli::Command::Download(args) => {
            download::run(&download::Options::try_from(args)?).await?;
        }
        cli::Command::Push(args) => {
            let pushed = push::run(&push::Options::try_from(args)?).await?;
            println!("{}", pushed.digest);
        }
        cli::Command::Pull(args) => {
            pull::run(&pull::Options::try_from(args)?).await?;
        }
    }
    Ok(())
}
