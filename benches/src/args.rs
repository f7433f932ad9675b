//! The command line cargo hands a benchmark binary, read as criterion reads it, for the
//! benchmarks that time things criterion cannot (one time per call) and so have no criterion
//! to read it for them.
//!
//! `cargo bench -- FILTER` passes the filter to every benchmark binary, and each runs only what
//! matches; `cargo bench` passes `--bench`, and without it (`cargo test --benches`) a benchmark
//! only checks that it works. A binary of its own must do the same, or a filtered run would
//! time it anyway.

/// Criterion's options that take a value as the next argument: that value is no filter.
const WITH_VALUE: &[&str] = &[
    "-c",
    "--color",
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--format",
    "--profile-time",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--plotting-backend",
    "--output-format",
];

/// What the command line asks of a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Measure (`cargo bench`).
    Bench,
    /// Check that the benchmark works, quickly (`cargo test --benches`, or `--test`).
    Test,
    /// Name the benchmark (`--list`).
    List,
    /// A filter excludes the benchmark: do nothing.
    Skip,
}

/// The mode `args` (the arguments after the program name) ask of the benchmark `name`: the
/// benchmark runs when no filter is given or one of them is a substring of `name`; any other
/// flag is ignored.
pub fn mode(name: &str, args: &[String]) -> Mode {
    let mut filters = Vec::new();
    let (mut bench, mut test, mut list) = (false, false, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => bench = true,
            "--test" => test = true,
            "--list" => list = true,
            a if WITH_VALUE.contains(&a) => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => filters.push(a),
        }
    }
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f)) {
        Mode::Skip
    } else if list {
        Mode::List
    } else if test || !bench {
        Mode::Test
    } else {
        Mode::Bench
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str], expected: Mode) {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        assert_eq!(mode("add/latency", &args), expected, "{args:?}");
    }

    #[test]
    fn reads_the_command_line_as_criterion_does() {
        check(&["--bench"], Mode::Bench);
        check(&["--bench", "add"], Mode::Bench);
        check(&["--bench", "latency"], Mode::Bench);
        check(&["--bench", "add/latency"], Mode::Bench);
        check(&["--bench", "cache"], Mode::Skip);
        check(&["--bench", "add/miss"], Mode::Skip);
        check(&["--bench", "cache", "latency"], Mode::Bench);
        check(
            &["--bench", "--warm-up-time", "0.5", "--sample-size", "10"],
            Mode::Bench,
        );
        check(
            &["--bench", "--noplot", "--measurement-time", "1"],
            Mode::Bench,
        );
        check(&["--bench", "--color=never"], Mode::Bench);
        check(&[], Mode::Test);
        check(&["latency"], Mode::Test);
        check(&["--bench", "--test"], Mode::Test);
        check(&["--bench", "--list"], Mode::List);
        check(&["--list", "cache"], Mode::Skip);
    }
}
