//! Finds the value of the DogStatsD container field (`|c:`) from procfs, the way Datadog's own clients
//! do (datadog-go `statsd/container_linux.go`, libdatadog `ddcommon/src/entity_id`), in this order:
//!
//! 1. A container id at the end of a cgroup path in `/proc/self/cgroup`: cgroup v1, and cgroup v2 seen
//!    from the host cgroup namespace (`0::/kubepods.slice/.../cri-containerd-<id>.scope`).
//! 2. A container id in `/proc/self/mountinfo`: Docker and containerd bind-mount `/etc/hostname` from
//!    `.../<id>/hostname`. containerd's `sandboxes/<id>` is the pod's pause container, never ours.
//! 3. Outside the host cgroup namespace (cgroup v2 gives a container its own, where the path is just
//!    `0::/`), the inode of the process's cgroup node, `/sys/fs/cgroup/memory/<path>` (v1) or
//!    `/sys/fs/cgroup/<path>` (v2), sent as `in-<inode>`; the agent maps it to the container.
//!
//! The container id goes out bare, as datadog-go sends it. Agent 7.51+ also reads `ci-<id>` (protocol
//! 1.4), but agents 7.35 to 7.50 would take `ci-` as part of the id; the bare form is read by every
//! agent since 7.35. Everything here is best effort: an unreadable file or an unexpected line means no
//! container field, never an error.

