//! The ids of the last Observations stored, oldest forgotten first.

use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub struct SeenIds {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl SeenIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    pub fn insert(&mut self, id: String) {
        if self.ids.contains(&id) {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.clone());
        self.order.push_back(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_id_is_forgotten_first() {
        let mut seen = SeenIds::new(2);
        seen.insert("a".into());
        seen.insert("b".into());
        seen.insert("a".into());
        seen.insert("c".into());
        assert!(!seen.contains("a") && seen.contains("b") && seen.contains("c"));
    }
}
