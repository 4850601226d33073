//! Plain file I/O the layers above share: the one module that maps files (and so holds the
//! storage's only `unsafe` code), durable file creation, the lock that keeps a store mounted once, and the two
//! ways every module reads its redb tables alike (copied whole, or opened if they exist).

pub mod durable;
pub mod lock;
pub mod mmap;
pub mod spill_set;
pub mod table_copy;

/// Implements `From` for the error type `$error` from `redb::Error` and from each error type
/// redb's calls return, all into its variant `$variant(redb::Error)`, so that `?` works on every
/// redb call in a module whose errors wrap the database's.
macro_rules! from_redb_errors {
    ($error:ty, $variant:path) => {
        impl From<redb::Error> for $error {
            fn from(err: redb::Error) -> Self {
                $variant(err)
            }
        }
        $crate::storage::from_redb_errors!(
            @through_redb $error,
            redb::DatabaseError,
            redb::TransactionError,
            redb::TableError,
            redb::StorageError,
            redb::CommitError,
            redb::SetDurabilityError
        );
    };
    (@through_redb $error:ty, $($t:ty),*) => {$(
        impl From<$t> for $error {
            fn from(err: $t) -> Self {
                <$error>::from(redb::Error::from(err))
            }
        }
    )*};
}
pub(crate) use from_redb_errors;

/// Opens a table for reading, or `None` if no transaction ever created it (a store made before
/// the table existed, or one that never needed it): how readers of optional tables start.
pub fn open_if_exists<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, redb::TableError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(err),
    }
}
