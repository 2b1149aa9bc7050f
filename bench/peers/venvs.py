"""One virtualenv per peer under bench/.peers/<peer>/ (gitignored), created with
``python3.11 -m venv`` and filled with pip at setup time, before anything is measured."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / "bench" / ".peers"
APPS = Path(__file__).resolve().parent

#: Installed beside every peer in the versions of the project's own virtualenv, so the
#: Delta writer and the JSON parser are the ones the engine uses.
SHARED = ("deltalake", "pyarrow", "orjson")


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer: what to install, which app runs it, what it writes."""

    name: str
    #: the distribution whose version is reported
    package: str
    version: str
    app: str
    #: the package's own extra to install with it (``bytewax[kafka]``)
    extra: str = ""
    #: more requirements the peer needs for this workload
    also: tuple[str, ...] = ()
    #: shared packages the peer pins itself (left to pip's resolver)
    unpinned: tuple[str, ...] = ()
    #: what the app writes: a Delta table, or files (Parquet/CSV) when it has no free Delta writer
    writes: str = "delta"
    #: the virtualenv it runs in, when it shares another peer's
    venv_name: str = ""

    @property
    def venv(self) -> Path:
        return VENVS / (self.venv_name or self.name)

    @property
    def writes_delta(self) -> bool:
        return self.writes.startswith("delta")

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def app_path(self) -> Path:
        return APPS / self.app

    def requirements(self) -> list[str]:
        shared = [f"{name}=={metadata.version(name)}" for name in SHARED if name not in self.unpinned]
        shared += [name for name in SHARED if name in self.unpinned]
        extra = f"[{self.extra}]" if self.extra else ""
        return [f"{self.package}{extra}=={self.version}", *self.also, *shared]


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer("quix", "quixstreams", "3.28.1", "quix_app.py"),
        Peer("bytewax", "bytewax", "0.21.1", "bytewax_app.py", extra="kafka"),
        # aiokafka reads lz4-compressed batches (the producer's codec) only with its lz4 extra.
        Peer("faust", "faust-streaming", "0.15.3", "faust_app.py", also=("aiokafka[lz4]",)),
        # Pathway pins pyarrow below the project's version: pip picks one that fits.
        # Its Delta writer needs a licence key: the app writes through its Python callback.
        Peer(
            "pathway",
            "pathway",
            "0.33.0",
            "pathway_app.py",
            unpinned=("pyarrow",),
            writes="delta, through pw.io.subscribe (pw.io.deltalake.write needs a licence key)",
        ),
        # The same pipeline with Pathway's native CSV writer (a local file), in the same venv.
        Peer(
            "pathway-csv",
            "pathway",
            "0.33.0",
            "pathway_csv_app.py",
            unpinned=("pyarrow",),
            writes="csv, a local file through pw.io.csv.write (not Delta)",
            venv_name="pathway",
        ),
    )
}


def python311() -> str:
    found = shutil.which("python3.11")
    if found is None:
        msg = "python3.11 is not on PATH: the peers' virtualenvs are made with `python3.11 -m venv`"
        raise RuntimeError(msg)
    return found


def ensure_venv(peer: Peer) -> dict[str, str]:
    """Create the peer's virtualenv and install it, unless the same requirements are already
    installed there (a stamp file holds them). Returns the installed versions of the peer and
    the shared packages. Raises ``RuntimeError`` with pip's output when something fails."""
    requirements = peer.requirements()
    stamp = peer.venv / ".installed.json"
    if stamp.exists() and peer.python.exists():
        recorded = json.loads(stamp.read_text())
        if recorded.get("requirements") == requirements:
            return dict(recorded["versions"])
    if peer.venv.exists():
        shutil.rmtree(peer.venv)
    peer.venv.parent.mkdir(parents=True, exist_ok=True)
    _run([python311(), "-m", "venv", str(peer.venv)], f"creating the virtualenv of {peer.name}")
    _run(
        [str(peer.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        f"installing {' '.join(requirements)}",
    )
    versions = installed_versions(peer)
    stamp.write_text(json.dumps({"requirements": requirements, "versions": versions}, indent=1))
    return versions


def installed_versions(peer: Peer) -> dict[str, str]:
    names = [peer.package, *SHARED]
    code = (
        "import json, sys\nfrom importlib import metadata\n"
        "print(json.dumps({n: metadata.version(n) for n in sys.argv[1:]}))"
    )
    out = _run([str(peer.python), "-c", code, *names], f"reading the versions installed for {peer.name}")
    return dict(json.loads(out.splitlines()[-1]))


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        msg = f"{what} failed (exit {done.returncode}):\n{tail}"
        raise RuntimeError(msg)
    return done.stdout


if __name__ == "__main__":  # pragma: no cover - python -m bench.peers.venvs quix ...
    for name in sys.argv[1:] or list(PEERS):
        print(name, ensure_venv(PEERS[name]))
