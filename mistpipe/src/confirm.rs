//! `mistpipe confirm-retire`: the admin's confirmation of a commit that retires more of the
//! Ready versions than one commit may retire unconfirmed.
//!
//! The confirmation is an empty commit on top of the branch whose message carries
//! [`CONFIRM_RETIRE_TRAILER`]: it changes no spec, it is in the history with who confirmed
//! and when, and it confirms only while it is the commit in force.

use std::path::PathBuf;

use anyhow::Context;
use mist_specs::CONFIRM_RETIRE_TRAILER;

use crate::failure::Failure;

#[derive(clap::Args)]
pub(crate) struct ConfirmArgs {
    /// The spec repository (a git work tree, or any folder in it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    repo: PathBuf,
}

pub(crate) fn run(args: &ConfirmArgs) -> anyhow::Result<()> {
    let repo = git2::Repository::discover(&args.repo).map_err(|_| {
        Failure::invalid(format!(
            "{} is not in a git repository; run this in the spec repository",
            args.repo.display()
        ))
    })?;
    let head = repo
        .head()
        .and_then(|head| head.peel_to_commit())
        .map_err(|_| Failure::invalid("the spec repository has no commit to confirm"))?;
    let signature = repo
        .signature()
        .or_else(|_| git2::Signature::now("mistpipe", "mistpipe@localhost"))
        .context("cannot make a commit signature")?;
    let message = format!(
        "Confirm retiring the versions these specs no longer list\n\n{CONFIRM_RETIRE_TRAILER}\n"
    );
    let tree = head.tree().context("cannot read the commit's tree")?;
    let id = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            &message,
            &tree,
            &[&head],
        )
        .context("cannot commit the confirmation")?;
    println!(
        "committed {id}: the server retires what the specs no longer list once it reads this \
         commit (push it if the server reads a remote)"
    );
    Ok(())
}
