//! Every `--json` flag says what it prints (a help line, so the man pages
//! and completions say it too). The objects themselves are pinned by the
//! snapshots in src/ops/snapshots/ and run for real by tests/ansible.rs.

use clap::CommandFactory;

#[test]
fn every_json_flag_has_a_help_line() {
    let cli = dscproute::cli::Cli::command();
    let mut with_json = Vec::new();
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments() {
            if arg.get_long() != Some("json") {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(
                !help.trim().is_empty(),
                "`{} --json` has no help line",
                sub.get_name()
            );
            with_json.push(sub.get_name().to_string());
        }
    }
    assert_eq!(
        with_json,
        [
            "explain",
            "plan",
            "apply",
            "rollback",
            "status",
            "doctor",
            "watch",
            "client-recipe",
            "facts"
        ]
    );
}
