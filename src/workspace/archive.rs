//! The project as a zip file, for download.
//!
//! The same files always give the same bytes: entries are sorted by path, every timestamp is
//! the zip epoch (1980-01-01 00:00:00, so no clock is read, which wasm32 has not), every file is
//! mode 0644 and deflated. Paths are used as they are, so they must already be
//! [`super::paths::normalize`]d (the [`super::Workspace`] only holds such paths); folders are
//! implied by the paths, as most zip tools expect. Built in memory: the workspace bounds
//! ([`super::limits`]) keep it to a few MiB.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::model::FileView;

/// A zip of the files a stage sees: `zip_project(&workspace.latest())` is the current project.
pub fn zip_project(files: &BTreeMap<&str, FileView<'_>>) -> Result<Vec<u8>, String> {
    zip_files(files.values().map(|f| (f.path, f.content.as_bytes())))
}

/// A zip of `files` (path, content), whatever their order.
pub fn zip_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<u8>, String> {
    let mut files: Vec<(&str, &[u8])> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (path, content) in files {
        zip.start_file(path, options)
            .map_err(|e| format!("zip entry {path}: {e}"))?;
        zip.write_all(content)
            .map_err(|e| format!("zip entry {path}: {e}"))?;
    }
    let cursor = zip.finish().map_err(|e| format!("zip: {e}"))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Vec<(&'static str, &'static [u8])> {
        vec![
            (
                "src/main.rs",
                b"fn main() {\n    println!(\"hi\");\n}\n".as_slice(),
            ),
            ("README.md", "# Héllo 🦀\n".as_bytes()),
            ("empty.txt", b"".as_slice()),
            ("docs/a/b/deep.md", &[b'x'; 5000]),
        ]
    }

    /// A fresh file under the system temp dir, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn write_temp(bytes: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "botarmy-zip-{}-{:?}.zip",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, bytes).unwrap();
        TempFile(path)
    }

    #[test]
    fn the_same_files_in_any_order_give_the_same_bytes() {
        let a = zip_files(sample()).unwrap();
        let mut reversed = sample();
        reversed.reverse();
        assert_eq!(zip_files(reversed).unwrap(), a);
        assert_eq!(&a[..4], b"PK\x03\x04");
    }

    #[test]
    fn an_empty_project_is_an_empty_but_valid_zip() {
        let z = zip_files([]).unwrap();
        // Just the end-of-central-directory record.
        assert_eq!(&z[..4], b"PK\x05\x06");
        assert_eq!(z.len(), 22);
    }

    #[test]
    fn python_reads_back_every_name_and_byte_sorted_with_the_fixed_date() {
        let zip = write_temp(&zip_files(sample()).unwrap());
        let script = r#"
import sys, zipfile, json
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
print(json.dumps([[i.filename, list(z.read(i.filename)), list(i.date_time), i.compress_type] for i in z.infolist()]))
"#;
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&zip.0)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<(String, Vec<u8>, Vec<u32>, u32)> =
            serde_json::from_slice(&out.stdout).unwrap();
        let mut want = sample();
        want.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(got.len(), want.len());
        for ((name, bytes, date, method), (w_name, w_bytes)) in got.iter().zip(&want) {
            assert_eq!(name, w_name);
            assert_eq!(bytes.as_slice(), *w_bytes, "{name}");
            assert_eq!(date, &[1980, 1, 1, 0, 0, 0], "{name}");
            assert!(*method == 8 || *method == 0, "{name}: method {method}");
        }
    }

    #[test]
    fn unzip_lists_the_entries_when_it_is_installed() {
        let Ok(check) = Command::new("unzip").arg("-v").output() else {
            eprintln!("unzip is not installed: skipped");
            return;
        };
        assert!(check.status.success());
        let zip = write_temp(&zip_files(sample()).unwrap());
        let out = Command::new("unzip")
            .arg("-l")
            .arg(&zip.0)
            .output()
            .unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = listing
            .lines()
            .filter(|l| l.contains("1980"))
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        assert_eq!(
            names,
            ["README.md", "docs/a/b/deep.md", "empty.txt", "src/main.rs"]
        );
        let out = Command::new("unzip")
            .arg("-tq")
            .arg(&zip.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Every byte, through unzip -p.
        for (name, bytes) in sample() {
            let out = Command::new("unzip")
                .arg("-p")
                .arg(&zip.0)
                .arg(name)
                .output()
                .unwrap();
            assert_eq!(out.stdout, bytes, "{name}");
        }
    }
}
