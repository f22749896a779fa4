//! An SVG line chart of joined shoppers over time, written without a plotting library.

use std::fmt::Write as _;

/// `samples` are (seconds since start, joined shoppers so far).
pub fn svg(samples: &[(f64, u64)], total: u64) -> String {
    let (width, height, pad) = (640.0, 320.0, 40.0);
    let max_t = samples.last().map_or(1.0, |s| s.0).max(0.001);
    let max_n = total.max(1) as f64;
    let mut points = String::new();
    for (t, n) in samples {
        let x = pad + t / max_t * (width - 2.0 * pad);
        let y = height - pad - *n as f64 / max_n * (height - 2.0 * pad);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="#333"/>
<text x="{pad}" y="20">joined shoppers (max {total}) over {max_t:.1} s</text>
<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="{points}"/>
</svg>
"##,
        b = height - pad,
        r = width - pad,
    )
}
