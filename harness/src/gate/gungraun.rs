//! Instruction counts from gungraun's JSON output.

use std::collections::BTreeMap;

/// gungraun's output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GungraunError {
    #[error("gungraun output: {0}: {1}")]
    Json(serde_json::Error, String),
    #[error("gungraun output: no Ir for {0}")]
    NoIr(String),
}

/// Instruction counts from gungraun's JSON output (`--output-format=json`, one summary per
/// line): the `Ir` of each benchmark, named `function/id`.
///
/// # Errors
/// A line that is not a gungraun summary.
pub fn parse_gungraun(text: &str) -> Result<BTreeMap<String, u64>, GungraunError> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| GungraunError::Json(e, line.to_string()))?;
        let function = v["function_name"].as_str().unwrap_or("?");
        let id = v["id"].as_str().unwrap_or("");
        let name = if id.is_empty() {
            function.to_string()
        } else {
            format!("{function}/{id}")
        };
        let ir = find_ir(&v).ok_or_else(|| GungraunError::NoIr(name.clone()))?;
        out.insert(name, ir);
    }
    Ok(out)
}

/// The first `Ir` count in a summary (the total of the benchmark's callgrind profile).
fn find_ir(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(ir) = m.get("Ir") {
                if let Some(n) = first_int(ir) {
                    return Some(n);
                }
            }
            m.values().find_map(find_ir)
        }
        serde_json::Value::Array(a) => a.iter().find_map(find_ir),
        _ => None,
    }
}

/// The "now" side of a metric: the first integer under its `metrics` (gungraun writes
/// `{"metrics": {"Left": {"Int": N}}}` or `{"Both": [{"Int": new}, {"Int": old}]}`).
fn first_int(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::Object(m) => ["metrics", "Left", "Both", "Int"]
            .iter()
            .find_map(|k| m.get(*k).and_then(first_int)),
        serde_json::Value::Array(a) => a.first().and_then(first_int),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gungraun_json_lines_give_instruction_counts() {
        let line = r#"{"function_name":"compose_720p","id":"layers_8","profiles":[{"summaries":{"total":{"summary":{"Callgrind":{"Ir":{"metrics":{"Both":[{"Int":1234},{"Int":1200}]},"diffs":null}}}}}}]}"#;
        let other = r#"{"function_name":"mark","id":"pairs_100","profiles":[{"summaries":{"total":{"summary":{"Callgrind":{"Ir":{"metrics":{"Left":{"Int":99}}}}}}}}]}"#;
        let got = parse_gungraun(&format!("noise\n{line}\n{other}\n")).unwrap();
        assert_eq!(got["compose_720p/layers_8"], 1234);
        assert_eq!(got["mark/pairs_100"], 99);
    }
}
