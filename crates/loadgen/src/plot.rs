//! The latency-percentile plot runs are compared by: latency (ms) against percentile, the percentile axis
//! stretched toward the tail ("nines": 90%, 99%, 99.9% evenly apart), one line per run and RPC. Drawn as
//! SVG from [`Summary`] curves, so a plot can hold runs made at different times.

use plotters::prelude::*;

use crate::Summary;

/// Plot size in pixels.
const SIZE: (u32, u32) = (960, 540);
/// The percentile axis ends at 99.999% (five nines); the maximum is drawn there.
const NINES: f64 = 5.0;

/// `-log10(1 - p/100)`: where percentile `p` stands on the axis.
fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(10f64.powf(-NINES));
    -rest.log10()
}

/// The percentile at axis position `x` (nines), as an axis label.
fn label(x: f64) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as usize).saturating_sub(2);
    format!("{percentile:.decimals$}%")
}

/// An SVG plot of every RPC's curve in `runs`, each line named "label RPC".
pub fn svg(title: &str, runs: &[Summary]) -> anyhow::Result<String> {
    let lines: Vec<(String, &[[f64; 2]])> = runs
        .iter()
        .flat_map(|run| {
            run.rpcs
                .iter()
                .filter(|(_, rpc)| !rpc.curve.is_empty())
                .map(move |(name, rpc)| (format!("{} {name}", run.label), rpc.curve.as_slice()))
        })
        .collect();
    anyhow::ensure!(!lines.is_empty(), "no latencies to plot");
    let top = lines
        .iter()
        .flat_map(|(_, curve)| curve.iter().map(|[_, ms]| *ms))
        .fold(0.0_f64, f64::max)
        .max(0.001)
        * 1.05;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..NINES, 0.0..top)
            .map_err(draw)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_labels(NINES as usize + 1)
            .x_label_formatter(&|x| label(*x))
            .draw()
            .map_err(draw)?;
        for (i, (name, curve)) in lines.iter().enumerate() {
            let colour = Palette99::pick(i).stroke_width(2);
            let points = curve.iter().map(|[percentile, ms]| (nines(*percentile), *ms));
            chart
                .draw_series(LineSeries::new(points, colour))
                .map_err(draw)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(draw)?;
        root.present().map_err(draw)?;
    }
    Ok(out)
}

fn draw(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_stands_percentiles_a_nine_apart() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), NINES, "the maximum at the axis' end");
        assert_eq!(label(0.0), "0%");
        assert_eq!(label(2.0), "99%");
        assert_eq!(label(4.0), "99.99%");
    }
}
