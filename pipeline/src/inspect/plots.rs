//! The report's charts, drawn with plotters as SVG (for the HTML page) and PNG: the funnel,
//! both ROUGE-L histograms, the verb-noun sunburst, acceptance per round or iteration, and SFT
//! loss curves. Text is laid out with the Ubuntu Light font that `epaint_default_fonts` ships,
//! so the charts look the same on every machine and need no system fonts.

use std::f64::consts::PI;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::similarity::{Histogram, BINS};
use super::verbs::VerbNoun;
use super::{LossCurve, Report};
use crate::atomic::write_atomic;

const FONT: &str = "sans-serif";

/// One chart of the report.
pub enum Chart<'a> {
    /// Candidates left after each step of the whole run.
    Funnel(&'a [super::funnel::Step]),
    Histogram {
        title: &'static str,
        x_label: &'static str,
        hist: &'a Histogram,
    },
    Sunburst(&'a VerbNoun),
    /// Acceptance rate (0-1) per round or iteration.
    Acceptance {
        x_label: &'static str,
        points: Vec<(u32, f64)>,
    },
    Loss(&'a [LossCurve]),
}

/// A chart with the file name (without extension) it is written under.
pub struct NamedChart<'a> {
    pub name: &'static str,
    pub caption: String,
    pub chart: Chart<'a>,
}

impl Chart<'_> {
    fn size(&self) -> (u32, u32) {
        match self {
            Chart::Sunburst(_) => (820, 820),
            _ => (820, 440),
        }
    }
}

/// The report's charts, in display order.
pub fn charts(report: &Report) -> Vec<NamedChart<'_>> {
    let mut out = Vec::new();
    if let Some(all) = report.funnels.last() {
        out.push(NamedChart {
            name: "funnel",
            caption: "Candidate instructions left after each step (whole run)".into(),
            chart: Chart::Funnel(&all.steps),
        });
    }
    out.push(NamedChart {
        name: "rouge_seed",
        caption: "ROUGE-L between each generated instruction and its most similar seed".into(),
        chart: Chart::Histogram {
            title: "ROUGE-L with the most similar seed",
            x_label: "ROUGE-L F-measure",
            hist: &report.similarity.to_nearest_seed,
        },
    });
    out.push(NamedChart {
        name: "rouge_generated",
        caption:
            "ROUGE-L between each generated instruction and the most similar one kept before it"
                .into(),
        chart: Chart::Histogram {
            title: "ROUGE-L with the most similar earlier generated instruction",
            x_label: "ROUGE-L F-measure",
            hist: &report.similarity.to_nearest_generated,
        },
    });
    out.push(NamedChart {
        name: "verb_noun",
        caption: "Top root verbs (inner ring) and their top direct-object nouns (outer ring)"
            .into(),
        chart: Chart::Sunburst(&report.verb_noun),
    });
    let acceptance = match &report.iterations {
        Some(its) => Chart::Acceptance {
            x_label: "iteration",
            points: its
                .iter()
                .map(|i| (i.iteration, i.acceptance_rate))
                .collect(),
        },
        None => Chart::Acceptance {
            x_label: "round",
            points: report
                .rounds
                .iter()
                .map(|r| (r.round, r.acceptance_rate))
                .collect(),
        },
    };
    out.push(NamedChart {
        name: "acceptance",
        caption: "Acceptance rate (kept / candidates)".into(),
        chart: acceptance,
    });
    if !report.loss_curves.is_empty() {
        out.push(NamedChart {
            name: "sft_loss",
            caption: "SFT loss per step (lines: train, points: held-out)".into(),
            chart: Chart::Loss(&report.loss_curves),
        });
    }
    out
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the built-in plot font cannot be read"))
    }
}

/// The chart as an SVG document.
pub fn svg(chart: &NamedChart<'_>) -> Result<String> {
    register_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, chart.chart.size()).into_drawing_area();
        draw(&root, &chart.chart)
            .and_then(|()| root.present())
            .map_err(|e| anyhow!("drawing {}: {e}", chart.name))?;
    }
    Ok(out)
}

/// The chart as a PNG file, written atomically.
pub fn png(chart: &NamedChart<'_>, dest: &Path) -> Result<()> {
    register_font()?;
    let (w, h) = chart.chart.size();
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        draw(&root, &chart.chart)
            .and_then(|()| root.present())
            .map_err(|e| anyhow!("drawing {}: {e}", chart.name))?;
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(&pixels)?;
            writer.finish()
        })
        .with_context(|| format!("encoding {}", dest.display()))?;
    write_atomic(dest, &bytes)
}

