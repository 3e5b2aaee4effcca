//! Read-ahead under TLS.
//!
//! rustls asks its transport for at most 4 KiB at a time, so each 16 KiB
//! record of a busy connection (a tunnel moving bulk data) costs four or
//! five `recvfrom` calls. [`ReadAhead`] sits between the socket and the
//! TLS session: while reads come back full it reads [`READ_AHEAD`] bytes
//! at once and hands them on in the pieces asked for; once a read comes
//! back short (the socket is drained) or would block, it lets go of its
//! buffer and reads straight into the caller's again. A quiet connection
//! (an agent's session between heartbeats, of which a control plane holds
//! thousands) therefore holds no buffer, and a small request still costs
//! one `recvfrom`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read at once while a connection is busy.
pub const READ_AHEAD: usize = 64 * 1024;

/// A transport with read-ahead while busy ([module docs](self)); writes
/// pass straight through.
#[derive(Debug)]
pub struct ReadAhead<IO> {
    io: IO,
    /// Read ahead: `buf[pos..end]` is not handed on yet. Empty (no
    /// allocation) while the connection is quiet.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<IO> ReadAhead<IO> {
    /// Wraps `io`.
    pub fn new(io: IO) -> Self {
        ReadAhead {
            io,
            buf: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Whether a read-ahead buffer is held now.
    pub fn is_buffering(&self) -> bool {
        !self.buf.is_empty()
    }

    fn quiet(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
        self.end = 0;
    }

    /// Hands on what is read ahead; lets go of the buffer once it is
    /// through and the read that filled it drained the socket.
    fn hand_on(&mut self, out: &mut ReadBuf<'_>) {
        let n = (self.end - self.pos).min(out.remaining());
        out.put_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.end && self.end < self.buf.len() {
            self.quiet();
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ReadAhead<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.end {
            this.hand_on(out);
            return Poll::Ready(Ok(()));
        }
        if this.buf.is_empty() || out.remaining() >= READ_AHEAD {
            // Quiet (or a large read asked for): straight into the
            // caller's buffer.
            let before = out.filled().len();
            std::task::ready!(Pin::new(&mut this.io).poll_read(cx, out))?;
            if out.filled().len() > before && out.remaining() == 0 && this.buf.is_empty() {
                // It filled all that was asked: more is likely waiting.
                this.buf = vec![0; READ_AHEAD];
            }
            return Poll::Ready(Ok(()));
        }
        // Busy: one large read, handed on in pieces.
        let mut rb = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
            Poll::Pending => {
                // Caught up: nothing held while waiting.
                this.quiet();
                Poll::Pending
            }
            Poll::Ready(Err(e)) => {
                this.quiet();
                Poll::Ready(Err(e))
            }
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    // End of file.
                    this.quiet();
                    return Poll::Ready(Ok(()));
                }
                this.pos = 0;
                this.end = n;
                this.hand_on(out);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ReadAhead<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A reader that counts the reads that reach it.
    struct Counted<R> {
        inner: R,
        reads: usize,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let r = Pin::new(&mut self.inner).poll_read(cx, buf);
            if r.is_ready() {
                self.reads += 1;
            }
            r
        }
    }

    #[tokio::test]
    async fn bulk_reads_take_few_reads_and_quiet_ones_hold_nothing() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        tx.write_all(&data).await.unwrap();
        let mut ra = ReadAhead::new(Counted {
            inner: rx,
            reads: 0,
        });
        // Read in 4 KiB pieces, as rustls does.
        let mut got = Vec::new();
        let mut piece = [0u8; 4096];
        while got.len() < data.len() {
            let n = ra.read(&mut piece).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&piece[..n]);
        }
        assert_eq!(got, data, "bytes in = bytes out, in order");
        let reads = ra.get_ref().reads;
        // One direct read, then 64 KiB at a time: 300,000 bytes in 6 or
        // 7 reads instead of 74.
        assert!(reads <= 7, "{reads} reads");
        // Drained: the next read would block, and nothing is held.
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(20), ra.read(&mut piece)).await;
        assert!(pending.is_err(), "nothing more to read");
        assert!(!ra.is_buffering(), "a quiet connection holds no buffer");
        // A small message: one read, straight through, no buffer.
        tx.write_all(b"hello").await.unwrap();
        let n = ra.read(&mut piece).await.unwrap();
        assert_eq!(&piece[..n], b"hello");
        assert!(!ra.is_buffering());
        // End of file reads as 0.
        drop(tx);
        assert_eq!(ra.read(&mut piece).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut ra = ReadAhead::new(a);
        ra.write_all(b"ping").await.unwrap();
        ra.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
    }
}
