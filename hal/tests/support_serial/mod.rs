//! A scripted serial transport for byte-exact driver tests: every write
//! must match the next expected write, reads return the scripted bytes,
//! and `done()` checks that the whole script was used up.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Duration;

use onprem_hal::serial::Transport;

/// One step of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The driver discards pending input.
    Clear,
    /// The driver writes exactly these bytes (across one or more writes).
    Write(Vec<u8>),
    /// The device sends these bytes.
    Read(Vec<u8>),
    /// The device stays silent: reads wait out their timeout until the
    /// driver gives up (the next clear or write ends the silence).
    Silence,
}

/// A transport that plays a script.
pub struct Script {
    steps: VecDeque<Step>,
    written: Vec<u8>,
    timeout: Duration,
    silence_heard: bool,
}

impl Script {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Script {
            steps: steps.into_iter().collect(),
            written: Vec::new(),
            timeout: Duration::from_millis(100),
            silence_heard: false,
        }
    }

    /// Ends a silence that the driver has waited out.
    fn end_silence(&mut self) {
        if self.steps.front() == Some(&Step::Silence) {
            assert!(
                self.silence_heard,
                "the driver never waited for the silence"
            );
            self.steps.pop_front();
            self.silence_heard = false;
        }
    }

    /// Panics unless every step was played.
    pub fn done(mut self) {
        self.end_silence();
        assert!(
            self.written.is_empty(),
            "partial write {:02x?}",
            self.written
        );
        assert!(self.steps.is_empty(), "steps left: {:?}", self.steps);
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.steps.front_mut() {
            Some(Step::Read(bytes)) => {
                let n = buf.len().min(bytes.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                bytes.drain(..n);
                if bytes.is_empty() {
                    self.steps.pop_front();
                }
                Ok(n)
            }
            Some(Step::Silence) => {
                self.silence_heard = true;
                std::thread::sleep(self.timeout);
                Err(io::Error::new(io::ErrorKind::TimedOut, "scripted silence"))
            }
            other => panic!("read, but the script expects {other:?}"),
        }
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.end_silence();
        self.written.extend_from_slice(buf);
        let Some(Step::Write(want)) = self.steps.front() else {
            panic!(
                "write {:02x?}, but the script expects {:?}",
                buf,
                self.steps.front()
            );
        };
        assert!(
            want.starts_with(&self.written),
            "wrote {:02x?}, want {:02x?}",
            self.written,
            want
        );
        if self.written.len() == want.len() {
            self.steps.pop_front();
            self.written.clear();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Script {
    fn set_timeout(&mut self, timeout: Duration) -> onprem_hal::Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    fn clear_input(&mut self) -> onprem_hal::Result<()> {
        self.end_silence();
        match self.steps.pop_front() {
            Some(Step::Clear) => Ok(()),
            other => panic!("clear_input, but the script expects {other:?}"),
        }
    }

    fn port_name(&self) -> String {
        "script".to_string()
    }
}
