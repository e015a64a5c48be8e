//! The ids a run creates, all under its run id, so that runs sharing a server never collide
//! and the check can pick the run's SKUs out of a listing.

#[derive(Clone, Debug)]
pub struct Names {
    run: String,
}

impl Names {
    pub fn new(run_id: &str) -> Names {
        Names {
            run: run_id.to_string(),
        }
    }

    pub fn sku_prefix(&self) -> String {
        format!("{}-s", self.run)
    }

    pub fn sku(&self, index: usize) -> String {
        format!("{}-s{index}", self.run)
    }

    /// The index of one of this run's SKUs, from its name.
    pub fn sku_index(&self, name: &str) -> Option<usize> {
        name.strip_prefix(self.run.as_str())?
            .strip_prefix("-s")?
            .parse()
            .ok()
    }

    pub fn receipt(&self, index: usize) -> String {
        format!("{}-rcpt{index}", self.run)
    }

    pub fn hold(&self, unit: u64) -> String {
        format!("{}-h{unit}", self.run)
    }

    pub fn user_hold(&self, user: u64) -> String {
        format!("{}-u{user}", self.run)
    }

    pub fn order(&self, unit: u64) -> String {
        format!("{}-o{unit}", self.run)
    }

    pub fn payment(&self, unit: u64) -> String {
        format!("{}-p{unit}", self.run)
    }

    pub fn return_id(&self, unit: u64) -> String {
        format!("{}-ret{unit}", self.run)
    }

    pub fn customer(&self, index: usize) -> String {
        format!("{}-c{index}", self.run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_names_round_trip_and_foreign_names_are_ignored() {
        let n = Names::new("lt1-ab");
        assert_eq!(n.sku_index(&n.sku(42)), Some(42));
        assert_eq!(n.sku_index("lt1-abc-s42"), None);
        assert_eq!(n.sku_index("MUG-1"), None);
    }
}
