//! pi5_fan driver.
