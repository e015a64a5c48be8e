//! [`Table`]: a hash-indexed slab of entities. Lookups are O(1) by key; slots never move, so a
//! snapshot can copy a table in small chunks by slot number, releasing the shard lock between
//! chunks (see `docs/ARCHITECTURE.md`, "Snapshots"). An entity created in a vacant slot behind
//! the snapshot's cursor was created after the snapshot began, so the WAL replay after the
//! snapshot re-creates it.
//!
//! The key is stored once, in its slot: the hash index holds only slot numbers and compares
//! keys through the slab. That saves a copy of every key on the hot path, and lets other
//! indexes of a shard (expiry, retention queues) name an entity by its slot.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher as _};

use compact_str::CompactString;
use hashbrown::HashTable;

// Seeded per table: keys are client ids, so collisions must not be predictable.
type Hasher = foldhash::fast::RandomState;

/// The bytes alone (a slice's `Hash` adds its length; equality is checked after the hash).
fn hash_bytes(hasher: &Hasher, bytes: &[u8]) -> u64 {
    let mut state = hasher.build_hasher();
    state.write(bytes);
    state.finish()
}

#[derive(Debug, Clone)]
pub struct Table<E> {
    /// Keys of up to 24 bytes live inline in their slot ([`CompactString`]): a lookup that
    /// finds its slot compares the key there, without one more cache miss into the heap.
    slots: Vec<Option<(CompactString, E)>>,
    /// The hash of each full slot's key, by slot: the index grows and entries leave it
    /// without hashing a key again (or reaching into the key's heap bytes, a cache miss per
    /// entry when a table of a million ids doubles).
    hashes: Vec<u64>,
    vacant: Vec<usize>,
    index: HashTable<usize>,
    hasher: Hasher,
    /// The slot the last lookup found (`usize::MAX`: none). An op looks its SKU and its hold
    /// up several times in a row — deciding, applying, checking alerts, replying — and a
    /// flash sale looks up one SKU op after op: a hit costs one key comparison in that slot
    /// instead of hashing the key and probing the index. A slot since vacated or reused
    /// holds another key (or none), so the comparison alone keeps the answer right.
    recent: Cell<usize>,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            hashes: Vec::new(),
            vacant: Vec::new(),
            index: HashTable::new(),
            hasher: Hasher::default(),
            recent: Cell::new(usize::MAX),
        }
    }
}

impl<E> Table<E> {
    fn hash(&self, key: &[u8]) -> u64 {
        hash_bytes(&self.hasher, key)
    }

    /// Makes room for `additional` more entities without rehashing (bulk loads).
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        self.hashes.reserve(additional);
        let hashes = &self.hashes;
        self.index.reserve(additional, |&slot| hashes[slot]);
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The slot holding `key`, if any.
    pub fn slot_of(&self, key: &str) -> Option<usize> {
        let (slots, key) = (&self.slots, key.as_bytes());
        let recent = self.recent.get();
        if let Some(Some((k, _))) = slots.get(recent)
            && k.as_bytes() == key
        {
            return Some(recent);
        }
        let found = self
            .index
            .find(self.hash(key), |&slot| {
                slots[slot]
                    .as_ref()
                    .is_some_and(|(k, _)| k.as_bytes() == key)
            })
            .copied();
        if let Some(slot) = found {
            self.recent.set(slot);
        }
        found
    }