use std::{
    fs::File,
    io::Read,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// The cgroup namespace inode of the host (Linux `PROC_CGROUP_INIT_INO`); in it, step 1 would have
/// found a container id if there were one.
const HOST_CGROUP_NAMESPACE_INODE: u64 = 0xEFFF_FFFB;
/// The cgroup v1 controller whose node stands for the container.
const V1_CONTROLLER: &str = "memory";
/// procfs files read here are small; a bound keeps a pathological mountinfo from costing much.
const MAX_READ: u64 = 4 << 20;

/// Where the files live; tests point these at fixtures.
#[derive(Debug, Clone)]
pub(crate) struct ProcPaths {
    pub cgroup: PathBuf,
    pub mountinfo: PathBuf,
    pub cgroup_namespace: PathBuf,
    pub cgroup_mount: PathBuf,
}

impl Default for ProcPaths {
    fn default() -> Self {
        Self {
            cgroup: "/proc/self/cgroup".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            cgroup_namespace: "/proc/self/ns/cgroup".into(),
            cgroup_mount: "/sys/fs/cgroup".into(),
        }
    }
}

/// The container field's value: a container id, `in-<inode>`, or nothing.
pub(crate) fn detect(paths: &ProcPaths) -> Option<String> {
    let cgroup = read_bounded(&paths.cgroup);
    if let Some(id) = cgroup.as_deref().and_then(container_id_from_cgroup) {
        return Some(id.to_owned());
    }
    if let Some(mountinfo) = read_bounded(&paths.mountinfo)
        && let Some(id) = container_id_from_mountinfo(&mountinfo)
    {
        return Some(id.to_owned());
    }
    if in_host_cgroup_namespace(&paths.cgroup_namespace) {
        return None;
    }
    cgroup_node_inode(&paths.cgroup_mount, cgroup.as_deref()?).map(|inode| format!("in-{inode}"))
}

fn read_bounded(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(MAX_READ)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn in_host_cgroup_namespace(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.ino() == HOST_CGROUP_NAMESPACE_INODE)
}

/// The first container id ending a path of `/proc/self/cgroup` (lines `<id>:<controllers>:<path>`).
pub(crate) fn container_id_from_cgroup(cgroup: &str) -> Option<&str> {
    cgroup.lines().find_map(|line| {
        let (hierarchy, rest) = line.split_once(':')?;
        let (_controllers, path) = rest.split_once(':')?;
        if hierarchy.is_empty() || !hierarchy.bytes().all(|b| b.is_ascii_digit()) || path.is_empty() {
            return None;
        }
        container_id_at_end(path.trim_end_matches(' '))
    })
}

/// An id ending `path`, optionally followed by `.scope`: a 64-hex container id, a UUID (Garden,
/// `[-_]`-separated), or an ECS task id (`<32 hex>-<digits>`). When several fit, the one starting
/// leftmost wins, as in the clients' regular expression.
fn container_id_at_end(path: &str) -> Option<&str> {
    let unscoped = path
        .len()
        .checked_sub(".scope".len())
        .filter(|&end| path.ends_with("scope") && path.is_char_boundary(end))
        .map(|end| &path[..end]);
    // Both bodies start where `path` does, so `body.len() - id.len()` is where an id starts in it.
    [Some(path), unscoped]
        .into_iter()
        .flatten()
        .flat_map(|body| {
            [uuid_suffix(body), hex64_suffix(body), task_suffix(body)]
                .into_iter()
                .flatten()
                .map(move |id| (body.len() - id.len(), id))
        })
        .min_by_key(|&(start, _)| start)
        .map(|(_, id)| id)
}

fn is_hex(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex64_suffix(body: &str) -> Option<&str> {
    let start = body.len().checked_sub(64)?;
    is_hex(&body.as_bytes()[start..]).then(|| &body[start..])
}

fn uuid_suffix(body: &str) -> Option<&str> {
    let start = body.len().checked_sub(36)?;
    let id = &body.as_bytes()[start..];
    let groups_ok = [(0, 8), (9, 13), (14, 18), (19, 23), (24, 36)]
        .iter()
        .all(|&(from, to)| is_hex(&id[from..to]));
    let separators_ok = [8, 13, 18, 23].iter().all(|&i| matches!(id[i], b'-' | b'_'));
    (groups_ok && separators_ok).then(|| &body[start..])
}

fn task_suffix(body: &str) -> Option<&str> {
    let digits = body.bytes().rev().take_while(u8::is_ascii_digit).count();
    let dash = body.len().checked_sub(digits + 1)?;
    let start = dash.checked_sub(32)?;
    let bytes = body.as_bytes();
    (digits > 0 && bytes[dash] == b'-' && is_hex(&bytes[start..dash])).then(|| &body[start..])
}

/// `<id>` is a container or task id as a whole path component.
fn is_container_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let task = component.split_once('-').is_some_and(|(hex, digits)| {
        hex.len() == 32
            && is_hex(hex.as_bytes())
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
    });
    (bytes.len() == 64 && is_hex(bytes)) || task
}

/// The container id of the first mountinfo line with a `.../<dir>/<id>/...hostname` source (the
/// rightmost such path of the line), unless `<dir>` is containerd's `sandboxes`.
pub(crate) fn container_id_from_mountinfo(mountinfo: &str) -> Option<&str> {
    mountinfo.lines().find_map(|line| {
        let (dir, id) = rightmost_hostname_mount(line)?;
        (dir != "sandboxes").then_some(id)
    })
}

fn rightmost_hostname_mount(line: &str) -> Option<(&str, &str)> {
    line.split_ascii_whitespace().rev().find_map(|token| {
        let components: Vec<&str> = token.split('/').collect();
        // `/<dir>/<id>/` then `hostname` somewhere after, in the same token.
        (1..components.len().saturating_sub(2)).rev().find_map(|i| {
            let (dir, id) = (components[i], components[i + 1]);
            let after = components[i + 2..].join("/");
            (!dir.is_empty() && is_container_component(id) && after.contains("hostname")).then_some((dir, id))
        })
    })
}

/// The inode of this process's cgroup node: the v1 memory controller's, else the v2 unified one's.
/// Inodes 1 and 2 are a hierarchy's root, which names no container.
fn cgroup_node_inode(cgroup_mount: &Path, cgroup: &str) -> Option<u64> {
    let (memory, unified) = cgroup_node_paths(cgroup);
    [(V1_CONTROLLER, memory), ("", unified)]
        .into_iter()
        .filter_map(|(controller, path)| {
            Some(cgroup_mount.join(controller).join(path?.trim_start_matches('/')))
        })
        .filter_map(|node| std::fs::metadata(node).ok())
        .map(|meta| meta.ino())
        .find(|&inode| inode > 2)
}

/// The cgroup paths of the v1 memory controller and of the v2 unified hierarchy (`0::<path>`), from
/// `/proc/self/cgroup` lines of exactly three `:`-separated parts.
pub(crate) fn cgroup_node_paths(cgroup: &str) -> (Option<&str>, Option<&str>) {
    let (mut memory, mut unified) = (None, None);
    for line in cgroup.lines() {
        let mut parts = line.split(':');
        let (Some(_), Some(controller), Some(path), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        match controller {
            V1_CONTROLLER => memory = Some(path),
            "" => unified = Some(path),
            _ => {}
        }
    }
    (memory, unified)
}

#[cfg(test)]
mod tests;
