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
mod tests {
    use super::*;

    // Samples from the test suites of Datadog's clients (datadog-go `statsd/container_test.go`,
    // libdatadog `ddcommon/src/entity_id/unix/container_id.rs`).
    const K8S_ID: &str = "8c046cb0b72cd4c99f51b5591cd5b095967f58ee003710a45280c28ee1a9c7fa";

    #[test]
    fn finds_cgroup_v1_container_ids() {
        let kubernetes = format!(
            "other_line\n\
             10:hugetlb:/kubepods/burstable/podfd52ef25-a87d-11e9-9423-0800271a638e/{K8S_ID}\n\
             9:cpuset:/kubepods/burstable/podfd52ef25-a87d-11e9-9423-0800271a638e/{K8S_ID}\n\
             2:net_cls,net_prio:/kubepods/burstable/podfd52ef25-a87d-11e9-9423-0800271a638e/{K8S_ID}\n"
        );
        assert_eq!(container_id_from_cgroup(&kubernetes), Some(K8S_ID));
        let cases = [
            (
                "11:hugetlb:/ecs/55091c13-b8cf-4801-b527-f4601742204d/432624d2150b349fe35ba397284dea788c2bf66b885d14dfc1569b01890ca7da",
                Some("432624d2150b349fe35ba397284dea788c2bf66b885d14dfc1569b01890ca7da"),
            ),
            (
                "1:name=systemd:/docker/34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376.scope",
                Some("34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376"),
            ),
            (
                "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2d3da189_6407_48e3_9ab6_78188d75e609.slice/docker-7b8952daecf4c0e44bbcefe1b5c5ebc7b4839d4eefeccefe694709d3809b6199.scope",
                Some("7b8952daecf4c0e44bbcefe1b5c5ebc7b4839d4eefeccefe694709d3809b6199"),
            ),
            (
                "1:name=systemd:/uuid/34dc0b5e-626f-2c5c-4c51-70e34b10e765",
                Some("34dc0b5e-626f-2c5c-4c51-70e34b10e765"),
            ),
            (
                "1:name=systemd:/ecs/8cd79a803caf4d2aa945152e934a5c00/8cd79a803caf4d2aa945152e934a5c00-1053176469",
                Some("8cd79a803caf4d2aa945152e934a5c00-1053176469"),
            ),
            (
                "13:name=systemd:/docker/3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f869860    ",
                Some("3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f869860"),
            ),
            // One character short, a non-hex character, upper case, no container: nothing.
            (
                "13:name=systemd:/docker/3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f86986",
                None,
            ),
            (
                "13:name=systemd:/docker/3726184226f5d3147g25fdeab5b60097e378e8a720503a5e19ecfdf29f869860",
                None,
            ),
            (
                "13:name=systemd:/docker/3726184226F5D3147C25FDEAB5B60097E378E8A720503A5E19ECFDF29F869860",
                None,
            ),
            ("10:hugetlb:/kubepods", None),
            ("4:memory:/process_api/6918a31c3042af5b863663afe7a0f8ff", None),
            ("", None),
        ];
        for (cgroup, expected) in cases {
            assert_eq!(container_id_from_cgroup(cgroup), expected, "{cgroup}");
        }
    }

    #[test]
    fn finds_cgroup_v2_ids_only_from_the_host_namespace() {
        // Host cgroup namespace (EKS, containerd with the systemd driver): the id ends the path.
        let host = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poddde1244b_5bb5_4297_b544_85f3bc0d80bf.slice/cri-containerd-acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c.scope\n";
        assert_eq!(
            container_id_from_cgroup(host),
            Some("acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c")
        );
        // A private cgroup namespace shows only the root: the inode has to stand in.
        assert_eq!(container_id_from_cgroup("0::/\n"), None);
        assert_eq!(cgroup_node_paths("0::/\n"), (None, Some("/")));
    }

    #[test]
    fn picks_the_memory_and_unified_paths() {
        let hybrid = "other_line\n3:memory:/docker/abc123\n2:net_cls,net_prio:c\n1:name=systemd:b\n0::/\n";
        assert_eq!(cgroup_node_paths(hybrid), (Some("/docker/abc123"), Some("/")));
        let v1 = "12:pids:/docker/abc123\n11:hugetlb:/docker/abc123\n";
        assert_eq!(cgroup_node_paths(v1), (None, None));
        assert_eq!(cgroup_node_paths("0::/a:b\n"), (None, None), "not three parts");
    }

