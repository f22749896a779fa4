//! `--plot FILE`: the run as a chart, PNG or SVG after the file name's extension.
//!
//! Two panels over the whole run (ramp and hold), time in seconds on a shared x axis: connected
//! shoppers, and the p50 / p90 / p99 latency of the round trips (joins and cart operations) that
//! ended in each second, on a logarithmic millisecond scale.
//!
//! Labels need a TrueType font: `BENCH_FONT` names one, else the usual system sans fonts are
//! tried (DejaVu Sans or Liberation Sans: `apt-get install fonts-dejavu-core`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::timeline::Point;

/// One plotted percentile: its name, how to read it from a point, its colour.
type Percentile = (&'static str, fn(&Point) -> f64, RGBColor);

/// The chart's size, pixels.
const SIZE: (u32, u32) = (1000, 700);

/// The fonts tried for the labels, in order, after `BENCH_FONT`.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// The image format a plot file name asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.png`
    Png,
    /// `.svg`
    Svg,
}

/// The format of `path`, or an error saying which extensions work.
pub fn format_of(path: &Path) -> anyhow::Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => bail!(
            "--plot {}: the file name must end in .png or .svg",
            path.display()
        ),
    }
}

/// Finds and registers the labels' font (once per process).
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = std::env::var_os("BENCH_FONT")
                .map(PathBuf::from)
                .into_iter()
                .chain(FONTS.iter().map(PathBuf::from))
                .collect();
            for path in &candidates {
                if let Ok(bytes) = std::fs::read(path) {
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                        .is_ok()
                    {
                        return Ok(());
                    }
                }
            }
            Err(
                "no TrueType font for the plot's labels: set BENCH_FONT=/path/to/font.ttf \
                 or install one (apt-get install fonts-dejavu-core)"
                    .to_owned(),
            )
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Writes the chart of `points` (one per second) to `path`, for `requested` shoppers.
pub fn write(path: &Path, points: &[Point], requested: u64) -> anyhow::Result<()> {
    let format = format_of(path)?;
    register_font()?;
    let result = match format {
        Format::Png => {
            let root = BitMapBackend::new(path, SIZE).into_drawing_area();
            draw(&root, points, requested).and_then(|()| root.present().map_err(|e| e.to_string()))
        }
        Format::Svg => {
            let root = SVGBackend::new(path, SIZE).into_drawing_area();
            draw(&root, points, requested).and_then(|()| root.present().map_err(|e| e.to_string()))
        }
    };
    result
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("writing the plot to {}", path.display()))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[Point],
    requested: u64,
) -> Result<(), String> {
    let e = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root
        .titled(
            &format!("shopper-bench: {requested} shoppers requested"),
            ("sans-serif", 22),
        )
        .map_err(e)?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 45 / 100);
    let end_s = points.last().map_or(1.0, |p| p.t_s).max(1.0);
    let most = points.iter().map(|p| p.connected).max().unwrap_or(0);
    let y_max = requested.max(most).max(1) as f64 * 1.05;

    let mut connections = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .caption("connected shoppers", ("sans-serif", 16))
        .build_cartesian_2d(0.0..end_s, 0.0..y_max)
        .map_err(e)?;
    connections
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("shoppers")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(e)?;
    let series =
        std::iter::once((0.0, 0.0)).chain(points.iter().map(|p| (p.t_s, p.connected as f64)));
    connections
        .draw_series(LineSeries::new(series, BLUE.stroke_width(2)))
        .map_err(e)?
        .label("connected")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    connections
        .draw_series(LineSeries::new(
            [(0.0, requested as f64), (end_s, requested as f64)],
            BLACK.mix(0.4),
        ))
        .map_err(e)?
        .label("requested")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    connections
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(e)?;

    let measured: Vec<&Point> = points.iter().filter(|p| p.round_trips > 0).collect();
    let low = measured
        .iter()
        .map(|p| p.p50_ms)
        .fold(f64::INFINITY, f64::min)
        .clamp(0.01, 1.0);
    let high = measured
        .iter()
        .map(|p| p.p99_ms)
        .fold(1.0, f64::max)
        .max(low * 10.0)
        * 1.5;
    let mut latency = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .caption(
            "round-trip latency per second (joins and cart operations)",
            ("sans-serif", 16),
        )
        .build_cartesian_2d(0.0..end_s, (low * 0.8..high).log_scale())
        .map_err(e)?;
    latency
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("latency (ms, log scale)")
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .draw()
        .map_err(e)?;
    let percentiles: [Percentile; 3] = [
        ("p50", |p| p.p50_ms, RGBColor(0x2a, 0x9d, 0x3a)),
        ("p90", |p| p.p90_ms, RGBColor(0xd9, 0x8c, 0x00)),
        ("p99", |p| p.p99_ms, RGBColor(0xc0, 0x1c, 0x28)),
    ];
    for (name, value, color) in percentiles {
        latency
            .draw_series(LineSeries::new(
                measured.iter().map(|p| (p.t_s, value(p).max(low))),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    latency
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<Point> {
        (1..=5)
            .map(|s| Point {
                t_s: f64::from(s),
                connected: u64::from(s as u32) * 10,
                round_trips: if s < 4 { 10 } else { 0 },
                p50_ms: 0.5,
                p90_ms: 2.0,
                p99_ms: 12.0,
            })
            .collect()
    }

    #[test]
    fn the_extension_chooses_the_format_and_others_are_refused() {
        assert_eq!(format_of(Path::new("run.png")).ok(), Some(Format::Png));
        assert_eq!(format_of(Path::new("run.SVG")).ok(), Some(Format::Svg));
        let error = format_of(Path::new("run.jpg")).expect_err("jpg is refused");
        assert!(error.to_string().contains(".png or .svg"), "{error}");
    }

    #[test]
    fn a_png_is_a_png_and_an_svg_has_axes_units_and_percentiles() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let png = dir.path().join("run.png");
        write(&png, &points(), 50).expect("the PNG is written");
        let bytes = std::fs::read(&png).expect("the PNG is there");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

        let svg = dir.path().join("run.svg");
        write(&svg, &points(), 50).expect("the SVG is written");
        let text = std::fs::read_to_string(&svg).expect("the SVG is there");
        for label in [
            "<svg",
            "time since start (s)",
            "latency (ms, log scale)",
            "connected shoppers",
            "p50",
            "p90",
            "p99",
        ] {
            assert!(text.contains(label), "{label} in the SVG");
        }
    }
}
