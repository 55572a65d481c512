"""The Hydra apps, ``backprop-lab train|compare|explain`` (and ``experiments/*.py``, which
run the same ones).

Each module holds its app's task function and ``main``, the task under ``hydra.main``.
Their configs are the package's ``conf/`` folder: in a wheel the repository's ``conf/``
shipped inside the package, in a checkout a link to it. The path is absolute, so an
app runs from any directory. The configs' defaults lists name typed schemas
(:mod:`backprop_lab.apps._schemas`), which Hydra finds in its ConfigStore: the
``hydra_plugins.backprop_lab_schemas`` module stores them there when Hydra starts
(``hydra.main`` and the compose API alike), so importing this package for ``CONF_DIR``
(as ``--help`` does) imports no Hydra.
"""

from __future__ import annotations

from pathlib import Path


def _conf_dir() -> str:
    here = Path(__file__).resolve().parent.parent
    for conf in (here / "conf", here.parent.parent / "conf"):  # installed or linked; a checkout's
        if (conf / "train.yaml").is_file():
            return str(conf.resolve())
    raise FileNotFoundError(f"backprop-lab's configs are missing: no conf/train.yaml under {here}")


#: The configs' directory (``conf/train.yaml``, ``conf/compare.yaml``, ``conf/explain.yaml`` and
#: the groups).
CONF_DIR = _conf_dir()
