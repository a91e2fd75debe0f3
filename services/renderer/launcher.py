"""Start Chromium next to its asset server, both inside Chromium's network namespace.

Playwright starts this in place of Chromium (through a two-line shell
wrapper that first enters an empty network namespace with ``unshare`` when
the kernel allows). Here we:

1. bring the namespace's loopback up (it starts down), so the asset server
   and Chromium can talk; nothing else exists in the namespace;
2. fork the asset server, which dies with Chromium (PR_SET_PDEATHSIG);
3. wait until it says it serves (as whom it should), then become Chromium
   (exec), keeping only stdio and the two pipes Playwright talks to it
   through (fds 3 and 4, ``--remote-debugging-pipe``).

    python -m services.renderer.launcher --port P [--loopback] [--as-user UID:GID | --drop-to UID:GID
        [--assets-at DIR]] --chromium PATH -- CHROMIUM-ARGS...

Who Chromium runs as (never root, unless the sandbox was explicitly turned off):

- ``--drop-to UID:GID`` (the renderer runs as root): the launcher is real
  root here, inside a network namespace of its own; bringing loopback up
  takes that. It then gives the profile directory Playwright made
  (``--user-data-dir``) to that unprivileged system user, and the asset
  server and Chromium both run as it, without supplementary groups, with
  ``no_new_privs`` set and none of root's descriptors. With ``--assets-at``
  (the renderer adds a private mount namespace) the served directories are
  bound read-only there first, so the checkout may be where that user cannot go. Chromium's own
  sandbox (user, PID and network namespaces plus seccomp-bpf) is then on.
- ``--as-user UID:GID`` (a normal user): the launcher runs as root inside a
  user namespace of its own (needed to bring loopback up); Chromium is
  started in a nested user namespace mapped back to the real user, so it
  never sees uid 0 and keeps its own sandbox.

Chromium does not inherit the renderer's environment (the broker URL and
its password, API keys): it gets a short allowlist. The asset server is a
fork that cannot be read by Chromium's uid (not dumpable).

Before Chromium starts, its profile is told to refuse every site storage
(:data:`PROFILE_PREFERENCES`): IndexedDB, Cache Storage, the file systems,
storage buckets, Web Locks, cookies, for every page and worker. No job needs
any, and none can then leave something for the next one through them.
"""

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
# What Chromium keeps: stdin/stdout/stderr and Playwright's pipe (3: commands in, 4: answers out).
CHROMIUM_FDS = 5
# The lowest nice value Chromium may give its threads once unprivileged: 20 - 28 = -8 (see below).
RLIMIT_NICE = 28
# Environment variables Chromium may see; everything else is dropped.
KEEP_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "FONTCONFIG_FILE", "FONTCONFIG_PATH")

# Chromium's content settings for the profile (2 = block). "cookies" is every
# kind of site data, not only cookies: with it blocked, IndexedDB, Cache
# Storage, the file systems, storage buckets and Web Locks refuse every page
# and worker (checked by tests/sandbox/test_storage.py). The rest are
# permissions no job has any use for.
PROFILE_PREFERENCES = {
    "profile": {
        "default_content_setting_values": {
            "cookies": 2,
            "popups": 2,
            "notifications": 2,
            "geolocation": 2,
            "automatic_downloads": 2,
            "clipboard": 2,
        }
    }
}

_libc = ctypes.CDLL(None, use_errno=True)


def bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}): {os.strerror(errno)}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Give up every capability of this thread (and of the threads it starts later)."""
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if _libc.capset(ctypes.byref(header), data) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"capset: {os.strerror(errno)}")


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid:gid`` for good: no supplementary groups, no capabilities, no way back."""
    if uid == 0 or gid == 0:
        raise ValueError("refusing to 'drop' to uid or gid 0")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise RuntimeError(f"could not become {uid}:{gid}")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise RuntimeError("setuid(0) still works after dropping privileges")
    # Nothing exec'd from here on (Chromium, anything a compromised Chromium
    # runs) can gain privileges through setuid bits or file capabilities.
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def keep_scheduling_priorities() -> None:
    """Let Chromium, once unprivileged, still raise its display threads as it did as root.

    Chromium runs its IPC, compositor and display threads at nice -8; as root
    that just works, as another user setpriority() needs RLIMIT_NICE (its
    ceiling is 20 - limit). Without it those threads stay at 0 and, on a busy
    machine, a renderer's start took about three times as long (measured).
    Nothing else: no realtime scheduling, no priority below -8.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NICE)
    try:
        resource.setrlimit(resource.RLIMIT_NICE, (max(soft, RLIMIT_NICE), max(hard, RLIMIT_NICE)))
    except (ValueError, OSError):  # root without CAP_SYS_RESOURCE (some sandboxes): keep what there is
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NICE, (hard, hard))


def give_tree(path: str, uid: int, gid: int) -> None:
    """Hand a directory Playwright (root) created, and what is in it, to ``uid:gid``."""
    os.chown(path, uid, gid, follow_symlinks=False)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)


def bind_read_only(source: str, target: str) -> None:
    """``mount --bind source target`` made read-only (in our own, private, mount namespace)."""
    for source_arg, flags in ((source, MS_BIND), (None, MS_BIND | MS_REMOUNT | MS_RDONLY)):
        if _libc.mount(source_arg and source_arg.encode(), target.encode(), None, flags, None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def expose_assets(at: str) -> None:
    """Show the asset server the served directories at ``at``, wherever the checkout is.

    The unprivileged user cannot read a checkout under a directory only root may
    enter (``/root`` is mode 0700, and many checkouts are there). In the mount
    namespace the renderer started us in (``unshare --net --mount``, private), the
    web and build directories and the stored snapshots' directory (stored_snapshot.py)
    are bound read-only under ``at`` (an empty directory
    the renderer made); the asset server reads them from there (its settings point
    there). Nothing else of the checkout becomes reachable, and on the host ``at``
    stays empty.
    """
    from shared.settings import Settings  # not get_settings: the asset server reads its own

    settings = Settings()
    build = settings.wheels_dir.parent  # wheels, precompiled, pyodide-packages (shared/assets.py)
    served = [("web", settings.web_dir), ("build", build)]
    if settings.snapshot_store_dir.is_dir():  # the renderer makes it first (stored_snapshot.py)
        served.append(("snapshots", settings.snapshot_store_dir))
    for name, source in served:
        target = os.path.join(at, name)
        os.makedirs(target, exist_ok=True)
        bind_read_only(str(source), target)
    os.environ["PLOTFARM_WEB_DIR"] = os.path.join(at, "web")
    os.environ["PLOTFARM_WHEELS_DIR"] = os.path.join(at, "build", settings.wheels_dir.name)
    os.environ["PLOTFARM_SNAPSHOT_STORE_DIR"] = os.path.join(at, "snapshots")


def user_data_dir(chromium_args: list[str]) -> str | None:
    for arg in chromium_args:
        if arg.startswith("--user-data-dir="):
            return arg.split("=", 1)[1]
    return None


def refuse_site_storage(profile: str) -> None:
    """Write :data:`PROFILE_PREFERENCES` into the profile Playwright made for Chromium (its Default profile)."""
    folder = os.path.join(profile, "Default")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "Preferences")
    preferences = {}
    with contextlib.suppress(OSError, ValueError):
        with open(path) as existing:
            preferences = json.load(existing)
    settings = preferences.setdefault("profile", {}).setdefault("default_content_setting_values", {})
    settings.update(PROFILE_PREFERENCES["profile"]["default_content_setting_values"])
    with open(path, "w") as out:
        json.dump(preferences, out)


def clean_environment(home: str | None = None) -> dict[str, str]:
    """The allowlisted part of our environment; ``home`` replaces HOME and the XDG dirs."""
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if home:
        env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/.config", XDG_CACHE_HOME=f"{home}/.cache")
    elif "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


def start_asset_server(port: int, drop_to: tuple[int, int] | None) -> tuple[int, int]:
    """Fork the asset server (as ``drop_to`` when given); its pid and a pipe that says "ready"."""
    parent = os.getpid()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(ready_w)
        return pid, ready_r
    # The child: keep none of Playwright's pipes (Playwright must see them
    # close when Chromium dies), and die when Chromium does.
    try:
        os.dup2(ready_w, 3)
        os.closerange(4, os.sysconf("SC_OPEN_MAX"))
        run_asset_server(port, drop_to, parent, ready=3)
    except BaseException as exc:  # noqa: BLE001  (a forked child must never return)
        who = f" as uid {drop_to[0]}" if drop_to else ""
        print(f"plotfarm launcher: the asset server cannot start{who}: {exc!r}", file=sys.stderr, flush=True)
    os._exit(1)


def run_asset_server(port: int, drop_to: tuple[int, int] | None, parent: int, ready: int) -> None:
    """Serve the assets on 127.0.0.1:``port`` until Chromium exits.

    Everything that needs root or the interpreter's own files happens first:
    the imports, the settings, the manifest, one request of each kind (so no
    module is first imported later, as a user who may not be able to read
    Python's files, e.g. a pyenv under /root). Then the uid drop, and only
    then "ready", so Chromium never meets a root asset server. The server is
    not dumpable: a same-uid Chromium cannot read its memory or environment.
    """
    import asyncio

    from aiohttp import web

    from services.renderer.asset_server import make_app
    from shared.assets import AssetStore, MissingAssets
    from shared.settings import get_settings

    sys.dont_write_bytecode = True
    settings = get_settings()
    store = AssetStore(settings)
    if not drop_to:
        # Root only inside the launcher's own user namespace (a normal user, a
        # container): it needs none of that namespace's capabilities. Before any
        # thread exists, so the ones asyncio starts have none either.
        drop_capabilities()

    async def fetch(path: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer

    async def serve() -> None:
        runner = web.AppRunner(make_app(store, settings.snapshot_store_dir), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        for path in ("manifest.json", "renderer/index.html", "no/such/file", "snapshots/000000000000/snapshot.json"):
            await fetch(path)
        if drop_to:
            drop_privileges(*drop_to)
            try:
                store.check()
            except (MissingAssets, OSError) as exc:
                raise RuntimeError(
                    f"uid {drop_to[0]} cannot read the assets: {exc}. The renderer runs as root, so the asset"
                    " server runs as an unprivileged user; the project's web/ and build/ must be readable by it"
                ) from None
        _prctl(PR_SET_DUMPABLE, 0)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # after the uid change, which clears it
        if os.getppid() != parent:
            return
        os.write(ready, b"1")
        os.close(ready)
        await asyncio.Event().wait()

    asyncio.run(serve())


def wait_until_ready(server_pid: int, ready: int, timeout: float = 30.0) -> None:
    """Until the asset server says it serves (as whom it should), or fail saying why."""
    readable, _, _ = select.select([ready], [], [], timeout)
    if readable and os.read(ready, 1) == b"1":
        os.close(ready)
        return
    os.close(ready)
    os.kill(server_pid, signal.SIGKILL)
    raise RuntimeError(
        "the asset server did not start (see above)" if readable else f"the asset server did not start in {timeout} s"
    )


def parse_ids(value: str) -> tuple[int, int]:
    uid, gid = value.split(":")
    return int(uid), int(gid)


def main(argv: list[str]) -> None:
    split = argv.index("--")  # everything after it is Chromium's, untouched
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loopback", action="store_true", help="bring lo up (a fresh network namespace)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--as-user", type=parse_ids, help="UID:GID to map back to before starting Chromium")
    who.add_argument("--drop-to", type=parse_ids, help="UID:GID to become (from real root) before starting Chromium")
    parser.add_argument("--assets-at", help="with --drop-to, in a mount namespace of our own: bind the assets here")
    parser.add_argument("--chromium", required=True)
    args, chromium_args = parser.parse_args(argv[:split]), argv[split + 1 :]
    if args.loopback:
        bring_loopback_up()
    profile = user_data_dir(chromium_args)
    if profile is None:
        raise SystemExit("plotfarm launcher: Chromium's --user-data-dir is missing (Playwright always passes one)")
    refuse_site_storage(profile)
    home = None
    if args.drop_to:
        home = profile
        give_tree(home, *args.drop_to)
        if args.assets_at:
            expose_assets(args.assets_at)
    server, ready = start_asset_server(args.port, args.drop_to)
    wait_until_ready(server, ready)
    env = clean_environment(home)
    argv = [args.chromium, *chromium_args]
    if args.as_user:
        uid, gid = args.as_user
        argv = ["unshare", "--user", f"--map-user={uid}", f"--map-group={gid}", "--", *argv]
    if args.drop_to:
        keep_scheduling_priorities()
        drop_privileges(*args.drop_to)
    os.closerange(CHROMIUM_FDS, os.sysconf("SC_OPEN_MAX"))
    if args.as_user:
        os.execvpe("unshare", argv, env)
    os.execve(args.chromium, argv, env)


if __name__ == "__main__":
    main(sys.argv[1:])
