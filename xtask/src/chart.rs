//! The SVG charts of `cargo xtask bench`, drawn with plotters' SVG backend.
//!
//! Text is written as SVG `<text>` elements and laid out by the viewer, so plotters needs no
//! font library here (its font features pull in system font lookup): label widths are estimated,
//! which is why the margins are generous.

use std::path::Path;

use plotters::prelude::*;

use crate::markdown::value;
use crate::report::units;

const SIZE: (u32, u32) = (860, 500);

/// One x position of a throughput chart: the median of its runs and their range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// An axis label: a value in its unit without trailing zeros (`10 µs`, not `10.0 µs`).
fn axis(unit: &str, v: f64) -> String {
    let text = value(unit, v);
    let (number, rest) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .map_or((text.as_str(), ""), |i| text.split_at(i));
    let number = if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    };
    format!("{number}{rest}")
}

fn failed<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("cannot draw {}: {e}", path.display())
}

/// Entries/s against `x` on a log axis (batch size, shard count): the medians joined by a line,
/// each run's range as a whisker.
///
/// # Errors
/// When there are no points or the file cannot be written.
pub fn throughput(path: &Path, title: &str, x_desc: &str, points: &[Point]) -> Result<(), String> {
    if points.is_empty() {
        return Err(format!("cannot draw {}: no points", path.display()));
    }
    let err = failed(path);
    let xs: Vec<f64> = points.iter().map(|p| p.x).collect();
    let x_min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let x_max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let y_max = points.iter().map(|p| p.max).fold(0.0, f64::max).max(1.0) * 1.15;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(100)
        .build_cartesian_2d(
            ((x_min / 1.6)..(x_max * 1.6))
                .log_scale()
                .with_key_points(xs),
            0f64..y_max,
        )
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("entries/s")
        .x_label_formatter(&|x| axis(units::COUNT, *x))
        .y_label_formatter(&|y| axis(units::COUNT, *y))
        .draw()
        .map_err(&err)?;

    let line = BLUE.stroke_width(2);
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.x, p.median)),
            line,
        ))
        .map_err(&err)?
        .label("median")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
    let whisker = BLACK.stroke_width(1);
    chart
        .draw_series(points.iter().flat_map(|p| {
            // Caps a few percent wide either side, in the log axis's terms.
            let (l, r) = (p.x / 1.06, p.x * 1.06);
            [
                PathElement::new(vec![(p.x, p.min), (p.x, p.max)], whisker),
                PathElement::new(vec![(l, p.min), (r, p.min)], whisker),
                PathElement::new(vec![(l, p.max), (r, p.max)], whisker),
            ]
        }))
        .map_err(&err)?
        .label("range of the runs")
        .legend(move |(x, y)| PathElement::new(vec![(x + 10, y - 6), (x + 10, y + 6)], whisker));
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.x, p.median), 4, BLUE.filled())),
        )
        .map_err(&err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)
}

/// At most this many points per curve: enough for a smooth line, few enough for a small file.
const CDF_POINTS: usize = 400;

/// The points of a cumulative distribution: (value in µs, percent of values at or below it),
/// at most [`CDF_POINTS`] of them, always including the smallest and the largest.
pub fn cdf_points(ns: &[u64]) -> Vec<(f64, f64)> {
    let mut sorted = ns.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let steps = n.min(CDF_POINTS);
    (0..steps)
        .map(|i| {
            // Evenly spaced ranks from the first to the last.
            let at = if steps == 1 {
                n - 1
            } else {
                i * (n - 1) / (steps - 1)
            };
            (sorted[at] as f64 / 1e3, (at + 1) as f64 / n as f64 * 100.0)
        })
        .collect()
}

/// The distribution of single-add times, one cumulative curve per kind, on a log time axis:
/// where a curve rises steeply most adds took that long, and its tail to the right is the
/// slowest ones.
///
/// # Errors
/// When there are no times or the file cannot be written.
pub fn latency(path: &Path, series: &[(&str, &[u64])]) -> Result<(), String> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, ns)| (*name, cdf_points(ns)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if curves.is_empty() {
        return Err(format!("cannot draw {}: no latencies", path.display()));
    }
    let err = failed(path);
    let all = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.0));
    let lo = all.clone().fold(f64::INFINITY, f64::min).max(1e-3);
    let hi = all.fold(0.0, f64::max).max(lo * 10.0);

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Single add: time of each call (cumulative)",
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(((lo / 1.3)..(hi * 1.3)).log_scale(), 0f64..100f64)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("time per add (log scale)")
        .y_desc("% of adds at most this long")
        .x_label_formatter(&|us| axis(units::NS, us * 1e3))
        .y_label_formatter(&|p| format!("{p:.0} %"))
        .draw()
        .map_err(&err)?;
    let colours = [RED, BLUE, GREEN, MAGENTA];
    for (i, (name, points)) in curves.into_iter().enumerate() {
        let style = colours[i % colours.len()].stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(&err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleMiddle)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_drop_trailing_zeros() {
        for (unit, v, want) in [
            (units::NS, 10_000.0, "10 µs"),
            (units::NS, 1e6, "1 ms"),
            (units::NS, 1.5e6, "1.5 ms"),
            (units::COUNT, 10_000.0, "10,000"),
            (units::COUNT, 2.5, "2.5"),
        ] {
            assert_eq!(axis(unit, v), want);
        }
    }

    #[test]
    fn cdf_points_are_bounded_and_end_at_the_extremes() {
        let ns: Vec<u64> = (1..=10_000).rev().map(|i| i * 1000).collect();
        let p = cdf_points(&ns);
        assert_eq!(p.len(), CDF_POINTS);
        assert_eq!(p[0], (1.0, 0.01));
        assert_eq!(p[p.len() - 1], (10_000.0, 100.0));
        assert!(p.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert_eq!(cdf_points(&[5000]), [(5.0, 100.0)]);
        assert_eq!(cdf_points(&[]), []);
    }

    #[test]
    fn charts_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("xtask-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
        let t = dir.join("t.svg");
        let points = [
            Point {
                x: 100.0,
                median: 10_000.0,
                min: 9000.0,
                max: 12_000.0,
            },
            Point {
                x: 1000.0,
                median: 20_000.0,
                min: 19_000.0,
                max: 21_000.0,
            },
        ];
        throughput(&t, "title", "batch size", &points).expect("the chart draws");
        let l = dir.join("l.svg");
        let miss: Vec<u64> = (1..500).map(|i| 3_000_000 + i * 1000).collect();
        latency(&l, &[("miss", &miss), ("hit", &[20_000, 30_000])]).expect("the chart draws");
        let t_text = std::fs::read_to_string(&t).expect("the chart was written");
        let l_text = std::fs::read_to_string(&l).expect("the chart was written");
        let _ = std::fs::remove_dir_all(&dir);
        // plotters writes each text on a line of its own inside its element.
        let text = |svg: &str, t: &str| svg.contains(&format!(">\n{t}\n</text>"));
        assert!(t_text.starts_with("<svg"), "{}", &t_text[..40]);
        assert!(text(&t_text, "entries/s"));
        assert!(text(&t_text, "1,000"));
        assert!(text(&l_text, "miss") && text(&l_text, "hit"));
        assert!(throughput(&t, "x", "x", &[]).is_err());
        assert!(latency(&l, &[("miss", &[])]).is_err());
    }
}
