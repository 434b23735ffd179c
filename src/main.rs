//! The `giftdrop` binary: parse the command line, hand over to the library.

/// mimalloc: per-thread free lists instead of glibc's arenas, which cost
/// the server a tenth of its CPU time under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli: giftdrop::cli::Cli = giftdrop::config::parse(std::env::args_os(), std::env::vars_os())
        .unwrap_or_else(|error| error.exit());
    giftdrop::run(cli)
}
