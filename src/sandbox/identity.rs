//! Who the command runs as inside the container: `user` and `group` names
//! or numbers, looked up in the container's own /etc/passwd and /etc/group
//! (after pivot_root), as a login would.

use std::fs;

use super::spec::SetupFailure;

/// The numeric identity the command gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// Resolves `user` (name or uid) and `group` (name or gid; default: the
/// user's primary group, or the user id's number when the user is numeric
/// and unknown).
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Identity>, SetupFailure> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let groups = fs::read_to_string("/etc/group").unwrap_or_default();
    let (uid, primary_gid) = match user {
        None => (0, 0),
        Some(user) => {
            lookup_user(&passwd, user).ok_or_else(|| unknown("user", user, "/etc/passwd"))?
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(group) => {
            lookup_group(&groups, group).ok_or_else(|| unknown("group", group, "/etc/group"))?
        }
    };
    Ok(Some(Identity { uid, gid }))
}

fn unknown(kind: &str, name: &str, file: &str) -> SetupFailure {
    SetupFailure {
        step: format!("look up {kind} `{name}`").into(),
        cause: format!("no such {kind} in the container's {file}"),
        hint: Some(format!(
            "use a numeric id, or a {kind} that exists in the root filesystem"
        )),
        host_unsupported: false,
        errno: None,
    }
}

/// uid and primary gid of `user`, by name or number.
fn lookup_user(passwd: &str, user: &str) -> Option<(u32, u32)> {
    let entries = passwd.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        Some((
            fields.first()?.to_string(),
            fields.get(2)?.parse().ok()?,
            fields.get(3)?.parse().ok()?,
        ))
    });
    let mut entries: Vec<(String, u32, u32)> = entries.collect();
    if let Ok(uid) = user.parse::<u32>() {
        let gid = entries
            .iter()
            .find(|(_, u, _)| *u == uid)
            .map_or(uid, |(_, _, g)| *g);
        return Some((uid, gid));
    }
    let index = entries.iter().position(|(name, _, _)| name == user)?;
    let (_, uid, gid) = entries.swap_remove(index);
    Some((uid, gid))
}

fn lookup_group(groups: &str, group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    groups.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&group)).then(|| fields.get(2)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nstaff:x:50:app\n";

    #[test]
    fn users_by_name_or_number() {
        assert_eq!(lookup_user(PASSWD, "nobody"), Some((65534, 65534)));
        assert_eq!(lookup_user(PASSWD, "app"), Some((1000, 1001)));
        assert_eq!(lookup_user(PASSWD, "1000"), Some((1000, 1001)));
        assert_eq!(lookup_user(PASSWD, "4242"), Some((4242, 4242)));
        assert_eq!(lookup_user(PASSWD, "ghost"), None);
    }

    #[test]
    fn groups_by_name_or_number() {
        assert_eq!(lookup_group(GROUP, "staff"), Some(50));
        assert_eq!(lookup_group(GROUP, "77"), Some(77));
        assert_eq!(lookup_group(GROUP, "ghosts"), None);
    }
}
