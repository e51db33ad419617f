"""Build and check the sandbox image (Python 3 + a C++ compiler), offline-capable.

The offline path needs no registry: `debootstrap` a minimal Debian root filesystem from a Debian
mirror, trim it (apt caches, docs, setuid bits), and `docker import` it. Where a base image can be
pulled, `method="dockerfile"` builds from `debian:bookworm-slim` instead (that build's RUN step
uses the network; the sandbox containers never do). Any image with python3 (and g++ for C++)
can be named instead of the default one.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import time

DEFAULT_IMAGE = "rlvr-sandbox"
DEFAULT_MIRROR = os.environ.get("RLVR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PACKAGES = ("python3", "g++")
# Trimmed from the root filesystem before import: nothing in the sandbox needs them.
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
        "usr/share/info", "usr/share/locale")
CHANGES = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "ENV LANG=C.UTF-8", "WORKDIR /work", "LABEL rlvr.sandbox.image=1"]
DOCKERFILE = f"""FROM debian:{SUITE}-slim
RUN apt-get update && apt-get install -y --no-install-recommends {' '.join(PACKAGES)} \\
 && rm -rf /var/lib/apt/lists/* && find / -xdev -perm /6000 -type f -exec chmod ug-s {{}} +
ENV LANG=C.UTF-8
WORKDIR /work
LABEL rlvr.sandbox.image=1
"""


class ImageError(RuntimeError):
    pass


def _split(name: str) -> tuple[str, str]:
    repo, _, tag = name.rpartition(":")
    if not repo or "/" in tag:         # no tag ("rlvr-sandbox", "host:5000/x")
        return name, "latest"
    return repo, tag


def image_exists(client, name: str) -> bool:
    import docker.errors
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def build(name: str = DEFAULT_IMAGE, method: str = "auto", force: bool = False,
          mirror: str = DEFAULT_MIRROR, client=None, log=print) -> str:
    """Make image `name` unless it exists (or `force`). `method`: "debootstrap" (offline, needs
    root and the debootstrap tool), "dockerfile" (needs a registry), or "auto" (debootstrap when
    it can run here, else the Dockerfile). Returns the image id."""
    import docker
    client = client or docker.from_env()
    if not force and image_exists(client, name):
        img = client.images.get(name)
        log(f"image {name} exists ({img.short_id}); --force rebuilds it")
        return img.id
    if method == "auto":
        can_bootstrap = shutil.which("debootstrap") and os.geteuid() == 0
        method = "debootstrap" if can_bootstrap else "dockerfile"
    t0 = time.monotonic()
    if method == "debootstrap":
        image_id = _build_debootstrap(client, name, mirror, log)
    elif method == "dockerfile":
        image_id = _build_dockerfile(client, name, log)
    else:
        raise ValueError(f"unknown method {method!r}: auto, debootstrap or dockerfile")
    log(f"built {name} ({image_id[:19]}) by {method} in {time.monotonic() - t0:.0f} s")
    return image_id


def _build_debootstrap(client, name: str, mirror: str, log) -> str:
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root: run as root, or use --method dockerfile")
    if not shutil.which("debootstrap"):
        raise ImageError("debootstrap not found: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="rlvr-rootfs-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        root = os.path.join(tmp, "root")
        log(f"debootstrap {SUITE} (minbase + {', '.join(PACKAGES)}) from {mirror} ...")
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, root, mirror]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise ImageError(f"debootstrap failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
        trim(root)
        log("importing the root filesystem ...")
        repo, tag = _split(name)
        tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            out = client.api.import_image_from_stream(tar.stdout, repository=repo, tag=tag, changes=CHANGES)
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise ImageError(f"tar of {root} failed (exit {tar.returncode})")
    if "error" in str(out).lower():
        raise ImageError(f"docker import failed: {out}")
    return client.images.get(name).id


def trim(root: str) -> None:
    """Drop caches and docs, clear setuid/setgid bits (no-new-privileges blocks them anyway)."""
    for rel in TRIM:
        path = os.path.join(root, rel)
        if os.path.isdir(path):
            shutil.rmtree(path)
            os.makedirs(path, exist_ok=True)
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if st.st_mode & 0o6000 and not os.path.islink(p):
                os.chmod(p, st.st_mode & 0o1777)
    os.makedirs(os.path.join(root, "work"), exist_ok=True)


def _build_dockerfile(client, name: str, log) -> str:
    import docker.errors
    log(f"docker build from debian:{SUITE}-slim (needs a registry) ...")
    try:
        image, _ = client.images.build(fileobj=io.BytesIO(DOCKERFILE.encode()), tag=name, rm=True, pull=True)
    except (docker.errors.BuildError, docker.errors.APIError) as e:
        raise ImageError(f"docker build failed ({e}); without a registry use the offline path: "
                         "python -m sandbox image build --offline (as root, with debootstrap)") from e
    return image.id


def check(name: str = DEFAULT_IMAGE, client=None, log=print) -> bool:
    """Run python3 and g++ inside `name` with no network; True when both work."""
    import docker
    client = client or docker.from_env()
    script = (
        "set -e; python3 -I -S -c 'import sys; print(\"python\", sys.version.split()[0])'; "
        "printf '#include <cstdio>\\nint main(){std::puts(\"g++ ok\");}' > /work/a.cpp; "
        "g++ -O2 -o /work/a /work/a.cpp && /work/a; "
        "python3 -I -S -c 'print(\"interfaces\", [l.split(\":\")[0].strip() for l in open(\"/proc/net/dev\").readlines()[2:]])'"
    )
    try:
        out = client.containers.run(
            name, ["sh", "-c", script], remove=True, network_mode="none", user="65534:65534",
            read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            tmpfs={"/work": "rw,exec,size=64m,uid=65534,gid=65534,mode=0700"}, working_dir="/work",
            stdout=True, stderr=True)
    except docker.errors.ContainerError as e:
        log(f"check failed: {e}")
        return False
    text = out.decode(errors="replace")
    log(text.rstrip())
    ok = "python 3" in text and "g++ ok" in text and "interfaces ['lo']" in text
    log(f"image {name}: {'ok' if ok else 'NOT ok'}")
    return ok
