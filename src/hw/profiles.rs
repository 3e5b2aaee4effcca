//! The hardware profiles of `bundles/profiles/`, compiled in.

/// Every built-in profile: name (the file name without `.yaml`) and text.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "pi4-argon-one-v2",
        include_str!("../../bundles/profiles/pi4-argon-one-v2.yaml"),
    ),
    (
        "pi5-argon-one-v3",
        include_str!("../../bundles/profiles/pi5-argon-one-v3.yaml"),
    ),
    (
        "pi5-fan",
        include_str!("../../bundles/profiles/pi5-fan.yaml"),
    ),
    (
        "pi-sixfab-ups",
        include_str!("../../bundles/profiles/pi-sixfab-ups.yaml"),
    ),
    (
        "cm4-io-emc2301",
        include_str!("../../bundles/profiles/cm4-io-emc2301.yaml"),
    ),
    (
        "jetson-nano-jp4",
        include_str!("../../bundles/profiles/jetson-nano-jp4.yaml"),
    ),
    (
        "jetson-orin-nano-jp6",
        include_str!("../../bundles/profiles/jetson-orin-nano-jp6.yaml"),
    ),
    (
        "gpu-server",
        include_str!("../../bundles/profiles/gpu-server.yaml"),
    ),
    (
        "bitscope-cluster-blade",
        include_str!("../../bundles/profiles/bitscope-cluster-blade.yaml"),
    ),
];

/// The text of built-in profile `name`.
pub fn get(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
