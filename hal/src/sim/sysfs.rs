//! Generated sysfs trees.
