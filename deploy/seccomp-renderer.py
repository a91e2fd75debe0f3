"""Make deploy/seccomp-renderer.json: Docker's default seccomp profile, plus what Chromium's sandbox needs.

    python3 deploy/seccomp-renderer.py DOCKER-DEFAULT.json > deploy/seccomp-renderer.json

DOCKER-DEFAULT.json is moby's profile (github.com/moby/profiles, seccomp/default.json;
the committed profile was made from commit 3c28324314729dbade8287e868eef6338c42807a,
2026-05-06, Apache-2.0). Only three things change, for a container without
CAP_SYS_ADMIN (the renderer never has it):

1. ``clone`` may create user, PID and network namespaces (CLONE_NEWUSER,
   CLONE_NEWPID, CLONE_NEWNET): Chromium's namespace sandbox starts its
   zygote and renderer processes that way. Docker's rule refuses every
   namespace flag; this one still refuses mount, UTS, IPC and cgroup
   namespaces (CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP).
2. ``unshare`` with the same flags, and no others of those four: Chromium
   checks and enters user namespaces with it, and the renderer's launcher
   makes its empty network namespace with ``unshare --user --net``. Docker
   allows ``unshare`` only with CAP_SYS_ADMIN.
3. ``chroot`` whatever the container's capabilities: Chromium chroots each
   sandboxed process into an empty directory, inside its own user namespace,
   where it holds CAP_SYS_CHROOT. (Docker allows chroot only when the
   container keeps CAP_SYS_CHROOT, which ``cap_drop: [ALL]`` removes.)

``clone3`` keeps Docker's answer, ENOSYS: its flags sit in a struct seccomp
cannot read, so allowing it would allow every namespace; libc and Chromium
fall back to ``clone``. ``setns``, ``mount``, ``pivot_root``, ``bpf``,
``keyctl`` and the rest stay refused. The kernel still decides whether an
unprivileged user may create a user namespace (``user.max_user_namespaces``).
"""

import json
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
DOCKER_MASK = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
# The namespace flags that stay refused.
RENDERER_MASK = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC
NO_SYS_ADMIN = {"caps": ["CAP_SYS_ADMIN"]}


def renderer_profile(docker: dict) -> dict:
    profile = json.loads(json.dumps(docker))
    clone_rules = [
        rule
        for rule in profile["syscalls"]
        if rule["names"] == ["clone"] and rule.get("args") and rule.get("excludes", {}).get("caps") == ["CAP_SYS_ADMIN"]
    ]
    if len(clone_rules) != 2 or any(rule["args"][0]["value"] != DOCKER_MASK for rule in clone_rules):
        raise SystemExit("unexpected profile: Docker's two clone rules (namespace flags refused) are not there")
    for rule in clone_rules:
        rule["args"][0]["value"] = RENDERER_MASK
        rule["comment"] = (
            "plotfarm renderer: clone may create user, PID and network namespaces (Chromium's sandbox)"
            + (f"; {rule['comment']}" if rule.get("comment") else "")
        )
    profile["syscalls"] += [
        {
            "names": ["unshare"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": RENDERER_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            "excludes": NO_SYS_ADMIN,
            "comment": "plotfarm renderer: unshare of user and network namespaces (Chromium's sandbox, the launcher)",
        },
        {
            "names": ["chroot"],
            "action": "SCMP_ACT_ALLOW",
            "comment": "plotfarm renderer: Chromium chroots sandboxed processes inside their own user namespace",
        },
    ]
    return profile


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        docker = json.load(handle)
    json.dump(renderer_profile(docker), sys.stdout, indent="\t")
    sys.stdout.write("\n")
