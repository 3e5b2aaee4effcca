//! Serial ports (serialport, without libudev): opening, framing helpers
//! and the transports that serial drivers own.
