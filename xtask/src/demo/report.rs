//! The end of the demo: the summary table (each act's figures, with units) and the
//! `--json` object.

use super::acts::{Aggregation, Backup, Failover};
use super::display::mb;
use serde_json::{json, Value};

/// Everything the demo measured.
#[derive(Debug)]
pub struct Report {
    pub aggregation: Aggregation,
    /// None without MPTCP.
    pub failover: Option<Failover>,
    pub backup: Option<Backup>,
    /// The SVG, as shown to the user.
    pub plot: Option<String>,
    /// Wall time of the whole demo, seconds.
    pub secs: f64,
}

fn share(v: [u64; 2], p: usize) -> f64 {
    100.0 * v[p] as f64 / (v[0] + v[1]).max(1) as f64
}

impl Report {
    /// The summary table, one line per figure.
    pub fn table(&self) -> Vec<String> {
        let mut rows: Vec<(&str, String, String)> = Vec::new();
        let a = &self.aggregation;
        rows.push((
            "aggregation",
            "TCP, path 1".into(),
            format!("{:.1} Mbit/s", a.tcp_mbps),
        ));
        match (a.mptcp_mbps, a.ratio) {
            (Some(m), Some(r)) => {
                rows.push(("", "MPTCP, paths 1 + 2".into(), format!("{m:.1} Mbit/s")));
                rows.push(("", "MPTCP / TCP".into(), format!("{r:.2}x")));
            }
            _ => rows.push(("", "MPTCP".into(), "not run (no MPTCP)".into())),
        }
        if let Some(f) = &self.failover {
            rows.push((
                "failover",
                "delivered, SHA-256 at the receiver".into(),
                format!(
                    "{}, {}",
                    mb(f.bytes),
                    if f.sha256_ok { "matches" } else { "DIFFERS" }
                ),
            ));
            rows.push((
                "",
                format!("longest stall (path 1 down {:.1} s)", f.down_secs),
                format!("{:.0} ms", f.stall_ms),
            ));
            for (p, b) in f.bytes_per_path.iter().enumerate() {
                rows.push((
                    "",
                    format!("path {} before / during / after", p + 1),
                    format!(
                        "{:.1} / {:.1} / {:.1} MB",
                        b[0] as f64 / 1e6,
                        b[1] as f64 / 1e6,
                        b[2] as f64 / 1e6
                    ),
                ));
            }
        }
        if let Some(b) = &self.backup {
            rows.push((
                "backup",
                "path 1 / path 2 (backup), path 1 up".into(),
                format!(
                    "{:.1} / {:.1} MB ({:.1}% on the backup)",
                    b.before[0] as f64 / 1e6,
                    b.before[1] as f64 / 1e6,
                    share(b.before, 1)
                ),
            ));
            rows.push((
                "",
                "path 1 / path 2 (backup), path 1 down".into(),
                format!(
                    "{:.1} / {:.1} MB ({:.1}% on the backup)",
                    b.after[0] as f64 / 1e6,
                    b.after[1] as f64 / 1e6,
                    share(b.after, 1)
                ),
            ));
            rows.push((
                "",
                "delivered, SHA-256; longest stall".into(),
                format!(
                    "{}, {}; {:.0} ms",
                    mb(b.bytes),
                    if b.sha256_ok { "matches" } else { "DIFFERS" },
                    b.stall_ms
                ),
            ));
        }
        if let Some(p) = &self.plot {
            rows.push(("plot", "per-subflow throughput".into(), p.clone()));
        }
        rows.push(("", "wall time".into(), format!("{:.1} s", self.secs)));
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let mut out = vec![format!("Summary ({} = 10^6 bytes)", "MB")];
        for (act, what, value) in rows {
            out.push(format!("  {act:<w0$}  {what:<w1$}  {value}"));
        }
        out
    }

    /// The `--json` object, on one line, its keys in the order the issue lists them
    /// (serde_json's own maps sort them).
    pub fn json(&self) -> String {
        let a = &self.aggregation;
        let failover = self.failover.as_ref().map(|f| {
            object(&[
                ("sha256_ok", json!(f.sha256_ok)),
                ("stall_ms", json!(round(f.stall_ms, 0))),
                ("bytes_per_path", json!(f.bytes_per_path)),
            ])
        });
        let backup = self.backup.as_ref().map(|b| {
            object(&[
                ("bytes_per_path_before", json!(b.before)),
                ("bytes_per_path_after", json!(b.after)),
            ])
        });
        let raw = |v: Option<String>| v.unwrap_or_else(|| "null".to_string());
        format!(
            "{{\"tcp_mbps\":{},\"mptcp_mbps\":{},\"ratio\":{},\"failover\":{},\"backup\":{},\"plot\":{}}}",
            json!(round(a.tcp_mbps, 2)),
            json!(a.mptcp_mbps.map(|v| round(v, 2))),
            json!(a.ratio.map(|v| round(v, 3))),
            raw(failover),
            raw(backup),
            json!(self.plot)
        )
    }
}

/// `{"k":v,...}` with the keys in the order given.
fn object(fields: &[(&str, Value)]) -> String {
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json!(k)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}
