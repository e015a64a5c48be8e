//! [`Table`]: a hash-indexed slab of entities. Lookups are O(1) by key; slots never move, so a
//! snapshot can copy a table in small chunks by slot number, releasing the shard lock between
//! chunks (see `docs/ARCHITECTURE.md`, "Snapshots"). An entity created in a vacant slot behind
//! the snapshot's cursor was created after the snapshot began, so the WAL replay after the
//! snapshot re-creates it.
//!
//! The key is stored once, in its slot: the hash index holds only slot numbers and compares
//! keys through the slab. That saves a copy (an allocation) of every key on the hot path, and
//! lets other indexes of a shard (expiry, retention queues) name an entity by its slot.

use std::hash::BuildHasher;

use hashbrown::HashTable;

// Seeded per table: keys are client ids, so collisions must not be predictable.
type Hasher = foldhash::fast::RandomState;

#[derive(Debug, Clone)]
pub struct Table<E> {
    slots: Vec<Option<(String, E)>>,
    vacant: Vec<usize>,
    index: HashTable<usize>,
    hasher: Hasher,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            vacant: Vec::new(),
            index: HashTable::new(),
            hasher: Hasher::default(),
        }
    }
}

impl<E> Table<E> {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Makes room for `additional` more entities without rehashing (bulk loads).
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.reserve(additional, |&slot| {
            hasher.hash_one(
                slots[slot]
                    .as_ref()
                    .expect("indexed slot is full")
                    .0
                    .as_str(),
            )
        });
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The slot holding `key`, if any.
    pub fn slot_of(&self, key: &str) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(self.hash(key), |&slot| {
                slots[slot].as_ref().is_some_and(|(k, _)| k == key)
            })
            .copied()
    }

    pub fn get(&self, key: &str) -> Option<&E> {
        self.slot_of(key).map(|slot| self.full(slot).1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut E> {
        let slot = self.slot_of(key)?;
        Some(&mut self.slots[slot].as_mut().expect("indexed slot is full").1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.slot_of(key).is_some()
    }

    /// Inserts or replaces the entity under `key`; returns its slot.
    pub fn insert(&mut self, key: String, entity: E) -> usize {
        let hash = self.hash(&key);
        let slots = &self.slots;
        let found = self
            .index
            .find(hash, |&slot| {
                slots[slot].as_ref().is_some_and(|(k, _)| *k == key)
            })
            .copied();
        if let Some(slot) = found {
            self.slots[slot].as_mut().expect("indexed slot is full").1 = entity;
            return slot;
        }
        self.insert_hashed(hash, key, entity)
    }

    /// Inserts an entity whose key the caller has just looked up and not found (one lookup
    /// fewer than [`Table::insert`]); returns its slot.
    pub fn insert_absent(&mut self, key: String, entity: E) -> usize {
        debug_assert!(!self.contains(&key), "insert_absent of a present key");
        self.insert_hashed(self.hash(&key), key, entity)
    }

    fn insert_hashed(&mut self, hash: u64, key: String, entity: E) -> usize {
        let slot = match self.vacant.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        debug_assert!(self.slots[slot].is_none(), "a vacant slot is empty");
        self.slots[slot] = Some((key, entity));
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(slots[s].as_ref().expect("indexed slot is full").0.as_str())
        });
        slot
    }

    pub fn remove(&mut self, key: &str) -> Option<E> {
        let slot = self.slot_of(key)?;
        self.remove_slot(slot)
    }

    /// Empties `slot` (if full) and returns its entity.
    pub fn remove_slot(&mut self, slot: usize) -> Option<E> {
        let (key, entity) = self.slots.get_mut(slot)?.take()?;
        let hash = self.hash(&key);
        match self.index.find_entry(hash, |&s| s == slot) {
            Ok(found) => {
                found.remove();
            }
            Err(_) => panic!("bug: full slot {slot} missing from the index"),
        }
        self.vacant.push(slot);
        Some(entity)
    }

    /// Number of slots (full or vacant): the range a chunked copy walks.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    fn full(&self, slot: usize) -> (&str, &E) {
        let (k, e) = self.slots[slot].as_ref().expect("indexed slot is full");
        (k.as_str(), e)
    }

    /// The entity in `slot`, if the slot is full.
    pub fn slot(&self, slot: usize) -> Option<(&str, &E)> {
        self.slots
            .get(slot)
            .and_then(|s| s.as_ref())
            .map(|(k, e)| (k.as_str(), e))
    }

    /// The entity in `slot`, mutable, if the slot is full.
    pub fn slot_mut(&mut self, slot: usize) -> Option<(&str, &mut E)> {
        self.slots
            .get_mut(slot)
            .and_then(|s| s.as_mut())
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
        assert_eq!(t.get("a"), None);
        assert_eq!(t.slot(2), Some(("c", &3)), "others do not move");
        assert_eq!(t.insert("d".into(), 4), 0, "vacant slot reused");
        assert_eq!(t.slot(0), Some(("d", &4)));
        assert_eq!(t.insert("b".into(), 20), 1, "a replaced key keeps its slot");
        assert_eq!(t.get("b"), Some(&20));
        assert_eq!(t.len(), 3);
        assert_eq!(t.iter().count(), 3);
        assert_eq!(t.remove_slot(1), Some(20));
        assert_eq!(t.remove_slot(1), None, "already vacant");
        assert!(!t.contains("b"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn many_keys_survive_growth_and_removal() {
        let mut t = Table::default();
        for i in 0..10_000 {
            t.insert(format!("k{i}"), i);
        }
        for i in (0..10_000).step_by(2) {
            assert_eq!(t.remove(&format!("k{i}")), Some(i));
        }
        for i in 0..10_000 {
            assert_eq!(t.get(&format!("k{i}")).copied(), (i % 2 == 1).then_some(i));
        }
        assert_eq!(t.len(), 5_000);
    }
}
