//! Reading isotest's JUnit report: its structure (checked against itself:
//! counts, names, classnames) and its validity against junit-10.xsd.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::{self, manifest_dir};

/// One `<testcase>`, with everything the expectations look at.
pub struct TestCase {
    /// `name` of the enclosing `<testsuite>`.
    pub suite: String,
    /// The `<properties>` of the enclosing `<testsuite>`.
    pub suite_properties: BTreeMap<String, String>,
    pub classname: Option<String>,
    pub time: Option<f64>,
    /// Testcase-level `<properties>`: `isotest.status`, `isotest.exit_code`...
    pub properties: BTreeMap<String, String>,
    /// `<failure>`, `<error>` and `<skipped>` children.
    pub verdicts: Vec<Verdict>,
    /// `<flakyFailure>`, `<rerunFailure>`, `<flakyError>` and `<rerunError>`
    /// children: the earlier attempts of a retried test, in order.
    pub reruns: Vec<Verdict>,
    /// The text of `<system-out>` and `<system-err>`, one after the other.
    pub output: String,
}

pub struct Verdict {
    /// `failure`, `error`, `skipped`, `flakyFailure`, `rerunFailure`...
    pub element: String,
    pub kind: Option<String>,
    pub message: Option<String>,
    /// The text of its `<system-out>` and `<system-err>` children (earlier
    /// attempts carry their own output).
    pub output: String,
}

/// Parses the report, keyed by test name. Inconsistencies within the report
/// (counts that do not add up, duplicate names, classname not the suite) are
/// added to `problems`; a report that is not XML at all is an error.
pub fn parse(xml: &str, problems: &mut Vec<String>) -> Result<BTreeMap<String, TestCase>, String> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| format!("the JUnit report is not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "testsuites" {
        return Err(format!(
            "the root element is <{}>, expected <testsuites>",
            root.tag_name().name()
        ));
    }

    let mut cases = BTreeMap::new();
    let mut suite_names = Vec::new();
    let mut totals = [0usize; 4];
    for suite in elements(root) {
        if suite.tag_name().name() != "testsuite" {
            problems.push(format!(
                "<testsuites> holds a <{}>",
                suite.tag_name().name()
            ));
            continue;
        }
        let Some(suite_name) = suite.attribute("name") else {
            problems.push("a <testsuite> has no name".to_owned());
            continue;
        };
        if suite_names.contains(&suite_name) {
            problems.push(format!("two <testsuite> elements are named {suite_name:?}"));
        }
        suite_names.push(suite_name);

        let suite_properties = elements(suite)
            .filter(|n| n.has_tag_name("properties"))
            .map(|n| properties(n, suite_name, problems))
            .next()
            .unwrap_or_default();
        let mut counts = [0usize; 4];
        for case in elements(suite).filter(|n| n.tag_name().name() == "testcase") {
            let Some(name) = case.attribute("name") else {
                problems.push(format!("a <testcase> of suite {suite_name:?} has no name"));
                continue;
            };
            let mut parsed = parse_testcase(case, suite_name, problems);
            parsed.suite_properties = suite_properties.clone();
            counts[0] += 1;
            counts[1] += parsed
                .verdicts
                .iter()
                .filter(|v| v.element == "failure")
                .count();
            counts[2] += parsed
                .verdicts
                .iter()
                .filter(|v| v.element == "error")
                .count();
            counts[3] += parsed
                .verdicts
                .iter()
                .filter(|v| v.element == "skipped")
                .count();
            if parsed.classname.as_deref() != Some(suite_name) {
                problems.push(format!(
                    "{name}: classname is {:?}, its suite is {suite_name:?}",
                    parsed.classname
                ));
            }
            if cases.insert(name.to_owned(), parsed).is_some() {
                problems.push(format!("{name}: appears twice in the report"));
            }
        }
        check_counts(
            &format!("<testsuite name={suite_name:?}>"),
            suite,
            counts,
            problems,
        );
        for (total, count) in totals.iter_mut().zip(counts) {
            *total += count;
        }
    }
    check_counts("<testsuites>", root, totals, problems);
    Ok(cases)
}

