//! Plain file I/O the layers above share: the one module that maps files (and so holds the only
//! `unsafe` code), durable file creation, and the lock that keeps a store mounted once.

pub mod durable;
pub mod lock;
pub mod mmap;
pub mod table_copy;
