//! argon_button driver.
