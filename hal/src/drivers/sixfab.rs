//! sixfab driver.
