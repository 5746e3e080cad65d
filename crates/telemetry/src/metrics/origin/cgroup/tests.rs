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
