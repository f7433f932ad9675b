//! The field index of a format 2 shard: for each field value and id prefix, one bit per id
//! number, in blocks of [`BITS_BLOCK`] numbers (`field_bits`: `(field tag, value, prefix,
//! block)` → up to 512 bytes, bit `n % 4096` of block `n / 4096`, least significant bit first).
//!
//! Design decision: a row per entry and field (`field_index` of format 1, `(tag, value,
//! prefix, number)` → `()`) cost 209 bytes of pages per entry at 1,000,000 entries, because
//! each value's rows grow in the middle of the table and redb splits its pages in half (57 %
//! of those pages unused). A block is rewritten in place as its bits are set, so the table
//! only grows by a block per value every 4,096 numbers: about 2 bits per entry for a field
//! with a dozen values. A batch's entries have nearby numbers, so it rewrites few blocks.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{ReadableTable, Table};
use registry_core::StageResult;

use super::RedbStorage;

/// How many numbers one block covers.
pub(super) const BITS_BLOCK: u64 = 4096;

/// The key of a block.
type BlockKey<'a> = (u8, &'a str, &'a str, u64);

/// Changes to the field index, gathered per block and applied once each.
#[derive(Default)]
pub(super) struct BitChanges<'a> {
    blocks: BTreeMap<BlockKey<'a>, Vec<(u64, bool)>>,
}

impl<'a> BitChanges<'a> {
    /// Sets (`on`) or clears the bit of `number` for `(tag, value, prefix)`.
    pub(super) fn change(
        &mut self,
        tag: u8,
        value: &'a str,
        prefix: &'a str,
        number: u64,
        on: bool,
    ) {
        self.blocks
            .entry((tag, value, prefix, number / BITS_BLOCK))
            .or_default()
            .push((number % BITS_BLOCK, on));
    }
}

impl RedbStorage {
    /// Applies `changes` to `field_bits`, each block read and written once.
    pub(super) fn apply_bits(
        &self,
        table: &mut Table<'_, (u8, &'static str, &'static str, u64), &'static [u8]>,
        changes: BitChanges<'_>,
    ) -> StageResult<()> {
        for (key, bits) in changes.blocks {
            let mut block = table
                .get(key)
                .map_err(|e| self.fail("read", e))?
                .map(|g| g.value().to_vec())
                .unwrap_or_default();
            for (bit, on) in bits {
                let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
                if block.len() <= byte {
                    block.resize(byte + 1, 0);
                }
                if on {
                    block[byte] |= mask;
                } else {
                    block[byte] &= !mask;
                }
            }
            while block.last() == Some(&0) {
                block.pop();
            }
            if block.is_empty() {
                table.remove(key).map_err(|e| self.fail("write", e))?;
            } else {
                table
                    .insert(key, block.as_slice())
                    .map_err(|e| self.fail("write", e))?;
            }
        }
        Ok(())
    }

    /// Calls `each` with `(prefix, number)` for every set bit of `(tag, value)`, in id order,
    /// from after `after`; stops when `each` returns false.
    pub(super) fn walk_bits(
        &self,
        table: &impl ReadableTable<(u8, &'static str, &'static str, u64), &'static [u8]>,
        tag: u8,
        value: &str,
        after: Option<(&str, u64)>,
        each: &mut dyn FnMut(&str, u64) -> StageResult<bool>,
    ) -> StageResult<()> {
        let start = match after {
            Some((prefix, number)) => Bound::Included((tag, value, prefix, number / BITS_BLOCK)),
            None => Bound::Included((tag, value, "", 0)),
        };
        let rows = table
            .range::<BlockKey<'_>>((start, Bound::Unbounded))
            .map_err(|e| self.fail("read", e))?;
        for row in rows {
            let (key, block) = row.map_err(|e| self.fail("read", e))?;
            let (row_tag, row_value, prefix, index) = key.value();
            if row_tag != tag || row_value != value {
                break;
            }
            for (byte_at, &byte) in block.value().iter().enumerate() {
                let mut bits = byte;
                while bits != 0 {
                    let bit = u64::from(bits.trailing_zeros());
                    bits &= bits - 1;
                    let number = index * BITS_BLOCK + byte_at as u64 * 8 + bit;
                    if after.is_some_and(|a| (prefix, number) <= a) {
                        continue;
                    }
                    if !each(prefix, number)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_gather_per_block() {
        let mut c = BitChanges::default();
        c.change(3, "LIVE", "SEC-RUL", 1, true);
        c.change(3, "LIVE", "SEC-RUL", 4097, true);
        c.change(3, "LIVE", "SEC-RUL", 9, true);
        c.change(3, "LIVE", "SEC-RUL", 1, false);
        let keys: Vec<_> = c.blocks.keys().copied().collect();
        assert_eq!(keys, [(3, "LIVE", "SEC-RUL", 0), (3, "LIVE", "SEC-RUL", 1)]);
        assert_eq!(
            c.blocks[&(3, "LIVE", "SEC-RUL", 0)],
            [(1, true), (9, true), (1, false)]
        );
    }
}
