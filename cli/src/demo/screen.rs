//! The terminal side of the live view: a block redrawn in place on a terminal, a plain line
//! every five seconds otherwise; number formatting.

use std::io::Write;
use std::time::{Duration, Instant};

/// Writes the live view: redraws a block on a terminal, appends lines otherwise.
pub(super) struct Screen {
    tty: bool,
    drawn: usize,
    last_plain: Option<Instant>,
}

impl Screen {
    pub(super) fn new(tty: bool) -> Self {
        Self {
            tty,
            drawn: 0,
            last_plain: None,
        }
    }

    /// A line that stays (above the live block).
    pub(super) fn line(&mut self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        self.clear(&mut stdout);
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    fn clear(&mut self, stdout: &mut impl Write) {
        if self.tty && self.drawn > 0 {
            let _ = write!(stdout, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    /// Redraws the block (terminal) or prints `plain` every five seconds (otherwise).
    pub(super) fn update(&mut self, block: &[String], plain: &str, force: bool) {
        let mut stdout = std::io::stdout().lock();
        if self.tty {
            self.clear(&mut stdout);
            for l in block {
                let _ = writeln!(stdout, "\x1b[2K{l}");
            }
            self.drawn = block.len();
        } else if force
            || self
                .last_plain
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            let _ = writeln!(stdout, "{plain}");
            self.last_plain = Some(Instant::now());
        }
        let _ = stdout.flush();
    }

    /// Leaves the block on screen; what follows is printed below it.
    pub(super) fn finish(&mut self) {
        self.drawn = 0;
    }
}

pub(super) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn per_sec(count: i64, dur: Duration) -> u64 {
    let secs = dur.as_secs_f64();
    if secs <= 0.0 {
        0
    } else {
        (count.max(0) as f64 / secs).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
