//! The example bundles of `bundles/examples/`, built into the binary so
//! that `onprem demo` runs them wherever it is installed.

/// Name (the file's stem) and text of every example bundle.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "bitscope-blade",
        include_str!("../../bundles/examples/bitscope-blade.yaml"),
    ),
    (
        "cm4-adc-signals",
        include_str!("../../bundles/examples/cm4-adc-signals.yaml"),
    ),
    (
        "gpu-server-pid",
        include_str!("../../bundles/examples/gpu-server-pid.yaml"),
    ),
    (
        "jetson-nano-curve",
        include_str!("../../bundles/examples/jetson-nano-curve.yaml"),
    ),
    (
        "jetson-orin-pid",
        include_str!("../../bundles/examples/jetson-orin-pid.yaml"),
    ),
    (
        "pi-ups-shutdown",
        include_str!("../../bundles/examples/pi-ups-shutdown.yaml"),
    ),
    (
        "pi4-argon-stepwise",
        include_str!("../../bundles/examples/pi4-argon-stepwise.yaml"),
    ),
    (
        "pi5-argon-v3-curve",
        include_str!("../../bundles/examples/pi5-argon-v3-curve.yaml"),
    ),
    (
        "pi5-fan-curve",
        include_str!("../../bundles/examples/pi5-fan-curve.yaml"),
    ),
];

/// The text of the example called `name`.
pub fn get(name: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
