//! The five `ip -j … show` reads as two `ip -j -batch -` processes: each
//! process costs more than its read, and `apply` pays for the probe before
//! its first step. Each batch's output is split back into the output of
//! the single command it stands for, so parsing and notes stay per fact.
//! A batch that fails or prints anything else is dropped whole, and the
//! single commands run instead (an error there names its own command).

use crate::runner::{Output, RunError, Runner};

/// One `ip` process: its argv, and per stdin line the single command whose
/// output that line prints.
pub struct IpBatch {
    pub argv: &'static [&'static str],
    pub lines: &'static [(&'static str, &'static [&'static str])],
}

/// No family option, so `addr show` lists both families; `rule show`
/// defaults to IPv4, and `root 0.0.0.0/0` keeps `route show` to IPv4 (with
/// `table all` and no family it lists both). The lab checks each split part
/// equals its single command on both iproute2 versions CI has.
pub const BATCHES: [IpBatch; 2] = [
    IpBatch {
        argv: &["ip", "-j", "-batch", "-"],
        lines: &[
            ("addr show", &["ip", "-j", "addr", "show"]),
            ("rule show", &["ip", "-j", "-4", "rule", "show"]),
            (
                "route show table all root 0.0.0.0/0",
                &["ip", "-j", "-4", "route", "show", "table", "all"],
            ),
        ],
    },
    IpBatch {
        argv: &["ip", "-j", "-6", "-batch", "-"],
        lines: &[
            (
                "route show table all",
                &["ip", "-j", "-6", "route", "show", "table", "all"],
            ),
            ("rule show", &["ip", "-j", "-6", "rule", "show"]),
        ],
    },
];

impl IpBatch {
    pub fn stdin(&self) -> String {
        self.lines.iter().map(|(l, _)| format!("{l}\n")).collect()
    }

    /// Run it: the single commands' outputs, keyed as `argv.join(" ")`, or
    /// None when the batch is no use (the caller runs them one by one).
    pub fn run(&self, runner: &dyn Runner) -> Option<Vec<(String, Output)>> {
        let argv: Vec<String> = self.argv.iter().map(|s| s.to_string()).collect();
        let out: Result<Output, RunError> = runner.run_with_stdin(&argv, &self.stdin());
        let out = out.ok().filter(Output::success)?;
        let parts = split_arrays(&out.stdout, self.lines.len())?;
        Some(
            self.lines
                .iter()
                .zip(parts)
                .map(|((_, single), part)| (single.join(" "), Output::ok(part)))
                .collect(),
        )
    }
}

/// `n` JSON arrays one after the other, each as its own text; None when
/// the text is anything else (a command that failed half-way leaves an
/// unclosed `[`).
fn split_arrays(text: &str, n: usize) -> Option<Vec<String>> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    while let Some(value) = stream.next() {
        value.ok()?;
        let end = stream.byte_offset();
        let part = text[start..end].trim();
        if !part.starts_with('[') {
            return None;
        }
        parts.push(format!("{part}\n"));
        start = end;
    }
    (parts.len() == n).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::FakeRunner;

    #[test]
    fn arrays_are_split_as_printed() {
        let parts = split_arrays("[{\"a\":1}]\n[]\n[{\"b\":[2]}]\n", 3).unwrap();
        assert_eq!(parts, ["[{\"a\":1}]\n", "[]\n", "[{\"b\":[2]}]\n"]);
        assert_eq!(split_arrays("[][]", 2).unwrap(), ["[]\n", "[]\n"]);
    }

    #[test]
    fn anything_else_is_no_split() {
        assert_eq!(split_arrays("[]\n[]\n", 3), None, "one missing");
        assert_eq!(split_arrays("[]\n[]\n[]\n", 2), None, "one too many");
        assert_eq!(split_arrays("[\n[{\"a\":1}]\n", 2), None, "unclosed");
        assert_eq!(split_arrays("[]\n{\"a\":1}\n", 2), None, "not an array");
        assert_eq!(split_arrays("[]\nError: x\n", 2), None, "text");
    }

    #[test]
    fn a_batch_answers_for_its_single_commands() {
        let b = &BATCHES[1];
        let fake = FakeRunner::new().on_stdin(
            b.argv,
            &b.stdin(),
            Output::ok("[{\"dst\":\"default\"}]\n[]\n"),
        );
        let got = b.run(&fake).unwrap();
        assert_eq!(
            got,
            [
                (
                    "ip -j -6 route show table all".to_string(),
                    Output::ok("[{\"dst\":\"default\"}]\n")
                ),
                ("ip -j -6 rule show".to_string(), Output::ok("[]\n")),
            ]
        );
        assert_eq!(b.stdin(), "route show table all\nrule show\n");
    }

    #[test]
    fn a_failed_batch_answers_nothing() {
        let b = &BATCHES[1];
        let failed = FakeRunner::new().on_stdin(
            b.argv,
            &b.stdin(),
            Output::failed(
                1,
                "RTNETLINK answers: Address family not supported by protocol\n",
            ),
        );
        assert_eq!(b.run(&failed), None);
        assert_eq!(b.run(&FakeRunner::new()), None, "ip missing");
    }
}
