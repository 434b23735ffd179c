//! The `giftdrop` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = giftdrop::cli::Cli::parse();
    giftdrop::run(cli)
}
