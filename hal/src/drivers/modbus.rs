//! modbus driver.
