//! Which file paths a model may use, and their one normal form.
//!
//! A path names a file inside the project, relative to its root, with `/` between segments. It
//! must stay inside the project when joined onto any root, on Linux, macOS and Windows, and the
//! zip of the project must unpack everywhere. So [`normalize`] refuses:
//!
//! - an empty path, an absolute one (`/etc/passwd`), a drive letter (`C:x`), a backslash;
//! - a `..` segment, an empty segment (`a//b`), a trailing slash (that names a folder);
//! - NUL and every control character, and the characters Windows forbids (`< > : " | ? *`);
//! - a segment over [`MAX_SEGMENT_BYTES`] or a path over [`MAX_PATH_BYTES`] bytes;
//! - a segment ending in `.` or a space (Windows drops them, so `a.` and `a` would collide);
//! - Windows' reserved device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`,
//!   `CONIN$`, `CONOUT$`, `CLOCK$`, also with an extension and in any case: `con.txt`,
//!   `Lpt1.md`);
//! - a `.git` segment in any case (a project must not ship its own repository internals);
//! - characters that mislead a reader or another system about what the path is: invisible and
//!   formatting ones (Unicode category Cf: bidi overrides such as U+202E, zero-width spaces and
//!   joiners, U+FEFF; and the other default-ignorable ones such as variation selectors), line
//!   and paragraph separators, and spaces other than U+0020;
//! - a segment that reads differently once compatibility forms are folded (Unicode NFKC): a
//!   fullwidth `．．` is `..`, `／` is `/`, `ｃｏｎ` is `CON`; such a segment is held to the
//!   rules above as it reads, and a folded `/` or `\` or a `.`/`..` segment is refused.
//!
//! A `.` segment is dropped rather than refused (`./src/main.rs` is `src/main.rs`), because
//! models write it often and it cannot escape. Unicode is put in its composed form (NFC), so
//! the `café.txt` a model writes decomposed (NFD) is the same file as the composed one, as on
//! macOS. Nothing else is rewritten: case is kept (paths that differ only in case are refused
//! where the project's files are known: [`super::Workspace`]; [`fold`] is that comparison).
//!
//! Each refusal is a [`PathError`] whose [`PathError::message`] tells the model what to do.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use super::limits::{MAX_PATH_BYTES, MAX_SEGMENT_BYTES};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Empty,
    Absolute,
    DriveLetter,
    Backslash,
    ControlChar,
    ForbiddenChar(char),
    TrailingSlash,
    EmptySegment,
    ParentSegment,
    SegmentTooLong {
        bytes: usize,
    },
    PathTooLong {
        bytes: usize,
    },
    TrailingDotOrSpace(String),
    ReservedName(String),
    GitFolder,
    /// An invisible, formatting or look-alike space character.
    Invisible(char),
    /// A segment whose NFKC form (`reads_as`) is refused, or splits or dots the path.
    LookAlike {
        segment: String,
        reads_as: String,
    },
}

