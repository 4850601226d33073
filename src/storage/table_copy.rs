//! Copying redb tables row by row from a read transaction into a write transaction of another
//! database: how a checkpoint turns one consistent (MVCC) view of the metadata database into a
//! database file of its own, while commits go on.
//!
//! redb has no untyped row access, so each module that owns tables copies its own with
//! [`copy_table`]; the checkpoint's test checks that every table the database holds was copied.

use redb::{Key, ReadTransaction, ReadableTable, TableDefinition, Value, WriteTransaction};

/// Copies every row of `table` (if `from` has it) into `to`, in key order.
pub fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), redb::Error> {
    let Some(source) = super::open_if_exists(from, table)? else {
        return Ok(());
    };
    let mut target = to.open_table(table)?;
    for row in source.iter()? {
        let (key, value) = row?;
        target.insert(key.value(), value.value())?;
    }
    Ok(())
}
