//! The simulation report: one HTML page with the headline numbers and SVG histograms of time in
//! hospital and waiting time, fixed order against the planner.

use super::sim::Outcome;
use std::fmt::Write as _;

fn histogram(title: &str, a: &[f64], b: &[f64], labels: (&str, &str)) -> String {
    let max = a.iter().chain(b).copied().fold(0.0f64, f64::max).max(1.0);
    let bins = 24usize;
    let width = (max / bins as f64).max(1.0).ceil();
    let count = |v: &[f64]| {
        let mut c = vec![0usize; bins + 1];
        for x in v {
            c[((x / width) as usize).min(bins)] += 1;
        }
        c
    };
    let (ca, cb) = (count(a), count(b));
    let top = ca.iter().chain(&cb).copied().max().unwrap_or(1).max(1) as f64;
    let (w, h, pad) = (720.0, 260.0, 40.0);
    let bw = (w - 2.0 * pad) / (bins + 1) as f64;
    let mut s = String::new();
    let _ = write!(s, r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif" font-size="12">"##);
    let _ = write!(s, r##"<text x="{pad}" y="18" font-size="14">{title}</text>"##);
    for (i, (&x, &y)) in ca.iter().zip(&cb).enumerate() {
        let x0 = pad + i as f64 * bw;
        for (k, (c, color)) in [(x, "#94a3b8"), (y, "#2563eb")].into_iter().enumerate() {
            let bh = c as f64 / top * (h - 2.0 * pad - 10.0);
            let _ = write!(s, r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"/>"##, x0 + k as f64 * bw / 2.0, h - pad - bh, bw / 2.0 - 1.0);
        }
        if i % 4 == 0 {
            let _ = write!(s, r##"<text x="{x0:.1}" y="{:.1}">{:.0}</text>"##, h - pad + 14.0, i as f64 * width);
        }
    }
    let _ = write!(s, r##"<text x="{:.1}" y="{:.1}">min</text>"##, w - pad, h - pad + 14.0);
    let _ = write!(
        s,
        r##"<rect x="{}" y="28" width="10" height="10" fill="#94a3b8"/><text x="{}" y="37">{}</text><rect x="{}" y="28" width="10" height="10" fill="#2563eb"/><text x="{}" y="37">{}</text></svg>"##,
        w - 260.0,
        w - 245.0,
        labels.0,
        w - 130.0,
        w - 115.0,
        labels.1
    );
    s
}

/// The whole report page.
pub fn html(seed: u64, runs: &[Outcome; 3]) -> String {
    let [fixed, one, planner] = runs;
    let cut = |a: f64, b: f64| (1.0 - b / a) * 100.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>clinicflow simulate --seed {seed}</title>
<style>body{{font-family:'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif;margin:2em;color:#111}}table{{border-collapse:collapse}}td,th{{border:1px solid #cbd5e1;padding:4px 10px;text-align:right}}th{{background:#f1f5f9}}</style></head><body>
<h1>门诊上午模拟 · Outpatient morning, seed {seed}</h1>
<p>{} patients; the same arrivals, orders, service times and walking times under both policies.</p>
<p><b>fixed order</b>: the order sheet's order, a number taken at each desk. <b>planner, one ticket</b>: the planner picks each next stop and clinicflow issues that ticket when the patient accepts. <b>planner</b>: clinicflow as deployed, a ticket in every queue the rules allow at once, the patient sent wherever their turn comes first.</p>
<table><tr><th></th><th>fixed order (order sheet)</th><th>planner, one ticket</th><th>planner</th><th>cut (planner vs fixed)</th></tr>"##,
        fixed.patients
    );
    for (name, a, o, b) in [
        ("mean time in hospital (min)", fixed.mean_min, one.mean_min, planner.mean_min),
        ("p90 time in hospital (min)", fixed.p90_min, one.p90_min, planner.p90_min),
        ("mean waiting (min)", fixed.mean_wait_min, one.mean_wait_min, planner.mean_wait_min),
        ("p90 waiting (min)", fixed.p90_wait_min, one.p90_wait_min, planner.p90_wait_min),
    ] {
        let _ = write!(s, "<tr><th>{name}</th><td>{a:.1}</td><td>{o:.1}</td><td>{b:.1}</td><td>{:.1}%</td></tr>", cut(a, b));
    }
    let _ = write!(s, "</table><h2>Room utilisation</h2><table><tr><th>service</th><th>fixed</th><th>planner, one ticket</th><th>planner</th></tr>");
    for (i, (name, a)) in fixed.utilisation.iter().enumerate() {
        let _ = write!(s, "<tr><th>{name}</th><td>{:.0}%</td><td>{:.0}%</td><td>{:.0}%</td></tr>", a * 100.0, one.utilisation[i].1 * 100.0, planner.utilisation[i].1 * 100.0);
    }
    s.push_str("</table>");
    s.push_str(&histogram("在院时间分布 · time in hospital (min)", &fixed.time_in_hospital_min, &planner.time_in_hospital_min, ("fixed order", "planner")));
    s.push_str(&histogram("排队时间分布 · waiting (min)", &fixed.waiting_min, &planner.waiting_min, ("fixed order", "planner")));
    s.push_str("</body></html>\n");
    s
}
