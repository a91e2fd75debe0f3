"""Start Chromium next to its asset server, both inside Chromium's network namespace.

Playwright starts this in place of Chromium (through a two-line shell
wrapper that first enters an empty network namespace with ``unshare`` when
the kernel allows). Here we:

1. bring the namespace's loopback up (it starts down), so the asset server
   and Chromium can talk; nothing else exists in the namespace;
2. fork the asset server, which dies with Chromium (PR_SET_PDEATHSIG);
3. wait until it answers, then become Chromium (exec), keeping the pipes
   Playwright talks to it through.

    python -m services.renderer.launcher --port P [--loopback [--as-user UID:GID]] --chromium PATH -- CHROMIUM-ARGS...

``--as-user``: the launcher runs as root inside a user namespace of its own
(needed to bring loopback up); Chromium is started in a nested user
namespace mapped back to the real user, so it never sees uid 0 and keeps
its own sandbox.
"""

import argparse
import ctypes
import fcntl
import os
import signal
import socket
import struct
import sys
import time

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
PR_SET_PDEATHSIG = 1


def bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


def start_asset_server(port: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The child: keep none of Playwright's pipes (Playwright must see them
    # close when Chromium dies), and die when Chromium does.
    os.closerange(3, 4096)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    from services.renderer.asset_server import serve_forever  # noqa: PLC0415

    serve_forever(port)
    os._exit(0)


def wait_until_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main(argv: list[str]) -> None:
    split = argv.index("--")  # everything after it is Chromium's, untouched
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loopback", action="store_true", help="bring lo up (a fresh network namespace)")
    parser.add_argument("--as-user", help="UID:GID to map back to before starting Chromium")
    parser.add_argument("--chromium", required=True)
    args, chromium_args = parser.parse_args(argv[:split]), argv[split + 1 :]
    if args.loopback:
        bring_loopback_up()
    start_asset_server(args.port)
    wait_until_listening(args.port)
    argv = [args.chromium, *chromium_args]
    if args.as_user:
        uid, gid = args.as_user.split(":")
        argv = ["unshare", "--user", f"--map-user={uid}", f"--map-group={gid}", "--", *argv]
        os.execvp("unshare", argv)
    os.execv(args.chromium, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