impl PathError {
    /// Plain English for the model: what is wrong and how to write it instead.
    pub fn message(&self) -> String {
        match self {
            PathError::Empty => "the path is empty; give a file path such as src/main.rs".into(),
            PathError::Absolute => {
                "the path starts with /; paths are relative to the project root, such as src/main.rs"
                    .into()
            }
            PathError::DriveLetter => {
                "the path has a drive letter; paths are relative to the project root, such as src/main.rs"
                    .into()
            }
            PathError::Backslash => "the path has a backslash; separate folders with /".into(),
            PathError::ControlChar => "the path has a control character (such as NUL or a newline)".into(),
            PathError::ForbiddenChar(c) => {
                format!("the path has the character {c:?}, which is not allowed in file names on Windows")
            }
            PathError::TrailingSlash => "the path ends with /, which names a folder; name a file".into(),
            PathError::EmptySegment => "the path has an empty folder name (//)".into(),
            PathError::ParentSegment => "the path has a .. segment; every file must stay inside the project".into(),
            PathError::SegmentTooLong { bytes } => format!(
                "a file or folder name is {bytes} bytes long; the most is {MAX_SEGMENT_BYTES}"
            ),
            PathError::PathTooLong { bytes } => {
                format!("the path is {bytes} bytes long; the most is {MAX_PATH_BYTES}")
            }
            PathError::TrailingDotOrSpace(s) => {
                format!("the name {s:?} ends with a dot or a space, which Windows drops; remove it")
            }
            PathError::ReservedName(s) => {
                format!("{s:?} is a reserved device name on Windows; choose another name")
            }
            PathError::GitFolder => "files inside .git cannot be written; it belongs to version control".into(),
            PathError::Invisible(c) => format!(
                "the path has the invisible or formatting character U+{:04X}, which hides what the \
                 name really is; use visible characters and plain spaces only",
                *c as u32
            ),
            PathError::LookAlike { segment, reads_as } => format!(
                "the name {segment:?} reads as {reads_as:?} (its characters are look-alikes of \
                 . / \\ or of a reserved name); write it with plain ASCII . and / instead"
            ),
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for PathError {}

/// Windows forbids these in names (`\` and `/` are handled as separators).
const FORBIDDEN: [char; 7] = ['<', '>', ':', '"', '|', '?', '*'];

/// The normal form of `raw`, or why it is refused (rules in the module docs).
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::Empty);
    }
    // Cheap guard before any work on a hostile input; the exact bound is checked below.
    if raw.len() > 4 * MAX_PATH_BYTES {
        return Err(PathError::PathTooLong { bytes: raw.len() });
    }
    if raw.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    if let Some(c) = raw.chars().find(|&c| is_invisible(c)) {
        return Err(PathError::Invisible(c));
    }
    let composed: String = raw.nfc().collect();
    let path = structure(&composed)?;
    for segment in path.split('/') {
        let reads_as: String = segment.nfkc().collect();
        if reads_as == segment {
            continue;
        }
        let look_alike = || PathError::LookAlike {
            segment: segment.to_string(),
            reads_as: reads_as.clone(),
        };
        if reads_as.contains(['/', '\\']) || reads_as == "." || reads_as == ".." {
            return Err(look_alike());
        }
        if reads_as.chars().any(|c| c.is_control() || is_invisible(c)) {
            return Err(look_alike());
        }
        check_meaning(&reads_as).map_err(|_| look_alike())?;
    }
    Ok(path)
}

/// Whether a stored path keeps the rules that make it safe to join and unpack (everything
/// [`normalize`] checks but the misleading characters and NFC, which came later): rows stored
/// before those rules still load.
pub fn well_formed(path: &str) -> bool {
    !path.is_empty() && structure(path).as_deref() == Ok(path)
}

/// How two paths compare on a file system that ignores case (Windows, macOS): equal folds
/// name the same file there.
pub fn fold(path: &str) -> String {
    path.nfc().collect::<String>().to_lowercase()
}

/// Cf (format) characters, the other default-ignorable code points, line and paragraph
/// separators and every space but U+0020: nothing a reader sees, or a space that is not one.
fn is_invisible(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    c.is_whitespace()
        || matches!(c as u32,
            // Cf, Unicode 16.
            0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
            | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
            | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
            // Other default-ignorable code points: a combining grapheme joiner, Hangul
            // fillers, Khmer and Mongolian invisibles, variation selectors, unassigned tags.
            | 0x034F | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F | 0x3164
            | 0xFE00..=0xFE0F | 0xFFA0 | 0xE0000..=0xE0FFF)
}

/// The structural rules: one path made of safe segments, `.` segments dropped.
fn structure(raw: &str) -> Result<String, PathError> {
    if raw.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    if raw.contains('\\') {
        return Err(PathError::Backslash);
    }
    if raw.starts_with('/') {
        return Err(PathError::Absolute);
    }
    let mut chars = raw.chars();
    if let (Some(letter), Some(':')) = (chars.next(), chars.next()) {
        if letter.is_ascii_alphabetic() {
            return Err(PathError::DriveLetter);
        }
    }
    if let Some(c) = raw.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(PathError::ForbiddenChar(c));
    }
    if raw.ends_with('/') {
        return Err(PathError::TrailingSlash);
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in raw.split('/') {
        match segment {
            "" => return Err(PathError::EmptySegment),
            "." => continue,
            ".." => return Err(PathError::ParentSegment),
            _ => {}
        }
        check_segment(segment)?;
        kept.push(segment);
    }
    if kept.is_empty() {
        return Err(PathError::Empty);
    }
    let path = kept.join("/");
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::PathTooLong { bytes: path.len() });
    }
    Ok(path)
}

