//! Serial devices emulated on pty pairs.
