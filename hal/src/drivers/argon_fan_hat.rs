//! argon_fan_hat driver.