fn parse_testcase(case: roxmltree::Node, suite: &str, problems: &mut Vec<String>) -> TestCase {
    let name = case.attribute("name").unwrap_or_default();
    let time = case.attribute("time").and_then(|t| match t.parse::<f64>() {
        Ok(time) if time >= 0.0 => Some(time),
        _ => {
            problems.push(format!("{name}: time {t:?} is not a number of seconds"));
            None
        }
    });
    let mut parsed = TestCase {
        suite: suite.to_owned(),
        suite_properties: BTreeMap::new(),
        classname: case.attribute("classname").map(str::to_owned),
        time,
        properties: BTreeMap::new(),
        verdicts: Vec::new(),
        reruns: Vec::new(),
        output: String::new(),
    };
    for child in elements(case) {
        match child.tag_name().name() {
            "properties" => parsed.properties = properties(child, name, problems),
            "failure" | "error" | "skipped" => parsed.verdicts.push(verdict(child)),
            "flakyFailure" | "rerunFailure" | "flakyError" | "rerunError" => {
                parsed.reruns.push(verdict(child))
            }
            "system-out" | "system-err" => parsed.output.push_str(&text_of(child)),
            _ => {}
        }
    }
    parsed
}

fn verdict(node: roxmltree::Node) -> Verdict {
    Verdict {
        element: node.tag_name().name().to_owned(),
        kind: node.attribute("type").map(str::to_owned),
        message: node.attribute("message").map(str::to_owned),
        output: elements(node)
            .filter(|n| n.has_tag_name("system-out") || n.has_tag_name("system-err"))
            .map(text_of)
            .collect(),
    }
}

/// All the text inside `node`.
fn text_of(node: roxmltree::Node) -> String {
    node.descendants().filter_map(|n| n.text()).collect()
}

/// The `<property name= value=>` children of a `<properties>` of `owner`.
fn properties(
    node: roxmltree::Node,
    owner: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    for property in elements(node) {
        let (Some(key), Some(value)) = (property.attribute("name"), property.attribute("value"))
        else {
            problems.push(format!("{owner}: a <property> lacks its name or value"));
            continue;
        };
        properties.insert(key.to_owned(), value.to_owned());
    }
    properties
}

fn elements<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children().filter(|n| n.is_element())
}

/// `tests`, `failures`, `errors` and `skipped` of `node` must match what it
/// holds (`skipped` only where present).
fn check_counts(what: &str, node: roxmltree::Node, counts: [usize; 4], problems: &mut Vec<String>) {
    for (attribute, count) in ["tests", "failures", "errors", "skipped"]
        .into_iter()
        .zip(counts)
    {
        match node.attribute(attribute) {
            Some(value) if value == count.to_string() => {}
            Some(value) => problems.push(format!(
                "{what}: {attribute}=\"{value}\", but it holds {count}"
            )),
            None if node.tag_name().name() == "testsuite" && attribute != "skipped" => {
                problems.push(format!("{what}: no {attribute} attribute"))
            }
            None => {}
        }
    }
}

/// Validates `xml` against ../shared/schemas/junit-10.xsd with xmllint, after
/// removing the two known extensions: testcase-level `<properties>` and a
/// `skipped` attribute on `<testsuites>`. `scratch` is a directory for the
/// stripped copy. Skipped (Ok) when `ISOTEST_HARNESS_NO_XMLLINT` is set.
pub fn validate_schema(xml: &str, scratch: &Path) -> Result<(), String> {
    if support::xmllint_skipped() {
        return Ok(());
    }
    let schema = manifest_dir().join("../shared/schemas/junit-10.xsd");
    if !schema.is_file() {
        return Err(format!("schema {} not found", schema.display()));
    }
    let stripped = strip_extensions(xml)?;
    let file = scratch.join("junit-stripped.xml");
    std::fs::write(&file, stripped).map_err(|e| format!("write {}: {e}", file.display()))?;
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run xmllint (install libxml2-utils): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the JUnit report does not validate against junit-10.xsd:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn strip_extensions(xml: &str) -> Result<String, String> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| format!("the JUnit report is not well-formed XML: {e}"))?;
    let root = doc.root_element();
    let mut cuts: Vec<std::ops::Range<usize>> = root
        .attributes()
        .filter(|a| a.name() == "skipped")
        .map(|a| a.range())
        .collect();
    cuts.extend(
        root.descendants()
            .filter(|n| n.has_tag_name("properties"))
            .filter(|n| n.parent().is_some_and(|p| p.has_tag_name("testcase")))
            .map(|n| n.range()),
    );
    cuts.sort_by_key(|range| std::cmp::Reverse(range.start));
    let mut stripped = xml.to_owned();
    for cut in cuts {
        stripped.replace_range(cut, "");
    }
    Ok(stripped)
}
