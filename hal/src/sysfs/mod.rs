//! Linux sysfs backends: hwmon, PWM, thermal zones.
