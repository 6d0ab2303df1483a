use clap::Parser;

fn main() {
    let cli = dscproute::cli::Cli::parse();
    std::process::exit(dscproute::cli::run(cli));
}
