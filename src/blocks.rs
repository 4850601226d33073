//! How a byte range of a file maps onto its fixed-size blocks: shared by the live share's read
//! and write paths and by reads inside snapshots.

/// The part of one block that a byte range covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSpan {
    /// The block's index in the file.
    pub index: u64,
    /// Where the span starts inside the block.
    pub in_block: usize,
    /// How many bytes of the block it covers.
    pub len: usize,
    /// Where the span starts inside the range.
    pub at: usize,
}

/// The spans of `start..end`, block by block, in order.
pub fn spans(start: u64, end: u64, block_size: u32) -> impl Iterator<Item = BlockSpan> {
    let bs = u64::from(block_size);
    let mut pos = start;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let span = BlockSpan {
            index: pos / bs,
            in_block: (pos % bs) as usize,
            len: (bs - pos % bs).min(end - pos) as usize,
            at: (pos - start) as usize,
        };
        pos += span.len as u64;
        Some(span)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_range_block_by_block() {
        let all: Vec<BlockSpan> = spans(5, 25, 10).collect();
        assert_eq!(
            all,
            [
                BlockSpan {
                    index: 0,
                    in_block: 5,
                    len: 5,
                    at: 0
                },
                BlockSpan {
                    index: 1,
                    in_block: 0,
                    len: 10,
                    at: 5
                },
                BlockSpan {
                    index: 2,
                    in_block: 0,
                    len: 5,
                    at: 15
                },
            ]
        );
        assert_eq!(spans(7, 7, 10).count(), 0);
    }
}
