//! The packets of a failed connection as an inline SVG ladder (sequence) diagram: the probe's
//! line on the left, the server's on the right, one slanted arrow per packet, top to bottom in
//! the order seen. No script, no `<defs>` or ids (several ladders share one page), no inline
//! styles: the page's stylesheet styles these classes.
//!
//! - `ev-ladder`: the `<svg>` element.
//! - `ev-ladder-host`: the two vertical lines (probe, server).
//! - `ev-ladder-name`: "probe" and "server" above the lines.
//! - `ev-ladder-addr`: the local and remote addresses under those names.
//! - `ev-pkt`: one packet's `<g>` (its `<title>`, arrow line, head, labels); with it
//!   - `ev-out` (probe to server) or `ev-in` (server or path to probe),
//!   - `ev-syn` (SYN), `ev-synack` (SYN,ACK), `ev-rst` (RST), `ev-fin` (FIN), `ev-data`
//!     (carries payload): what the packet is, at most one of the first four.
//! - `ev-arrow`: the arrow's shaft (`<line>`); `ev-arrowhead`: its head (`<polygon>`).
//! - `ev-pkt-flags`: the flags above the arrow; `ev-pkt-meta`: TTL and payload length under it.
//! - `ev-pkt-time`: the time since the first packet, in the left margin.
//! - `ev-ladder-note`: the line under the arrows ("no packets", "N more packets not kept").

use std::fmt::Write;

use causeway_schema::{Direction, PacketTrace, TRACE_MAX_PACKETS, TcpFlags, TracePacket};

use super::layout::esc as escape_html;

/// The viewBox's width; the diagram scales to its container.
const WIDTH: f64 = 640.0;
/// The probe's and the server's vertical lines.
const LEFT_X: f64 = 150.0;
const RIGHT_X: f64 = 600.0;
/// Where the first arrow starts, under the two hosts' labels.
const FIRST_Y: f64 = 62.0;
/// From one arrow's start to the next one's.
const ROW: f64 = 34.0;
/// How far an arrow drops from its start to its head.
const SLANT: f64 = 12.0;
/// The arrow head's length and half-width.
const HEAD_LEN: f64 = 9.0;
const HEAD_HALF: f64 = 4.0;

