//! Reading a stored result's evidence (as the collector's API returns it) in assertions.

use serde_json::Value;

/// The trace of a result as `"<dir> <flags>"` per packet: `["out SYN", "in RST,ACK"]`.
pub fn packet_flow(result: &Value) -> Vec<String> {
    packets(result)
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["dir"].as_str().unwrap_or("?"),
                p["flags"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The packets of a result's trace (empty when it has none).
pub fn packets(result: &Value) -> Vec<Value> {
    result["evidence"]["trace"]["packets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The first inbound reset of a result's trace.
pub fn inbound_reset(result: &Value) -> Option<Value> {
    packets(result).into_iter().find(|p| {
        p["dir"] == "in"
            && p["flags"]
                .as_str()
                .is_some_and(|f| f.split(',').any(|f| f == "RST"))
    })
}

/// The listeners of a result's evidence (empty when it has none).
pub fn listeners(result: &Value) -> Vec<Value> {
    result["evidence"]["listeners"]["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether any owner of `listener` has a command line containing `text`.
pub fn owned_by(listener: &Value, text: &str) -> bool {
    listener["owners"].as_array().is_some_and(|owners| {
        owners
            .iter()
            .any(|o| o["cmdline"].as_str().is_some_and(|c| c.contains(text)))
    })
}
