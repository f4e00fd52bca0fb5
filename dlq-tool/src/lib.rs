//! `dlq-tool`: the on-call CLI for Xentri dead-letter queues.
//!
//! `main.rs` parses the command line and loads settings; [`run`] does the
//! rest. One module per command in [`cmd`]; what they share: [`context`] (the
//! connection and what counts as a DLQ), [`filter`], [`batch`] (pipelined
//! bulk work), [`entry`], [`table`], [`output`], [`time`] and [`error`] (exit codes).
//!
//! Every command checks all of its input before it changes anything, so a
//! refusal (exit 2) leaves Redis as it was. Entries move only through the
//! server-side scripts of `xentri_core::scripts`, one atomic step per entry.

pub mod batch;
pub mod cli;
pub mod cmd;
pub mod context;
pub mod entry;
pub mod error;
pub mod filter;
pub mod output;
pub mod table;
pub mod time;

use xentri_core::Settings;

use crate::cli::{Cli, Command};
use crate::context::Ctx;
pub use crate::error::{Completion, Error};

/// Runs the command `cli` names with `settings`.
pub async fn run(cli: Cli, settings: Settings) -> Result<Completion, Error> {
    // Input that can be refused without Redis is refused before connecting.
    match &cli.command {
        Command::Replay(args) => cmd::replay::check(args)?,
        Command::Purge(args) => cmd::purge::check(args)?,
        Command::Show(args) => cmd::show::check(args)?,
        _ => {}
    }
    let mut ctx = Ctx::connect(settings, cli.stream_is_dlq).await?;
    match &cli.command {
        Command::List(args) => cmd::list::run(&mut ctx, args).await,
        Command::Show(args) => cmd::show::run(&mut ctx, args).await,
        Command::Replay(args) => cmd::replay::run(&mut ctx, args).await,
        Command::Archive(args) => cmd::archive::run(&mut ctx, args).await,
        Command::Archives(args) => cmd::archives::run(&mut ctx, args).await,
        Command::Purge(args) => cmd::purge::run(&mut ctx, args).await,
        Command::Stats(args) => cmd::stats::run(&mut ctx, args).await,
        Command::Tail(args) => cmd::tail::run(&mut ctx, args).await,
    }
}
