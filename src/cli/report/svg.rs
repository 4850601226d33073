//! The small pieces of hand-written SVG the report's charts are made of: text escaping, a
//! linear scale, "nice" tick values for bytes and for times, and a path through points.
//! Pure functions of numbers to text: no knowledge of snapshots or of the page.

use std::fmt::Write;

/// `text` safe inside an element or a quoted attribute of HTML and SVG (snapshot names,
/// vault locations and error messages are user input).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in HTML text; show them as a replacement.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A linear map from a domain of values onto a range of pixels. A domain of one value is
/// widened so that nothing divides by zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Scale {
    pub fn new(lo: f64, hi: f64, from: f64, to: f64) -> Self {
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
        Scale { lo, hi, from, to }
    }

    /// The pixel of `value`; values outside the domain are clamped to its ends, so a figure
    /// never draws outside its chart.
    pub fn at(&self, value: f64) -> f64 {
        let t = ((value - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        self.from + t * (self.to - self.from)
    }
}

/// Tick values for a byte axis from 0 up to at least `max`: multiples of 1, 2 or 5 times a
/// power of 1024's unit (so the labels read `2 GiB`, `512 MiB`), at most `count + 1` of them.
/// The last tick is at or above `max`, so it can be the axis's top.
pub fn byte_ticks(max: u64, count: u32) -> Vec<u64> {
    let max = max.max(1);
    let count = u64::from(count.max(1));
    let mut unit = 1u64;
    while unit <= u64::MAX / 1024 && max / unit >= 1024 {
        unit *= 1024;
    }
    // Steps within the unit: 1, 2, 5, 10, 20, 50, 100, 200, 500 (then the next unit).
    let mut step = unit;
    'found: for base in [1u64, 10, 100, 1024] {
        for multiple in [1u64, 2, 5] {
            let candidate = unit.saturating_mul(base).saturating_mul(multiple);
            if max.div_ceil(candidate) <= count {
                step = candidate;
                break 'found;
            }
            step = candidate;
        }
    }
    let top = max.div_ceil(step).saturating_mul(step);
    let mut ticks = Vec::new();
    let mut tick = 0u64;
    loop {
        ticks.push(tick);
        if tick >= top {
            break;
        }
        tick = tick.saturating_add(step);
    }
    ticks
}

/// Steps for a time axis, in seconds: the first one that gives at most the wanted count.
const TIME_STEPS: [i64; 16] = [
    60,
    300,
    900,
    1_800,
    3_600,
    3 * 3_600,
    6 * 3_600,
    12 * 3_600,
    86_400,
    2 * 86_400,
    7 * 86_400,
    14 * 86_400,
    30 * 86_400,
    91 * 86_400,
    182 * 86_400,
    365 * 86_400,
];

/// Tick times (unix seconds, aligned to their step in UTC) within `[lo, hi]`, at most about
/// `count`, and the step chosen.
pub fn time_ticks(lo: i64, hi: i64, count: i64) -> (Vec<i64>, i64) {
    let span = hi.saturating_sub(lo).max(1);
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|step| span / step <= count.max(1))
        .unwrap_or_else(|| {
            let years = span / (365 * 86_400) / count.max(1) + 1;
            years * 365 * 86_400
        });
    let first = lo.div_euclid(step) * step;
    let first = if first < lo { first + step } else { first };
    let mut ticks = Vec::new();
    let mut tick = first;
    while tick <= hi {
        ticks.push(tick);
        tick = tick.saturating_add(step);
        if tick == i64::MAX {
            break;
        }
    }
    (ticks, step)
}

/// The SVG path data through `points` (`M x y L x y ...`), one decimal place.
pub fn polyline(points: &[(f64, f64)]) -> String {
    let mut out = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        let command = if i == 0 { 'M' } else { 'L' };
        let _ = write!(out, "{command}{x:.1} {y:.1} ");
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        let name = r#"<script>alert("x")</script> & 'y'"#;
        let escaped = escape(name);
        assert_eq!(
            escaped,
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert!(!escaped.contains('<') && !escaped.contains('"'));
        assert_eq!(escape("a\u{1}b"), "a\u{fffd}b");
        assert_eq!(escape("café"), "café");
    }

    #[test]
    fn scales_map_ends_to_ends_and_clamp() {
        // A y axis: 0 bytes at the bottom (pixel 300), 1000 at the top (pixel 20).
        let y = Scale::new(0.0, 1000.0, 300.0, 20.0);
        assert_eq!(y.at(0.0), 300.0);
        assert_eq!(y.at(1000.0), 20.0);
        assert_eq!(y.at(500.0), 160.0);
        assert_eq!(y.at(5000.0), 20.0, "clamped");
        assert_eq!(y.at(-1.0), 300.0, "clamped");
        // A domain of one value does not divide by zero.
        let flat = Scale::new(7.0, 7.0, 0.0, 100.0);
        assert_eq!(flat.at(7.0), 0.0);
        assert!(flat.at(8.0).is_finite());
    }

    #[test]
    fn byte_ticks_are_round_and_cover_the_maximum() {
        assert_eq!(byte_ticks(0, 5), vec![0, 1]);
        assert_eq!(byte_ticks(900, 5), vec![0, 200, 400, 600, 800, 1000]);
        let mib = 1u64 << 20;
        let ticks = byte_ticks(7 * mib + 1, 5);
        assert_eq!(ticks, vec![0, 2 * mib, 4 * mib, 6 * mib, 8 * mib]);
        let gib = 1u64 << 30;
        let ticks = byte_ticks(3 * gib, 4);
        assert_eq!(ticks.last().copied(), Some(3 * gib));
        for max in [1, 5, 1023, 1024, 1025, 123_456_789, u64::MAX / 2] {
            let ticks = byte_ticks(max, 5);
            assert!(ticks.len() <= 7, "{max}: {ticks:?}");
            assert!(
                ticks.last().copied().unwrap_or(0) >= max,
                "{max}: {ticks:?}"
            );
            assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{max}: {ticks:?}");
        }
    }

    #[test]
    fn time_ticks_are_aligned_and_inside() {
        let day = 86_400;
        let lo = 100 * day + 5_000;
        let hi = lo + 3 * day;
        let (ticks, step) = time_ticks(lo, hi, 8);
        assert_eq!(step, 12 * 3_600);
        assert!(ticks.iter().all(|t| *t >= lo && *t <= hi && t % step == 0));
        assert!(ticks.len() <= 8 && ticks.len() >= 5, "{ticks:?}");
        let (ticks, step) = time_ticks(0, 30 * 365 * day, 8);
        assert!(ticks.len() <= 9, "{ticks:?} {step}");
        let (ticks, _) = time_ticks(lo, lo, 8);
        assert!(ticks.len() <= 1);
    }

    #[test]
    fn polylines() {
        assert_eq!(polyline(&[]), "");
        assert_eq!(polyline(&[(1.0, 2.0), (3.26, 4.0)]), "M1.0 2.0 L3.3 4.0");
    }
}
