//! The CSV files positioning reads: anchors, outlines, calibration samples, recorded walks and
//! reference paths. Columns are found by name, so extra columns are fine and order does not
//! matter; every error names the file's line and column.

use super::filter::{Reading, Scan};
use super::radio::{AnchorDef, Sample};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {message}")]
pub struct CsvError {
    /// 1-based, the header being line 1.
    pub line: usize,
    pub message: String,
}

struct Table {
    header: HashMap<String, usize>,
    rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    fn parse(text: &str) -> Result<Table, CsvError> {
        let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(text.as_bytes());
        let header = reader
            .headers()
            .map_err(|e| CsvError { line: 1, message: format!("header: {e}") })?
            .iter()
            .enumerate()
            .map(|(i, h)| (h.to_ascii_lowercase(), i))
            .collect();
        let mut rows = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| CsvError { line: i + 2, message: e.to_string() })?;
            rows.push((i + 2, rec.iter().map(str::to_owned).collect()));
        }
        Ok(Table { header, rows })
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.header.get(name).copied()
    }

    fn need(&self, name: &str) -> Result<usize, CsvError> {
        self.col(name).ok_or_else(|| CsvError { line: 1, message: format!("column {name}: missing") })
    }
}

fn number(row: &(usize, Vec<String>), col: usize, name: &str) -> Result<f64, CsvError> {
    let v = row.1.get(col).map(String::as_str).unwrap_or("");
    v.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| CsvError { line: row.0, message: format!("column {name}: {v:?} is not a number") })
}

fn optional(row: &(usize, Vec<String>), col: usize, name: &str) -> Result<Option<f64>, CsvError> {
    match row.1.get(col).map(String::as_str).unwrap_or("") {
        "" | "nan" | "NaN" => Ok(None),
        _ => number(row, col, name).map(Some),
    }
}

/// `id,x,y[,z][,level]`.
pub fn read_anchors(text: &str) -> Result<Vec<AnchorDef>, CsvError> {
    let t = Table::parse(text)?;
    let (id, x, y) = (t.need("id")?, t.need("x")?, t.need("y")?);
    let (z, level) = (t.col("z"), t.col("level"));
    t.rows
        .iter()
        .map(|r| {
            let name = r.1[id].clone();
            if name.is_empty() {
                return Err(CsvError { line: r.0, message: "column id: empty".into() });
            }
            Ok(AnchorDef {
                id: name,
                level: level.map(|l| r.1[l].clone()).unwrap_or_default(),
                x: number(r, x, "x")?,
                y: number(r, y, "y")?,
                z: match z {
                    Some(z) => number(r, z, "z")?,
                    None => 2.5,
                },
            })
        })
        .collect()
}

/// `x,y` per corner.
pub fn read_outline(text: &str) -> Result<Vec<[f64; 2]>, CsvError> {
    let t = Table::parse(text)?;
    let (x, y) = (t.need("x")?, t.need("y")?);
    t.rows.iter().map(|r| Ok([number(r, x, "x")?, number(r, y, "y")?])).collect()
}

/// The column of each anchor's readings: `rssi_<id>` or `<id>`.
fn anchor_columns(t: &Table, anchors: &[AnchorDef]) -> Result<Vec<usize>, CsvError> {
    anchors
        .iter()
        .map(|a| {
            let id = a.id.to_ascii_lowercase();
            t.col(&format!("rssi_{id}")).or_else(|| t.col(&id)).ok_or_else(|| CsvError { line: 1, message: format!("column rssi_{}: missing (one per anchor)", a.id) })
        })
        .collect()
}

/// Calibration samples: `x,y[,level]` and one `rssi_<anchor>` column per anchor (empty = not heard).
pub fn read_samples(text: &str, anchors: &[AnchorDef]) -> Result<Vec<Sample>, CsvError> {
    let t = Table::parse(text)?;
    let (x, y, level) = (t.need("x")?, t.need("y")?, t.col("level"));
    let cols = anchor_columns(&t, anchors)?;
    t.rows
        .iter()
        .map(|r| {
            let rssi = cols.iter().zip(anchors).map(|(&c, a)| optional(r, c, &format!("rssi_{}", a.id)).map(|v| v.map(|v| v as f32))).collect::<Result<_, _>>()?;
            Ok(Sample { level: level.map(|l| r.1[l].clone()).unwrap_or_default(), x: number(r, x, "x")?, y: number(r, y, "y")?, rssi })
        })
        .collect()
}

/// One row of a recorded walk: a scan, and where the tag truly was when the file says so.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkRow {
    pub scan: Scan,
    pub truth: Option<(String, f64, f64)>,
}

/// Milliseconds from a timestamp in seconds, milliseconds, microseconds or nanoseconds since
/// the epoch (told apart by size), or from a relative time in seconds.
pub fn to_ms(ts: f64) -> i64 {
    let ms = if ts > 1e17 {
        ts / 1e6
    } else if ts > 1e14 {
        ts / 1e3
    } else if ts > 1e11 {
        ts
    } else {
        ts * 1e3
    };
    ms.round() as i64
}

/// A recorded walk: `ts` (any epoch unit, or seconds), one `rssi_<anchor>` column per anchor,
/// and optionally the truth in `x,y[,level]`.
pub fn read_walk(text: &str, anchors: &[AnchorDef]) -> Result<Vec<WalkRow>, CsvError> {
    let t = Table::parse(text)?;
    let ts = t.col("ts").or_else(|| t.col("t")).or_else(|| t.col("time")).ok_or_else(|| CsvError { line: 1, message: "column ts: missing".into() })?;
    let cols = anchor_columns(&t, anchors)?;
    let (x, y, level) = (t.col("x"), t.col("y"), t.col("level"));
    t.rows
        .iter()
        .map(|r| {
            let mut readings = Vec::new();
            for (i, (&c, a)) in cols.iter().zip(anchors).enumerate() {
                if let Some(v) = optional(r, c, &format!("rssi_{}", a.id))? {
                    readings.push(Reading { anchor: i as u16, rssi: v as f32 });
                }
            }
            let truth = match (x, y) {
                (Some(x), Some(y)) => Some((level.map(|l| r.1[l].clone()).unwrap_or_default(), number(r, x, "x")?, number(r, y, "y")?)),
                _ => None,
            };
            Ok(WalkRow { scan: Scan { t_ms: to_ms(number(r, ts, "ts")?), readings }, truth })
        })
        .collect()
}

/// A reference path: `x0,y0,x1,y1` per segment.
pub fn read_path(text: &str) -> Result<Vec<[[f64; 2]; 2]>, CsvError> {
    let t = Table::parse(text)?;
    let c = [t.need("x0")?, t.need("y0")?, t.need("x1")?, t.need("y1")?];
    t.rows.iter().map(|r| Ok([[number(r, c[0], "x0")?, number(r, c[1], "y0")?], [number(r, c[2], "x1")?, number(r, c[3], "y1")?]])).collect()
}
