//! [`Table`]: a hash-indexed slab of entities. Lookups are O(1) by key; slots never move, so a
//! snapshot can copy a table in small chunks by slot number, releasing the shard lock between
//! chunks (see `docs/ARCHITECTURE.md`, "Snapshots"). An entity created in a vacant slot behind
//! the snapshot's cursor was created after the snapshot began, so the WAL replay after the
//! snapshot re-creates it.

use std::collections::HashMap;

type Index = HashMap<String, usize, foldhash::fast::RandomState>;

#[derive(Debug, Clone)]
pub struct Table<E> {
    slots: Vec<Option<(String, E)>>,
    vacant: Vec<usize>,
    index: Index,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            vacant: Vec::new(),
            index: Index::default(),
        }
    }
}

impl<E> Table<E> {
    /// Makes room for `additional` more entities without rehashing (bulk loads).
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        self.index.reserve(additional);
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&E> {
        self.index
            .get(key)
            .map(|&slot| &self.slots[slot].as_ref().expect("indexed slot is full").1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut E> {
        let slot = *self.index.get(key)?;
        Some(&mut self.slots[slot].as_mut().expect("indexed slot is full").1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Inserts or replaces the entity under `key`.
    pub fn insert(&mut self, key: String, entity: E) {
        if let Some(&slot) = self.index.get(&key) {
            self.slots[slot].as_mut().expect("indexed slot is full").1 = entity;
            return;
        }
        let slot = match self.vacant.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.index.insert(key.clone(), slot);
        self.slots[slot] = Some((key, entity));
    }

    pub fn remove(&mut self, key: &str) -> Option<E> {
        let slot = self.index.remove(key)?;
        self.vacant.push(slot);
        self.slots[slot].take().map(|(_, e)| e)
    }

    /// Number of slots (full or vacant): the range a chunked copy walks.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The entity in `slot`, if the slot is full.
    pub fn slot(&self, slot: usize) -> Option<(&str, &E)> {
        self.slots
            .get(slot)
            .and_then(|s| s.as_ref())
            .map(|(k, e)| (k.as_str(), e))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &E)> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(k, e)| (k.as_str(), e)))
    }

    pub fn values(&self) -> impl Iterator<Item = &E> {
        self.iter().map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn slots_are_stable_and_reused() {
        let mut t = Table::default();
        t.insert("a".into(), 1);
        t.insert("b".into(), 2);
        t.insert("c".into(), 3);
        assert_eq!(t.slot(1), Some(("b", &2)));
        assert_eq!(t.remove("a"), Some(1));
        assert_eq!(t.slot(2), Some(("c", &3)), "others do not move");
        t.insert("d".into(), 4);
        assert_eq!(t.slot(0), Some(("d", &4)), "vacant slot reused");
        t.insert("b".into(), 20);
        assert_eq!(t.get("b"), Some(&20));
        assert_eq!(t.len(), 3);
        assert_eq!(t.iter().count(), 3);
    }
}
