//! The report's two charts, as inline SVG readable without JavaScript: the stored bytes over
//! time stacked by what holds them, and each snapshot's unique bytes as bars on the same time
//! axis. Hover text is SVG `<title>`, which browsers show natively.

use std::fmt::Write;

use super::svg::{Scale, byte_ticks, escape, polyline, time_ticks};
use crate::cli::human_bytes;
use crate::schedule::calendar::format_rfc3339;
use crate::service::replies::{Space, SpaceReport};

/// The charts' width in pixels (the page is laid out for it).
pub const WIDTH: f64 = 1080.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 16.0;
const BOTTOM: f64 = 28.0;

/// One layer of the space chart, bottom first: its name, colour and value.
pub struct Layer {
    pub name: &'static str,
    pub colour: &'static str,
    pub value: fn(&Space) -> u64,
}

/// The layers of stored bytes, bottom first; together they are the stored bytes.
pub const LAYERS: [Layer; 4] = [
    Layer {
        name: "live share",
        colour: "#4e79a7",
        value: |s| s.live_bytes,
    },
    Layer {
        name: "snapshots only",
        colour: "#f28e2b",
        value: |s| s.snapshot_bytes,
    },
    Layer {
        name: "soft-deleted snapshots",
        colour: "#e15759",
        value: |s| s.deleted_snapshot_bytes,
    },
    Layer {
        name: "reclaimable by gc",
        colour: "#bab0ac",
        value: |s| s.reclaimable_bytes,
    },
];

/// The time both charts span, in unix seconds: from the oldest sample or snapshot to the
/// report's time (an hour when that is all there is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSpan {
    pub lo: i64,
    pub hi: i64,
}

impl TimeSpan {
    pub fn of(report: &SpaceReport) -> Self {
        let oldest = report
            .history
            .iter()
            .map(|p| p.secs)
            .chain(report.snapshots.iter().map(|s| s.created))
            .min()
            .unwrap_or(report.now);
        let hi = report.now.max(oldest);
        let lo = if hi - oldest < 60 { hi - 3_600 } else { oldest };
        TimeSpan { lo, hi }
    }

    fn scale(&self) -> Scale {
        Scale::new(self.lo as f64, self.hi as f64, LEFT, WIDTH - RIGHT)
    }
}

/// The points the space chart draws: every sample, then the figures now (when newer), so the
/// curve reaches the report's time. Empty when there is no sample yet.
pub fn space_points(report: &SpaceReport) -> Vec<(i64, Space)> {
    let mut points: Vec<(i64, Space)> = report
        .history
        .iter()
        .map(|p| (p.secs, p.space.clone()))
        .collect();
    if let Some((last, _)) = points.last()
        && *last < report.now
    {
        points.push((report.now, report.space.clone()));
    }
    points
}

fn total(space: &Space) -> u64 {
    LAYERS
        .iter()
        .fold(0u64, |sum, layer| sum.saturating_add((layer.value)(space)))
}

/// A time's label for an axis whose ticks are `step` seconds apart.
fn time_label(secs: i64, step: i64) -> String {
    let text = format_rfc3339(secs);
    let date = text.get(..10).unwrap_or(&text);
    if step >= 86_400 {
        date.to_owned()
    } else {
        let day = text.get(5..10).unwrap_or("");
        let clock = text.get(11..16).unwrap_or("");
        format!("{day} {clock}")
    }
}

/// The frame of a chart of height `height`: the byte grid with its labels (ticks `ticks`,
/// scale `y`) and the time axis with its labels.
fn axes(out: &mut String, span: &TimeSpan, y: &Scale, ticks: &[u64], height: f64) {
    let x = span.scale();
    for tick in ticks {
        let py = y.at(*tick as f64);
        let _ = write!(
            out,
            r##"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}"/><text class="ylabel" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            escape(&human_bytes(*tick)),
        );
    }
    let base = height - BOTTOM;
    let _ = write!(
        out,
        r##"<line class="axis" x1="{LEFT}" x2="{:.1}" y1="{base:.1}" y2="{base:.1}"/>"##,
        WIDTH - RIGHT
    );
    let (times, step) = time_ticks(span.lo, span.hi, 8);
    for time in times {
        let px = x.at(time as f64);
        let _ = write!(
            out,
            r##"<line class="axis" x1="{px:.1}" x2="{px:.1}" y1="{base:.1}" y2="{:.1}"/><text class="xlabel" x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            base + 4.0,
            base + 18.0,
            escape(&time_label(time, step)),
        );
    }
}

