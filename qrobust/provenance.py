"""Provenance of a run: the versions of everything its numbers depend on, the devices it ran on, and
qrobust's own commit where it runs from its repository (recorded in each run directory's config.json)."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

PACKAGES = ("qrobust", "jax", "jaxlib", "optax", "flax", "tensorcircuit-ng", "numpy", "scipy", "chex", "pandas",
            "scikit-learn", "mlxtend", "matplotlib", "cotengra", "psutil")


def _git_commit() -> str | None:
    """qrobust's own commit (``+dirty`` with uncommitted changes to tracked files), only where qrobust runs
    from its own repository: an installed copy inside some other git repository (a user's project, a
    site-packages under version control) records None, not that repository's commit."""
    import subprocess

    package = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=package, capture_output=True, text=True,
                             timeout=5)
        if top.returncode != 0:
            return None
        root = Path(top.stdout.strip())
        project = root / "pyproject.toml"
        if package.parent != root or not project.is_file() or 'name = "qrobust"' not in project.read_text():
            return None
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    """Installed versions of Python and of the packages results depend on (None where absent), and
    qrobust's own git commit where it runs from its repository."""
    out = {"python": platform.python_version(), "qrobust_commit": _git_commit()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def devices() -> list[str]:
    import jax

    return [f"{d.platform}:{d.device_kind}" for d in jax.devices()]


def numerics() -> dict:
    """The settings that change a run's random streams or arithmetic beyond its own config: the versions of JAX
    and jaxlib, JAX's 64-bit mode, its PRNG implementation and partitioning, its default matmul precision and
    the platform the programs run on. Recorded in config.json; a run resumes only under the same values
    (``qrobust.store.RunDirectory.check``)."""
    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "x64": bool(jax.config.jax_enable_x64),
            "prng_impl": str(jax.config.jax_default_prng_impl),
            "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
            "default_matmul_precision": jax.config.jax_default_matmul_precision, "platform": jax.default_backend()}
