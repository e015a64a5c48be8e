//! A hand-written SVG bar chart of a time-series result (`invctl report ... --chart out.svg`):
//! one bar per period of the first column (`month`, `week`, `quarter`, ...), its height the sum
//! of the chosen value column over that period's rows (so monthly_sales' per-SKU rows add up to
//! the month's total).

use crate::table::ResultTable;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 420.0;
const MARGIN_LEFT: f64 = 90.0;
const MARGIN_BOTTOM: f64 = 70.0;
const MARGIN_TOP: f64 = 50.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The value column: `revenue_cents` if there is one, else the last all-numeric column.
fn value_column(t: &ResultTable) -> Option<usize> {
    if let Some(i) = t.columns.iter().position(|c| c == "revenue_cents") {
        return Some(i);
    }
    (1..t.columns.len()).rev().find(|&i| {
        t.rows
            .iter()
            .all(|r| r[i].is_empty() || r[i].parse::<f64>().is_ok())
    })
}

/// The chart, or an error naming why the result has no time series.
pub fn svg(title: &str, t: &ResultTable) -> Result<String, String> {
    let value = value_column(t).ok_or("the result has no numeric column to chart")?;
    let mut bars: Vec<(String, f64)> = Vec::new();
    for row in &t.rows {
        let v: f64 = row[value].parse().unwrap_or(0.0);
        match bars.last_mut() {
            Some((label, total)) if *label == row[0] => *total += v,
            _ => bars.push((row[0].clone(), v)),
        }
    }
    let max = bars
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let plot_w = WIDTH - MARGIN_LEFT - 20.0;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let slot = plot_w / bars.len().max(1) as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"28\" font-size=\"18\" text-anchor=\"middle\">{} — {} by {}</text>\n",
        WIDTH / 2.0,
        escape(title),
        escape(&t.columns[value]),
        escape(&t.columns[0]),
    );
    let base = MARGIN_TOP + plot_h;
    for i in 0..=4 {
        let y = base - plot_h * f64::from(i) / 4.0;
        let label = max * f64::from(i) / 4.0;
        out.push_str(&format!(
            "<line x1=\"{MARGIN_LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label:.0}</text>\n",
            WIDTH - 20.0,
            MARGIN_LEFT - 6.0,
            y + 4.0
        ));
    }
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = plot_h * v / max;
        let x = MARGIN_LEFT + slot * i as f64 + slot * 0.15;
        out.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4472c4\"><title>{}: {v}</title></rect>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {:.1} {:.1})\">{}</text>\n",
            base - h,
            slot * 0.7,
            escape(label),
            x + slot * 0.35,
            base + 14.0,
            x + slot * 0.35,
            base + 14.0,
            escape(label)
        ));
    }
    out.push_str(&format!(
        "<line x1=\"{MARGIN_LEFT}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\" stroke=\"black\"/>\n</svg>\n",
        WIDTH - 20.0
    ));
    Ok(out)
}
