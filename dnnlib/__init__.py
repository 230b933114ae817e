"""Tiny shared utilities: an attribute-access dict for configs and the cache-directory lookup."""

import os
from pathlib import Path


class EasyDict(dict):
    """A dict whose keys are also attributes (`cfg.lr` == `cfg['lr']`)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


def cache_dirs() -> list[Path]:
    """Folders searched for pretrained weight files, most specific first.

    `$STYLEINV_CACHE_DIR`, then `$XDG_CACHE_HOME/styleinv` (default `~/.cache/styleinv`), then the torch hub
    checkpoint folder (`$TORCH_HOME/hub/checkpoints`, default `~/.cache/torch/hub/checkpoints`).
    """
    dirs = []
    if os.environ.get("STYLEINV_CACHE_DIR"):
        dirs.append(Path(os.environ["STYLEINV_CACHE_DIR"]))
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    dirs.append(xdg / "styleinv")
    torch_home = Path(os.environ.get("TORCH_HOME", xdg / "torch"))
    dirs.append(torch_home / "hub" / "checkpoints")
    return dirs


def find_weight_file(name: str, path: str | os.PathLike | None = None, env_var: str | None = None,
                     source: str = "") -> Path:
    """Locate a pretrained weight file: explicit `path`, then `$env_var` (file or folder), then `cache_dirs()`.

    Raises FileNotFoundError naming the file, every place searched, and where the file is published.
    """
    searched = []
    candidates = []
    if path is not None:
        p = Path(path)
        candidates.append(p / name if p.is_dir() else p)
    if env_var and os.environ.get(env_var):
        p = Path(os.environ[env_var])
        candidates.append(p / name if p.is_dir() else p)
    candidates += [d / name for d in cache_dirs()]
    for c in candidates:
        searched.append(str(c))
        if c.is_file():
            return c
    hint = f" It is published at: {source}." if source else ""
    env = f" or set ${env_var}" if env_var else ""
    raise FileNotFoundError(
        f"Weight file '{name}' not found. Searched: {', '.join(searched)}.{hint} "
        f"Download it by hand and pass its path{env}, or put it in {cache_dirs()[0]}."
    )
