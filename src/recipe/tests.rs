use super::*;

fn profile(text: &str) -> Profile {
    Profile::parse(text, "t.toml").unwrap()
}

const CLIENT: &str = "[marker]\ngroup = \"torrent\"\ndscp = 7\n";

fn recipe(p: &Profile, target: Target, req: &Request) -> Result<Recipe, RecipeError> {
    client_recipe(p, "t.toml", &HostFacts::default(), target, req)
}

#[test]
fn the_group_is_matched_by_number_or_by_name() {
    assert_eq!(Who::Group("4242".into()).nft_match(), "meta skgid 4242");
    assert_eq!(
        Who::Group("torrent".into()).nft_match(),
        "meta skgid \"torrent\""
    );
}

#[test]
fn linux_sh_and_nftables_share_the_conntrack_mark() {
    let p = profile(CLIENT);
    let sh = recipe(&p, Target::LinuxSh, &Request::default()).unwrap();
    let nft = recipe(&p, Target::Nftables, &Request::default()).unwrap();
    assert!(
        sh.text
            .contains("--gid-owner torrent -j CONNMARK --set-xmark 0x1/0xff")
    );
    assert!(
        nft.text
            .contains("meta skgid \"torrent\" ct mark set ct mark and 0xffffff00 or 0x1")
    );
    assert!(nft.text.contains("ct mark and 0xff == 0x1 ip6 dscp set 7"));
}

#[test]
fn a_gateway_profile_gives_only_the_client_role() {
    let p = profile("[marker]\ngroup = 4242\ndscp = 7\n[gateway]\ndscp = 7\ninterface = \"wg0\"\n");
    let sh = recipe(&p, Target::LinuxSh, &Request::default()).unwrap();
    assert!(sh.text.contains("DSCPROUTE-MARK") && sh.text.contains("\nN=8\n"));
    for gateway_only in [
        "DSCPROUTE-ROUTE",
        "ip rule",
        "ip route",
        "sysctl -q -w",
        "-j MARK",
    ] {
        assert!(
            !sh.text.contains(gateway_only),
            "{gateway_only}:\n{}",
            sh.text
        );
    }
}

#[test]
fn refusals_name_what_is_missing() {
    let gw = profile("[gateway]\ndscp = 7\ninterface = \"wg0\"\n");
    assert_eq!(
        recipe(&gw, Target::Nftables, &Request::default()),
        Err(RecipeError::NoMarker("t.toml".into()))
    );
    let p = profile(CLIENT);
    assert_eq!(
        recipe(&p, Target::Windows, &Request::default()),
        Err(RecipeError::NeedsApp)
    );
    assert_eq!(
        recipe(&p, Target::Openwrt, &Request::default()),
        Err(RecipeError::NeedsSrc)
    );
    let app = Request {
        app: Some("a.exe".into()),
        ..Request::default()
    };
    assert_eq!(
        recipe(&p, Target::Nftables, &app),
        Err(RecipeError::Unused("app", "windows"))
    );
    let src = Request {
        src: vec!["10.0.0.0/8".into()],
        ..Request::default()
    };
    assert_eq!(
        recipe(&p, Target::Windows, &src),
        Err(RecipeError::Unused("src", "openwrt"))
    );
    for e in [
        RecipeError::NoMarker("x".into()),
        RecipeError::NeedsApp,
        RecipeError::NeedsSrc,
    ] {
        assert!(e.is_usage() && !e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn every_recipe_says_how_to_undo_and_check_on_the_gateway() {
    let p = profile(CLIENT);
    let req = |t| match t {
        Target::Windows => Request {
            app: Some("qbittorrent.exe".into()),
            ..Request::default()
        },
        Target::Openwrt => Request {
            src: vec!["192.168.1.0/24".into()],
            ..Request::default()
        },
        _ => Request::default(),
    };
    for t in Target::ALL {
        let r = recipe(&p, t, &req(t)).unwrap();
        assert!(
            r.text.contains("dscproute watch --interface LAN --dscp 7"),
            "{}",
            t.name()
        );
        assert!(r.text.to_lowercase().contains("undo"), "{}", t.name());
        assert!(r.text.contains("DSCP 7"), "{}", t.name());
    }
}

#[test]
fn comment_blocks_wrap_words_and_keep_commands_whole() {
    let text = comment_block(&[
        format!("{} end", "word ".repeat(30)),
        "a:\n  cmd --x y".into(),
    ]);
    assert!(
        text.lines().all(|l| l.starts_with('#') && l.len() <= 80),
        "{text}"
    );
    assert!(text.contains("#  cmd --x y\n"), "{text}");
}

#[test]
fn a_user_marker_is_matched_by_uid_and_a_unit_or_cgroup_needs_its_host() {
    let p = profile("[marker]\nuser = 1001\ndscp = 7\n");
    let sh = recipe(&p, Target::LinuxSh, &Request::default()).unwrap();
    assert!(sh.text.contains("--uid-owner 1001"), "{}", sh.text);
    let nft = recipe(&p, Target::Nftables, &Request::default()).unwrap();
    assert!(
        nft.text.contains("meta skuid 1001 ct mark set"),
        "{}",
        nft.text
    );
    for who in ["unit = \"vpn.slice\"", "cgroup = \"dl\""] {
        let p = profile(&format!("[marker]\n{who}\ndscp = 7\n"));
        for target in [Target::LinuxSh, Target::Nftables] {
            let e = recipe(&p, target, &Request::default()).unwrap_err();
            assert!(e.is_usage());
            let m = e.to_string();
            assert!(
                m.contains("known only on its own host") && !m.contains('\n'),
                "{m}"
            );
        }
    }
}
