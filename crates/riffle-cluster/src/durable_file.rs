//! The two small files a group directory keeps beside its segments (the [`vote`
//! file](crate::vote_file) and the metadata group's [snapshot](crate::meta_snapshot)) share
//! one layout and one way of being replaced.
//!
//! Layout: `len u32 | crc32c u32 | body`, little-endian, the CRC32C covering the `len` bytes
//! of body. A file that is short, longer than its length says, or fails its checksum was
//! damaged after it was written (a write never leaves a torn file, see [`replace`]).
//!
//! [`replace`] writes `NAME.tmp` (created readable by its owner only), fsyncs it, renames it
//! over `NAME` and fsyncs the directory, so a reader sees the old file or the new one whole.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `len u32 | crc32c u32`.
pub(crate) const HEADER_BYTES: usize = 8;

/// `body` with its header.
pub(crate) fn seal(body: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    bytes.extend_from_slice(body);
    Ok(bytes)
}

/// The body of a sealed file, after checking its length and checksum; `what` names the kind
/// of file in the reasons (`"vote file"`), and files larger than `bytes_max` are refused.
pub(crate) fn unseal<'a>(
    bytes: &'a [u8],
    bytes_max: usize,
    what: &str,
) -> Result<&'a [u8], String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes, shorter than its {HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    if bytes.len() > bytes_max {
        return Err(format!("{} bytes, more than any {what}", bytes.len()));
    }
    let (header, body) = bytes.split_at(HEADER_BYTES);
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if body.len() != len {
        return Err(format!(
            "the header announces {len} bytes of body, the file holds {}",
            body.len()
        ));
    }
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    Ok(body)
}

/// The temporary file a replacement of `name` in `dir` goes through.
pub(crate) fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.tmp"))
}

/// Removes the temporary file of `name` a crash left behind (its rename never happened, so
/// it holds nothing that counted).
pub(crate) fn remove_leftover(dir: &Path, name: &str) -> io::Result<()> {
    match fs::remove_file(temp_path(dir, name)) {
        Ok(()) => sync_dir(dir),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Replaces `dir/name` with `bytes`, durably and atomically (see the module docs).
pub(crate) fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path(dir, name);
    // A leftover temp file may have other permissions; mode() applies only at creation.
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut file = riffle_log::owner_only_options(OpenOptions::new().write(true).create_new(true))
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, dir.join(name))?;
    sync_dir(dir)
}

/// fsyncs a directory, so that a rename or removal in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
