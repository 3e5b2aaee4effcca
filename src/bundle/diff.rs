//! What changed between two bundles, per section: the agent restarts only
//! the loops whose section changed, and a change to `hardware` rebuilds
//! them all. The same diff gives rollouts a readable summary.

use std::fmt;

use super::schema::{Bundle, Spec};

/// One section of a bundle's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `spec.hardware`: every loop restarts, devices are re-opened.
    Hardware,
    /// `spec.fans`.
    Fans,
    /// `spec.power`.
    Power,
    /// `spec.signals`.
    Signals,
    /// `spec.checks`.
    Checks,
    /// `spec.telemetry`.
    Telemetry,
    /// `spec.redfish`.
    Redfish,
    /// `spec.tunnel`.
    Tunnel,
}

impl Section {
    /// Every section, in spec order.
    pub const ALL: [Section; 8] = [
        Section::Hardware,
        Section::Fans,
        Section::Power,
        Section::Signals,
        Section::Checks,
        Section::Telemetry,
        Section::Redfish,
        Section::Tunnel,
    ];

    /// The field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Hardware => "hardware",
            Section::Fans => "fans",
            Section::Power => "power",
            Section::Signals => "signals",
            Section::Checks => "checks",
            Section::Telemetry => "telemetry",
            Section::Redfish => "redfish",
            Section::Tunnel => "tunnel",
        }
    }

    fn changed(self, a: &Spec, b: &Spec) -> bool {
        match self {
            Section::Hardware => a.hardware != b.hardware,
            Section::Fans => a.fans != b.fans,
            Section::Power => a.power != b.power,
            Section::Signals => a.signals != b.signals,
            Section::Checks => a.checks != b.checks,
            Section::Telemetry => a.telemetry != b.telemetry,
            Section::Redfish => a.redfish != b.redfish,
            Section::Tunnel => a.tunnel != b.tunnel,
        }
    }
}

/// What a change of one named item in a list is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only in the new bundle.
    Added(String),
    /// In both, different.
    Changed(String),
    /// Only in the old bundle.
    Removed(String),
}

/// The difference between two bundles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    /// Sections that differ.
    pub sections: Vec<Section>,
    /// Per-item changes inside sections, as `fans.zones/cpu` etc.
    pub items: Vec<(Section, Change)>,
    /// Whether metadata (name, labels, version) differs.
    pub metadata: bool,
}

impl Diff {
    /// Computes the diff from `old` (none: everything is new) to `new`.
    pub fn between(old: Option<&Bundle>, new: &Bundle) -> Diff {
        let Some(old) = old else {
            return Diff {
                sections: Section::ALL.to_vec(),
                items: Vec::new(),
                metadata: true,
            };
        };
        let (a, b) = (&old.spec, &new.spec);
        let sections: Vec<Section> = Section::ALL
            .into_iter()
            .filter(|s| s.changed(a, b))
            .collect();
        let mut items = Vec::new();
        named(
            &mut items,
            Section::Fans,
            "zone",
            &a.fans.zones,
            &b.fans.zones,
            |z| &z.name,
        );
        named(
            &mut items,
            Section::Hardware,
            "device",
            &a.hardware.devices,
            &b.hardware.devices,
            |d| d.name(),
        );
        named(
            &mut items,
            Section::Power,
            "switch",
            &a.power.switches,
            &b.power.switches,
            |s| &s.name,
        );
        named(
            &mut items,
            Section::Signals,
            "signal",
            &a.signals.sources,
            &b.signals.sources,
            |s| &s.name,
        );
        named(
            &mut items,
            Section::Checks,
            "rule",
            &a.checks.rules,
            &b.checks.rules,
            |r| &r.name,
        );
        Diff {
            sections,
            items,
            metadata: old.metadata != new.metadata,
        }
    }

    /// Whether a loop reading `section` must restart: its section or the
    /// hardware changed.
    pub fn restarts(&self, section: Section) -> bool {
        self.sections.contains(&Section::Hardware) || self.sections.contains(&section)
    }

    /// Whether nothing changed in the spec.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }
}

fn named<T: PartialEq>(
    out: &mut Vec<(Section, Change)>,
    section: Section,
    what: &str,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &str,
) {
    for o in old {
        match new.iter().find(|n| name(n) == name(o)) {
            None => out.push((section, Change::Removed(format!("{what} {}", name(o))))),
            Some(n) if n != o => {
                out.push((section, Change::Changed(format!("{what} {}", name(o)))))
            }
            Some(_) => {}
        }
    }
    for n in new {
        if !old.iter().any(|o| name(o) == name(n)) {
            out.push((section, Change::Added(format!("{what} {}", name(n)))));
        }
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sections.is_empty() {
            return f.write_str(if self.metadata {
                "metadata only"
            } else {
                "no change"
            });
        }
        let mut first = true;
        for s in &self.sections {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            f.write_str(s.as_str())?;
            let items: Vec<String> = self
                .items
                .iter()
                .filter(|(sec, _)| sec == s)
                .map(|(_, c)| match c {
                    Change::Added(n) => format!("+{n}"),
                    Change::Changed(n) => format!("~{n}"),
                    Change::Removed(n) => format!("-{n}"),
                })
                .collect();
            if !items.is_empty() {
                write!(f, " ({})", items.join(", "))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(spec: &str) -> Bundle {
        crate::bundle::parse(&format!(
            "apiVersion: onprem/v1\nkind: Bundle\nmetadata: {{ name: t }}\nspec:\n{spec}"
        ))
        .unwrap()
    }

    const BASE: &str = "  hardware: { profile: pi5-fan }\n  fans:\n    zones:\n      - { name: cpu, fans: [fan], sensors: [{ name: cpu }], controllers: [{ type: curve, points: [[40, 20], [70, 100]] }] }\n  checks:\n    rules:\n      - { name: hot, metric: node_load1, op: '>', threshold: 4 }\n";

    /// Table-driven: each edit restarts exactly the loops it should.
    #[test]
    fn can_restart_only_the_sections_that_changed() {
        let base = b(BASE);
        let cases: &[(&str, &str, &[Section], &str)] = &[
            ("nothing", BASE, &[], "no change"),
            (
                "curve point",
                &BASE.replace("[70, 100]", "[75, 100]"),
                &[Section::Fans],
                "fans (~zone cpu)",
            ),
            (
                "rule threshold",
                &BASE.replace("threshold: 4", "threshold: 8"),
                &[Section::Checks],
                "checks (~rule hot)",
            ),
            (
                "profile",
                &BASE.replace("pi5-fan", "pi4-argon-one-v2"),
                &[Section::Hardware],
                "hardware",
            ),
            (
                "new section",
                &format!("{BASE}  tunnel: {{ allowedPorts: [8443] }}\n"),
                &[Section::Tunnel],
                "tunnel",
            ),
        ];
        for (what, spec, want, text) in cases {
            let d = Diff::between(Some(&base), &b(spec));
            assert_eq!(d.sections, *want, "{what}");
            assert_eq!(d.to_string(), *text, "{what}");
        }
        let d = Diff::between(
            Some(&base),
            &b(&BASE.replace("pi5-fan", "pi4-argon-one-v2")),
        );
        assert!(d.restarts(Section::Fans) && d.restarts(Section::Checks));
        let d = Diff::between(
            Some(&base),
            &b(&BASE.replace("threshold: 4", "threshold: 8")),
        );
        assert!(!d.restarts(Section::Fans) && d.restarts(Section::Checks));
        assert_eq!(Diff::between(None, &base).sections.len(), 8);
    }
}
