//! The report as one self-contained HTML page: tables and inline SVG charts, no script, no
//! external resource (it opens without a network).

use std::fmt::Write;

use crate::report::{Bucket, Calibration, EquityPoint, Interval, Report, Section};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: f64, dp: usize) -> String {
    if v.is_finite() {
        format!("{v:.dp$}")
    } else {
        "–".into()
    }
}

fn ci(i: &Interval) -> String {
    format!("{} [{}, {}]", num(i.mean, 4), num(i.lo, 4), num(i.hi, 4))
}

const W: f64 = 640.0;
const H: f64 = 240.0;
const PAD: f64 = 40.0;

fn svg_open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">\
         <rect width=\"{W}\" height=\"{H}\" fill=\"#fff\" stroke=\"#ccc\"/>",
        esc(title)
    );
}

fn svg_close(out: &mut String) {
    out.push_str("</svg></figure>\n");
}

fn scale(v: f64, lo: f64, hi: f64, a: f64, b: f64) -> f64 {
    if hi > lo {
        a + (v - lo) / (hi - lo) * (b - a)
    } else {
        (a + b) / 2.0
    }
}

fn equity_chart(out: &mut String, pts: &[EquityPoint]) {
    svg_open(out, "Equity (net P&L, $) and drawdown, by settlement");
    if pts.is_empty() {
        out.push_str("<text x=\"20\" y=\"120\">no settled trades</text>");
        svg_close(out);
        return;
    }
    let ys: Vec<f64> = pts.iter().map(|p| p.equity.to_f64()).collect();
    let dds: Vec<f64> = pts.iter().map(|p| -p.drawdown.to_f64()).collect();
    let lo = ys.iter().chain(&dds).fold(0.0f64, |a, &b| a.min(b));
    let hi = ys.iter().fold(0.0f64, |a, &b| a.max(b));
    let n = pts.len();
    let x = |i: usize| scale(i as f64, 0.0, (n.max(2) - 1) as f64, PAD, W - 10.0);
    let y = |v: f64| scale(v, lo, hi, H - PAD, 10.0);
    let mut dd = format!("M{:.1},{:.1}", x(0), y(0.0));
    for (i, v) in dds.iter().enumerate() {
        let _ = write!(dd, " L{:.1},{:.1}", x(i), y(*v));
    }
    let _ = write!(dd, " L{:.1},{:.1} Z", x(n - 1), y(0.0));
    let _ = write!(out, "<path d=\"{dd}\" fill=\"#f4c7c3\" stroke=\"none\"/>");
    let line: Vec<String> = ys
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
        .collect();
    let _ = write!(
        out,
        "<line x1=\"{PAD}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
         <polyline points=\"{}\" fill=\"none\" stroke=\"#1a73e8\" stroke-width=\"1.5\"/>\
         <text x=\"4\" y=\"14\" font-size=\"11\">{}</text><text x=\"4\" y=\"{}\" font-size=\"11\">{}</text>",
        W - 10.0,
        y(0.0),
        y(0.0),
        line.join(" "),
        num(hi, 2),
        H - PAD,
        num(lo, 2)
    );
    svg_close(out);
}

