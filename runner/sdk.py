"""Dockerfiles and build contexts for each SDK.

Gradio and Streamlit spaces build FROM a shared *SDK image* (the base image plus a virtualenv
with that SDK at one version), made once per version and reused by every space. A space's own
image then adds, in this order, its Debian packages, its requirements and last its code, so a
code-only change re-runs nothing but the final COPY (a thin layer on cached ones).
"""
from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .exceptions import BuildError

APP_DIR = "/home/user/app"
VENV = "/opt/venv"
SDK_PACKAGES = {"gradio": "gradio", "streamlit": "streamlit"}
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,3}([a-z]+[0-9]*)?$")
# Debian package names (Policy §5.6.1), so a packages.txt line cannot smuggle shell syntax.
DEB_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@dataclass(frozen=True)
class BuildContext:
    """A tar stream for the engine plus the Dockerfile name inside it."""

    fileobj: io.BytesIO
    dockerfile: str = "Dockerfile"


def sdk_image_name(sdk: str, version: str) -> str:
    return f"demohub/sdk-{sdk}:{version}"


def _ca_setup(has_ca: bool) -> tuple[str, str]:
    """Dockerfile lines that make the operator's CA bundle visible to pip for one RUN only."""
    if not has_ca:
        return "", ""
    return "COPY demohub-ca.crt /etc/demohub-ca.crt\n", "PIP_CERT=/etc/demohub-ca.crt "


def sdk_dockerfile(*, base_image: str, sdk: str, version: str, has_ca: bool) -> str:
    if sdk not in SDK_PACKAGES:
        raise ValueError(f"no SDK image for {sdk!r}")
    copy_ca, pip_env = _ca_setup(has_ca)
    return (
        f"FROM {base_image}\n"
        "RUN useradd --create-home --uid 1000 user 2>/dev/null || true\n"
        f"RUN python3 -m venv {VENV}\n"
        f"{copy_ca}"
        f"RUN {pip_env}{VENV}/bin/pip install --no-cache-dir --disable-pip-version-check "
        f"'{SDK_PACKAGES[sdk]}=={version}'"
        + (" && rm -f /etc/demohub-ca.crt\n" if has_ca else "\n")
        + f"ENV PATH={VENV}/bin:$PATH PYTHONUNBUFFERED=1 HOME=/tmp/home\n"
        f"LABEL demohub.sdk={sdk} demohub.sdk_version={version}\n"
    )


def space_dockerfile(*, sdk: str, version: str, app_file: str, app_port: int,
                     has_requirements: bool, has_packages: bool, has_ca: bool) -> str:
    copy_ca, pip_env = _ca_setup(has_ca)
    lines = [f"FROM {sdk_image_name(sdk, version)}", "USER root"]
    if has_packages:
        lines += [
            "COPY app/packages.txt /tmp/packages.txt",
            "RUN apt-get update -qq && xargs -a /tmp/packages.txt "
            "env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
            "&& rm -rf /var/lib/apt/lists/*",
        ]
    if has_requirements:
        if copy_ca:
            lines.append(copy_ca.strip())
        lines += [
            "COPY app/requirements.txt /tmp/requirements.txt",
            f"RUN {pip_env}{VENV}/bin/pip install --no-cache-dir --disable-pip-version-check "
            "-r /tmp/requirements.txt",
        ]
    if sdk == "gradio":
        cmd = f'["python", "{app_file}"]'
    else:
        cmd = (f'["streamlit", "run", "{app_file}", "--server.port={app_port}", '
               '"--server.address=0.0.0.0", "--server.headless=true"]')
    lines += [
        f"COPY --chown=1000:1000 app/ {APP_DIR}/",
        f"WORKDIR {APP_DIR}",
        "USER 1000",
        f"EXPOSE {app_port}",
        f"CMD {cmd}",
    ]
    return "\n".join(lines) + "\n"


def read_packages(snapshot: Path) -> list[str]:
    """The Debian packages named in packages.txt; a bad name is the user's error."""
    path = snapshot / "packages.txt"
    if not path.is_file():
        return []
    names = []
    for lineno, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for name in line.split():
            if not DEB_PACKAGE_RE.match(name):
                raise BuildError(f"packages.txt line {lineno}: {name!r} is not a Debian package name")
            names.append(name)
    return names


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def sdk_image_context(*, base_image: str, sdk: str, version: str, ca_bundle: bytes | None) -> BuildContext:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", sdk_dockerfile(base_image=base_image, sdk=sdk, version=version,
                                                     has_ca=ca_bundle is not None).encode())
        if ca_bundle is not None:
            _add_bytes(tar, "demohub-ca.crt", ca_bundle)
    buf.seek(0)
    return BuildContext(buf)


def space_image_context(*, snapshot: Path, sdk: str, version: str, app_file: str, app_port: int,
                        ca_bundle: bytes | None) -> BuildContext:
    """The repo under app/ plus a generated Dockerfile at the root (never the repo's own)."""
    packages = read_packages(snapshot)
    if packages:
        # Normalise packages.txt so the generated install line only ever sees package names.
        normalised = ("\n".join(packages) + "\n").encode()
    has_requirements = (snapshot / "requirements.txt").is_file()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dockerfile = space_dockerfile(sdk=sdk, version=version, app_file=app_file, app_port=app_port,
                                      has_requirements=has_requirements, has_packages=bool(packages),
                                      has_ca=ca_bundle is not None and has_requirements)
        _add_bytes(tar, "Dockerfile", dockerfile.encode())
        if ca_bundle is not None and has_requirements:
            _add_bytes(tar, "demohub-ca.crt", ca_bundle)
        for path in sorted(snapshot.rglob("*")):
            rel = path.relative_to(snapshot).as_posix()
            if rel == "packages.txt" and packages:
                _add_bytes(tar, "app/packages.txt", normalised)
                continue
            info = tar.gettarinfo(str(path), arcname=f"app/{rel}")
            # Fixed metadata: identical files give identical layers, whatever the upload time.
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    buf.seek(0)
    return BuildContext(buf)

