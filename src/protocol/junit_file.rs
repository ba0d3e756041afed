//! The JUnit XML a test wrote to `XML_OUTPUT_FILE` (the Bazel
//! convention): its `<testcase>` elements, in any nesting of
//! `<testsuites>` / `<testsuite>`, become cases of the test. The file
//! lives in a directory the test could write, so it is opened without
//! following symlinks, must be a regular file and is read up to a bound;
//! anything wrong with it is a reason the test fails, never the run.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use super::case::{Case, CaseStatus};

/// Most bytes read from the file.
const MAX_BYTES: u64 = 64 << 20;

/// The name reasons use for the file.
const NAME: &str = "XML_OUTPUT_FILE";

/// The cases of the file at `path` (host side); none when the test wrote
/// no file.
pub fn read(path: &Path) -> Result<Vec<Case>, String> {
    // Looked at before it is opened: opening a device node or a fifo the
    // test made could block or act on the host.
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("{NAME}: cannot stat it: {error}")),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(format!(
                "{NAME} is a symbolic link, which isotest does not follow (write the file itself)"
            ))
        }
        Ok(meta) if !meta.is_file() => return Err(format!("{NAME} is not a regular file")),
        Ok(_) => {}
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| format!("{NAME}: cannot open it: {error}"))?;
    let text = read_bounded(file)?;
    parse(&text)
}

fn read_bounded(file: File) -> Result<String, String> {
    let meta = file
        .metadata()
        .map_err(|e| format!("{NAME}: cannot stat it: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{NAME} is not a regular file"));
    }
    if meta.len() > MAX_BYTES {
        return Err(format!(
            "{NAME} is {} bytes, over the {MAX_BYTES} isotest reads",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{NAME}: cannot read it: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("{NAME} is not UTF-8: {e}"))
}

/// The testcases of a JUnit document.
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let document = roxmltree::Document::parse(text)
        .map_err(|e| format!("{NAME} is not well-formed XML: {e}"))?;
    let root = document.root_element();
    if !matches!(root.tag_name().name(), "testsuites" | "testsuite") {
        return Err(format!(
            "{NAME} is not JUnit XML: its root element is <{}>, not <testsuites> or <testsuite>",
            root.tag_name().name()
        ));
    }
    root.descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .map(testcase)
        .collect()
}

fn testcase(node: roxmltree::Node) -> Result<Case, String> {
    let Some(name) = node.attribute("name") else {
        let (line, column) = position(node);
        return Err(format!(
            "{NAME}:{line}:{column}: a <testcase> without a name attribute"
        ));
    };
    let name = match node.attribute("classname") {
        Some(class) if !class.is_empty() => format!("{class}.{name}"),
        _ => name.to_string(),
    };
    let mut case = Case::new(name, CaseStatus::Pass);
    case.duration = node
        .attribute("time")
        .and_then(|t| t.parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok());
    for child in node.children().filter(|c| c.is_element()) {
        let status = match child.tag_name().name() {
            "failure" => CaseStatus::Fail,
            "error" => CaseStatus::Error,
            "skipped" => CaseStatus::Skip,
            _ => continue,
        };
        // A failure outranks a skip; the first of a kind gives the message.
        if case.status.fails() || (case.status == CaseStatus::Skip && !status.fails()) {
            continue;
        }
        case.status = status;
        case.message = message(child);
    }
    Ok(case)
}

/// The element's `message` attribute and its text, either or both.
fn message(node: roxmltree::Node) -> Option<String> {
    let attribute = node.attribute("message").map(str::trim);
    let text: String = node
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    let parts: Vec<&str> = attribute
        .into_iter()
        .chain([text.trim()])
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn position(node: roxmltree::Node) -> (u32, u32) {
    let at = node.document().text_pos_at(node.range().start);
    (at.row, at.col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testcases_at_any_depth() {
        let cases = parse(
            r#"<?xml version="1.0"?>
<testsuites>
  <testsuite name="a">
    <testcase classname="math.Add" name="small" time="0.25"/>
    <testcase classname="math.Add" name="big"><failure message="1 != 2" type="assert">at add.py:3</failure></testcase>
    <testsuite name="nested">
      <testcase name="crashes"><error>segfault</error></testcase>
      <testcase name="later"><skipped message="not on Linux"/></testcase>
      <testcase name="both"><skipped/><failure message="bad"/></testcase>
    </testsuite>
  </testsuite>
</testsuites>"#,
        )
        .unwrap();
        let summary: Vec<(&str, &str, Option<&str>)> = cases
            .iter()
            .map(|c| (c.name.as_str(), c.status.label(), c.message.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("math.Add.small", "pass", None),
                ("math.Add.big", "fail", Some("1 != 2\nat add.py:3")),
                ("crashes", "error", Some("segfault")),
                ("later", "skip", Some("not on Linux")),
                ("both", "fail", Some("bad")),
            ]
        );
        assert_eq!(cases[0].duration, Some(Duration::from_millis(250)));
        assert_eq!(
            parse("<testsuite/>").unwrap(),
            Vec::new(),
            "a lone empty suite"
        );
    }

    #[test]
    fn malformed_files_say_why() {
        let broken = parse("<testsuite><testcase name=\"x\"></testsuite>").unwrap_err();
        assert!(
            broken.starts_with("XML_OUTPUT_FILE is not well-formed XML:") && broken.contains("1:"),
            "{broken}"
        );
        assert_eq!(
            parse("<html/>").unwrap_err(),
            "XML_OUTPUT_FILE is not JUnit XML: its root element is <html>, not <testsuites> or <testsuite>"
        );
        assert_eq!(
            parse("<testsuite>\n  <testcase/>\n</testsuite>").unwrap_err(),
            "XML_OUTPUT_FILE:2:3: a <testcase> without a name attribute"
        );
    }

    #[test]
    fn files_are_read_safely() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.xml");
        assert_eq!(read(&path).unwrap(), Vec::new(), "no file: no cases");
        std::fs::write(dir.path().join("secret"), "<testsuite/>").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), &path).unwrap();
        assert_eq!(
            read(&path).unwrap_err(),
            "XML_OUTPUT_FILE is a symbolic link, which isotest does not follow (write the file itself)"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert_eq!(
            read(&path).unwrap_err(),
            "XML_OUTPUT_FILE is not a regular file"
        );
        std::fs::remove_dir(&path).unwrap();
        std::fs::write(&path, "<testsuite><testcase name=\"ok\"/></testsuite>").unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
    }
}
