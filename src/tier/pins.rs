//! Trees of the live share kept in a tiered store's local cache (`snapfs tier pin`), in the
//! metadata database: `tier_pins`, inode number of the pinned file or directory → the path it
//! was pinned by (for people). A pin follows its inode, so it survives renames; the pin of a
//! tree that was deleted is dropped by the next eviction pass that looks for it. Pins are this
//! store's cache policy, not the share's: checkpoints do not carry them.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::id::InodeNo;
use crate::storage::open_if_exists;

const PINS: TableDefinition<u64, &[u8]> = TableDefinition::new("tier_pins");

/// Every pin: its inode and the path it was pinned by, by inode.
pub fn all(db: &Database) -> Result<Vec<(InodeNo, Vec<u8>)>, redb::Error> {
    let Some(table) = open_if_exists(&db.begin_read()?, PINS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in table.iter()? {
        let (ino, path) = row?;
        out.push((InodeNo(ino.value()), path.value().to_vec()));
    }
    Ok(out)
}

/// Pins `ino` (again, if it was: the path is updated), durably.
pub fn add(db: &Database, ino: InodeNo, path: &[u8]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(PINS)?.insert(ino.0, path)?;
    txn.commit()?;
    Ok(())
}

/// Unpins `ino`, durably; whether it was pinned.
pub fn remove(db: &Database, ino: InodeNo) -> Result<bool, redb::Error> {
    let txn = db.begin_write()?;
    let was = txn.open_table(PINS)?.remove(ino.0)?.is_some();
    txn.commit()?;
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_added_updated_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("db")).expect("db");
        assert!(all(&db).expect("none").is_empty());
        add(&db, InodeNo(7), b"projects/a").expect("pin");
        add(&db, InodeNo(3), b"home").expect("pin");
        add(&db, InodeNo(7), b"projects/renamed").expect("pin again");
        assert_eq!(
            all(&db).expect("all"),
            vec![
                (InodeNo(3), b"home".to_vec()),
                (InodeNo(7), b"projects/renamed".to_vec())
            ]
        );
        assert!(remove(&db, InodeNo(7)).expect("unpin"));
        assert!(!remove(&db, InodeNo(7)).expect("not pinned"));
        assert_eq!(all(&db).expect("all").len(), 1);
    }
}
