"""The sandbox image: its tag (a hash of the recipe in sandbox_image/) and how to build it when missing.

Two recipes make the same environment: the Dockerfile (needs a registry for its base image) and
build_offline.sh (debootstrap from the host's apt mirror, then `docker import`). "auto" tries the registry and
falls back to the offline build when no registry answers.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Literal

from orchestrator.sandbox.errors import EngineUnavailable, InvalidRequest

RECIPE_DIR = Path(__file__).resolve().parents[2] / "sandbox_image"
IMAGE_REPOSITORY = "toolshed-sandbox"
BASE_IMAGE = "debian:bookworm-slim"
BuildMode = Literal["auto", "dockerfile", "offline"]


def recipe_hash(recipe_dir: Path = RECIPE_DIR) -> str:
    """A digest of every file of the recipe, so the image is rebuilt exactly when the recipe changes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in recipe_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(recipe_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def default_tag() -> str:
    return f"{IMAGE_REPOSITORY}:{recipe_hash()}"


def image_present(tag: str) -> bool:
    return _docker("image", "inspect", tag).returncode == 0


def _docker(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["docker", *args], check=False, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise EngineUnavailable("the docker command is not installed") from exc
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", "timed out")


def _registry_answers() -> bool:
    if image_present(BASE_IMAGE):
        return True
    return _docker("pull", BASE_IMAGE, timeout=60).returncode == 0


def build_image(tag: str, mode: BuildMode = "auto") -> str:
    """Build the sandbox image as `tag`; returns the recipe used. Output streams to this process's stderr."""
    if mode not in ("auto", "dockerfile", "offline"):
        raise InvalidRequest(f"image build mode must be auto, dockerfile or offline; got '{mode}'")
    if mode == "auto":
        mode = "dockerfile" if _registry_answers() else "offline"
    if mode == "dockerfile":
        command = ["docker", "build", "-t", tag, str(RECIPE_DIR)]
    else:
        command = ["bash", str(RECIPE_DIR / "build_offline.sh"), tag]
    if subprocess.run(command, check=False).returncode != 0:
        raise EngineUnavailable(f"building the sandbox image {tag} with the {mode} recipe failed (see output above)")
    return mode


def ensure_image(tag: str, mode: BuildMode = "auto") -> bool:
    """Build the image unless it exists; returns True if a build happened."""
    if image_present(tag):
        return False
    build_image(tag, mode)
    return True
