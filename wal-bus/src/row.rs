//! [`Row`]: column name → value, ordered by name.
//!
//! Rows are what a transaction's record holds, one or two per changed row,
//! so their size is the memory a large transaction costs on the router and
//! on every replica. A `BTreeMap` allocates a whole node (about 600 bytes
//! here) even for a two-column row; this is a sorted vector of exactly the
//! pairs it holds, with the `BTreeMap` methods the code base uses. Encodings
//! stay deterministic (keys in order) and byte-identical to the map's.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::value::Value;

/// Column name → value, ordered by name, each name once.
#[derive(Clone, Default, PartialEq)]
pub struct Row {
    pairs: Vec<(String, Value)>,
}

impl Row {
    pub fn new() -> Row {
        Row::default()
    }

    /// An empty row with room for `columns` pairs (a row built column by
    /// column then takes exactly its size).
    pub fn with_capacity(columns: usize) -> Row {
        Row {
            pairs: Vec::with_capacity(columns),
        }
    }

    fn find(&self, column: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|(c, _)| c.as_str().cmp(column))
    }

    pub fn get(&self, column: &str) -> Option<&Value> {
        self.find(column).ok().map(|i| &self.pairs[i].1)
    }

    pub fn get_mut(&mut self, column: &str) -> Option<&mut Value> {
        self.find(column).ok().map(|i| &mut self.pairs[i].1)
    }

    pub fn contains_key(&self, column: &str) -> bool {
        self.find(column).is_ok()
    }

    /// Sets `column`, returning its previous value.
    pub fn insert(&mut self, column: String, value: Value) -> Option<Value> {
        match self.find(&column) {
            Ok(i) => Some(std::mem::replace(&mut self.pairs[i].1, value)),
            Err(i) => {
                self.pairs.insert(i, (column, value));
                None
            }
        }
    }

    pub fn remove(&mut self, column: &str) -> Option<Value> {
        self.find(column).ok().map(|i| self.pairs.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Pairs in column order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Value)> + ExactSizeIterator {
        self.pairs.iter().map(|(c, v)| (c, v))
    }

    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&String, &mut Value)> + ExactSizeIterator {
        self.pairs.iter_mut().map(|(c, v)| (&*c, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.pairs.iter().map(|(c, _)| c)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.pairs.iter().map(|(_, v)| v)
    }

    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator {
        self.pairs.iter_mut().map(|(_, v)| v)
    }

    /// Keeps the pairs `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Value) -> bool) {
        self.pairs.retain_mut(|(c, v)| keep(c, v));
    }

    /// Sorts pairs collected in any order; a later duplicate wins, as
    /// with `BTreeMap::from_iter`.
    fn from_pairs(mut pairs: Vec<(String, Value)>) -> Row {
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, kept| later.0 == kept.0);
        pairs.shrink_to_fit();
        Row { pairs }
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Row {
        Row::from_pairs(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, Value); N]> for Row {
    fn from(pairs: [(String, Value); N]) -> Row {
        Row::from_pairs(pairs.into())
    }
}

impl Extend<(String, Value)> for Row {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        for (c, v) in iter {
            self.insert(c, v);
        }
    }
}

impl IntoIterator for Row {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.into_iter()
    }
}

impl<'a> IntoIterator for &'a Row {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Value)>,
        fn(&'a (String, Value)) -> (&'a String, &'a Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter().map(|(c, v)| (c, v))
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.pairs.len()))?;
        for (c, v) in &self.pairs {
            map.serialize_entry(c, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row object (column name to value)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = map.next_entry::<String, Value>()? {
                    pairs.push(pair);
                }
                Ok(Row::from_pairs(pairs))
            }
        }
        d.deserialize_map(RowVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Same contents, same order and the same JSON as a `BTreeMap`
        /// built from the same pairs (later duplicates win).
        #[test]
        fn behaves_like_a_btreemap(pairs in proptest::collection::vec(("[a-d]{1,2}", any::<i64>()), 0..12),
                                   extra in "[a-e]{1,2}") {
            let pairs: Vec<(String, Value)> =
                pairs.into_iter().map(|(c, v)| (c, Value::Integer(v))).collect();
            let row: Row = pairs.iter().cloned().collect();
            let map: BTreeMap<String, Value> = pairs.iter().cloned().collect();
            prop_assert!(row.iter().eq(map.iter()));
            prop_assert_eq!(serde_json::to_string(&row).expect("json"), serde_json::to_string(&map).expect("json"));
            let back: Row = serde_json::from_str(&serde_json::to_string(&map).expect("json")).expect("json");
            prop_assert_eq!(&back, &row);
            prop_assert_eq!(row.get(&extra), map.get(&extra));
            let (mut r2, mut m2) = (row.clone(), map.clone());
            prop_assert_eq!(r2.insert(extra.clone(), Value::Null), m2.insert(extra.clone(), Value::Null));
            prop_assert!(r2.iter().eq(m2.iter()));
            prop_assert_eq!(r2.remove("a"), m2.remove("a"));
            prop_assert!(r2.iter().eq(m2.iter()));
        }
    }

    #[test]
    fn a_json_object_with_a_repeated_column_keeps_the_last() {
        let row: Row = serde_json::from_str(r#"{"b":1,"a":2,"b":3}"#).expect("row");
        assert_eq!(
            serde_json::to_string(&row).expect("json"),
            r#"{"a":2,"b":3}"#
        );
    }
}