/// Writes every chart as `DIR/<name>.png` and `DIR/<name>.svg`; returns the files written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for chart in charts(report) {
        let svg_path = dir.join(format!("{}.svg", chart.name));
        write_atomic(&svg_path, svg(&chart)?.as_bytes())?;
        let png_path = dir.join(format!("{}.png", chart.name));
        png(&chart, &png_path)?;
        written.extend([png_path, svg_path]);
    }
    Ok(written)
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart<'_>) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    match chart {
        Chart::Funnel(steps) => draw_funnel(root, steps),
        Chart::Histogram {
            title,
            x_label,
            hist,
        } => draw_histogram(root, title, x_label, hist),
        Chart::Sunburst(v) => draw_sunburst(root, v),
        Chart::Acceptance { x_label, points } => draw_acceptance(root, x_label, points),
        Chart::Loss(curves) => draw_loss(root, curves),
    }
}

fn draw_funnel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    steps: &[super::funnel::Step],
) -> DrawResult<DB> {
    let max = steps.first().map_or(1, |s| s.remaining).max(1) as f64;
    let n = steps.len() as f64;
    let mut chart = ChartBuilder::on(root)
        .caption("Funnel: candidates left after each step", (FONT, 22))
        .margin(12)
        .x_label_area_size(36)
        .build_cartesian_2d(0.0..max * 1.0001, 0.0..n)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("candidate instructions")
        .label_style((FONT, 13))
        .draw()?;
    // The first step at the top.
    let row = |i: usize| n - i as f64 - 1.0;
    chart.draw_series(steps.iter().enumerate().map(|(i, s)| {
        let color = if s.dropped > 0 {
            RGBColor(214, 96, 77)
        } else {
            RGBColor(67, 147, 195)
        };
        Rectangle::new(
            [(0.0, row(i) + 0.12), (s.remaining as f64, row(i) + 0.88)],
            color.mix(0.55).filled(),
        )
    }))?;
    let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    chart.draw_series(steps.iter().enumerate().map(|(i, s)| {
        let dropped = if s.dropped > 0 {
            format!("  (-{})", s.dropped)
        } else {
            String::new()
        };
        Text::new(
            format!("{}: {}{dropped}", s.label, s.remaining),
            (max * 0.01, row(i) + 0.5),
            style.clone(),
        )
    }))?;
    Ok(())
}

fn draw_histogram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    hist: &Histogram,
) -> DrawResult<DB> {
    let top = hist.bins.iter().copied().max().unwrap_or(0).max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..1.0, 0u64..top + top / 10 + 1)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(11)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .x_desc(x_label)
        .y_desc("instructions")
        .label_style((FONT, 13))
        .draw()?;
    chart.draw_series(hist.bins.iter().enumerate().map(|(i, &c)| {
        let w = 1.0 / BINS as f64;
        Rectangle::new(
            [(i as f64 * w + 0.004, 0), ((i + 1) as f64 * w - 0.004, c)],
            RGBColor(67, 147, 195).filled(),
        )
    }))?;
    let note = format!(
        "n = {}, mean = {:.3}, median = {:.3}",
        hist.count, hist.mean, hist.median
    );
    root.draw(&Text::new(
        note,
        (root.dim_in_pixel().0 as i32 - 300, 52),
        (FONT, 14).into_font(),
    ))?;
    Ok(())
}

/// Points of a ring segment between radii `r0 < r1` and angles `a0 < a1` (radians, clockwise
/// from 12 o'clock), for a polygon.
fn ring_segment(center: (i32, i32), r0: f64, r1: f64, a0: f64, a1: f64) -> Vec<(i32, i32)> {
    let steps = ((a1 - a0) / 0.02).ceil().max(1.0) as usize;
    let at = |r: f64, a: f64| {
        (
            center.0 + (r * a.sin()).round() as i32,
            center.1 - (r * a.cos()).round() as i32,
        )
    };
    let mut points: Vec<(i32, i32)> = (0..=steps)
        .map(|k| at(r1, a0 + (a1 - a0) * k as f64 / steps as f64))
        .collect();
    points.extend(
        (0..=steps)
            .rev()
            .map(|k| at(r0, a0 + (a1 - a0) * k as f64 / steps as f64)),
    );
    points
}

