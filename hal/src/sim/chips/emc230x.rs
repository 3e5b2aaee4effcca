//! EMC230x emulator: product and manufacturer IDs, one drive register and
//! a 13-bit tach per fan (saturated 0x1FFF when stalled), stall and
//! drive-fail status bits, and the software lock that freezes the
//! configuration registers.

use std::any::Any;

use crate::sim::{Chip, ChipError, Pointer};

/// One emulated fan.
#[derive(Debug, Clone, Copy)]
struct FanModel {
    setting: u8,
    max_rpm: f64,
    stuck: bool,
}

impl FanModel {
    fn rpm(&self) -> f64 {
        let duty = f64::from(self.setting) / 255.0;
        if self.stuck || duty < 0.2 {
            0.0
        } else {
            self.max_rpm * duty
        }
    }

    fn count(&self) -> u16 {
        let rpm = self.rpm();
        if rpm <= 0.0 {
            0x1FFF
        } else {
            (7_864_320.0 / rpm).round().clamp(1.0, 8191.0) as u16
        }
    }
}

/// An emulated EMC2301/2302/2303/2305.
#[derive(Debug, Clone)]
pub struct Emc230x {
    pointer: Pointer,
    product: u8,
    fans: Vec<FanModel>,
    config: u8,
    locked: bool,
}

impl Emc230x {
    /// A chip with `product` ID (0x37 = EMC2301 … 0x34 = EMC2305) whose
    /// fans reach `max_rpm` at full drive and stall below 20 %. The
    /// watchdog of a fresh chip drives the fans at full speed until the
    /// host writes a setting.
    pub fn new(product: u8, max_rpm: f64) -> Self {
        let n = crate::drivers::emc230x::model(product).map_or(1, |(_, n)| n);
        Emc230x {
            pointer: Pointer::default(),
            product,
            fans: vec![
                FanModel {
                    setting: 0xFF,
                    max_rpm,
                    stuck: false
                };
                usize::from(n)
            ],
            config: 0x40,
            locked: false,
        }
    }

    /// Seizes fan `n` (1-based).
    pub fn set_stuck(&mut self, n: usize, stuck: bool) {
        if let Some(f) = self.fans.get_mut(n.wrapping_sub(1)) {
            f.stuck = stuck;
        }
    }

    /// Fan `n`'s drive register.
    pub fn setting(&self, n: usize) -> Option<u8> {
        self.fans.get(n.wrapping_sub(1)).map(|f| f.setting)
    }

    fn fan_of(reg: u8, base: u8) -> Option<usize> {
        let off = reg.checked_sub(base)?;
        (off % 0x10 == 0).then_some(usize::from(off / 0x10))
    }

    fn status_bits(&self, pred: impl Fn(&FanModel) -> bool) -> u8 {
        self.fans
            .iter()
            .enumerate()
            .filter(|(_, f)| pred(f))
            .fold(0, |acc, (i, _)| acc | (1 << i))
    }

    fn read_register(&self, reg: u8) -> Option<u8> {
        let stalled = |f: &FanModel| f.rpm() <= 0.0;
        // A fan driven above its minimum that still does not turn fails.
        let drive_fail = |f: &FanModel| f.setting > 51 && f.rpm() <= 0.0;
        Some(match reg {
            0x20 => self.config,
            0x24 => {
                u8::from(self.fans.iter().any(stalled))
                    | (u8::from(self.fans.iter().any(drive_fail)) << 2)
            }
            0x25 => self.status_bits(stalled),
            0x27 => self.status_bits(drive_fail),
            0xEF => u8::from(self.locked),
            0xFD => self.product,
            0xFE => 0x5D,
            0xFF => 0x80,
            _ => {
                if let Some(i) = Self::fan_of(reg, 0x30).filter(|i| *i < self.fans.len()) {
                    return Some(self.fans[i].setting);
                }
                if let Some(i) = Self::fan_of(reg, 0x3E).filter(|i| *i < self.fans.len()) {
                    return Some((self.fans[i].count() >> 5) as u8);
                }
                if let Some(i) = Self::fan_of(reg, 0x3F).filter(|i| *i < self.fans.len()) {
                    return Some(((self.fans[i].count() & 0x1F) << 3) as u8);
                }
                return None;
            }
        })
    }
}

impl Chip for Emc230x {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ChipError> {
        let data = self.pointer.write(bytes);
        let [v] = data else {
            return if data.is_empty() {
                Ok(())
            } else {
                Err(ChipError::Nack)
            };
        };
        let reg = self.pointer.register;
        match reg {
            0x20 if !self.locked => self.config = *v,
            0x20 => {}
            0xEF => self.locked |= v & 1 != 0,
            _ => match Self::fan_of(reg, 0x30).filter(|i| *i < self.fans.len()) {
                Some(i) => self.fans[i].setting = *v,
                None => return Err(ChipError::Nack),
            },
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), ChipError> {
        let v = self
            .read_register(self.pointer.register)
            .ok_or(ChipError::Nack)?;
        buf.fill(v);
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
