//! Which `[[service]]` tables a test's `services = [...]` names, and the
//! order they start in: a name is looked up in the test directory's
//! isotest.toml files, deepest first, and every service comes after the
//! services it `depends_on`.

use std::path::Path;
use std::sync::Arc;

use super::file::{ServiceConfig, ServiceScope};
use super::Configs;

impl Configs {
    /// The services named by `names` for a test in `dir`, with what they
    /// depend on, dependencies first. An unknown name or a cycle is an
    /// error naming it.
    pub fn services_for(
        &self,
        dir: &Path,
        names: &[String],
    ) -> Result<Vec<Arc<ServiceConfig>>, String> {
        let chain = self.chain(dir);
        let find = |name: &str| {
            chain
                .iter()
                .rev()
                .find_map(|file| file.services.iter().find(|s| s.name == name))
        };
        let mut ordered: Vec<Arc<ServiceConfig>> = Vec::new();
        for name in names {
            visit(name, &find, &mut Vec::new(), &mut ordered, None)?;
        }
        Ok(ordered)
    }
}

/// Depth-first: `name`'s dependencies, then `name`. `path` holds the
/// services being visited, to tell a cycle.
fn visit<'a>(
    name: &str,
    find: &dyn Fn(&str) -> Option<&'a ServiceConfig>,
    path: &mut Vec<String>,
    ordered: &mut Vec<Arc<ServiceConfig>>,
    needed_by: Option<&str>,
) -> Result<(), String> {
    if ordered.iter().any(|s| s.name == name) {
        return Ok(());
    }
    if path.iter().any(|p| p == name) {
        path.push(name.to_string());
        return Err(format!(
            "services depend on each other in a cycle: {}",
            path.join(" → ")
        ));
    }
    let Some(service) = find(name) else {
        return Err(match needed_by {
            Some(by) => format!(
                "service `{by}` depends on `{name}`, which no [[service]] in this test's \
                 isotest.toml files defines"
            ),
            None => format!(
                "no [[service]] named `{name}` in this test's isotest.toml files \
                 (its directory's or a parent's)"
            ),
        });
    };
    path.push(name.to_string());
    for dependency in &service.depends_on {
        visit(dependency, find, path, ordered, Some(name))?;
        let scope_of = |name: &str| ordered.iter().find(|s| s.name == name).map(|s| s.scope);
        if service.scope == ServiceScope::Run && scope_of(dependency) == Some(ServiceScope::Test) {
            return Err(format!(
                "service `{name}` (scope = \"run\") depends on `{dependency}`, which is \
                 one per test (scope = \"test\"); give `{dependency}` scope = \"run\" too"
            ));
        }
    }
    path.pop();
    ordered.push(Arc::new(service.clone()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    fn configs(files: &[(&str, &str)]) -> Configs {
        let files = files
            .iter()
            .map(|(dir, text)| {
                ConfigFile::parse(Path::new("isotest.toml"), Path::new(dir), text).unwrap()
            })
            .collect();
        Configs { files }
    }

    fn names(services: &[Arc<ServiceConfig>]) -> Vec<&str> {
        services.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn dependencies_come_first_and_deeper_files_win() {
        let configs = configs(&[
            (
                "/s",
                "[[service]]\nname = \"db\"\ncommand = \"a\"\n\
                 [[service]]\nname = \"app\"\ncommand = \"b\"\ndepends_on = [\"db\", \"cache\"]\n\
                 [[service]]\nname = \"cache\"\ncommand = \"c\"\ndepends_on = [\"db\"]\n",
            ),
            (
                "/s/deep",
                "[[service]]\nname = \"db\"\ncommand = \"deeper\"\n",
            ),
        ]);
        let order = configs
            .services_for(Path::new("/s"), &["app".into(), "db".into()])
            .unwrap();
        assert_eq!(names(&order), ["db", "cache", "app"]);
        let deep = configs
            .services_for(Path::new("/s/deep"), &["db".into()])
            .unwrap();
        assert_eq!(deep[0].argv, ["/bin/sh", "-c", "deeper"]);
    }

    #[test]
    fn unknown_names_and_cycles_are_errors() {
        let configs = configs(&[(
            "/s",
            "[[service]]\nname = \"a\"\ncommand = \"x\"\ndepends_on = [\"b\"]\n\
             [[service]]\nname = \"b\"\ncommand = \"x\"\ndepends_on = [\"a\"]\n\
             [[service]]\nname = \"c\"\ncommand = \"x\"\ndepends_on = [\"nope\"]\n",
        )]);
        let error = configs
            .services_for(Path::new("/s"), &["a".into()])
            .unwrap_err();
        assert!(error.contains("a → b → a"), "{error}");
        let error = configs
            .services_for(Path::new("/s"), &["c".into()])
            .unwrap_err();
        assert!(error.contains("`c` depends on `nope`"), "{error}");
        let error = configs
            .services_for(Path::new("/other"), &["a".into()])
            .unwrap_err();
        assert!(error.contains("no [[service]] named `a`"), "{error}");
        let scopes = self::configs(&[(
            "/s",
            "[[service]]\nname = \"shared\"\ncommand = \"x\"\nscope = \"run\"\ndepends_on = [\"own\"]\n\
             [[service]]\nname = \"own\"\ncommand = \"x\"\n",
        )]);
        let error = scopes
            .services_for(Path::new("/s"), &["shared".into()])
            .unwrap_err();
        assert!(error.contains("give `own` scope = \"run\" too"), "{error}");
    }
}
