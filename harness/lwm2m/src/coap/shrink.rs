//! Giving memory back after a mass departure (issue 16): a hash map keeps
//! its largest capacity for ever, so a server that carried 100,000 meters
//! and saw them de-register (or their duplicate-cache entries expire) kept
//! the tables sized for 100,000. `if_sparse` shrinks a map once it is less
//! than a quarter full, to twice its length: a shrink costs O(len) and
//! follows at least three times as many removals since the map was last
//! that large, so it is amortised O(1) per removal, and a map that shrank
//! must double twice before it is that sparse again (no thrashing at the
//! boundary).

use std::collections::HashMap;
use std::hash::Hash;

/// Below this capacity a map is left alone: small tables are cheap and
/// shrinking them would only churn.
const MIN_CAPACITY: usize = 64;

pub(crate) fn if_sparse<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    let capacity = map.capacity();
    if capacity > MIN_CAPACITY && map.len() < capacity / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_emptied_to_a_tenth_shrinks_and_a_busy_one_does_not() {
        let mut map: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let full = map.capacity();
        for i in 0..5_000 {
            map.remove(&i);
            if_sparse(&mut map);
        }
        // hashbrown's capacity() counts tombstones out, so it dips a
        // little as entries go; a shrink would halve it at least.
        assert!(map.capacity() > full * 3 / 4, "half full: left as it is");
        for i in 5_000..9_000 {
            map.remove(&i);
            if_sparse(&mut map);
        }
        assert!(
            map.capacity() <= full / 3,
            "{} of {full} after 90 % left",
            map.capacity()
        );
        assert_eq!(map.len(), 1_000);
        assert!((9_000..10_000).all(|i| map.get(&i) == Some(&i)));
    }
}
