//! bitscope driver.
