//! argon_one driver.
