//! Everything about one DS byte below its bit layout, as blocks for
//! `fit`: meaning (PHB, pool, legacy reading, Wi-Fi), warnings and notes,
//! and the expressions each tool takes. Shared by the DSCP screen and Learn.

use super::field;
use super::fit::Block;
use super::text::{clip_line, wrap};
use crate::explain::Explanation;
use crate::tos::{DsByte, Dscp, Legacy, Pool};
use crate::tui::theme::Theme;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// The pool-2 advice (design.md §2).
const PRIVATE: &str = "for a private signal use pool 2: 3, 7, 11, … 63";

/// Label column of the info panel: two spaces and ten for the label.
pub const LABEL: usize = 12;

/// Columns for a value right of the label column.
fn value_width(width: u16) -> usize {
    (width as usize).saturating_sub(LABEL).max(12)
}

/// The label column of a row's line `i`: the label on the first, blank under it.
fn lead(theme: &Theme, label: &str, i: usize) -> Span<'static> {
    let text = if i == 0 {
        format!("  {label:<w$}", w = LABEL - 2)
    } else {
        " ".repeat(LABEL)
    };
    Span::styled(text, theme.dim())
}

/// `  Label     value`, prose wrapped under the value column.
fn row(theme: &Theme, label: &str, value: &str, width: u16, style: Style) -> Vec<Line<'static>> {
    wrap(value, value_width(width))
        .into_iter()
        .enumerate()
        .map(|(i, text)| Line::from(vec![lead(theme, label, i), Span::styled(text, style)]))
        .collect()
}

/// `  Label     expr · expr`: expressions packed between ` · `, never
/// broken inside one; `one_per_line` puts each on its own line.
fn expr_row(
    theme: &Theme,
    label: &str,
    items: &[String],
    width: u16,
    one_per_line: bool,
) -> Vec<Line<'static>> {
    let w = value_width(width);
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut used = 0;
    for item in items {
        let n = item.chars().count();
        match lines.last_mut() {
            Some(cur) if !one_per_line && used + 3 + n <= w => {
                cur.push(item.clone());
                used += 3 + n;
            }
            _ => {
                lines.push(vec![item.clone()]);
                used = n;
            }
        }
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, items)| {
            let mut spans = vec![lead(theme, label, i)];
            for (j, item) in items.into_iter().enumerate() {
                if j > 0 {
                    spans.push(Span::styled(" · ", theme.dim()));
                }
                spans.push(Span::styled(item, theme.command()));
            }
            Line::from(spans)
        })
        .collect()
}

/// Two columns of lines side by side, the left padded to `left_width`.
fn beside(
    left: Vec<Line<'static>>,
    right: Vec<Line<'static>>,
    left_width: usize,
) -> Vec<Line<'static>> {
    let n = left.len().max(right.len());
    let mut left = left.into_iter();
    let mut right = right.into_iter();
    (0..n)
        .map(|_| {
            let l = clip_line(left.next().unwrap_or_default(), left_width);
            let pad = left_width.saturating_sub(l.width());
            let mut spans = l.spans;
            spans.push(Span::raw(" ".repeat(pad)));
            if let Some(r) = right.next() {
                spans.extend(r.spans);
            }
            Line::from(spans)
        })
        .collect()
}

fn heading(theme: &Theme, text: &str) -> Line<'static> {
    Line::styled(format!(" {text}"), theme.title())
}

/// Wide and tall enough for the side-by-side layout with every section.
pub fn roomy(area: Rect) -> bool {
    area.width >= 100 && area.height >= 30
}

// ---------------------------------------------------------------- the info panel

/// `for a private signal use pool 2: 3, 7, 11, … 63 (nearest: 43, 47)`.
pub fn pool_advice(v: u8) -> String {
    let near: Vec<String> = nearest_pool_two(v).iter().map(u8::to_string).collect();
    format!("{PRIVATE} (nearest: {})", near.join(", "))
}

