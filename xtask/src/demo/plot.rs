//! The picture: per-subflow throughput over time for every act, one panel per act,
//! with path 1's link-down and link-up moments marked; an SVG drawn with plotters (its
//! SVG backend only: no fonts or bitmaps are needed, the viewer renders the text).

use super::acts::{Act, Run};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// The window over which a plotted rate is measured, seconds.
const WINDOW: f64 = 0.5;
const PATH_COLORS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];
const TCP_COLOR: RGBColor = RGBColor(110, 110, 110);
const DOWN_COLOR: RGBColor = RGBColor(214, 39, 40);
const UP_COLOR: RGBColor = RGBColor(44, 160, 44);

/// Per path, (seconds into the act, Mbit/s): the rate over a window of about
/// [`WINDOW`] seconds of samples, drawn at the window's middle (so that a change shows
/// where it happened, not half a window later).
fn rates(run: &Run) -> [Vec<(f64, f64)>; 2] {
    let s = &run.samples;
    [0, 1].map(|p| {
        let mut out = Vec::with_capacity(s.len());
        let mut j = 0;
        for i in 0..s.len() {
            while s[i].0 - s[j].0 > WINDOW + 1e-6 {
                j += 1;
            }
            let dt = s[i].0 - s[j].0;
            if dt <= 0.0 {
                continue;
            }
            let r = s[i].1[p].saturating_sub(s[j].1[p]) as f64 * 8.0 / dt / 1e6;
            out.push((run.offset + (s[i].0 + s[j].0) / 2.0, r));
        }
        out
    })
}

/// Draws `acts` into an SVG at `file`; `rate_mbit` is one path's rate.
pub fn draw(acts: &[Act], rate_mbit: u32, file: &Path) -> Result<()> {
    let height = 300 * acts.len().max(1) as u32;
    let root = SVGBackend::new(file, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let panels = root.split_evenly((acts.len().max(1), 1));
    let y_max = f64::from(rate_mbit) * 2.3;
    for (act, area) in acts.iter().zip(panels.iter()) {
        let x_max = act
            .runs
            .iter()
            .filter_map(|r| r.samples.last().map(|s| r.offset + s.0))
            .fold(1.0, f64::max)
            .ceil();
        let mut chart = ChartBuilder::on(area)
            .caption(&act.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("seconds into the act")
            .y_desc("Mbit/s")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_err)?;
        for run in &act.runs {
            let tcp = run.label == "TCP";
            let series = rates(run);
            for (p, points) in series.iter().enumerate() {
                if points.iter().all(|pt| pt.1 == 0.0) {
                    continue;
                }
                let color = if tcp { TCP_COLOR } else { PATH_COLORS[p] };
                let label = if tcp {
                    "TCP (path 1)".to_string()
                } else {
                    format!("{}: subflow on path {}", run.label, p + 1)
                };
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(plot_err)?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            if !tcp {
                let total: Vec<(f64, f64)> = series[0]
                    .iter()
                    .zip(&series[1])
                    .map(|(a, b)| (a.0, a.1 + b.1))
                    .collect();
                chart
                    .draw_series(LineSeries::new(total, BLACK.mix(0.5).stroke_width(1)))
                    .map_err(plot_err)?
                    .label(format!("{}: total", run.label))
                    .legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.5).stroke_width(1))
                    });
            } else {
                // Where act 1's second transfer starts.
                let end = run.samples.last().map_or(0.0, |s| s.0) + 0.25;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(end, 0.0), (end, y_max)],
                        BLACK.mix(0.3).stroke_width(1),
                    )))
                    .map_err(plot_err)?;
                for (x, text) in [(0.1, "TCP"), (end + 0.1, "MPTCP")] {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            text,
                            (x, y_max * 0.95),
                            ("sans-serif", 12).into_font().color(&BLACK),
                        )))
                        .map_err(plot_err)?;
                }
            }
            for m in &run.marks {
                let x = run.offset + m.t;
                let (color, text) = if m.up {
                    (UP_COLOR, "path 1 up")
                } else {
                    (DOWN_COLOR, "path 1 down")
                };
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, 0.0), (x, y_max)],
                        color.stroke_width(2),
                    )))
                    .map_err(plot_err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (x + 0.08, y_max * 0.95),
                        ("sans-serif", 12).into_font().color(&color),
                    )))
                    .map_err(plot_err)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}