/// The ladder of `trace`, as an `<svg>` element ready to go inside HTML. At most
/// [`TRACE_MAX_PACKETS`] arrows; packets beyond (in the trace or counted in `truncated`) are
/// told under them.
pub fn ladder_svg(trace: &PacketTrace) -> String {
    let shown = &trace.packets[..trace.packets.len().min(TRACE_MAX_PACKETS)];
    let more = u64::from(trace.truncated) + (trace.packets.len() - shown.len()) as u64;
    let rows = shown.len().max(1) as f64;
    let bottom = FIRST_Y + rows * ROW;
    let note = shown.is_empty() || more > 0;
    let height = bottom + if note { 30.0 } else { 8.0 };

    let title = escape_html(&summary(trace, shown.len()));
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"ev-ladder\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" \
         viewBox=\"0 0 {WIDTH:.0} {height:.0}\" preserveAspectRatio=\"xMinYMin meet\" \
         role=\"img\" aria-label=\"{title}\"><title>{title}</title>"
    );
    for (x, name, addr) in [
        (LEFT_X, "probe", trace.local.to_string()),
        (RIGHT_X, "server", trace.remote.to_string()),
    ] {
        let _ = write!(
            svg,
            "<text class=\"ev-ladder-name\" x=\"{x:.0}\" y=\"18\" \
             text-anchor=\"middle\">{name}</text>\
             <text class=\"ev-ladder-addr\" x=\"{x:.0}\" y=\"36\" \
             text-anchor=\"middle\">{}</text>\
             <line class=\"ev-ladder-host\" x1=\"{x:.0}\" y1=\"44\" x2=\"{x:.0}\" \
             y2=\"{bottom:.0}\"/>",
            escape_html(&addr)
        );
    }
    for (n, p) in shown.iter().enumerate() {
        packet(&mut svg, p, FIRST_Y + n as f64 * ROW);
    }
    if note {
        let text = if shown.is_empty() {
            "no packets captured".to_owned()
        } else {
            let plural = if more == 1 { "" } else { "s" };
            format!("… {more} more packet{plural} not kept")
        };
        let _ = write!(
            svg,
            "<text class=\"ev-ladder-note\" x=\"{:.0}\" y=\"{:.0}\" \
             text-anchor=\"middle\">{}</text>",
            (LEFT_X + RIGHT_X) / 2.0,
            bottom + 18.0,
            escape_html(&text)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `Packets on lo: 10.88.0.2:41000 to 10.88.0.2:80, 6 shown`.
fn summary(trace: &PacketTrace, shown: usize) -> String {
    format!(
        "Packets on {}: {} to {}, {shown} shown",
        trace.interface, trace.local, trace.remote
    )
}

/// What kind of packet, for its class: one of SYN, SYN-ACK, RST, FIN, and data when it
/// carries payload.
fn kind_classes(p: &TracePacket) -> String {
    let f = p.flags;
    let kind = if f.has(TcpFlags::RST) {
        " ev-rst"
    } else if f.is_syn_ack() {
        " ev-synack"
    } else if f.has(TcpFlags::SYN) {
        " ev-syn"
    } else if f.has(TcpFlags::FIN) {
        " ev-fin"
    } else {
        ""
    };
    let data = if p.len > 0 { " ev-data" } else { "" };
    format!("{kind}{data}")
}

/// One packet's `<g>`: its arrow from `y` down by [`SLANT`], flags above, TTL and length
/// under, the time in the left margin and the whole line as its `<title>`.
fn packet(svg: &mut String, p: &TracePacket, y: f64) {
    let (dir, x1, x2) = match p.dir {
        Direction::Out => ("ev-out", LEFT_X, RIGHT_X),
        Direction::In => ("ev-in", RIGHT_X, LEFT_X),
    };
    let (y1, y2) = (y, y + SLANT);
    // The head: a triangle at (x2, y2) along the shaft.
    let (dx, dy) = (x2 - x1, y2 - y1);
    let len = dx.hypot(dy);
    let (ux, uy) = (dx / len, dy / len);
    let (bx, by) = (x2 - ux * HEAD_LEN, y2 - uy * HEAD_LEN);
    let (nx, ny) = (-uy * HEAD_HALF, ux * HEAD_HALF);
    let mid_x = (LEFT_X + RIGHT_X) / 2.0;
    let mid_y = (y1 + y2) / 2.0;
    let _ = write!(
        svg,
        "<g class=\"ev-pkt {dir}{}\"><title>{}</title>\
         <line class=\"ev-arrow\" x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{bx:.1}\" y2=\"{by:.1}\"/>\
         <polygon class=\"ev-arrowhead\" points=\"{x2:.1},{y2:.1} {:.1},{:.1} {:.1},{:.1}\"/>\
         <text class=\"ev-pkt-flags\" x=\"{mid_x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text class=\"ev-pkt-meta\" x=\"{mid_x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text class=\"ev-pkt-time\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></g>",
        kind_classes(p),
        escape_html(&p.to_string()),
        bx + nx,
        by + ny,
        bx - nx,
        by - ny,
        mid_y - 4.0,
        escape_html(&p.flags.to_string()),
        mid_y + 13.0,
        escape_html(&format!("ttl {}, len {}", p.ttl, p.len)),
        LEFT_X - 8.0,
        y1 + 4.0,
        escape_html(&format!("+{:.3} ms", p.t_ms)),
    );
}

#[cfg(test)]
pub(super) mod tests {
    use causeway_schema::{ServerTtl, TtlSource};

    use super::*;

    /// The opening and closing tags of `markup` balance, properly nested; `<x/>` closes itself.
    /// The names of the elements seen, in order. The evidence tests walk their HTML with it too.
    pub(crate) fn balanced(markup: &str) -> Result<Vec<String>, String> {
        const VOID: [&str; 4] = ["br", "wbr", "hr", "meta"];
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = markup;
        while let Some(start) = rest.find('<') {
            rest = &rest[start + 1..];
            let end = rest.find('>').ok_or("a tag is not closed")?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.contains('<') {
                return Err(format!("'<' inside a tag: {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                continue;
            }
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if name.is_empty() {
                return Err(format!("not a tag: <{tag}>"));
            }
            seen.push(name.clone());
            if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
                stack.push(name);
            }
        }
        if stack.is_empty() {
            Ok(seen)
        } else {
            Err(format!("left open: {stack:?}"))
        }
    }

    fn pkt(t_ms: f64, dir: Direction, flags: &str, len: u32) -> TracePacket {
        TracePacket {
            t_ms,
            dir,
            flags: flags.parse().unwrap(),
            seq: 0,
            ack: 0,
            ttl: 64,
            len,
        }
    }

    fn trace() -> PacketTrace {
        PacketTrace {
            interface: "lo".into(),
            local: "10.88.0.2:41000".parse().unwrap(),
            remote: "10.88.0.2:80".parse().unwrap(),
            started_at_ms: 1_763_900_000_001,
            packets: vec![
                pkt(0.0, Direction::Out, "SYN", 0),
                pkt(0.02, Direction::In, "SYN,ACK", 0),
                pkt(0.03, Direction::Out, "ACK", 0),
                pkt(0.1, Direction::Out, "PSH,ACK", 78),
                pkt(0.11, Direction::In, "ACK", 0),
                pkt(1501.9, Direction::In, "RST,ACK", 0),
            ],
            truncated: 0,
            server_ttl: Some(ServerTtl {
                ttl: 64,
                source: TtlSource::ThisConnection,
            }),
        }
    }

    #[test]
    fn one_arrow_per_packet_each_labelled() {
        let svg = ladder_svg(&trace());
        balanced(&svg).unwrap();
        assert!(svg.starts_with("<svg class=\"ev-ladder\""), "{svg}");
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("viewBox=\"0 0 640 "), "{svg}");
        assert!(svg.contains("width=\"100%\""));
        assert_eq!(svg.matches("<g class=\"ev-pkt ").count(), 6);
        assert_eq!(svg.matches("<line class=\"ev-arrow\"").count(), 6);
        assert_eq!(svg.matches("<polygon class=\"ev-arrowhead\"").count(), 6);
        assert_eq!(svg.matches("ev-out").count(), 3);
        assert_eq!(svg.matches("ev-in").count(), 3);
        assert!(svg.contains("<g class=\"ev-pkt ev-out ev-syn\">"), "{svg}");
        assert!(
            svg.contains("<g class=\"ev-pkt ev-in ev-synack\">"),
            "{svg}"
        );
        assert!(svg.contains("<g class=\"ev-pkt ev-out ev-data\">"), "{svg}");
        assert!(svg.contains("<g class=\"ev-pkt ev-in ev-rst\">"), "{svg}");
        assert_eq!(svg.matches("ev-rst").count(), 1);
        for label in [
            ">SYN,ACK</text>",
            ">RST,ACK</text>",
            ">+0.020 ms</text>",
            ">+1501.900 ms</text>",
            ">ttl 64, len 78</text>",
            ">10.88.0.2:41000</text>",
            ">10.88.0.2:80</text>",
            "<title>+0.020ms in  SYN,ACK seq 0 ack 0 ttl 64 len 0</title>",
            "<title>Packets on lo: 10.88.0.2:41000 to 10.88.0.2:80, 6 shown</title>",
        ] {
            assert!(svg.contains(label), "{label} missing from {svg}");
        }
        assert!(!svg.contains("ev-ladder-note"), "{svg}");
    }

    #[test]
    fn outbound_goes_right_inbound_left_both_downward() {
        let svg = ladder_svg(&trace());
        let lines: Vec<(f64, f64, f64, f64)> = svg
            .split("<line class=\"ev-arrow\" ")
            .skip(1)
            .map(|l| {
                let attr = |name: &str| -> f64 {
                    let from = l.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                    let len = l[from..].find('"').unwrap();
                    l[from..from + len].parse().unwrap()
                };
                (attr("x1"), attr("y1"), attr("x2"), attr("y2"))
            })
            .collect();
        assert_eq!(lines.len(), 6);
        let dirs = [true, false, true, true, false, false];
        for (n, ((x1, y1, x2, y2), out)) in lines.iter().zip(dirs).enumerate() {
            assert_eq!(x1 < x2, out, "arrow {n}: {x1} -> {x2}");
            assert!(y2 > y1, "arrow {n} slants down");
            if n > 0 {
                assert!(*y1 > lines[n - 1].1, "arrow {n} under the one before");
            }
        }
    }

    #[test]
    fn height_grows_with_the_packets() {
        let height = |svg: &str| -> f64 {
            let from = svg.find("viewBox=\"0 0 640 ").unwrap() + "viewBox=\"0 0 640 ".len();
            let len = svg[from..].find('"').unwrap();
            svg[from..from + len].parse().unwrap()
        };
        let mut t = trace();
        let six = height(&ladder_svg(&t));
        t.packets = (0..TRACE_MAX_PACKETS)
            .map(|n| pkt(n as f64, Direction::Out, "ACK", 1))
            .collect();
        t.truncated = 5;
        let svg = ladder_svg(&t);
        balanced(&svg).unwrap();
        assert!(height(&svg) > six + 25.0 * ROW, "{six} {svg}");
        assert_eq!(svg.matches("<g class=\"ev-pkt ").count(), TRACE_MAX_PACKETS);
        assert!(svg.contains(">… 5 more packets not kept</text>"), "{svg}");
    }

    #[test]
    fn no_packets_says_so() {
        let mut t = trace();
        t.packets.clear();
        let svg = ladder_svg(&t);
        balanced(&svg).unwrap();
        assert!(!svg.contains("ev-pkt"), "{svg}");
        assert!(svg.contains(">no packets captured</text>"), "{svg}");
    }

    #[test]
    fn the_interface_is_escaped() {
        let mut t = trace();
        t.interface = "<img src=x onerror=alert(1)>\"".into();
        let svg = ladder_svg(&t);
        balanced(&svg).unwrap();
        assert!(!svg.contains("<img"), "{svg}");
        assert!(
            svg.contains("&lt;img src=x onerror=alert(1)&gt;&quot;"),
            "{svg}"
        );
    }

    #[test]
    fn the_tag_walk_catches_unbalanced_markup() {
        assert!(balanced("<svg><g></svg>").is_err());
        assert!(balanced("<svg><line/></g></svg>").is_err());
        assert!(balanced("<p><img src=x onerror=alert(1)></p>").is_err());
        assert_eq!(balanced("<a><b/><br></a>").unwrap(), ["a", "b", "br"]);
    }
}