/// The stacked chart of stored bytes over time: live share, snapshots only, soft-deleted
/// snapshots and reclaimable bytes, whose top edge is the stored bytes; one dot per sample.
pub fn space_chart(report: &SpaceReport, span: &TimeSpan) -> String {
    const HEIGHT: f64 = 320.0;
    const TOP: f64 = 12.0;
    let points = space_points(report);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="stored bytes over time">"##
    );
    let max = points.iter().map(|(_, s)| total(s)).max().unwrap_or(0);
    let ticks = byte_ticks(max, 5);
    let top = ticks.last().copied().unwrap_or(1);
    let y = Scale::new(0.0, top as f64, HEIGHT - BOTTOM, TOP);
    let x = span.scale();
    axes(&mut out, span, &y, &ticks, HEIGHT);
    if points.is_empty() {
        let _ = write!(
            out,
            r##"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">No space history yet: a sample is taken at every snapshot change and gc, and hourly while mounted.</text>"##,
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT / 2.0
        );
    }
    // Each layer: its top edge left to right, then the layer below's top right to left.
    let mut below: Vec<u64> = vec![0; points.len()];
    for layer in &LAYERS {
        if points.is_empty() {
            break;
        }
        let above: Vec<u64> = points
            .iter()
            .zip(&below)
            .map(|((_, s), b)| b.saturating_add((layer.value)(s)))
            .collect();
        let mut outline: Vec<(f64, f64)> = points
            .iter()
            .zip(&above)
            .map(|((t, _), v)| (x.at(*t as f64), y.at(*v as f64)))
            .collect();
        outline.extend(
            points
                .iter()
                .zip(&below)
                .rev()
                .map(|((t, _), v)| (x.at(*t as f64), y.at(*v as f64))),
        );
        let _ = write!(
            out,
            r##"<path class="layer" d="{} Z" fill="{}"><title>{}</title></path>"##,
            polyline(&outline),
            layer.colour,
            escape(layer.name),
        );
        below = above;
    }
    // The stored bytes: the top edge, with a dot per sample (not the point added for now).
    let edge: Vec<(f64, f64)> = points
        .iter()
        .zip(&below)
        .map(|((t, _), v)| (x.at(*t as f64), y.at(*v as f64)))
        .collect();
    if !edge.is_empty() {
        let _ = write!(
            out,
            r##"<path class="stored" d="{}" fill="none"/>"##,
            polyline(&edge)
        );
    }
    for sample in &report.history {
        let stored = total(&sample.space);
        let _ = write!(
            out,
            r##"<circle class="sample" cx="{:.1}" cy="{:.1}" r="2.5"><title>{}: {} stored</title></circle>"##,
            x.at(sample.secs as f64),
            y.at(stored as f64),
            format_rfc3339(sample.secs),
            escape(&human_bytes(stored)),
        );
    }
    out.push_str("</svg>");
    out
}