    #[test]
    fn finds_docker_ids_in_mountinfo_but_not_containerd_sandboxes() {
        let id = "0cfa82bf3ab29da271548d6a044e95c948c6fd2f7578fb41833a44ca23da425f";
        let docker = format!(
            "623 615 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot\n\
             626 608 259:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/root rw,discard,errors=remount-ro\n\
             627 608 259:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/root rw,discard,errors=remount-ro\n\
             628 608 259:1 /var/lib/docker/containers/{id}/hosts /etc/hosts rw,relatime - ext4 /dev/root rw,discard,errors=remount-ro\n"
        );
        assert_eq!(container_id_from_mountinfo(&docker), Some(id));
        let kubernetes = "2781 2780 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw\n\
             2782 2775 8:1 /var/lib/kubelet/pods/e50f2933-b36b-4e3b-89b1-280707f7bc53/etc-hosts /etc/hosts rw,relatime - ext4 /dev/sda1 rw,commit=30\n\
             2783 2777 8:1 /var/lib/kubelet/pods/e50f2933-b36b-4e3b-89b1-280707f7bc53/containers/bash2/3404dd90 /dev/termination-log rw,relatime - ext4 /dev/sda1 rw,commit=30\n\
             2784 2775 8:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/c5866f3bfef020a8c045540b4a05dd9d193443740be76437a6130c7759ab2076/hostname /etc/hostname rw,nosuid,nodev,relatime - ext4 /dev/sda1 rw,commit=30\n";
        assert_eq!(container_id_from_mountinfo(kubernetes), None);
        assert_eq!(
            container_id_from_mountinfo("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"),
            None
        );
    }

    fn fixture(dir: &Path, cgroup: &str) -> ProcPaths {
        let paths = ProcPaths {
            cgroup: dir.join("cgroup"),
            mountinfo: dir.join("mountinfo"),
            // A regular file: never the host namespace's inode.
            cgroup_namespace: dir.join("ns-cgroup"),
            cgroup_mount: dir.join("sys-fs-cgroup"),
        };
        std::fs::write(&paths.cgroup, cgroup).expect("write cgroup");
        std::fs::write(
            &paths.mountinfo,
            "31 23 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup rw\n",
        )
        .expect("mountinfo");
        std::fs::write(&paths.cgroup_namespace, "").expect("ns");
        paths
    }

    #[test]
    fn falls_back_to_the_cgroup_node_inode() {
        let dir = tempfile::tempdir().expect("temp dir");
        // cgroup v2 in a private namespace: the node is the mount's root, `/sys/fs/cgroup` itself.
        let paths = fixture(dir.path(), "0::/\n");
        std::fs::create_dir(&paths.cgroup_mount).expect("mount dir");
        let inode = std::fs::metadata(&paths.cgroup_mount).expect("stat").ino();
        assert_eq!(detect(&paths), Some(format!("in-{inode}")));

        // cgroup v1: the memory controller's node wins over the unified one.
        let node = "system.slice/docker-abcdef0123456789abcdef0123456789.scope";
        let paths = fixture(dir.path(), &format!("4:memory:/{node}\n0::/\n"));
        let memory_node = paths.cgroup_mount.join("memory").join(node);
        std::fs::create_dir_all(&memory_node).expect("memory node");
        let inode = std::fs::metadata(&memory_node).expect("stat").ino();
        assert_eq!(detect(&paths), Some(format!("in-{inode}")));
    }

    #[test]
    fn prefers_a_container_id_and_never_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = fixture(
            dir.path(),
            &format!("10:hugetlb:/kubepods/burstable/podfd52ef25-a87d-11e9-9423-0800271a638e/{K8S_ID}\n"),
        );
        assert_eq!(detect(&paths).as_deref(), Some(K8S_ID));

        // Nothing readable at all: no field, no error.
        let missing = ProcPaths {
            cgroup: dir.path().join("absent"),
            mountinfo: dir.path().join("absent"),
            cgroup_namespace: dir.path().join("absent"),
            cgroup_mount: dir.path().join("absent"),
        };
        assert_eq!(detect(&missing), None);
        // A path that does not exist under the mount: no inode.
        let paths = fixture(dir.path(), "0::/gone.scope\n");
        assert_eq!(detect(&paths), None);
    }
}