fn reliability_chart(out: &mut String, model: &Calibration, mid: &Calibration) {
    svg_open(
        out,
        "Reliability: predicted vs observed frequency (blue model, orange mid)",
    );
    let s = H - PAD - 10.0;
    let x = |v: f64| PAD + v * s;
    let y = |v: f64| H - PAD - v * s;
    let _ = write!(
        out,
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"4\"/>",
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    for (c, colour) in [(model, "#1a73e8"), (mid, "#e8710a")] {
        let pts: Vec<String> = c
            .bins
            .iter()
            .filter(|b| b.n > 0)
            .map(|b| format!("{:.1},{:.1}", x(b.mean_pred), y(b.frac_pos)))
            .collect();
        let _ = write!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
            pts.join(" ")
        );
        for p in &pts {
            let (px, py) = p.split_once(',').expect("x,y");
            let _ = write!(
                out,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
    }
    svg_close(out);
}

fn bar_chart(out: &mut String, title: &str, buckets: &[Bucket]) {
    svg_open(out, title);
    if buckets.is_empty() {
        out.push_str("<text x=\"20\" y=\"120\">no settled trades</text>");
        svg_close(out);
        return;
    }
    let vals: Vec<f64> = buckets.iter().map(|b| b.net.to_f64()).collect();
    let lo = vals.iter().fold(0.0f64, |a, &b| a.min(b));
    let hi = vals.iter().fold(0.0f64, |a, &b| a.max(b));
    let y = |v: f64| scale(v, lo, hi, H - PAD, 14.0);
    let bw = (W - PAD - 10.0) / buckets.len() as f64;
    for (i, (b, v)) in buckets.iter().zip(&vals).enumerate() {
        let x0 = PAD + i as f64 * bw + 2.0;
        let (top, bot) = (y(v.max(0.0)), y(v.min(0.0)));
        let colour = if *v >= 0.0 { "#34a853" } else { "#ea4335" };
        let _ = write!(
            out,
            "<rect x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\
             <text x=\"{x0:.1}\" y=\"{:.1}\" font-size=\"10\">{} ({})</text>",
            (bw - 4.0).max(1.0),
            (bot - top).max(0.5),
            H - PAD + 14.0,
            esc(&b.label),
            b.trades
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{PAD}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
        W - 10.0,
        y(0.0),
        y(0.0)
    );
    svg_close(out);
}

fn badge(in_sample: bool) -> &'static str {
    if in_sample {
        "<span class=\"ins\">IN-SAMPLE</span> "
    } else {
        ""
    }
}

fn section_rows(out: &mut String, s: &Section) {
    let p = &s.pnl;
    let _ = writeln!(
        out,
        "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        badge(s.in_sample),
        esc(&s.name),
        p.trades,
        p.contracts,
        p.win_rate.map_or("–".into(), |w| num(w, 3)),
        p.gross,
        p.fees,
        p.net,
        p.roi.map_or("–".into(), |r| num(r, 4)),
        p.max_drawdown,
        ci(&p.per_market),
        ci(&p.per_trade),
        p.open_trades,
        s.verdict.as_str()
    );
}

/// The page for `report`.
pub fn render(report: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:1100px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}\
         .ins{{background:#c5221f;color:#fff;padding:0 4px;border-radius:3px;font-size:11px}}\
         figure{{display:inline-block;margin:0.5em}}</style></head><body>\n<h1>{}{}</h1>\n",
        esc(&report.strategy),
        badge(report.in_sample),
        esc(&report.strategy)
    );
    o.push_str("<h2>Summary</h2><ul>");
    for line in &report.overall.summary {
        let _ = write!(
            o,
            "<li>{}{}</li>",
            badge(report.overall.in_sample),
            esc(line)
        );
    }
    o.push_str(
        "</ul>\n<h2>P&amp;L (dollars)</h2><table><tr><th>fold</th><th>trades</th>\
         <th>contracts</th><th>win rate</th><th>gross</th><th>fees</th><th>net</th><th>ROI</th>\
         <th>max drawdown</th><th>net per market [95%]</th><th>net per trade [95%]</th>\
         <th>open trades</th><th>verdict</th></tr>\n",
    );
    for s in &report.folds {
        section_rows(&mut o, s);
    }
    section_rows(&mut o, &report.overall);
    o.push_str(
        "</table>\n<h2>Robustness</h2><table><tr><th>section</th><th>stress</th>\
         <th>trades</th><th>fees</th><th>net</th><th>net per market [95%]</th>\
         <th>net per trade [95%]</th></tr>\n",
    );
    for s in report.folds.iter().chain(std::iter::once(&report.overall)) {
        for r in &s.robustness {
            let _ = writeln!(
                o,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                badge(r.in_sample),
                esc(&s.name),
                esc(&r.name),
                r.trades,
                r.fees,
                r.net,
                ci(&r.per_market),
                ci(&r.per_trade)
            );
        }
    }
    o.push_str("</table>\n<h2>Model vs market mid</h2><table><tr><th>section</th><th>steps</th>\
         <th>markets</th><th>Brier model</th><th>Brier mid</th><th>log loss model</th>\
         <th>log loss mid</th><th>ECE model</th><th>ECE mid</th><th>traded steps</th>\
         <th>Brier model (traded)</th><th>Brier mid (traded)</th><th>model − mid coefficient [95%]</th></tr>\n");
    for s in report.folds.iter().chain(std::iter::once(&report.overall)) {
        if let Some(m) = &s.model_vs_mid {
            let _ = writeln!(
                o,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                badge(s.in_sample),
                esc(&s.name),
                m.steps,
                m.markets,
                num(m.brier_model, 4),
                num(m.brier_mid, 4),
                num(m.log_loss_model, 4),
                num(m.log_loss_mid, 4),
                num(m.calibration_model.ece, 4),
                num(m.calibration_mid.ece, 4),
                m.traded_steps,
                num(m.brier_model_traded, 4),
                num(m.brier_mid_traded, 4),
                m.beyond_price.map_or("not estimable".into(), |c| format!(
                    "{} [{}, {}]",
                    num(c.estimate, 3),
                    num(c.lo, 3),
                    num(c.hi, 3)
                ))
            );
        }
    }
    o.push_str("</table>\n");
    let s = &report.overall;
    if let Some(m) = &s.model_vs_mid {
        o.push_str(
            "<h3>Brier by time to close (overall)</h3><table><tr><th>seconds to close</th>\
             <th>steps</th><th>model</th><th>mid</th></tr>",
        );
        for h in &m.by_horizon {
            let _ = write!(
                o,
                "<tr><td>{}{}–{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                badge(s.in_sample),
                num(h.from_s, 0),
                h.to_s.map_or("".into(), |t| num(t, 0)),
                h.n,
                num(h.brier_model, 4),
                num(h.brier_mid, 4)
            );
        }
        o.push_str("</table><h3>Calibration (overall)</h3><table><tr><th>bin</th><th>n model</th>\
             <th>predicted</th><th>observed</th><th>n mid</th><th>predicted</th><th>observed</th></tr>");
        for (a, b) in m.calibration_model.bins.iter().zip(&m.calibration_mid.bins) {
            let _ = write!(
                o,
                "<tr><td>{}{}–{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                badge(s.in_sample),
                num(a.lo, 1),
                num(a.hi, 1),
                a.n,
                num(a.mean_pred, 3),
                num(a.frac_pos, 3),
                b.n,
                num(b.mean_pred, 3),
                num(b.frac_pos, 3)
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("<h2>Charts (overall)</h2>\n");
    equity_chart(&mut o, &s.equity);
    if let Some(m) = &s.model_vs_mid {
        reliability_chart(&mut o, &m.calibration_model, &m.calibration_mid);
    }
    bar_chart(&mut o, "Net P&L by entry price ($)", &s.by_entry_price);
    bar_chart(
        &mut o,
        "Net P&L by time to close at the decision ($)",
        &s.by_time_to_close,
    );
    if report.folds.len() > 1 {
        o.push_str("<h2>Equity by fold</h2>\n");
        for f in &report.folds {
            let _ = write!(o, "<h3>{}{}</h3>", badge(f.in_sample), esc(&f.name));
            equity_chart(&mut o, &f.equity);
        }
    }
    o.push_str("<h2>Notes</h2><ul>");
    for n in &report.notes {
        let _ = write!(o, "<li>{}</li>", esc(n));
    }
    o.push_str("</ul></body></html>\n");
    o
}
