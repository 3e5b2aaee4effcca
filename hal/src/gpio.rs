//! GPIO lines: edges with kernel timestamps (rppal), and the pulse-width
//! decoding built on them.
