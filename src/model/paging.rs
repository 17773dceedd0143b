//! Paging deep in a long list by its block counts: each block of 65,536 ids has its rows
//! counted (by the store), and a page at offset `k` adds the blocks up from the newest until it
//! passes `k` ([`seek`]), then reads ids below that block's end.

/// Ids per block: `id >> BLOCK_BITS` is a row's block.
pub const BLOCK_BITS: u32 = 16;

/// Where a page starts, newest first: skip `skip` rows with ids below `below`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seek {
    /// The page's rows have ids below this.
    pub below: i64,
    /// Rows (below `below`, newest first) before the page's first row.
    pub skip: i64,
}

/// Finds where the row at `offset` (newest first) lies, from the row counts of each block,
/// newest block first. `None` when the list has no row at `offset`.
pub fn seek(blocks: &[(i64, u64)], offset: u64) -> Option<Seek> {
    let mut newer = 0u64;
    for &(block, n) in blocks {
        if newer + n > offset {
            return Some(Seek {
                below: (block + 1) << BLOCK_BITS,
                skip: i64::try_from(offset - newer).ok()?,
            });
        }
        newer += n;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_starts_in_the_block_its_offset_falls_in() {
        // Blocks 9, 7, 3 (newest first) holding 10, 5 and 20 rows.
        let blocks = [(9, 10), (7, 5), (3, 20)];
        let at = |offset| seek(&blocks, offset);
        assert_eq!(
            at(0),
            Some(Seek {
                below: 10 << 16,
                skip: 0
            })
        );
        assert_eq!(
            at(9),
            Some(Seek {
                below: 10 << 16,
                skip: 9
            })
        );
        assert_eq!(
            at(10),
            Some(Seek {
                below: 8 << 16,
                skip: 0
            })
        );
        assert_eq!(
            at(14),
            Some(Seek {
                below: 8 << 16,
                skip: 4
            })
        );
        assert_eq!(
            at(15),
            Some(Seek {
                below: 4 << 16,
                skip: 0
            })
        );
        assert_eq!(
            at(34),
            Some(Seek {
                below: 4 << 16,
                skip: 19
            })
        );
        assert_eq!(at(35), None, "past the end");
        assert_eq!(seek(&[], 0), None, "an empty list");
    }
}