/// Each snapshot as a bar of the bytes it alone holds, at the time it was taken, on the
/// space chart's time axis; a soft-deleted one as a hollow mark on the axis (what those hold
/// is counted together). Names label the bars where they do not crowd.
pub fn snapshot_chart(report: &SpaceReport, span: &TimeSpan) -> String {
    const HEIGHT: f64 = 300.0;
    const TOP: f64 = 96.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="bytes each snapshot alone holds">"##
    );
    let max = report
        .snapshots
        .iter()
        .filter_map(|s| s.unique_bytes)
        .max()
        .unwrap_or(0);
    let ticks = byte_ticks(max, 4);
    let top = ticks.last().copied().unwrap_or(1);
    let y = Scale::new(0.0, top as f64, HEIGHT - BOTTOM, TOP);
    let x = span.scale();
    axes(&mut out, span, &y, &ticks, HEIGHT);
    if report.snapshots.is_empty() {
        let _ = write!(
            out,
            r##"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">No snapshots.</text>"##,
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT / 2.0
        );
    }
    let plot = WIDTH - RIGHT - LEFT;
    let bar = (plot / (report.snapshots.len().max(1) as f64 * 2.0)).clamp(2.0, 14.0);
    let base = HEIGHT - BOTTOM;
    let mut last_label = f64::NEG_INFINITY;
    for snapshot in &report.snapshots {
        let px = x.at(snapshot.created as f64);
        let when = format_rfc3339(snapshot.created);
        let name = escape(&snapshot.name);
        let Some(unique) = snapshot.unique_bytes else {
            let _ = write!(
                out,
                r##"<path class="deleted" d="M{:.1} {base:.1} l5 -9 l5 9 Z"><title>{name} (soft-deleted), taken {when}</title></path>"##,
                px - 5.0
            );
            continue;
        };
        let py = y.at(unique as f64);
        let _ = write!(
            out,
            r##"<rect class="bar" x="{:.1}" y="{py:.1}" width="{bar:.1}" height="{:.1}"><title>{name}, taken {when}: {} alone</title></rect>"##,
            px - bar / 2.0,
            (base - py).max(0.5),
            escape(&human_bytes(unique)),
        );
        // A label where it has room: 14 px from the last one (the labels slant upwards).
        if px - last_label >= 14.0 {
            last_label = px;
            let shown: String = if snapshot.name.chars().count() > 22 {
                let mut cut: String = snapshot.name.chars().take(21).collect();
                cut.push('…');
                cut
            } else {
                snapshot.name.clone()
            };
            let _ = write!(
                out,
                r##"<text class="name" transform="translate({px:.1} {:.1}) rotate(-55)">{}</text>"##,
                py - 4.0,
                escape(&shown),
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::replies::{ReportSnapshot, SpacePoint};

    fn space(live: u64, snapshot: u64) -> Space {
        Space {
            stored_bytes: live + snapshot,
            live_bytes: live,
            snapshot_bytes: snapshot,
            ..Space::default()
        }
    }

    fn report(history: Vec<(i64, Space)>, snapshots: Vec<ReportSnapshot>) -> SpaceReport {
        SpaceReport {
            store: "/srv/store".into(),
            now: 10_000,
            space: space(100, 50),
            history: history
                .into_iter()
                .map(|(secs, space)| SpacePoint { secs, space })
                .collect(),
            snapshots,
            vaults: Vec::new(),
            jobs: Vec::new(),
        }
    }

    fn snapshot(name: &str, created: i64, unique: Option<u64>) -> ReportSnapshot {
        ReportSnapshot {
            name: name.into(),
            number: 1,
            created,
            unique_bytes: unique,
            deleted: unique.is_none(),
        }
    }

    /// The `d` of every `<path class="CLASS"`.
    fn paths<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let marker = format!(r#"<path class="{class}" d=""#);
        svg.match_indices(&marker)
            .map(|(at, _)| {
                let rest = &svg[at + marker.len()..];
                &rest[..rest.find('"').expect("closing quote")]
            })
            .collect()
    }

    #[test]
    fn the_stack_tops_at_the_stored_bytes_and_spans_the_time() {
        let r = report(
            vec![(1_000, space(10, 0)), (5_000, space(100, 100))],
            vec![],
        );
        let span = TimeSpan::of(&r);
        assert_eq!(
            span,
            TimeSpan {
                lo: 1_000,
                hi: 10_000
            }
        );
        let svg = space_chart(&r, &span);
        assert_eq!(svg.matches(r#"class="sample""#).count(), 2);
        assert_eq!(paths(&svg, "layer").len(), LAYERS.len());
        // Ticks reach 200 (the largest stack): its top sits at the chart's top, at x of the
        // second sample; the first sample's 10 bytes are near the bottom, at the left edge.
        let stored = paths(&svg, "stored")[0];
        let points: Vec<(f64, f64)> = stored
            .split(['M', 'L'])
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let mut xy = p
                    .split_whitespace()
                    .map(|v| v.parse::<f64>().expect("number"));
                (xy.next().expect("x"), xy.next().expect("y"))
            })
            .collect();
        assert_eq!(points.len(), 3, "two samples and now: {stored}");
        assert_eq!(points[0].0, LEFT);
        assert_eq!(points[2].0, WIDTH - RIGHT);
        let y = Scale::new(0.0, 200.0, 320.0 - BOTTOM, 12.0);
        assert_eq!(points[1].1, (y.at(200.0) * 10.0).round() / 10.0);
        assert_eq!(points[0].1, (y.at(10.0) * 10.0).round() / 10.0);
        assert_eq!(points[2].1, (y.at(150.0) * 10.0).round() / 10.0, "now");
        assert!(!svg.contains("No space history"));
    }

    #[test]
    fn an_empty_history_says_so_and_draws_no_area() {
        let r = report(vec![], vec![]);
        let span = TimeSpan::of(&r);
        assert_eq!(span.hi - span.lo, 3_600);
        let svg = space_chart(&r, &span);
        assert!(svg.contains("No space history yet"));
        assert!(paths(&svg, "layer").is_empty());
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let bars = snapshot_chart(&r, &span);
        assert!(bars.contains("No snapshots."));
    }

    #[test]
    fn bars_stand_at_their_time_with_escaped_names() {
        let r = report(
            vec![(1_000, space(1, 1))],
            vec![
                snapshot("<b>one</b>", 2_000, Some(400)),
                snapshot("gone", 6_000, None),
                snapshot("two & more", 9_000, Some(100)),
            ],
        );
        let span = TimeSpan::of(&r);
        let svg = snapshot_chart(&r, &span);
        assert_eq!(svg.matches(r#"<rect class="bar""#).count(), 2);
        assert_eq!(paths(&svg, "deleted").len(), 1);
        assert!(svg.contains("&lt;b&gt;one&lt;/b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains("two &amp; more"));
        // The larger bar is four times the smaller one's height (ticks: 0..400).
        let heights: Vec<f64> = svg
            .match_indices(r#" height=""#)
            .skip(1) // the svg element's own height
            .map(|(at, m)| {
                let rest = &svg[at + m.len()..];
                rest[..rest.find('"').expect("quote")]
                    .parse()
                    .expect("number")
            })
            .collect();
        assert_eq!(heights.len(), 2, "{heights:?}");
        assert!((heights[0] / heights[1] - 4.0).abs() < 0.05, "{heights:?}");
    }
}
