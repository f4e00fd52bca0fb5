//! One module per command, each with `run(ctx, args)`; those with input to
//! refuse before connecting also have `check(args)`.

pub mod archive;
pub mod archives;
pub mod list;
pub mod purge;
pub mod replay;
pub mod show;
pub mod stats;
pub mod tail;
