//! Where a long operation's time went, phase by phase: what its debug log line says, the first
//! thing to look at when a backup or a snapshot is slower than expected.

/// The phases ended so far, with how long each took.
pub struct Phases {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    pub fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    /// Ends the phase `name` now.
    pub fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, took) in &self.laps {
            write!(f, "{name} {:.1} ms; ", took.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}