    pub fn get(&self, key: &str) -> Option<&E> {
        self.slot_of(key)
            .map(|slot| &self.slots[slot].as_ref().expect("indexed slot is full").1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut E> {
        let slot = self.slot_of(key)?;
        Some(&mut self.slots[slot].as_mut().expect("indexed slot is full").1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.slot_of(key).is_some()
    }

    /// Inserts or replaces the entity under `key`; returns its slot.
    /// `key` may be borrowed (copied only if new) or owned (moved in).
    pub fn insert<K: AsRef<str> + Into<CompactString>>(&mut self, key: K, entity: E) -> usize {
        let hash = self.hash(key.as_ref().as_bytes());
        let slots = &self.slots;
        let found = self
            .index
            .find(hash, |&slot| {
                slots[slot].as_ref().is_some_and(|(k, _)| k == key.as_ref())
            })
            .copied();
        if let Some(slot) = found {
            self.slots[slot].as_mut().expect("indexed slot is full").1 = entity;
            return slot;
        }
        self.insert_hashed(hash, key, entity)
    }

    /// Inserts `entity` unless the table already holds a newer version of its key (by
    /// `version`), keeping the newer one; returns the slot and whether `entity` was kept. For
    /// snapshot restore: a fuzzy cut can hold one id twice (an object that ended, was
    /// forgotten and had its id reused while the cut ran).
    pub fn insert_newest<K: AsRef<str> + Into<CompactString>>(
        &mut self,
        key: K,
        entity: E,
        version: impl Fn(&E) -> u64,
    ) -> (usize, bool) {
        match self.slot_of(key.as_ref()) {
            Some(slot) => {
                let held = self.entity_mut(slot).expect("found above");
                let newer = version(held) < version(&entity);
                if newer {
                    *held = entity;
                }
                (slot, newer)
            }
            None => (self.insert_absent(key, entity), true),
        }
    }

    /// Inserts an entity whose key the caller has just looked up and not found (one lookup
    /// fewer than [`Table::insert`]); returns its slot.
    pub fn insert_absent<K: AsRef<str> + Into<CompactString>>(
        &mut self,
        key: K,
        entity: E,
    ) -> usize {
        debug_assert!(
            !self.contains(key.as_ref()),
            "insert_absent of a present key"
        );
        self.insert_hashed(self.hash(key.as_ref().as_bytes()), key, entity)
    }

    fn insert_hashed(&mut self, hash: u64, key: impl Into<CompactString>, entity: E) -> usize {
        let slot = match self.vacant.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.hashes.push(0);
                self.slots.len() - 1
            }
        };
        debug_assert!(self.slots[slot].is_none(), "a vacant slot is empty");
        self.slots[slot] = Some((key.into(), entity));
        self.hashes[slot] = hash;
        self.recent.set(slot);
        let hashes = &self.hashes;
        self.index.insert_unique(hash, slot, |&s| hashes[s]);
        slot
    }

    pub fn remove(&mut self, key: &str) -> Option<E> {
        let slot = self.slot_of(key)?;
        self.remove_slot(slot)
    }

    /// Empties `slot` (if full) and returns its entity.
    pub fn remove_slot(&mut self, slot: usize) -> Option<E> {
        let (key, entity) = self.slots.get_mut(slot)?.take()?;
        let hash = self.hashes[slot];
        debug_assert_eq!(
            hash,
            self.hash(key.as_bytes()),
            "stored hash of slot {slot}"
        );
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

    /// The entity in `slot`, if the slot is full.
    pub fn slot(&self, slot: usize) -> Option<(&str, &E)> {
        self.slots
            .get(slot)
            .and_then(|s| s.as_ref())
            .map(|(k, e)| (k.as_str(), e))
    }

    /// The entity in `slot`, if the slot is full (without its key).
    pub fn entity(&self, slot: usize) -> Option<&E> {
        self.slots
            .get(slot)
            .and_then(|s| s.as_ref())
            .map(|(_, e)| e)
    }

    /// The entity in `slot`, mutable, if the slot is full.
    pub fn entity_mut(&mut self, slot: usize) -> Option<&mut E> {
        self.slots
            .get_mut(slot)
            .and_then(|s| s.as_mut())
            .map(|(_, e)| e)
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
        t.insert("a", 1);
        t.insert("b", 2);
        t.insert("c", 3);
        assert_eq!(t.slot(1), Some(("b", &2)));
        assert_eq!(t.remove("a"), Some(1));
        assert_eq!(t.get("a"), None);
        assert_eq!(t.slot(2), Some(("c", &3)), "others do not move");
        assert_eq!(t.insert("d", 4), 0, "vacant slot reused");
        assert_eq!(t.slot(0), Some(("d", &4)));
        assert_eq!(t.insert("b", 20), 1, "a replaced key keeps its slot");
        assert_eq!(t.get("b"), Some(&20));
        assert_eq!(t.len(), 3);
        assert_eq!(t.iter().count(), 3);
        assert_eq!(t.remove_slot(1), Some(20));
        assert_eq!(t.remove_slot(1), None, "already vacant");
        assert!(!t.contains("b"));
        assert_eq!(t.len(), 2);
    }

    /// The remembered last slot never answers for a key it no longer holds.
    #[test]
    fn a_vacated_or_reused_recent_slot_is_not_mistaken_for_its_old_key() {
        let mut t = Table::default();
        t.insert("a", 1);
        t.insert("b", 2);
        assert_eq!(t.get("a"), Some(&1));
        assert_eq!(t.remove("a"), Some(1));
        assert_eq!(t.get("a"), None, "vacated");
        assert_eq!(t.insert("c", 3), 0, "reuses a's slot");
        assert_eq!(t.get("a"), None, "reused by another key");
        assert_eq!(t.get("c"), Some(&3));
        assert_eq!(t.get("b"), Some(&2));
        assert_eq!(t.get("c"), Some(&3), "after a lookup of another slot");
        *t.get_mut("c").unwrap() = 30;
        assert_eq!(t.get("c"), Some(&30));
        assert_eq!(t.remove_slot(0), Some(30));
        assert_eq!(t.get("c"), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn short_long_and_unicode_keys_round_trip() {
        let mut t = Table::default();
        let keys = [
            "k".to_string(),
            "x".repeat(22),
            "y".repeat(23),
            // The inline capacity's edge: 24 bytes live in the slot, 25 on the heap.
            "v".repeat(24),
            "w".repeat(25),
            "z".repeat(64),
            "wärme-€-✓".to_string(),
            "x".repeat(21),
        ];
        for (i, k) in keys.iter().enumerate() {
            // Borrowed and owned keys alike.
            let slot = if i % 2 == 0 {
                t.insert(k.as_str(), i)
            } else {
                t.insert(k.clone(), i)
            };
            assert_eq!(slot, i);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get(k), Some(&i), "{k}");
            assert_eq!(t.slot(i), Some((k.as_str(), &i)));
        }
        assert_eq!(t.get(&"x".repeat(23)), None);
        assert_eq!(t.get(&"v".repeat(25)), None);
        assert_eq!(t.get(&"w".repeat(24)), None);
        assert_eq!(t.remove(&keys[3]), Some(3));
        assert_eq!(t.get(&keys[3]), None);
        assert_eq!(t.iter().count(), keys.len() - 1);
    }

    #[test]
    fn insert_newest_keeps_the_higher_version_in_either_order() {
        let mut t = Table::default();
        assert_eq!(t.insert_newest("k", (1, "older"), |e| e.0), (0, true));
        assert_eq!(t.insert_newest("k", (2, "newer"), |e| e.0), (0, true));
        assert_eq!(t.insert_newest("k", (1, "older"), |e| e.0), (0, false));
        assert_eq!(t.get("k"), Some(&(2, "newer")));
        assert_eq!(t.len(), 1);
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
        // Vacated slots are reused by new keys: every full slot's stored hash is its key's.
        for i in 0..2_500 {
            t.insert(format!("new{i}"), i);
        }
        assert_eq!(t.slots(), 10_000, "no slot added while vacant ones remain");
        for slot in 0..t.slots() {
            if let Some((key, _)) = t.slot(slot) {
                assert_eq!(t.hashes[slot], t.hash(key.as_bytes()), "slot {slot}");
            }
        }
        assert_eq!(t.get("new7"), Some(&7));
    }
}