/// Pool-2 values next to `v`, below and above.
fn nearest_pool_two(v: u8) -> Vec<u8> {
    let two = |x: &u8| Pool::of(Dscp::new(*x).expect("six-bit")) == Pool::Two;
    let below = (0..v).rev().find(two);
    let above = (v + 1..=Dscp::MAX).find(two);
    below.into_iter().chain(above).collect()
}

/// Everything about one byte below the bit layout, as blocks: meaning,
/// warnings and notes, expressions. `learn` adds the ECN reading and notes
/// and drops the wizard's advice.
pub fn panel(e: &Explanation, byte: DsByte, area: Rect, learn: bool, theme: &Theme) -> Vec<Block> {
    let width = area.width;
    let roomy = roomy(area);
    let plain = Style::new();
    let legacy = Legacy::of(byte);

    // Meaning rows: (keep, lines), wrapped to their column.
    let mut meaning: Vec<(u8, Vec<Line<'static>>)> = Vec::new();
    let col = if roomy { width / 2 } else { width };
    let mcol = if roomy { col - 2 } else { col };
    if learn {
        let ecn = format!("{} {}: {}", e.ecn, e.ecn_name, e.ecn_description);
        meaning.push((87, row(theme, "ECN", &ecn, mcol, plain)));
    }
    let phb = match (&e.name, &e.long_name, e.rfc) {
        (Some(n), Some(long), Some(rfc)) => format!("{n}: {long} ({rfc})"),
        _ => "none: an unassigned code point".to_string(),
    };
    match e.service_class {
        // Short enough: the RFC 4594 class on the same line.
        Some(sc) if !roomy && phb.chars().count() + sc.chars().count() + 3 <= value_width(mcol) => {
            meaning.push((86, row(theme, "PHB", &format!("{phb} · {sc}"), mcol, plain)));
        }
        Some(sc) => {
            meaning.push((86, row(theme, "PHB", &phb, mcol, plain)));
            meaning.push((58, row(theme, "RFC 4594", sc, mcol, plain)));
        }
        None => meaning.push((86, row(theme, "PHB", &phb, mcol, plain))),
    }
    let pool = format!("{} ({}): {}", e.pool, e.pool_pattern, e.pool_description);
    meaning.push((84, row(theme, "Pool", &pool, mcol, plain)));
    // The wizard gives this advice under its field.
    if e.pool != 2 && learn {
        let advice = format!("→ {}", pool_advice(e.dscp));
        meaning.push((40, row(theme, "", &advice, mcol, plain)));
    }
    let tos = match (legacy.tos_letters.is_empty(), legacy.rfc1349_valid) {
        (true, _) => "no TOS bits".to_string(),
        (false, true) => format!(
            "TOS {} ({:#04x}): {}",
            legacy.tos_letters.join(" "),
            legacy.tos_bits,
            legacy.tos_meanings.join(", ")
        ),
        (false, false) => format!(
            "TOS {} ({:#04x}): not valid in RFC 1349",
            legacy.tos_letters.join(" "),
            legacy.tos_bits
        ),
    };
    let precedence = format!("precedence {} {}", e.precedence, e.precedence_name);
    if roomy {
        meaning.push((
            50,
            row(
                theme,
                "Legacy",
                &format!("{precedence} (RFC 791)"),
                mcol,
                plain,
            ),
        ));
        meaning.push((
            49,
            row(theme, "TOS bits", &legacy.tos_summary(), mcol, plain),
        ));
    } else {
        meaning.push((
            50,
            row(
                theme,
                "Legacy",
                &format!("{precedence} · {tos}"),
                mcol,
                plain,
            ),
        ));
    }
    let wifi = format!(
        "user priority {} → AC_{} ({})",
        e.wifi_up, e.wifi_ac, e.wifi_ac_name
    );
    // A Wi-Fi warning already says it; keep the line only when there is room.
    let wifi_keep = if e.wifi_ac == "BE" { 45 } else { 6 };
    meaning.push((wifi_keep, row(theme, "Wi-Fi", &wifi, mcol, plain)));

    let wcol = if roomy { width - col } else { width };
    let warnings: Vec<Vec<Line<'static>>> = e
        .warnings
        .iter()
        .map(|w| field::message_lines(theme.warning(), "!", w, wcol))
        .collect();
    // The ECN note first: in Learn it explains the bits just flipped.
    let mut notes: Vec<Vec<Line<'static>>> = Vec::new();
    if learn || roomy {
        notes = e
            .notes
            .iter()
            .rev()
            .map(|n| field::message_lines(theme.dim(), "-", n, wcol))
            .collect();
    }

    let mut blocks = Vec::new();
    if roomy {
        let mut left = vec![heading(theme, "Meaning")];
        left.extend(meaning.into_iter().flat_map(|(_, l)| l));
        let mut right = Vec::new();
        if !warnings.is_empty() {
            right.push(heading(theme, "Warnings"));
            right.extend(warnings.into_iter().flatten());
        }
        if !notes.is_empty() {
            right.push(heading(theme, "Notes"));
            right.extend(notes.into_iter().flatten());
        }
        blocks.push(Block::shrinking(85, beside(left, right, col as usize)));
    } else {
        for (keep, lines) in meaning {
            blocks.push(Block::new(keep, lines));
        }
        blocks.push(Block::items(70, warnings));
        blocks.push(Block::items(15, notes));
    }

    let x = &e.expressions;
    if roomy {
        blocks.push(Block::blank(6));
        blocks.push(Block::new(
            24,
            vec![heading(
                theme,
                "Expressions (the DSCP is 6 bits; -j TOS and tcpdump's tos take the whole byte)",
            )],
        ));
    }
    let mut ipt = vec![x.iptables_set.clone(), x.iptables_match.clone()];
    if roomy {
        ipt.extend(x.iptables_set_class.clone());
        ipt.push(format!("{} (keeps ECN)", x.iptables_set_tos));
    }
    blocks.push(Block::new(
        80,
        expr_row(theme, "iptables", &ipt, width, false),
    ));
    let mut nft = vec![
        x.nft_set.clone(),
        x.nft_match.clone(),
        x.nft_set_v6.clone(),
        x.nft_match_v6.clone(),
    ];
    if roomy && let Some(n) = &x.nft_name {
        nft.push(format!("ip dscp {n}"));
    }
    blocks.push(Block::new(79, expr_row(theme, "nft", &nft, width, false)));
    let both_fits = (width as usize).saturating_sub(LABEL) >= x.tcpdump.chars().count();
    let tcpdump = if both_fits {
        vec![x.tcpdump.clone()]
    } else {
        vec![x.tcpdump_v4.clone(), x.tcpdump_v6.clone()]
    };
    blocks.push(Block::new(
        78,
        expr_row(theme, "tcpdump", &tcpdump, width, true),
    ));
    if roomy {
        blocks.push(Block::new(
            26,
            expr_row(
                theme,
                "Wireshark",
                std::slice::from_ref(&x.wireshark),
                width,
                false,
            ),
        ));
        let r = &x.ip_rule;
        let v4 = match &r.v4_selector {
            Some(sel) => {
                let also: Vec<String> = r.v4_also_matches.iter().map(u8::to_string).collect();
                format!("IPv4 {sel} (also DSCP {})", also.join(", "))
            }
            None => "IPv4 tos refused (bits outside 0x1c)".to_string(),
        };
        let items = [
            v4,
            format!("IPv6 {} (exact)", r.v6_selector),
            format!("{} (exact; {})", r.dscp_selector, r.dscp_selector_requires),
        ];
        blocks.push(Block::new(
            22,
            expr_row(theme, "ip rule", &items, width, false),
        ));
    }
    blocks
}
