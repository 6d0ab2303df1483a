# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dscproute_global_optspecs
    string join \n state-dir= h/help V/version
end

function __fish_dscproute_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dscproute_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dscproute_using_subcommand
    set -l cmd (__fish_dscproute_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dscproute -n "__fish_dscproute_needs_command" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dscproute -n "__fish_dscproute_needs_command" -s V -l version -d 'Print version'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "explain" -d 'Explain a DSCP value or ToS byte: bits, names, legacy reading, Wi-Fi priority, and the exact iptables, nft, tcpdump and Wireshark expressions'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "plan" -d 'Show every command a profile needs on this host, with its reason and its undo, without changing anything (dry run)'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "apply" -d 'Apply a profile: run the plan\'s steps with a journal; on the first failure undo the completed ones. Needs root'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "agent" -d 'Keep a profile in place: apply it if needed, then repair what VPN reconnects and firewall reloads undo, until SIGTERM or SIGINT (which leave the setup in place; `rollback` removes it). While the VPN is unusable (at boot), all that does not need it is in place, the kill switch too. With `[[class]]`, routes each class through its first healthy uplink (up, next hop on-link, passing its `check`) and moves it when that changes. Needs root'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "rollback" -d 'Undo the last applied, unconfirmed or interrupted transaction exactly'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "confirm" -d 'Keep a change applied with --confirm and disarm its timer'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "status" -d 'What dscproute has in place here: chains with counters, rules, routes, changed sysctls, pending confirmation, interrupted transactions'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "tui" -d 'The interactive wizard (also what `dscproute` alone opens): role, group, DSCP with a live bit layout, mark and table, gateway, preview, apply with a confirm countdown, status and rollback'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "learn" -d 'Explore the DS byte bit by bit (the TUI\'s learn mode)'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "doctor" -d 'Check that a setup works and say why not: tools, kernel support, forwarding, rp_filter, conflicts, and after apply that rules, routes, counters, the kill switch and the DSCP on the wire are right'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "exec" -d 'Run one command so that its traffic carries the signal: in the marked group, user, slice or cgroup. Refuses while the client side is not applied. Needs root (via sudo the command runs as you)'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "watch" -d 'Live per-DSCP view of the traffic on an interface (needs root)'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "persist" -d 'Keep a kept profile up, from boot on: install it and enable the systemd unit dscproute@NAME, which runs `agent` on it. Only after an apply that was confirmed (or made without --confirm)'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "unpersist" -d 'Stop and disable the unit and remove the persisted profile (the setup stays; `rollback` removes it)'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "client-recipe" -d 'Print a self-contained recipe of a profile\'s client role for a host that cannot run dscproute: a sh script (linux-sh), an nft -f file (nftables), PowerShell (windows, --app) or an fw4 include (openwrt, --src), each with its undo and how to check it on the gateway'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "man" -d 'Print the man page (roff) generated from this command line'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "facts" -d 'Print what dscproute reads about this host (groups, links, routes, rules, table names, sysctls, tools). Read-only'
complete -c dscproute -n "__fish_dscproute_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dscproute -n "__fish_dscproute_using_subcommand explain" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand explain" -l tos -d 'Read VALUE as a whole ToS / traffic-class byte (DSCP << 2 | ECN)'
complete -c dscproute -n "__fish_dscproute_using_subcommand explain" -l json -d 'Print one JSON object instead of text'
complete -c dscproute -n "__fish_dscproute_using_subcommand explain" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand plan" -s p -l profile -d 'The profile (TOML) to plan' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand plan" -l backend -d 'Netfilter backend, overriding the profile\'s `backend` key' -r -f -a "auto\t''
nft\t''
iptables\t''"
complete -c dscproute -n "__fish_dscproute_using_subcommand plan" -l facts -d 'Plan against host facts recorded with `dscproute facts --json` instead of probing this host' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand plan" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand plan" -l json -d 'Print the plan as JSON'
complete -c dscproute -n "__fish_dscproute_using_subcommand plan" -l script -d 'Print a standalone POSIX sh script (apply and undo) for a host without dscproute'
complete -c dscproute -n "__fish_dscproute_using_subcommand plan" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand apply" -s p -l profile -d 'The profile (TOML) to apply' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand apply" -l backend -d 'Netfilter backend, overriding the profile\'s `backend` key' -r -f -a "auto\t''
nft\t''
iptables\t''"
complete -c dscproute -n "__fish_dscproute_using_subcommand apply" -l confirm -d 'Commit-confirmed: roll back after SECS seconds unless `dscproute confirm` runs first (survives SSH hang-up and the apply dying)' -r
complete -c dscproute -n "__fish_dscproute_using_subcommand apply" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand apply" -s y -l yes -d 'Do not ask; required when stdin is not a terminal'
complete -c dscproute -n "__fish_dscproute_using_subcommand apply" -l json -d 'Print one JSON result object instead of progress text'
complete -c dscproute -n "__fish_dscproute_using_subcommand apply" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand agent" -s p -l profile -d 'The profile (TOML) to keep in place' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand agent" -l backend -d 'Netfilter backend, overriding the profile\'s `backend` key' -r -f -a "auto\t''
nft\t''
iptables\t''"
complete -c dscproute -n "__fish_dscproute_using_subcommand agent" -l drift-check -d 'Seconds between checks for what the kernel announces no event for (our iptables chains and jumps)' -r
complete -c dscproute -n "__fish_dscproute_using_subcommand agent" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand agent" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand rollback" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand rollback" -s y -l yes -d 'Do not ask; required when stdin is not a terminal'
complete -c dscproute -n "__fish_dscproute_using_subcommand rollback" -l all -d 'Also remove everything dscproute owns, found by its tags, even without a journal'
complete -c dscproute -n "__fish_dscproute_using_subcommand rollback" -l last -d 'Undo only the last transaction (an apply, a repair): what earlier ones left in place stays. Without it, the whole setup is undone'
complete -c dscproute -n "__fish_dscproute_using_subcommand rollback" -l json -d 'Print one JSON result object instead of text'
complete -c dscproute -n "__fish_dscproute_using_subcommand rollback" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand confirm" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand confirm" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand status" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand status" -l json -d 'Print the status as one JSON object'
complete -c dscproute -n "__fish_dscproute_using_subcommand status" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand tui" -s p -l profile -d 'Preload the answers from a profile' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand tui" -l facts -d 'Use facts recorded with `dscproute facts --json` (a dry run)' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand tui" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand tui" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand learn" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand learn" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand doctor" -s p -l profile -d 'The profile (TOML) whose setup to check' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand doctor" -l backend -d 'Netfilter backend, overriding the profile\'s `backend` key' -r -f -a "auto\t''
nft\t''
iptables\t''"
complete -c dscproute -n "__fish_dscproute_using_subcommand doctor" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand doctor" -l json -d 'Print the report as one JSON object'
complete -c dscproute -n "__fish_dscproute_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand exec" -s p -l profile -d 'The profile whose marker the command gets [default: the persisted profile, when exactly one is]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand exec" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand exec" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand watch" -s i -l interface -d 'The interface to watch' -r
complete -c dscproute -n "__fish_dscproute_using_subcommand watch" -l dscp -d 'Show the top source/destination pairs for this DSCP' -r
complete -c dscproute -n "__fish_dscproute_using_subcommand watch" -l seconds -d 'Stop after this many seconds (with --json: print one summary)' -r
complete -c dscproute -n "__fish_dscproute_using_subcommand watch" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand watch" -l json -d 'Print JSON: a summary line every second, or with --seconds one summary at the end'
complete -c dscproute -n "__fish_dscproute_using_subcommand watch" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand persist" -s p -l profile -d 'The profile that was applied and kept' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand persist" -l name -d 'Name of the persisted profile and unit instance [default: the file stem]' -r
complete -c dscproute -n "__fish_dscproute_using_subcommand persist" -l root -d 'Filesystem root to install under (for tests and image builds)' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand persist" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand persist" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand unpersist" -l root -d 'Filesystem root the profile was installed under' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand unpersist" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand unpersist" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand client-recipe" -s p -l profile -d 'The profile whose [marker] the client follows' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand client-recipe" -l for -d 'The kind of client' -r -f -a "linux-sh\t'POSIX sh script with apply and undo (iptables)'
nftables\t'An `nft -f` file with a table of its own'
windows\t'PowerShell: a QoS policy for one program (--app)'
openwrt\t'fw4 include for an OpenWrt router (--src)'"
complete -c dscproute -n "__fish_dscproute_using_subcommand client-recipe" -l app -d 'windows: the program to mark (its .exe name or full path)' -r
complete -c dscproute -n "__fish_dscproute_using_subcommand client-recipe" -l src -d 'openwrt: a LAN prefix whose forwarded traffic is marked (repeat it for several, e.g. one IPv4 and one IPv6)' -r
complete -c dscproute -n "__fish_dscproute_using_subcommand client-recipe" -l facts -d 'linux-sh, nftables: the client host\'s facts, recorded there with `dscproute facts --json` (to settle a conntrack mark free there)' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand client-recipe" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand client-recipe" -l json -d 'Print one JSON object: `target`, `dscp`, `text` (the recipe), `warnings`'
complete -c dscproute -n "__fish_dscproute_using_subcommand client-recipe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dscproute -n "__fish_dscproute_using_subcommand man" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand man" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand completions" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand completions" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand facts" -l state-dir -d 'Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]' -r -F
complete -c dscproute -n "__fish_dscproute_using_subcommand facts" -l json -d 'Print JSON (the format `plan --facts` reads)'
complete -c dscproute -n "__fish_dscproute_using_subcommand facts" -s h -l help -d 'Print help'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "explain" -d 'Explain a DSCP value or ToS byte: bits, names, legacy reading, Wi-Fi priority, and the exact iptables, nft, tcpdump and Wireshark expressions'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "plan" -d 'Show every command a profile needs on this host, with its reason and its undo, without changing anything (dry run)'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "apply" -d 'Apply a profile: run the plan\'s steps with a journal; on the first failure undo the completed ones. Needs root'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "agent" -d 'Keep a profile in place: apply it if needed, then repair what VPN reconnects and firewall reloads undo, until SIGTERM or SIGINT (which leave the setup in place; `rollback` removes it). While the VPN is unusable (at boot), all that does not need it is in place, the kill switch too. With `[[class]]`, routes each class through its first healthy uplink (up, next hop on-link, passing its `check`) and moves it when that changes. Needs root'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "rollback" -d 'Undo the last applied, unconfirmed or interrupted transaction exactly'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "confirm" -d 'Keep a change applied with --confirm and disarm its timer'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "status" -d 'What dscproute has in place here: chains with counters, rules, routes, changed sysctls, pending confirmation, interrupted transactions'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "tui" -d 'The interactive wizard (also what `dscproute` alone opens): role, group, DSCP with a live bit layout, mark and table, gateway, preview, apply with a confirm countdown, status and rollback'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "learn" -d 'Explore the DS byte bit by bit (the TUI\'s learn mode)'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "doctor" -d 'Check that a setup works and say why not: tools, kernel support, forwarding, rp_filter, conflicts, and after apply that rules, routes, counters, the kill switch and the DSCP on the wire are right'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "exec" -d 'Run one command so that its traffic carries the signal: in the marked group, user, slice or cgroup. Refuses while the client side is not applied. Needs root (via sudo the command runs as you)'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "watch" -d 'Live per-DSCP view of the traffic on an interface (needs root)'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "persist" -d 'Keep a kept profile up, from boot on: install it and enable the systemd unit dscproute@NAME, which runs `agent` on it. Only after an apply that was confirmed (or made without --confirm)'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "unpersist" -d 'Stop and disable the unit and remove the persisted profile (the setup stays; `rollback` removes it)'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "client-recipe" -d 'Print a self-contained recipe of a profile\'s client role for a host that cannot run dscproute: a sh script (linux-sh), an nft -f file (nftables), PowerShell (windows, --app) or an fw4 include (openwrt, --src), each with its undo and how to check it on the gateway'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "man" -d 'Print the man page (roff) generated from this command line'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "completions" -d 'Print shell completions'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "facts" -d 'Print what dscproute reads about this host (groups, links, routes, rules, table names, sysctls, tools). Read-only'
complete -c dscproute -n "__fish_dscproute_using_subcommand help; and not __fish_seen_subcommand_from explain plan apply agent rollback confirm status tui learn doctor exec watch persist unpersist client-recipe man completions __confirm-timer facts help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