/// The rules for one segment that is neither empty, `.` nor `..`.
fn check_segment(segment: &str) -> Result<(), PathError> {
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err(PathError::SegmentTooLong {
            bytes: segment.len(),
        });
    }
    check_meaning(segment)
}

/// What a segment must not say, as written or as it reads (NFKC): the length is not part of it.
fn check_meaning(segment: &str) -> Result<(), PathError> {
    if segment.eq_ignore_ascii_case(".git") {
        return Err(PathError::GitFolder);
    }
    if segment.ends_with('.') || segment.ends_with(' ') {
        return Err(PathError::TrailingDotOrSpace(segment.to_string()));
    }
    if is_reserved(segment) {
        return Err(PathError::ReservedName(segment.to_string()));
    }
    if let Some(c) = segment.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(PathError::ForbiddenChar(c));
    }
    Ok(())
}

/// `CON`, `con.txt`, `Com1.tar.gz`, `LPT²`, `CONIN$`: the part before the first dot, trailing
/// spaces ignored, is a device name.
fn is_reserved(segment: &str) -> bool {
    let stem = segment
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" | "CLOCK$" => true,
        _ => {
            let mut chars = upper.chars();
            let prefix: String = chars.by_ref().take(3).collect();
            let rest: Vec<char> = chars.collect();
            (prefix == "COM" || prefix == "LPT")
                && rest.len() == 1
                && (rest[0].is_ascii_digit() || matches!(rest[0], '¹' | '²' | '³'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    fn ok(raw: &str) -> String {
        normalize(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
    }

    #[test]
    fn ordinary_relative_paths_are_kept_as_they_are() {
        for p in [
            "README.md",
            "src/main.rs",
            ".gitignore",
            ".github/workflows/ci.yml",
            "docs/Über uns.md",
            "a/b/c/d/e.txt",
            "Makefile",
            "console.txt",
            "COM10",
            "lpt",
            "..hidden",
            "a..b",
        ] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn dot_segments_are_dropped() {
        assert_eq!(ok("./src/main.rs"), "src/main.rs");
        assert_eq!(ok("src/./main.rs"), "src/main.rs");
        assert_eq!(normalize("."), Err(PathError::Empty));
        assert_eq!(normalize("./."), Err(PathError::Empty));
    }

    #[test]
    fn escaping_paths_are_refused() {
        assert_eq!(normalize(""), Err(PathError::Empty));
        assert_eq!(normalize("/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(normalize("//server/share"), Err(PathError::Absolute));
        assert_eq!(normalize("../x"), Err(PathError::ParentSegment));
        assert_eq!(normalize("a/../../x"), Err(PathError::ParentSegment));
        assert_eq!(normalize("a/.."), Err(PathError::ParentSegment));
        assert_eq!(normalize("C:x"), Err(PathError::DriveLetter));
        assert_eq!(normalize("c:/windows"), Err(PathError::DriveLetter));
        assert_eq!(normalize("a\\b"), Err(PathError::Backslash));
        assert_eq!(normalize("..\\x"), Err(PathError::Backslash));
    }

    #[test]
    fn control_and_windows_forbidden_characters_are_refused() {
        for p in ["a\0b", "a\nb", "tab\there", "del\u{7f}", "c1\u{85}"] {
            assert_eq!(normalize(p), Err(PathError::ControlChar), "{p:?}");
        }
        for c in FORBIDDEN {
            assert_eq!(
                normalize(&format!("ab{c}c")),
                Err(PathError::ForbiddenChar(c))
            );
        }
        assert_eq!(
            normalize("file.txt:stream"),
            Err(PathError::ForbiddenChar(':'))
        );
    }

    #[test]
    fn empty_segments_and_trailing_slashes_are_refused() {
        assert_eq!(normalize("a//b"), Err(PathError::EmptySegment));
        assert_eq!(normalize("src/"), Err(PathError::TrailingSlash));
    }

    #[test]
    fn long_names_and_paths_are_refused() {
        let seg = "x".repeat(MAX_SEGMENT_BYTES);
        assert_eq!(ok(&seg), seg);
        assert_eq!(
            normalize(&format!("{seg}y")),
            Err(PathError::SegmentTooLong {
                bytes: MAX_SEGMENT_BYTES + 1
            })
        );
        // Multibyte characters count in bytes.
        assert!(normalize(&"é".repeat(51)).is_err());
        let long = [seg.as_str(); 3].join("/");
        assert_eq!(normalize(&long), Err(PathError::PathTooLong { bytes: 302 }));
        let exact = format!("{}/{}/{}", seg, seg, "z".repeat(MAX_PATH_BYTES - 202));
        assert_eq!(ok(&exact).len(), MAX_PATH_BYTES);
        assert!(normalize(&"a/".repeat(5000)).is_err());
    }

    #[test]
    fn windows_reserved_names_are_refused_in_any_case_and_with_any_extension() {
        for p in [
            "CON",
            "con",
            "Con.txt",
            "src/aux.rs",
            "nul.tar.gz",
            "PRN",
            "COM1",
            "com9.log",
            "LPT1",
            "lpt0",
            "COM¹",
            "NUL .txt",
        ] {
            assert!(
                matches!(normalize(p), Err(PathError::ReservedName(_))),
                "{p:?}: {:?}",
                normalize(p)
            );
        }
    }

    #[test]
    fn names_ending_in_a_dot_or_space_are_refused() {
        assert!(matches!(
            normalize("a."),
            Err(PathError::TrailingDotOrSpace(_))
        ));
        assert!(matches!(
            normalize("dir /f"),
            Err(PathError::TrailingDotOrSpace(_))
        ));
        assert!(matches!(
            normalize("..."),
            Err(PathError::TrailingDotOrSpace(_))
        ));
    }

    #[test]
    fn git_internals_are_refused() {
        assert_eq!(normalize(".git/config"), Err(PathError::GitFolder));
        assert_eq!(
            normalize("sub/.GIT/hooks/pre-commit"),
            Err(PathError::GitFolder)
        );
        assert_eq!(normalize(".git"), Err(PathError::GitFolder));
        assert_eq!(ok(".gitattributes"), ".gitattributes");
    }

    #[test]
    fn windows_console_and_clock_devices_are_refused() {
        for p in [
            "CONIN$",
            "conout$",
            "Conout$.txt",
            "CLOCK$",
            "src/clock$.log",
        ] {
            assert!(
                matches!(normalize(p), Err(PathError::ReservedName(_))),
                "{p:?}: {:?}",
                normalize(p)
            );
        }
        assert_eq!(ok("CONIN"), "CONIN");
        assert_eq!(ok("clock.rs"), "clock.rs");
    }

    #[test]
    fn invisible_and_formatting_characters_are_refused() {
        for (p, c) in [
            // A right-to-left override: "txt.exe" shows as "exe.txt".
            ("invoice\u{202e}txt.exe", '\u{202e}'),
            ("\u{2066}a.md", '\u{2066}'),
            ("a\u{200b}b.md", '\u{200b}'),
            ("zw\u{200d}j", '\u{200d}'),
            ("\u{feff}bom.txt", '\u{feff}'),
            ("soft\u{ad}hyphen", '\u{ad}'),
            ("x\u{fe0f}.md", '\u{fe0f}'),
            ("tag\u{e0041}", '\u{e0041}'),
            ("no\u{a0}break.md", '\u{a0}'),
            ("wide\u{3000}space", '\u{3000}'),
            ("line\u{2028}sep", '\u{2028}'),
        ] {
            assert_eq!(normalize(p), Err(PathError::Invisible(c)), "{p:?}");
        }
        let m = normalize("a\u{202e}b").unwrap_err().message();
        assert!(m.contains("U+202E"), "{m}");
        assert_eq!(ok("plain space.md"), "plain space.md");
    }

    #[test]
    fn look_alikes_of_dots_slashes_and_reserved_names_are_refused() {
        for p in [
            "\u{ff0e}\u{ff0e}\u{ff0f}escape.txt",
            "\u{ff0e}\u{ff0e}/x",
            "src/\u{ff0e}",
            "a\u{ff0f}b",
            "a\u{ff3c}b",
            "\u{ff43}\u{ff4f}\u{ff4e}.txt",
            "x\u{ff0e}",
            "a\u{ff1a}b",
            "\u{ff0e}git/config",
            "one\u{2024}",
        ] {
            assert!(
                matches!(normalize(p), Err(PathError::LookAlike { .. })),
                "{p:?}: {:?}",
                normalize(p)
            );
        }
        let m = normalize("\u{ff0e}\u{ff0e}\u{ff0f}escape.txt")
            .unwrap_err()
            .message();
        assert!(m.contains("reads as \"../escape.txt\""), "{m}");
        // Compatibility forms that read as an ordinary name are kept as written.
        for p in [
            "\u{ff41}\u{ff42}.txt",
            "\u{fb01}le.md",
            "x\u{2026}y.md",
            "\u{bd}.md",
        ] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn paths_are_kept_composed() {
        assert_eq!(ok("cafe\u{301}.txt"), "caf\u{e9}.txt");
        assert_eq!(ok("caf\u{e9}.txt"), "caf\u{e9}.txt");
        assert_eq!(ok("A\u{30a}ngstr\u{f6}m/x"), "\u{c5}ngstr\u{f6}m/x");
        assert_eq!(fold("\u{c9}lan.md"), fold("e\u{301}lan.md"));
        assert!(
            well_formed("a\u{200b}b"),
            "rows stored before the rule still load"
        );
        assert!(!well_formed("../x") && !well_formed("./x") && !well_formed(""));
    }

    #[test]
    fn every_refusal_reads_as_advice() {
        for p in [
            "",
            "/a",
            "C:a",
            "a\\b",
            "a\0",
            "a|b",
            "a/",
            "a//b",
            "..",
            "CON",
            "a.",
            ".git/x",
            "a\u{202e}",
            "\u{ff0e}\u{ff0e}",
        ] {
            let e = normalize(p).unwrap_err();
            assert!(e.message().len() > 20, "{p:?}: {e}");
        }
    }

    /// Lexically joins `path` onto `root` the way a file system would, resolving `..`.
    fn lexical_join(root: &Path, path: &str) -> Vec<String> {
        let mut parts: Vec<String> = root
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        for c in Path::new(path).components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => parts.clear(),
            }
        }
        parts
    }

    proptest! {
        #[test]
        fn accepted_paths_never_leave_the_workspace(raw in "(\\.|\\.\\.|/|\\\\|a|B|é|e\u{301}|:|C:|con|\\.git| |\0|\n|\u{ff0e}|\u{ff0f}|\u{202e}|\u{200b}|\u{ff43}\u{ff4f}\u{ff4e}){0,24}") {
            if let Ok(p) = normalize(&raw) {
                prop_assert!(!p.is_empty());
                prop_assert!(!p.starts_with('/'));
                prop_assert!(!p.contains('\\') && !p.contains('\0') && !p.contains(':'));
                prop_assert!(p.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
                // Nothing that reads as a separator, a dot segment or a device hides in it.
                let reads_as: String = p.nfkc().collect();
                prop_assert!(reads_as.split('/').all(|s| s != "." && s != ".." && !is_reserved(s)));
                prop_assert!(!p.chars().any(is_invisible));
                prop_assert!(p.len() <= MAX_PATH_BYTES);
                let root = Path::new("/srv/workspace");
                let joined = lexical_join(root, &p);
                prop_assert_eq!(&joined[..2], &["srv".to_string(), "workspace".to_string()][..]);
                prop_assert!(joined.len() > 2);
                prop_assert!(Path::new(&p).components().all(|c| matches!(c, Component::Normal(_))));
                // The normal form is a fixed point.
                prop_assert_eq!(normalize(&p), Ok(p.clone()));
            }
        }

        #[test]
        fn any_string_gives_a_path_or_a_reason_never_a_panic(raw in any::<String>()) {
            let _ = normalize(&raw).map_err(|e| e.message());
        }
    }
}
