//! Fitting blocks of lines into a screen that may be short: each block
//! has a priority, the most important are kept first, a shrinking block is
//! cut between its items and says how much is hidden. The DSCP screen and
//! Learn lay out their teaching panel with it.

use super::text::clip_line;
use crate::tui::theme::Theme;
use ratatui::text::Line;

/// A run of lines the layout keeps or drops as a whole. Higher `keep` is
/// kept first when the screen is short; a `shrink` block may be cut (after
/// a whole item when it has items), and then says how much is hidden.
pub struct Block {
    pub lines: Vec<Line<'static>>,
    pub keep: u8,
    pub shrink: bool,
    /// Where each item (a warning, a note) starts, for cutting between them.
    pub items: Vec<usize>,
}

impl Block {
    pub fn new(keep: u8, lines: Vec<Line<'static>>) -> Block {
        Block {
            lines,
            keep,
            shrink: false,
            items: Vec::new(),
        }
    }

    pub fn shrinking(keep: u8, lines: Vec<Line<'static>>) -> Block {
        Block {
            shrink: true,
            ..Block::new(keep, lines)
        }
    }

    /// A list of wrapped items, cut between items when short of room.
    pub fn items(keep: u8, items: Vec<Vec<Line<'static>>>) -> Block {
        let mut b = Block::shrinking(keep, Vec::new());
        for item in items {
            b.items.push(b.lines.len());
            b.lines.extend(item);
        }
        b
    }

    pub fn blank(keep: u8) -> Block {
        Block::new(keep, vec![Line::default()])
    }

    /// Lines to show in `budget` rows: all, some and a "more" line, or none.
    fn take(&self, budget: usize) -> usize {
        let n = self.lines.len();
        if n <= budget {
            return n;
        }
        if !self.shrink || budget < 2 {
            return 0;
        }
        // Whole items and the "more" line, else as many lines as fit.
        match self.items.iter().rev().find(|s| **s > 0 && **s < budget) {
            Some(s) => s + 1,
            None => budget,
        }
    }
}

/// Fit blocks into `height` rows, most important first, shown in their
/// order. Returns the lines and the first row of each block kept.
pub fn fit(
    blocks: Vec<Block>,
    height: usize,
    width: u16,
    theme: &Theme,
) -> (Vec<Line<'static>>, Vec<Option<usize>>) {
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(blocks[*i].keep));
    let mut budget = height;
    let mut take = vec![0usize; blocks.len()];
    for i in order {
        take[i] = blocks[i].take(budget);
        budget -= take[i];
    }
    let mut out = Vec::new();
    let mut starts = Vec::with_capacity(blocks.len());
    for (i, b) in blocks.into_iter().enumerate() {
        let n = take[i];
        if n == 0 {
            starts.push(None);
            continue;
        }
        starts.push(Some(out.len()));
        let hidden = b.lines.len() - n;
        let mut lines = b.lines;
        lines.truncate(n);
        if hidden > 0 {
            let last = lines.len() - 1;
            lines[last] = Line::styled(
                format!(
                    "    … {} more lines: a taller window shows them",
                    hidden + 1
                ),
                theme.dim(),
            );
        }
        out.extend(lines);
    }
    let out = out
        .into_iter()
        .map(|l| clip_line(l, width as usize))
        .collect();
    (out, starts)
}
