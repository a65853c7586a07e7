//! `lookout devices`: what a person needs to write a camera's `source`, size and rate.

use std::fmt::Write;

use super::probe::Machine;

/// Human-readable listing of capture devices, their formats, sizes and rates, and the
/// encoders found.
pub fn describe(machine: &Machine) -> String {
    let mut out = String::new();
    let captures: Vec<_> = machine.video_nodes.iter().filter(|n| n.capture).collect();
    if captures.is_empty() {
        out.push_str("No V4L2 capture devices found.\n");
    }
    for node in captures {
        let _ = writeln!(out, "{}  {} (driver {})", node.path.display(), node.card, node.driver);
        if node.formats.is_empty() {
            out.push_str("    no video formats (metadata node)\n");
        }
        for f in &node.formats {
            let _ = writeln!(out, "    {}", f.fourcc);
            for s in &f.sizes {
                let rates = if s.fps.is_empty() {
                    "any rate".to_string()
                } else {
                    s.fps.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ") + " fps"
                };
                if s.max_width > s.width {
                    let _ = writeln!(out, "        {}x{} to {}x{}: {rates}", s.width, s.height, s.max_width, s.max_height);
                } else {
                    let _ = writeln!(out, "        {}x{}: {rates}", s.width, s.height);
                }
            }
        }
    }
    let encoders: Vec<_> = machine.video_nodes.iter().filter(|n| n.m2m).collect();
    for n in encoders {
        let _ = writeln!(out, "{}  {} (memory-to-memory, driver {})", n.path.display(), n.card, n.driver);
    }
    let elements: Vec<_> = machine.elements.iter().map(String::as_str).collect();
    let _ = writeln!(out, "GStreamer elements: {}", elements.join(", "));
    out
}