fn draw_sunburst<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    v: &VerbNoun,
) -> DrawResult<DB> {
    let (w, h) = root.dim_in_pixel();
    let title = format!(
        "Top {} verbs and their top nouns ({} of {} instructions have the structure)",
        v.top.len(),
        v.with_structure,
        v.instructions
    );
    root.draw(&Text::new(
        title,
        (w as i32 / 2, 20),
        TextStyle::from((FONT, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    let center = (w as i32 / 2, h as i32 / 2 + 16);
    let radius = (w.min(h) as f64 / 2.0) - 40.0;
    let (r0, r1, r2) = (radius * 0.18, radius * 0.58, radius);
    let total: u64 = v.top.iter().map(|e| e.count).sum();
    if total == 0 {
        root.draw(&Text::new(
            "no instruction has a verb-object structure",
            center,
            TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        return Ok(());
    }
    let label = |size: u32| {
        TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Center, VPos::Center))
    };
    let at = |r: f64, a: f64| {
        (
            center.0 + (r * a.sin()).round() as i32,
            center.1 - (r * a.cos()).round() as i32,
        )
    };
    // Labels go on top of every segment and border, so they are drawn last.
    let mut labels: Vec<(String, (i32, i32), u32)> = Vec::new();
    let mut a = 0.0;
    for (i, entry) in v.top.iter().enumerate() {
        let span = 2.0 * PI * entry.count as f64 / total as f64;
        let hue = i as f64 / v.top.len().max(1) as f64;
        root.draw(&Polygon::new(
            ring_segment(center, r0, r1, a, a + span),
            HSLColor(hue, 0.55, 0.55).filled(),
        ))?;
        let mut b = a;
        for (noun, count) in &entry.nouns {
            let noun_span = span * *count as f64 / entry.count as f64;
            root.draw(&Polygon::new(
                ring_segment(center, r1, r2, b, b + noun_span),
                HSLColor(hue, 0.55, 0.75).filled(),
            ))?;
            if noun_span * (r1 + r2) / 2.0 > 34.0 {
                labels.push((noun.clone(), at((r1 + r2) / 2.0, b + noun_span / 2.0), 13));
            }
            b += noun_span;
        }
        // Segment borders.
        for edge in [a, a + span] {
            root.draw(&PathElement::new(
                vec![at(r0, edge), at(r2, edge)],
                WHITE.stroke_width(2),
            ))?;
        }
        if span * (r0 + r1) / 2.0 > 22.0 {
            labels.push((entry.verb.clone(), at((r0 + r1) / 2.0, a + span / 2.0), 15));
        }
        a += span;
    }
    for (text, position, size) in labels {
        root.draw(&Text::new(text, position, label(size)))?;
    }
    Ok(())
}

fn draw_acceptance<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    x_label: &str,
    points: &[(u32, f64)],
) -> DrawResult<DB> {
    let last = points.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Acceptance rate per {x_label}"), (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5..last as f64 + 0.5, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_labels((last as usize).min(20) + 1)
        .x_label_formatter(&|x| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .x_desc(x_label)
        .y_desc("kept / candidates (%)")
        .label_style((FONT, 13))
        .draw()?;
    let color = RGBColor(67, 147, 195);
    let data: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x as f64, 100.0 * y)).collect();
    chart.draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?;
    chart.draw_series(data.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    Ok(())
}

fn draw_loss<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &[LossCurve],
) -> DrawResult<DB> {
    let points = curves.iter().flat_map(|c| c.points.iter());
    let max_step = points.clone().map(|p| p.step).max().unwrap_or(1).max(1);
    let max_loss = points
        .flat_map(|p| std::iter::once(p.loss).chain(p.heldout_loss))
        .fold(0.0f64, f64::max)
        .max(1e-6);
    let mut chart = ChartBuilder::on(root)
        .caption("SFT loss", (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_step as f64, 0.0..max_loss * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .label_style((FONT, 13))
        .draw()?;
    for (i, curve) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                curve.points.iter().map(|p| (p.step as f64, p.loss)),
                color.stroke_width(2),
            ))?
            .label(curve.source.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart.draw_series(curve.points.iter().filter_map(|p| {
            p.heldout_loss
                .map(|h| Circle::new((p.step as f64, h), 4, color.filled()))
        }))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}
