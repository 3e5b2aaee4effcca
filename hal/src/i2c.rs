//! Linux I²C buses and bus scanning.
