"""The modelconfig benchmark (`make bench`): ResolveForAccount against the zero-work ceiling.

Not a test: it measures, checks that every call under load succeeded, and writes
bench/results/results.md, results.json and throughput.png. See bench/README.md.

Steps, each bounded in time and all on 127.0.0.1:
1. name the machine;
2. for each size (default 1,000 and 1,000,000 accounts with overrides) build a SQLite database
   through the real bulk-import path (`modelconfigctl import FILE.csv` against a daemon), then
   time importing the same file again, reverting the import and reverting that revert;
3. start, each in its own process session, a zero-work threaded grpcio server, a zero-work
   grpc.aio server (both answering a body the size of the daemon's real response), the
   daemon with 1 and 2 workers, the same daemon again with a tokens file and metrics on, and
   with 1 worker once more serving TLS with a certificate generated at the start of the run;
   time each start to SERVING;
4. drive them alternately with h2load, several rounds (each daemon next to its twins with
   tokens and metrics on and with TLS); then the batch call; then SetModel calls timed while
   resolve load runs; then check that the twins' metrics counted the calls and that they
   refuse a call without a token, and that the TLS twin refuses a plaintext call;
5. report req/s, ratio to the zero-work limit, the ratios tokens and metrics on / off and
   TLS / plaintext, p50/p99, RSS, start-up and the targets.

Every process started here is killed (its whole process group) on the way out, failure or not.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import importlib.metadata
import ipaddress
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import live  # bench/live.py: in-process resolution and propagation
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelconfig import ModelConfigClient
from modelconfig.tokens import new_token
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import model_config_service_pb2_grpc as api_grpc

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
SERVICE = "modelconfig.v1.ModelConfigService"
SINGLE_PATH = f"/{SERVICE}/ResolveForAccount"
BATCH_PATH = f"/{SERVICE}/ResolveForAccounts"
HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = os.environ.get(
    "MODELCONFIG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Overrides spread over three slots and several models, named by name, alias or id as an
# operator's file would. Account i gets one override: slot SLOTS[i % 3], model cycling.
SLOT_MODELS = (
    ("openai_model", ("gpt-3.5-turbo", "gpt-4-turbo-2024-04-09", "1")),
    ("anthropic_model", ("claude-3-haiku-20240307", "claude-3-5-sonnet-20241022")),
    ("runware_model", ("runware:97@1",)),
)
BENCH_ACCOUNT = 501  # an openai_model override; present at every size
TARGETS = {
    "limit_ratio": 0.90,
    "size_ratio": 0.90,
    "rss_mb": 400.0,
    "serving_s": 20.0,
    "batch_x": 10.0,
    "setmodel_s": 1.0,
    "import_s": 60.0,
    "secured_ratio": 0.95,
    "resolver_x": 100.0,
    "visible_p50_ms": 50.0,
    "visible_max_ms": 250.0,
}
SECURED = "tokens+metrics"  # the suffix naming a daemon with a tokens file and metrics on
TLS = "tls"  # the suffix naming a daemon serving TLS


def account(i: int) -> str:
    return f"acct-{i:07d}"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- processes ---------------------------------------------------------------------------------


class Processes:
    """Every process the benchmark starts: each leads its own session (start_new_session), so
    it does not share the load generator's CPU accounting and its whole group can be killed."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []

    def start(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        out = log_path.open("ab")
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        finally:
            out.close()
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 15.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers a dead leader left behind, too
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self._procs):
            self.stop(proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """The processes of a session (a server and any workers it forked)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:  # fields after the name: state ppid pgrp session ...
            pids.append(int(entry.name))
    return sorted(pids)


def _status_kb(pid: int, key: str, name: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_mb(sid: int) -> dict:
    """VmRSS summed over the session's processes (shared pages count once per process), and
    Pss, which splits shared pages among their sharers."""
    pids = session_pids(sid)
    rss = sum(_status_kb(p, "VmRSS") for p in pids)
    pss = sum(_status_kb(p, "Pss", "smaps_rollup") for p in pids)
    return {"rss_mb": rss / 1024, "pss_mb": pss / 1024, "processes": len(pids)}


def cpu_seconds(sid: int) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in session_pids(sid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return out


# -- the machine -------------------------------------------------------------------------------


def cpu_times() -> list[int]:
    """The machine's CPU time counters: user nice system idle iowait irq softirq steal ..."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def cpu_busy(seconds: float = 2.0) -> float:
    """The share of all cores busy over a short sample: other work skews every figure."""
    before = cpu_times()
    time.sleep(seconds)
    delta = [b - a for a, b in zip(before, cpu_times(), strict=True)]
    return 100.0 * (sum(delta) - delta[3] - delta[4]) / max(1, sum(delta))


def other_work_pct(since: list[int], own_since: os.times_result) -> float:
    """The share of all cores that processes other than the benchmark's own (itself, the
    servers, h2load: all waited for, so counted in its children's times) kept busy since."""
    delta = [b - a for a, b in zip(since, cpu_times(), strict=True)]
    ticks = os.sysconf("SC_CLK_TCK")
    busy = (sum(delta[:8]) - delta[3] - delta[4] - delta[7]) / ticks
    total = sum(delta[:8]) / ticks
    now = os.times()
    own = sum(now[:4]) - sum(own_since[:4])
    return max(0.0, 100.0 * (busy - own) / max(total, 1e-9))


def steal_pct(since: list[int]) -> float:
    """The share of CPU time the hypervisor gave to other guests since `since`."""
    delta = [b - a for a, b in zip(since, cpu_times(), strict=True)]
    return 100.0 * delta[7] / max(1, sum(delta[:8]))


def daemon_revision() -> str:
    """The commit measured, and whether the daemon's code had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "daemon", "clients"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' with uncommitted changes to the daemon' if dirty else ''}"


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip() + cpu
            if line.startswith("Hypervisor vendor:"):
                cpu += f" ({line.split(':', 1)[1].strip()} guest)"
    if not cpu:
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    h2load = subprocess.run(["h2load", "--version"], capture_output=True, text=True, timeout=10)
    return {
        "cpu": cpu or "unknown",
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "peewee": importlib.metadata.version("peewee"),
        "h2load": h2load.stdout.strip(),
        "daemon_revision": daemon_revision(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "cpu_busy_before_pct": round(cpu_busy(), 1),
    }


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    name: str  # "zero threaded", "zero aio", "daemon w1", "daemon w1 tokens+metrics", ...
    # "zero", "daemon", "secured" (a daemon with a tokens file and metrics on) or "tls" (a
    # daemon serving TLS)
    kind: str
    port: int
    proc: subprocess.Popen
    log_path: Path
    startup_s: float = 0.0
    workers: int = 1
    memory: dict = field(default_factory=dict)
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    token: str = ""  # sent as `authorization: Bearer` when set
    ca_pem: bytes = b""  # when set, the server speaks TLS with a certificate this CA issued
    metrics_port: int = 0
    # ResolveForAccount calls this benchmark made that succeeded: what the metrics must count.
    resolved_ok: int = 0

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url_scheme(self) -> str:
        return "https" if self.ca_pem else "http"


def log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def channel(target: str, ca_pem: bytes = b"") -> grpc.Channel:
    """A plaintext channel, or with `ca_pem` a TLS one that verifies the server against it."""
    if not ca_pem:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca_pem))


def wait_serving(
    port: int, proc: subprocess.Popen, log_path: Path, timeout: float, ca_pem: bytes = b""
) -> float:
    """Seconds until health answers SERVING; a fresh channel per probe, so no reconnect
    back-off of a long-lived channel adds to the measurement. With `ca_pem`, over TLS."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server on port {port} exited with {proc.returncode}:\n{log_tail(log_path)}"
            )
        with channel(f"{HOST}:{port}", ca_pem) as probe:
            try:
                reply = health_pb2_grpc.HealthStub(probe).Check(
                    health_pb2.HealthCheckRequest(), timeout=0.5
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            except grpc.RpcError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"server on port {port} not SERVING within {timeout:.0f}s")


def daemon_has_workers_option() -> bool:
    out = subprocess.run(
        [str(VENV_BIN / "modelconfigd"), "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    return "--workers" in out


def start_daemon(
    procs: Processes,
    db: Path | None,
    workdir: Path,
    name: str,
    workers: int,
    timeout: float,
    extra_env: dict[str, str] | None = None,
    ca_pem: bytes = b"",
    url: str = "",
) -> Server:
    port = free_port()
    log_path = workdir / f"{name.replace(' ', '-').replace('+', '-')}.log"
    env = {
        "MODELCONFIG_LISTEN": f"{HOST}:{port}",
        "MODELCONFIG_DATABASE_URL": url or f"sqlite:///{db}",
        "MODELCONFIG_DRAIN_SECONDS": "0.1",
        "MODELCONFIG_GRACE_SECONDS": "2",
        # Off unless asked for: an operator's environment must not turn them on for the
        # daemons that the ones with tokens and metrics are compared with.
        "MODELCONFIG_TOKENS_FILE": "",
        "MODELCONFIG_METRICS_LISTEN": "",
        "MODELCONFIG_TLS_CERT": "",
        "MODELCONFIG_TLS_KEY": "",
        "MODELCONFIG_TLS_CLIENT_CA": "",
        **(extra_env or {}),
    }
    args = [str(VENV_BIN / "modelconfigd")]
    if workers > 1:
        env["MODELCONFIG_WORKERS"] = str(workers)
        args += ["--workers", str(workers)]
    started = time.monotonic()
    proc = procs.start(args, log_path, env)
    wait_serving(port, proc, log_path, timeout, ca_pem)
    startup = time.monotonic() - started
    return Server(name, "daemon", port, proc, log_path, startup, workers, ca_pem=ca_pem)


def write_tokens_file(path: Path) -> str:
    """A tokens file as an operator would write it (a reader for the services that resolve, an
    admin for the operator); returns the reader's token, the one h2load sends."""
    reader, reader_digest = new_token()
    _, admin_digest = new_token()
    path.write_text(
        "[[tokens]]\n"
        'name = "bench-reader"\nrole = "reader"\n'
        f'sha256 = "{reader_digest}"\n\n'
        "[[tokens]]\n"
        'name = "bench-admin"\nrole = "admin"\n'
        f'sha256 = "{admin_digest}"\n'
    )
    return reader


def start_secured(
    procs: Processes,
    db: Path,
    workdir: Path,
    workers: int,
    tokens: Path,
    token: str,
    timeout: float,
) -> Server:
    """The daemon as `start_daemon` starts it, plus a tokens file and metrics on a free port:
    every call then needs the reader's token, and is counted."""
    metrics_port = free_port()
    env = {
        "MODELCONFIG_TOKENS_FILE": str(tokens),
        "MODELCONFIG_METRICS_LISTEN": f"{HOST}:{metrics_port}",
    }
    name = f"daemon w{workers} {SECURED}"
    server = start_daemon(procs, db, workdir, name, workers, timeout, env)
    server.kind, server.token, server.metrics_port = "secured", token, metrics_port
    return server


@dataclass
class Pki:
    """A throwaway CA and a server certificate it issued, as PEM files."""

    ca_pem: bytes
    cert: Path
    key: Path


def make_pki(directory: Path) -> Pki:
    """A CA and a server certificate for 127.0.0.1 (IP SAN) and localhost (DNS SAN), EC P-256
    keys, valid a day either side of now: what the TLS twin serves and its clients verify."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, ca: bool):
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - day)
            .not_valid_after(now + day)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        builder("modelconfig bench CA", "modelconfig bench CA", ca_key, True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(HOST)),
        x509.DNSName("localhost"),
    ]
    cert = (
        builder("localhost", "modelconfig bench CA", key, False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pki = Pki(ca_cert.public_bytes(pem), directory / "server.pem", directory / "server.key")
    pki.cert.write_bytes(cert.public_bytes(pem))
    pki.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pki.key.chmod(0o600)
    return pki


def start_tls(
    procs: Processes, db: Path, workdir: Path, workers: int, pki: Pki, timeout: float
) -> Server:
    """The daemon as `start_daemon` starts it (no tokens, no metrics), serving TLS with the
    generated certificate; SERVING is probed over TLS, verified against the generated CA."""
    env = {"MODELCONFIG_TLS_CERT": str(pki.cert), "MODELCONFIG_TLS_KEY": str(pki.key)}
    name = f"daemon w{workers} {TLS}"
    server = start_daemon(procs, db, workdir, name, workers, timeout, env, pki.ca_pem)
    server.kind = "tls"
    return server


def start_zero(
    procs: Processes, mode: str, body: Path, workdir: Path, threads: int, timeout: float = 30
) -> Server:
    port = free_port()
    name = f"zero {mode}"
    log_path = workdir / f"zero-{mode}.log"
    args = [sys.executable, str(HERE / "zero_server.py"), "--mode", mode, "--port", str(port)]
    args += ["--body", str(body), "--threads", str(threads)]
    started = time.monotonic()
    proc = procs.start(args, log_path)
    wait_serving(port, proc, log_path, timeout)
    return Server(name, "zero", port, proc, log_path, time.monotonic() - started)


def raw_call(
    target: str,
    path: str,
    request: bytes,
    timeout: float = 30,
    token: str = "",
    ca_pem: bytes = b"",
) -> bytes:
    """One call with identity serializers: the response bytes exactly as on the wire; over
    TLS, verified against `ca_pem`, when given."""
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with channel(target, ca_pem) as chan:
        return chan.unary_unary(path)(request, timeout=timeout, metadata=metadata)


def call_server(server: Server, path: str, request: bytes) -> bytes:
    """raw_call with the server's token and TLS, counted as its metrics should count it."""
    response = raw_call(server.target, path, request, token=server.token, ca_pem=server.ca_pem)
    if path == SINGLE_PATH:
        server.resolved_ok += 1
    return response


# -- data --------------------------------------------------------------------------------------


def override_rows(accounts: int) -> Iterator[tuple[str, str, str]]:
    for i in range(1, accounts + 1):
        slot, models = SLOT_MODELS[i % 3]
        yield account(i), slot, models[(i // 3) % len(models)]


def write_csv(path: Path, accounts: int) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("account_id", "slot", "model"))
        writer.writerows(override_rows(accounts))


def load_with_ctl(target: str, csv_path: Path, log_path: Path, timeout: float) -> None:
    with log_path.open("wb") as out:
        proc = subprocess.run(
            [str(VENV_BIN / "modelconfigctl"), "--target", target, "import", str(csv_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"modelconfigctl import exited {proc.returncode}: {log_tail(log_path)}")


def load_with_rpc(target: str, accounts: int, timeout: float) -> None:
    """Fallback: the ImportOverrides stream called directly, 5,000 rows a chunk."""

    def chunks() -> Iterator[api.ImportOverridesRequest]:
        rows: list[api.OverrideRecord] = []
        for line, (account_id, slot, model) in enumerate(override_rows(accounts), start=2):
            record = api.OverrideRecord(line=line, account_id=account_id, slot=slot)
            if model.isdigit():
                record.model_id = int(model)
            else:
                record.model_name = model
            rows.append(record)
            if len(rows) == 5000:
                yield api.ImportOverridesRequest(rows=rows)
                rows = []
        if rows:
            yield api.ImportOverridesRequest(rows=rows)

    with grpc.insecure_channel(target) as channel:
        api_grpc.ModelConfigServiceStub(channel).ImportOverrides(chunks(), timeout=timeout)


def load_with_setmodel(target: str, accounts: int) -> None:
    """Last fallback (small sizes only): one SetModel call per row."""
    with ModelConfigClient(target) as client:
        for account_id, slot, model in override_rows(accounts):
            client.set_model(slot, int(model) if model.isdigit() else model, account_id=account_id)


def count_overrides(target: str) -> int:
    with ModelConfigClient(target) as client:
        ids = [m.id for m in client.list_models().models]
        return sum(client.get_model_usage(i).account_override_count for i in ids)


def prepare(procs: Processes, workdir: Path, accounts: int, args) -> dict:
    """A SQLite database with `accounts` overridden accounts, loaded through a daemon."""
    db = workdir / f"accounts-{accounts}.db"
    csv_path = workdir / f"overrides-{accounts}.csv"
    started = time.monotonic()
    write_csv(csv_path, accounts)
    log(f"wrote {accounts:,} rows to {csv_path.name} in {time.monotonic() - started:.1f}s")
    daemon = start_daemon(procs, db, workdir, f"import-{accounts}", 1, 60)
    info: dict = {"accounts": accounts, "rows": accounts, "db": str(db), "notes": []}
    try:
        attempts: list[tuple[str, Callable[[], None]]] = []
        if args.loader in ("auto", "ctl"):
            attempts.append(
                (
                    "modelconfigctl import",
                    lambda: load_with_ctl(
                        daemon.target,
                        csv_path,
                        workdir / f"import-{accounts}-ctl.log",
                        args.import_timeout,
                    ),
                )
            )
        if args.loader in ("auto", "rpc"):
            attempts.append(
                (
                    "FALLBACK: ImportOverrides RPC called by the benchmark",
                    lambda: load_with_rpc(daemon.target, accounts, args.import_timeout),
                )
            )
        if args.loader == "setmodel" or (args.loader == "auto" and accounts <= 20_000):
            attempts.append(
                (
                    "FALLBACK: one SetModel call per row",
                    lambda: load_with_setmodel(daemon.target, accounts),
                )
            )
        for label, load in attempts:
            log(f"loading {accounts:,} overrides: {label}")
            started = time.monotonic()
            try:
                load()
            except (RuntimeError, grpc.RpcError, subprocess.TimeoutExpired, Exception) as exc:
                reason = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
                note = f"{label} failed after {time.monotonic() - started:.1f}s: {reason[0][:300]}"
                log(note)
                info["notes"].append(note)
                continue
            info["loader"] = label
            info["load_s"] = time.monotonic() - started
            break
        else:
            raise RuntimeError(f"could not load {accounts:,} overrides: {info['notes']}")
        loaded = count_overrides(daemon.target)
        if loaded != accounts:
            raise RuntimeError(f"loaded {loaded:,} overrides, expected {accounts:,}")
        log(f"loaded {accounts:,} overrides in {info['load_s']:.1f}s ({info['loader']})")
        if info["loader"] == "modelconfigctl import":
            info.update(undo_and_redo(daemon.target, csv_path, workdir, accounts, args))
    finally:
        procs.stop(daemon.proc)
    info["db_mb"] = sum(p.stat().st_size for p in workdir.glob(f"{db.name}*")) / 2**20
    csv_path.unlink()
    return info


def undo_and_redo(target: str, csv_path: Path, workdir: Path, accounts: int, args) -> dict:
    """Time importing the same file again (it changes nothing), reverting the import (every
    override removed, in one transaction) and reverting that revert (all back)."""
    timings: dict = {}
    started = time.monotonic()
    load_with_ctl(target, csv_path, workdir / f"reimport-{accounts}.log", args.import_timeout)
    timings["reimport_s"] = time.monotonic() - started
    with ModelConfigClient(target, timeout=args.import_timeout) as client:
        imported = client.list_changes(page_size=1).changes[0]
        if imported.import_rows != accounts:
            raise RuntimeError(f"the newest change is not the import: {imported}")
        started = time.monotonic()
        reverted = client.revert_change(imported.revision, timeout=args.import_timeout)
        timings["revert_s"] = time.monotonic() - started
        started = time.monotonic()
        client.revert_change(reverted.revision, timeout=args.import_timeout)
        timings["redo_s"] = time.monotonic() - started
    if count_overrides(target) != accounts:
        raise RuntimeError("reverting the revert did not restore every override")
    log(
        f"same file again {timings['reimport_s']:.1f}s (no change), revert "
        f"{timings['revert_s']:.1f}s, revert of the revert {timings['redo_s']:.1f}s"
    )
    return timings


# -- load --------------------------------------------------------------------------------------


def grpc_frame(message: bytes) -> bytes:
    return b"\0" + struct.pack(">I", len(message)) + message


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_DATA = re.compile(r"\((\d+)\) data")
_TLS_LINES = re.compile(r"TLS Protocol: (\S+)\s+Cipher: (\S+)(?:\s+Server Temp Key: (\S+))?")
_PROTOCOL = re.compile(r"Application protocol: (\S+)")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def h2load(
    server: Server,
    path: str,
    body: Path,
    requests: int,
    response_len: int,
    log_file: Path,
    args,
    exact: bool = True,
    cpu: int | None = None,
) -> dict:
    """One h2load run (on CPU `cpu` alone, if given); `ok` only if every request got a 2xx
    and the DATA bytes add up to one full response frame per request (h2load does not read
    grpc-status: a failed call answers trailers only, with no DATA). A server with a CA is
    driven over https (h2load negotiates h2 by ALPN and does not verify the certificate)."""
    command = [
        *(["taskset", "-c", str(cpu)] if cpu is not None else []),
        "h2load",
        "-n", str(requests),
        "-c", str(args.connections),
        "-m", str(args.streams),
        "-t", "1",
        "-d", str(body),
        "-H", "content-type: application/grpc",
        "-H", "te: trailers",
        *(["-H", f"authorization: Bearer {server.token}"] if server.token else []),
        f"--log-file={log_file}",
        f"{server.url_scheme}://{server.target}{path}",
    ]  # fmt: skip
    timeout = 60 + requests / 200
    before = cpu_seconds(server.proc.pid)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        out = f"h2load timed out after {timeout:.0f}s: {exc.stdout or ''}"
        proc = None
    after = cpu_seconds(server.proc.pid)
    for pid, seconds in after.items():
        server.cpu_by_pid[pid] = server.cpu_by_pid.get(pid, 0.0) + seconds - before.get(pid, 0)
    result: dict = {"requests": requests, "ok": False, "problems": []}
    finished, counts = _FINISHED.search(out), _REQUESTS.search(out)
    status, data = _STATUS.search(out), _DATA.search(out)
    if not (proc and proc.returncode == 0 and finished and counts and status and data):
        result["problems"].append("h2load failed: " + out.strip()[-500:])
        return result
    tls, protocol = _TLS_LINES.search(out), _PROTOCOL.search(out)
    result["protocol"] = protocol.group(1) if protocol else "?"
    if tls:
        result["tls"] = ", ".join(g for g in tls.groups() if g)
    if server.ca_pem and not (tls and result["protocol"] == "h2"):
        result["problems"].append(f"not h2 over TLS: protocol {result['protocol']}, tls {tls}")
    elapsed = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    _, _, _, succeeded, failed, errored, timed_out = map(int, counts.groups())
    if path == SINGLE_PATH:
        server.resolved_ok += succeeded
    frame = 5 + response_len
    expected = requests * frame
    data_bytes = int(data.group(1))
    result.update(
        req_s=float(finished.group(3)),
        elapsed_s=elapsed,
        succeeded=succeeded,
        failed=failed + errored + timed_out,
        status_2xx=int(status.group(1)),
        data_bytes=data_bytes,
        expected_data_bytes=expected,
    )
    if succeeded != requests or failed or errored or timed_out:
        result["problems"].append(
            f"{succeeded}/{requests} succeeded, {failed} failed, {errored} errored, "
            f"{timed_out} timed out"
        )
    if int(status.group(1)) != requests:
        result["problems"].append(f"only {status.group(1)} of {requests} answered 2xx")
    if exact and data_bytes != expected:
        result["problems"].append(
            f"DATA bytes {data_bytes} != {requests} x {frame}: some calls did not answer a "
            "full response (an error status has no DATA)"
        )
    if not exact and data_bytes < expected:
        result["problems"].append(f"DATA bytes {data_bytes} < {requests} x {frame}")
    latencies = []
    with contextlib.suppress(OSError):
        for line in log_file.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] != "-1":
                latencies.append(int(parts[2]) / 1000)
        log_file.unlink()
    result["latencies_ms"] = latencies
    result["ok"] = not result["problems"]
    return result


def summarize(runs: list[dict]) -> dict:
    rates = [r["req_s"] for r in runs if "req_s" in r]
    latencies = sorted(x for r in runs for x in r.get("latencies_ms", []))
    return {
        "req_s": statistics.median(rates) if rates else 0.0,
        "req_s_rounds": rates,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "ok": bool(runs) and all(r["ok"] for r in runs),
        "tls": sorted({r["tls"] for r in runs if "tls" in r}),
        "problems": [p for r in runs for p in r["problems"]],
        "calls": sum(r.get("succeeded", 0) for r in runs),
    }


def timed_writes(target: str, account_id: str, count: int, gap: float, alive) -> list[dict]:
    """SetModel calls that each change something (the model alternates), timed one by one."""
    out = []
    models = ("gpt-3.5-turbo", "gpt-4-turbo-2024-04-09")
    with ModelConfigClient(target, timeout=30) as client:
        for i in range(count):
            time.sleep(gap)
            started = time.monotonic()
            error = ""
            try:
                client.set_model("openai_model", models[i % 2], account_id=account_id)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:200]
            out.append({"s": time.monotonic() - started, "during_load": alive(), "error": error})
    return out


# -- one size ----------------------------------------------------------------------------------


def bench_size(
    procs: Processes, workdir: Path, data: dict, args, workers_ok: bool, pki: Pki | None
) -> dict:
    accounts = data["accounts"]
    db = Path(data["db"])
    size_dir = workdir / f"run-{accounts}"
    size_dir.mkdir()
    result: dict = {"accounts": accounts, "servers": {}, "batch": {}, "writes": {}, "notes": []}
    servers: list[Server] = []
    try:
        for w in args.workers:
            if w > 1 and not workers_ok:
                note = f"daemon w{w} not measured: modelconfigd has no --workers option"
                result["notes"].append(note)
                log(note)
                continue
            log(f"{accounts:,} accounts: starting daemon w{w}")
            daemon = start_daemon(procs, db, size_dir, f"daemon w{w}", w, args.serving_timeout)
            log(f"  daemon w{w} SERVING after {daemon.startup_s:.2f}s")
            servers.append(daemon)
        daemons = [s for s in servers if s.kind == "daemon"]
        if not daemons:
            raise RuntimeError("no daemon started")
        secured = start_twins(procs, db, size_dir, daemons, result["notes"], args)
        for twin in secured:  # right after its twin: the two run back to back in each round
            servers.insert(servers.index(twin_of(twin, daemons)) + 1, twin)
        tls_twins = start_tls_twins(procs, db, size_dir, daemons, pki, result["notes"], args)
        for twin in tls_twins:  # right before its daemon, so each twin has it as a neighbour
            servers.insert(servers.index(twin_of(twin, daemons)), twin)
        twins = secured + tls_twins

        single_request = api.ResolveForAccountRequest(account_id=account(BENCH_ACCOUNT))
        single_bytes = single_request.SerializeToString()
        batch_ids = [account(1 + k * (accounts // args.batch_size)) for k in range(args.batch_size)]
        batch_request = api.ResolveForAccountsRequest(account_ids=batch_ids)
        batch_bytes = batch_request.SerializeToString()
        single_body, batch_body = size_dir / "single.bin", size_dir / "batch.bin"
        single_body.write_bytes(grpc_frame(single_bytes))
        batch_body.write_bytes(grpc_frame(batch_bytes))

        # The daemon's real answer: its size is what the zero-work servers answer.
        response = raw_call(daemons[0].target, SINGLE_PATH, single_bytes)
        decoded = api.ResolveForAccountResponse.FromString(response)
        if decoded.account_id != account(BENCH_ACCOUNT) or not decoded.slots:
            raise RuntimeError(f"unexpected ResolveForAccount answer: {decoded}")
        batch_response = api.ResolveForAccountsResponse.FromString(
            raw_call(daemons[0].target, BATCH_PATH, batch_bytes)
        )
        bad = [r.account_id for r in batch_response.results if r.HasField("error")]
        if len(batch_response.results) != args.batch_size or bad:
            raise RuntimeError(f"batch answer has {len(batch_response.results)} results: {bad}")
        for twin in twins:  # the same database: the same answer, to the byte
            if call_server(twin, SINGLE_PATH, single_bytes) != response:
                raise RuntimeError(f"{twin.name} answers differently from {daemons[0].name}")
        response_file = size_dir / "response.bin"
        response_file.write_bytes(response)
        result["response_bytes"] = len(response)
        result["request_bytes"] = len(single_bytes)
        result["batch_response_bytes"] = batch_response.ByteSize()
        log(
            f"  ResolveForAccount response: {len(response)} bytes; batch of "
            f"{args.batch_size}: {batch_response.ByteSize()} bytes"
        )

        for mode in ("threaded", "aio"):
            zero = start_zero(procs, mode, response_file, size_dir, args.zero_threads)
            servers.insert(sum(1 for s in servers if s.kind == "zero"), zero)
        zeros = [s for s in servers if s.kind == "zero"]

        def run_single(server: Server, requests: int, tag: str, cpu: int | None = None) -> dict:
            # Re-read the daemon's response size each run: writes change the revision.
            length = (
                len(response)
                if server.kind == "zero"
                else len(call_server(server, SINGLE_PATH, single_bytes))
            )
            return h2load(
                server,
                SINGLE_PATH,
                single_body,
                requests,
                length,
                size_dir / f"{tag}.tsv",
                args,
                cpu=cpu,
            )

        for server in servers:  # warm-up, not counted
            warm = run_single(server, args.warmup, "warmup")
            if not warm["ok"]:
                raise RuntimeError(f"{server.name} warm-up failed: {warm['problems']}")
        for server in servers:
            server.cpu_by_pid.clear()
        runs: dict[str, list[dict]] = {s.name: [] for s in servers}
        for rnd in range(args.rounds):
            for server in round_order(servers, rnd):
                run = run_single(server, args.requests, f"r{rnd}")
                runs[server.name].append(run)
                log(
                    f"  round {rnd + 1}/{args.rounds} {server.name:14} "
                    f"{run.get('req_s', 0):8.0f} req/s{'' if run['ok'] else '  FAILED'}"
                )
        for server in servers:
            summary = summarize(runs[server.name])
            summary["startup_s"] = server.startup_s
            summary["cpu_by_process_s"] = [round(v, 1) for v in server.cpu_by_pid.values()]
            calls = summary["calls"] or 1
            summary["cpu_us_per_call"] = sum(server.cpu_by_pid.values()) / calls * 1e6
            result["servers"][server.name] = summary
        for twin in twins:
            result["servers"][twin.name].update(compare_twin(result["servers"], twin, daemons))
        for twin in secured:
            pairs = paired_ratios(twin, twin_of(twin, daemons), run_single, args)
            result["servers"][twin.name].update(pairs)
            log(
                f"  {twin.name} / {twin_of(twin, daemons).name}: median of "
                f"{len(pairs['vs_off_pairs'])} pairs {pairs['vs_off_pairs_median']:.3f} "
                f"(IQR {pairs['vs_off_pairs_q1']:.3f}-{pairs['vs_off_pairs_q3']:.3f})"
                f"{', pinned: both on CPU 0, h2load on CPU 1' if pairs['pairs_pinned'] else ''}"
            )

        for rnd in range(args.rounds):
            for daemon in daemons:
                length = len(raw_call(daemon.target, BATCH_PATH, batch_bytes))
                run = h2load(
                    daemon,
                    BATCH_PATH,
                    batch_body,
                    args.batch_requests,
                    length,
                    size_dir / f"b{rnd}.tsv",
                    args,
                )
                result["batch"].setdefault(daemon.name, []).append(run)
                log(
                    f"  batch round {rnd + 1}/{args.rounds} {daemon.name:9} "
                    f"{run.get('req_s', 0):7.0f} req/s x {args.batch_size}"
                    f"{'' if run['ok'] else '  FAILED'}"
                )
        for name, batch_runs in result["batch"].items():
            summary = summarize(batch_runs)
            summary["accounts_s"] = summary["req_s"] * args.batch_size
            single = result["servers"][name]["req_s"]
            summary["x_single"] = summary["accounts_s"] / single if single else 0.0
            result["batch"][name] = summary

        for daemon in daemons:
            result["writes"][daemon.name] = writes_under_load(
                daemon, single_body, single_bytes, size_dir, args
            )
            w = result["writes"][daemon.name]
            log(
                f"  SetModel under load, {daemon.name}: max {w['max_s'] * 1000:.0f} ms "
                f"({w['during_load']}/{len(w['calls'])} during load)"
            )

        for twin in secured:  # after every call made to it, so the counts can be compared
            checks = check_secured(twin, single_bytes)
            result["servers"][twin.name]["checks"] = checks
            log(
                f"  {twin.name}: metrics counted {checks['metrics_ok']} of "
                f"{checks['calls_ok']} calls; without a token: {checks['no_token']}"
                f"{'' if checks['ok'] else '  CHECK FAILED: ' + '; '.join(checks['problems'])}"
            )
        for twin in tls_twins:
            checks = check_tls(twin, single_bytes, result["servers"][twin.name])
            result["servers"][twin.name]["checks"] = checks
            log(
                f"  {twin.name}: {', '.join(checks['negotiated']) or 'no TLS seen'}; "
                f"a plaintext call: {checks['plaintext']}"
                f"{'' if checks['ok'] else '  CHECK FAILED: ' + '; '.join(checks['problems'])}"
            )
        if args.resolver_calls:
            log("  in-process resolution: LocalResolver (all accounts, on demand) against the RPC")
            sample = [account(1 + k * max(1, accounts // 1000)) for k in range(min(1000, accounts))]
            result["resolver"] = live.measure(
                daemons[0].target,
                sample,
                rpc_calls=args.resolver_rpc_calls,
                local_calls=args.resolver_calls,
                writes=args.lag_writes,
            )
            r = result["resolver"]
            log(
                f"  RPC p50 {r['rpc']['p50_us']:.0f} µs; resolve() p50 {r['all']['p50_us']:.2f} µs "
                f"({r['all']['x_rpc_p50']:.0f}x), on demand {r['on_demand']['p50_us']:.2f} µs; "
                f"a write visible in {r['all']['visible_ms']['p50_ms']:.1f} ms p50"
            )
        for server in servers:
            server.memory = memory_mb(server.proc.pid)
            result["servers"][server.name].update(server.memory)
        limit = max(result["servers"][z.name]["req_s"] for z in zeros)
        result["limit_req_s"] = limit
        for daemon in daemons:
            result["servers"][daemon.name]["vs_limit"] = (
                result["servers"][daemon.name]["req_s"] / limit if limit else 0.0
            )
    finally:
        for server in servers:
            procs.stop(server.proc)
    return result


def set_cpus(server: Server, cpus: str) -> bool:
    """Restrict every thread of the server's processes to `cpus` (taskset's list syntax)."""
    done = True
    for pid in session_pids(server.proc.pid):
        result = subprocess.run(
            ["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True, check=False
        )
        done = done and result.returncode == 0
    return done


def replica_lags(procs: Processes, workdir: Path, args) -> dict:
    """How soon a write acknowledged by one daemon reaches another daemon's change feed: two
    daemons on one SQLite file (the other learns by its poll), and, when the local PostgreSQL
    answers, two on one PostgreSQL database (by LISTEN/NOTIFY)."""
    lags: dict = {}
    sqlite_db = workdir / "replicas.db"
    a = start_daemon(procs, sqlite_db, workdir, "replica-a", 1, args.serving_timeout)
    b = start_daemon(procs, sqlite_db, workdir, "replica-b", 1, args.serving_timeout)
    lags["sqlite"] = live.replica_lag(a.target, b.target, args.lag_writes)
    for server in (a, b):
        procs.stop(server.proc)
    log(f"  replica lag, SQLite (poll): {lags['sqlite']}")
    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        lags["postgres_note"] = f"not measured: PostgreSQL at {POSTGRES_ADMIN_URL}: {exc}"
        log(f"  replica lag, PostgreSQL: {lags['postgres_note']}")
        return lags
    name = f"modelconfig_bench_{os.getpid()}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        a = start_daemon(procs, None, workdir, "replica-pg-a", 1, args.serving_timeout, url=url)
        b = start_daemon(procs, None, workdir, "replica-pg-b", 1, args.serving_timeout, url=url)
        lags["postgres"] = live.replica_lag(a.target, b.target, args.lag_writes)
        for server in (a, b):
            procs.stop(server.proc)
        log(f"  replica lag, PostgreSQL (LISTEN/NOTIFY): {lags['postgres']}")
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return lags


def paired_ratios(twin: Server, daemon: Server, run: Callable[..., dict], args) -> dict:
    """The twin against its daemon in many short runs back to back, alternating which goes
    first: one ratio per pair, and their median and quartiles.

    On a shared 2-core VM one run's req/s swings by 10-20% with the neighbours' load and with
    where the scheduler puts h2load and the server's threads: far more than the few percent a
    twin costs. So for the pairs the daemon and its twin (every process of each, workers too)
    are pinned to CPU 0 and h2load to CPU 1: the server is then the bottleneck, and its cost
    per call is what the ratio shows, not h2load's share of the same cores. A pair sees nearly
    the same noise on both sides, and the median of many pairs is what the target is judged
    on."""
    cores = os.cpu_count() or 1
    pinned = cores >= 2 and shutil.which("taskset") is not None
    pinned = pinned and set_cpus(daemon, "0") and set_cpus(twin, "0")
    ratios = []
    try:
        for index in range(args.pairs):
            rates = {}
            for server in (daemon, twin) if index % 2 == 0 else (twin, daemon):
                outcome = run(server, args.pair_requests, f"p{index}", 1 if pinned else None)
                if not outcome["ok"]:
                    raise RuntimeError(
                        f"{server.name} failed in pair {index}: {outcome['problems']}"
                    )
                rates[server.name] = outcome["req_s"]
            ratios.append(rates[twin.name] / rates[daemon.name])
    finally:
        if pinned:
            for server in (daemon, twin):
                set_cpus(server, f"0-{cores - 1}")
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return {
        "vs_off_pairs": ratios,
        "vs_off_pairs_median": median,
        "vs_off_pairs_q1": q1,
        "vs_off_pairs_q3": q3,
        "pairs_pinned": pinned,
    }


def twin_of(twin: Server, daemons: list[Server]) -> Server:
    """The daemon (no tokens, no metrics, no TLS) that `twin` is compared with."""
    return next(d for d in daemons if d.workers == twin.workers)


def start_twins(
    procs: Processes, db: Path, workdir: Path, daemons: list[Server], notes: list[str], args
) -> list[Server]:
    """For each worker count asked for, the daemon again on the same database with a tokens
    file and metrics on: the twin of the daemon with both off already started."""
    twins: list[Server] = []
    wanted = [w for w in args.tokens_metrics_workers if w in {d.workers for d in daemons}]
    for w in sorted(set(args.tokens_metrics_workers) - set(wanted)):
        notes.append(f"daemon w{w} {SECURED} not measured: no daemon w{w} to compare it with")
    if not wanted:
        return twins
    tokens = workdir / "tokens.toml"
    token = write_tokens_file(tokens)
    for w in wanted:
        log(f"  starting daemon w{w} {SECURED}")
        twin = start_secured(procs, db, workdir, w, tokens, token, args.serving_timeout)
        log(f"  daemon w{w} {SECURED} SERVING after {twin.startup_s:.2f}s")
        twins.append(twin)
    return twins


def start_tls_twins(
    procs: Processes,
    db: Path,
    workdir: Path,
    daemons: list[Server],
    pki: Pki | None,
    notes: list[str],
    args,
) -> list[Server]:
    """For each worker count asked for, the daemon again on the same database serving TLS with
    the generated certificate: the twin of the plaintext daemon already started."""
    twins: list[Server] = []
    wanted = [w for w in args.tls_workers if w in {d.workers for d in daemons}]
    for w in sorted(set(args.tls_workers) - set(wanted)):
        notes.append(f"daemon w{w} {TLS} not measured: no daemon w{w} to compare it with")
    if not wanted or pki is None:
        return twins
    for w in wanted:
        log(f"  starting daemon w{w} {TLS}")
        twin = start_tls(procs, db, workdir, w, pki, args.serving_timeout)
        log(f"  daemon w{w} {TLS} SERVING (over TLS) after {twin.startup_s:.2f}s")
        twins.append(twin)
    return twins


def round_order(servers: list[Server], rnd: int) -> list[Server]:
    """The servers in the order of round `rnd`. A daemon and its twins stand together: the TLS
    twin right before it and the one with tokens and metrics right after it in even rounds,
    the group reversed in odd ones; so each twin runs next to its daemon in every round, and
    running first (after a zero-work server, or on a CPU that has just idled) favours neither."""
    order: list[Server] = []
    for _, group in itertools.groupby(
        servers, key=lambda s: s.name if s.kind == "zero" else f"w{s.workers}"
    ):
        members = list(group)
        order += reversed(members) if rnd % 2 else members
    return order


def compare_twin(summaries: dict[str, dict], twin: Server, daemons: list[Server]) -> dict:
    """The twin's req/s and CPU per call against its daemon's, overall and round by round
    (the two ran back to back in every round, so each round's ratio sees the same noise)."""
    on, off_name = summaries[twin.name], twin_of(twin, daemons).name
    off = summaries[off_name]
    rounds = [a / b for a, b in zip(on["req_s_rounds"], off["req_s_rounds"], strict=False) if b]
    return {
        "twin": twin.kind,  # "secured" or "tls"
        "compared_with": off_name,
        "vs_off": on["req_s"] / off["req_s"] if off["req_s"] else 0.0,
        "vs_off_rounds": rounds,
        "vs_off_round_median": statistics.median(rounds) if rounds else 0.0,
        "cpu_us_extra": on["cpu_us_per_call"] - off["cpu_us_per_call"],
    }


_HANDLED = "grpc_server_handled_total"


def scrape_handled(port: int) -> dict[str, float]:
    """grpc_server_handled_total for ResolveForAccount by grpc_code, and the auth failures by
    reason, from the /metrics endpoint (all workers' together with --workers N)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == _HANDLED and labels.get("grpc_method") == "ResolveForAccount":
                out[labels["grpc_code"]] = out.get(labels["grpc_code"], 0) + sample.value
            if sample.name == "modelconfig_auth_failures_total":
                key = f"auth_failures {labels.get('reason')}"
                out[key] = out.get(key, 0) + sample.value
    return out


def check_secured(twin: Server, request: bytes) -> dict:
    """That tokens and metrics were really on: a call without a token is refused with
    UNAUTHENTICATED, and the metrics endpoint counted every call made with one."""
    problems = []
    try:
        raw_call(twin.target, SINGLE_PATH, request)
        no_token = "answered"
        problems.append("a call without a token was answered: the tokens file is not in force")
    except grpc.RpcError as exc:
        no_token = exc.code().name
        if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
            problems.append(f"a call without a token failed with {no_token}, not UNAUTHENTICATED")
    # Workers add their calls to the shared metrics once a second: scrape until they show.
    deadline = time.monotonic() + 10
    while True:
        try:
            counted = scrape_handled(twin.metrics_port)
        except (OSError, ValueError) as exc:
            counted = {}
            problems.append(
                f"the metrics endpoint on port {twin.metrics_port} did not answer: {exc}"
            )
            break
        settled = counted.get("OK", 0) == twin.resolved_ok and counted.get("Unauthenticated")
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    ok_calls = counted.get("OK", 0)
    if ok_calls != twin.resolved_ok:
        problems.append(
            f'{_HANDLED}{{grpc_method="ResolveForAccount",grpc_code="OK"}} is {ok_calls:.0f}, '
            f"but {twin.resolved_ok} calls succeeded"
        )
    if counted and counted.get("Unauthenticated", 0) < 1:
        problems.append("the refused call is not counted as Unauthenticated")
    return {
        "no_token": no_token,
        "calls_ok": twin.resolved_ok,
        "metrics_ok": int(ok_calls),
        "metrics": counted,
        "problems": problems,
        "ok": not problems,
    }


def check_tls(twin: Server, request: bytes, summary: dict) -> dict:
    """That TLS was really on: every h2load run to it negotiated h2 over TLS (h2load says which
    protocol and cipher), and a plaintext call is not answered."""
    problems = []
    negotiated = summary.get("tls", [])
    if not negotiated:
        problems.append("h2load reported no TLS session")
    try:
        raw_call(twin.target, SINGLE_PATH, request, timeout=5)
        plaintext = "answered"
        problems.append("a plaintext call was answered: the daemon does not serve TLS")
    except grpc.RpcError as exc:
        plaintext = f"refused ({exc.code().name})"
    return {
        "negotiated": negotiated,
        "plaintext": plaintext,
        "problems": problems,
        "ok": not problems,
    }


def writes_under_load(daemon: Server, body: Path, request: bytes, workdir: Path, args) -> dict:
    """h2load resolve load on the daemon while a Python client times SetModel calls."""
    writer = f"bench-writer-w{daemon.workers}"
    idle = timed_writes(daemon.target, writer, args.writes, 0.05, lambda: False)
    length = len(raw_call(daemon.target, SINGLE_PATH, request))
    load_out: dict = {}
    running = threading.Event()
    running.set()

    def load() -> None:
        try:
            # Sizes may grow a byte as the writes bump the revision: check DATA >= n x frame.
            load_out.update(
                h2load(
                    daemon,
                    SINGLE_PATH,
                    body,
                    args.requests,
                    length,
                    workdir / "writes.tsv",
                    args,
                    exact=False,
                )
            )
        finally:
            running.clear()

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    calls = timed_writes(daemon.target, writer, args.writes, 0.3, running.is_set)
    thread.join(120 + args.requests / 200)
    load_out.pop("latencies_ms", None)
    return {
        "calls": calls,
        "max_s": max(c["s"] for c in calls),
        "idle_s": [c["s"] for c in idle],
        "during_load": sum(1 for c in calls if c["during_load"]),
        "errors": [c["error"] for c in calls + idle if c["error"]],
        "load_ok": load_out.get("ok", False),
        "load_req_s": load_out.get("req_s", 0.0),
        "load_problems": load_out.get("problems", []),
    }


# -- report ------------------------------------------------------------------------------------


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def secured_section(results: dict) -> list[str]:
    """The daemon with a tokens file and metrics on against the same daemon with both off."""
    rows = [
        (size["accounts"], name, s)
        for size in results["sizes"]
        for name, s in size.get("servers", {}).items()
        if s.get("twin") == "secured"
    ]
    if not rows:
        return []
    lines = [
        "",
        f"## Tokens and metrics on / off (issue 7: >= {TARGETS['secured_ratio']:.2f})",
        "",
        "The same daemon on the same database, once with neither and once with a tokens file "
        "(h2load sends a reader's `authorization: Bearer` token) and Prometheus metrics on a "
        "port of its own; the two run back to back in every round, alternating which goes "
        "first. Then, since one run's req/s swings by 10-20% on a shared VM, far more than "
        "what is measured here, the two run many short runs back to back (pairs, alternating "
        "which goes first): the target is judged on the median of the pairs' ratios (quartiles "
        "beside it). For the pairs, every process of the daemon and of its twin is pinned to "
        "CPU 0 and h2load to CPU 1 (`taskset`; with 2 workers both share CPU 0), so the server "
        "is the bottleneck and the ratio shows its cost per call, not the scheduler's "
        "placement nor h2load's share of the same cores. After all runs, a call without a "
        "token must be refused and "
        '`grpc_server_handled_total{grpc_method="ResolveForAccount",grpc_code="OK"}` must '
        "equal the calls that succeeded.",
        "",
        "| accounts | on / off | on / off, median of pairs (quartiles) | off req/s | on req/s "
        "| rounds: on / off (median round) | off CPU µs/call | on CPU µs/call | + µs/call "
        "| p50 ms off / on | metrics counted | no token |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for accounts, name, s in rows:
        off = next(x for x in results["sizes"] if x["accounts"] == accounts)["servers"][
            s["compared_with"]
        ]
        checks = s.get("checks", {})
        counted = f"{checks.get('metrics_ok', 0):,} / {checks.get('calls_ok', 0):,}"
        lines.append(
            f"| {accounts:,} | {name} / {s['compared_with']} | "
            f"**{s['vs_off_pairs_median']:.3f}** ({s['vs_off_pairs_q1']:.2f}-"
            f"{s['vs_off_pairs_q3']:.2f}, {len(s['vs_off_pairs'])} pairs) | "
            f"{off['req_s']:.0f} | {s['req_s']:.0f} | "
            f"{s['vs_off']:.2f} ({s['vs_off_round_median']:.2f}) | "
            f"{off['cpu_us_per_call']:.0f} | {s['cpu_us_per_call']:.0f} | "
            f"{s['cpu_us_extra']:+.0f} | {off['p50_ms']:.2f} / {s['p50_ms']:.2f} | "
            f"{counted}{'' if checks.get('ok') else ' **CHECK FAILED**'} | "
            f"{checks.get('no_token', '-')} |"
        )
    return lines


def tls_section(results: dict) -> list[str]:
    """The daemon serving TLS against the same daemon in plaintext: what TLS costs, no target."""
    rows = [
        (size["accounts"], name, s)
        for size in results["sizes"]
        for name, s in size.get("servers", {}).items()
        if s.get("twin") == "tls"
    ]
    if not rows:
        return []
    lines = [
        "",
        "## TLS / plaintext (what TLS costs; no target)",
        "",
        "The same daemon on the same database (no tokens, no metrics), once in plaintext and "
        "once serving TLS (`MODELCONFIG_TLS_CERT`, `MODELCONFIG_TLS_KEY`) with an EC P-256 "
        "server certificate for 127.0.0.1 that a throwaway CA, generated at the start of the "
        "run, issued; h2load drives it over `https://` (h2 by ALPN), with the same checks of "
        "every call. The two run back to back in every round, alternating which goes first. "
        "The cost is grpcio's and BoringSSL's (record encryption of every frame), not the "
        "daemon's; h2load's 8 connections each make one handshake per run.",
        "",
        "| accounts | TLS / plaintext | plaintext req/s | TLS req/s "
        "| TLS / plaintext (median round) | plaintext CPU µs/call | TLS CPU µs/call "
        "| + µs/call | p50 ms plaintext / TLS | negotiated | plaintext call |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for accounts, name, s in rows:
        off = next(x for x in results["sizes"] if x["accounts"] == accounts)["servers"][
            s["compared_with"]
        ]
        checks = s.get("checks", {})
        negotiated = "; ".join(checks.get("negotiated", [])) or "-"
        lines.append(
            f"| {accounts:,} | {name} / {s['compared_with']} | {off['req_s']:.0f} | "
            f"{s['req_s']:.0f} | **{s['vs_off']:.2f}** ({s['vs_off_round_median']:.2f}) | "
            f"{off['cpu_us_per_call']:.0f} | {s['cpu_us_per_call']:.0f} | "
            f"**{s['cpu_us_extra']:+.0f}** | {off['p50_ms']:.2f} / {s['p50_ms']:.2f} | "
            f"{negotiated}{'' if checks.get('ok') else ' **CHECK FAILED**'} | "
            f"{checks.get('plaintext', '-')} |"
        )
    return lines


def report(results: dict) -> str:
    m, cfg = results["machine"], results["config"]
    sizes = results["sizes"]
    lines = [
        "# modelconfig benchmark",
        "",
        f"Run {results['started']} by `make bench` ({results['runtime_s']:.0f} s), daemon at "
        f"commit {m['daemon_revision']}.",
        "",
        f"**Machine:** {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Linux "
        f"{m['kernel']}; Python {m['python']}, grpcio {m['grpcio']}, peewee {m['peewee']}; "
        f"{m['h2load']}. Before the run the CPUs were {m['cpu_busy_before_pct']:.0f}% busy with "
        f"other work (load average {' '.join(m['loadavg_start'])} at start, "
        f"{' '.join(m.get('loadavg_end', []))} at the end); the hypervisor gave "
        f"{m.get('steal_pct', 0):.1f}% of CPU time to other guests during the run (steal), and "
        f"processes other than the benchmark's kept {m.get('other_work_pct', 0):.0f}% of the "
        "CPUs busy.",
        "",
        f"**Load:** `h2load -n {cfg['requests']} -c {cfg['connections']} -m {cfg['streams']} "
        f"-t 1` per run, {cfg['rounds']} rounds, servers driven alternately (after a "
        f"{cfg['warmup']}-request warm-up each); req/s is the median round, p50/p99 over every "
        "call of every round. Every call checked: all 2xx, 0 failed, DATA bytes = requests x "
        "(5 + response size). Each server runs in its own process session. "
        f"Zero-work servers: a threaded grpcio server ({cfg['zero_threads']} threads, as the "
        "daemon's RPC pool) and a grpc.aio server answering the daemon's response bytes through "
        "identity serializers; the limit is the faster of the two in the same run. Server CPU "
        "µs/call: the user + system CPU time of the server's processes (/proc/PID/stat) over "
        "the counted rounds, divided by the calls (less sensitive to other load than req/s).",
        "",
    ]
    for size in sizes:
        if "response_bytes" in size:
            lines.append(
                f"At {size['accounts']:,} accounts the request is {size['request_bytes']} bytes "
                f"and the response {size['response_bytes']} bytes (batch of "
                f"{cfg['batch_size']}: {size['batch_response_bytes']} bytes)."
            )
    lines += ["", "## ResolveForAccount", ""]
    lines += [
        "| accounts | server | req/s (rounds) | vs limit | p50 ms | p99 ms | server CPU µs/call "
        "| SERVING after s | RSS MB (Pss) | processes | all calls ok |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in sizes:
        for name, s in size.get("servers", {}).items():
            rounds = ", ".join(f"{r:.0f}" for r in s["req_s_rounds"])
            ratio = f"{s['vs_limit']:.2f}" if "vs_limit" in s else "-"
            lines.append(
                f"| {size['accounts']:,} | {name} | **{s['req_s']:.0f}** ({rounds}) | {ratio} | "
                f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['cpu_us_per_call']:.0f} | "
                f"{s['startup_s']:.2f} | "
                f"{s.get('rss_mb', 0):.0f} ({s.get('pss_mb', 0):.0f}) | "
                f"{s.get('processes', 0)} | {'yes' if s['ok'] else 'NO'} ({s['calls']:,}) |"
            )
    lines += secured_section(results)
    lines += tls_section(results)
    lines += live_section(results)
    lines += ["", "## ResolveForAccounts (batch)", ""]
    lines += [
        "| accounts | server | batch req/s | accounts/s | vs single-call req/s | p50 ms | p99 ms "
        "| all calls ok |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for size in sizes:
        for name, b in size.get("batch", {}).items():
            lines.append(
                f"| {size['accounts']:,} | {name} | {b['req_s']:.0f} | **{b['accounts_s']:.0f}** "
                f"| {b['x_single']:.1f}x | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | "
                f"{'yes' if b['ok'] else 'NO'} ({b['calls']:,}) |"
            )
    lines += ["", "## SetModel while resolve load runs", ""]
    lines += [
        "| accounts | server | SetModel ms under load | max ms | finished during load "
        "| idle SetModel ms (no load) | errors | load req/s | load calls ok |",
        "|---:|---|---|---:|---:|---|---:|---:|---|",
    ]
    for size in sizes:
        for name, w in size.get("writes", {}).items():
            each = ", ".join(f"{c['s'] * 1000:.0f}" for c in w["calls"])
            idle = ", ".join(f"{v * 1000:.0f}" for v in w["idle_s"])
            lines.append(
                f"| {size['accounts']:,} | {name} | {each} | **{w['max_s'] * 1000:.0f}** | "
                f"{w['during_load']}/{len(w['calls'])} | {idle} | {len(w['errors'])} | "
                f"{w['load_req_s']:.0f} | {'yes' if w['load_ok'] else 'NO'} |"
            )
    lines += ["", "## Data preparation", ""]
    lines += [
        "| accounts | loaded by | wall s | rows/s | database MB | same file again s "
        "| revert s | revert of the revert s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for data in results["data"]:
        if "load_s" in data:
            undo = [data.get(k) for k in ("reimport_s", "revert_s", "redo_s")]
            lines.append(
                f"| {data['accounts']:,} | {data['loader']} | {data['load_s']:.1f} | "
                f"{data['rows'] / data['load_s']:.0f} | {data['db_mb']:.0f} | "
                + " | ".join("-" if v is None else f"{v:.1f}" for v in undo)
                + " |"
            )
    lines += ["", "## Targets", "", "| target | threshold | figure | |", "|---|---:|---:|---|"]
    for row in results["targets"]:
        lines.append(
            f"| {row['what']} | {row['threshold']} | {row['figure']} | {_mark(row['ok'])} |"
        )
    notes = [n for d in results["data"] for n in d["notes"]]
    notes += [n for s in sizes for n in s.get("notes", [])]
    notes += results.get("notes", [])
    other = max(m["cpu_busy_before_pct"], m.get("other_work_pct", 0))
    if other > 10:
        notes.insert(
            0,
            f"**Other work used up to {other:.0f}% of the CPUs around this run**: figures are "
            "low and noisy; ratios suffer less, as the servers alternate, but rerun on a quiet "
            "machine before quoting them.",
        )
    for size in sizes:
        for name, s in size.get("servers", {}).items():
            limits = [
                max(pair)
                for pair in zip(
                    size["servers"].get("zero threaded", {}).get("req_s_rounds", []),
                    size["servers"].get("zero aio", {}).get("req_s_rounds", []),
                    strict=False,
                )
            ]
            if s.get("vs_limit") is not None and limits:
                paired = [r / lim for r, lim in zip(s["req_s_rounds"], limits, strict=False)]
                notes.append(
                    f"{name} at {size['accounts']:,}: daemon / limit round by round "
                    f"(each round's faster zero-work server): "
                    f"{', '.join(f'{x:.2f}' for x in paired)}."
                )
            if s.get("processes", 1) > 1:
                notes.append(
                    f"{name} at {size['accounts']:,}: CPU seconds per process over the "
                    f"single-call rounds: {s['cpu_by_process_s']} (h2load's {cfg['connections']} "
                    "connections are spread over the workers by the kernel, not evenly by "
                    "call); RSS sums every process, so pages shared after fork count once "
                    "per process: Pss splits them."
                )
            if "vs_off_rounds" in s:
                which = "TLS / plaintext" if s.get("twin") == "tls" else "on / off"
                notes.append(
                    f"{name} at {size['accounts']:,}: {which} ({s['compared_with']}) round by "
                    f"round: {', '.join(f'{x:.2f}' for x in s['vs_off_rounds'])}."
                )
            if "vs_off_pairs" in s:
                notes.append(
                    f"{name} at {size['accounts']:,}: on / off ({s['compared_with']}) pair by "
                    f"pair: {', '.join(f'{x:.2f}' for x in s['vs_off_pairs'])}."
                )
            if s.get("checks", {}).get("problems"):
                what = "TLS" if s.get("twin") == "tls" else "tokens and metrics"
                notes.append(
                    f"{name} at {size['accounts']:,}: **{what} NOT shown to be on, "
                    f"the comparison does not hold**: {'; '.join(s['checks']['problems'])}"
                )
            if s["problems"]:
                notes.append(f"{name} at {size['accounts']:,}: FAILED CALLS: {s['problems'][:3]}")
        for name, b in size.get("batch", {}).items():
            if b["problems"]:
                notes.append(
                    f"{name} batch at {size['accounts']:,}: FAILED CALLS: {b['problems'][:3]}"
                )
    notes.append(
        "h2load sends one body, so every single call resolves the same account "
        f"({account(BENCH_ACCOUNT)}); the batch call resolves {cfg['batch_size']} accounts "
        "spread over the whole range."
    )
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "![throughput and RSS against accounts](throughput.png)", ""]
    return "\n".join(lines)


def targets(results: dict) -> list[dict]:
    by_size = {s["accounts"]: s for s in results["sizes"]}
    small, large = min(by_size, default=0), max(by_size, default=0)
    rows: list[dict] = []

    def add(what: str, threshold: str, value: float | None, fmt: str, ok: bool | None) -> None:
        figure = "not measured" if value is None else format(value, fmt)
        rows.append(
            {
                "what": what,
                "threshold": threshold,
                "figure": figure,
                "ok": None if value is None else ok,
            }
        )

    def server(size: int, name: str) -> dict | None:
        return by_size.get(size, {}).get("servers", {}).get(name)

    for size in sorted(by_size):
        for name in ("daemon w1", "daemon w2"):
            s = server(size, name)
            if s:
                add(
                    f"{name} / zero-work limit at {size:,} accounts",
                    ">= 0.90",
                    s["vs_limit"],
                    ".2f",
                    s["vs_limit"] >= TARGETS["limit_ratio"],
                )
    for size in sorted(by_size):
        for name, s in by_size[size].get("servers", {}).items():
            if s.get("twin") == "secured":
                add(
                    f"{name} / {s['compared_with']} (tokens and metrics off) at {size:,}, "
                    f"median of {len(s['vs_off_pairs'])} pairs",
                    f">= {TARGETS['secured_ratio']:.2f}",
                    s["vs_off_pairs_median"],
                    ".3f",
                    s["vs_off_pairs_median"] >= TARGETS["secured_ratio"]
                    and s.get("checks", {}).get("ok"),
                )
    if small != large:
        for name in ("daemon w1", "daemon w2"):
            a, b = server(small, name), server(large, name)
            if a and b:
                ratio = b["req_s"] / a["req_s"] if a["req_s"] else 0.0
                add(
                    f"{name} throughput {large:,} / {small:,} accounts",
                    ">= 0.90",
                    ratio,
                    ".2f",
                    ratio >= TARGETS["size_ratio"],
                )
    for name in ("daemon w1", "daemon w2"):
        s = server(large, name)
        if s:
            add(
                f"{name} RSS at {large:,} accounts (MB, all processes)",
                "<= 400",
                s["rss_mb"],
                ".0f",
                s["rss_mb"] <= TARGETS["rss_mb"],
            )
            add(
                f"{name} start to SERVING at {large:,} accounts (s)",
                "<= 20",
                s["startup_s"],
                ".1f",
                s["startup_s"] <= TARGETS["serving_s"],
            )
    for size in sorted(by_size):
        for name, b in by_size[size].get("batch", {}).items():
            add(
                f"{name} batch accounts/s / single req/s at {size:,}",
                ">= 10x",
                b["x_single"],
                ".1f",
                b["x_single"] >= TARGETS["batch_x"],
            )
    worst = [w["max_s"] for s in by_size.values() for w in s.get("writes", {}).values()]
    if worst:
        add(
            "slowest SetModel under resolve load (s)",
            "< 1",
            max(worst),
            ".3f",
            max(worst) < TARGETS["setmodel_s"],
        )
    for data in results["data"]:
        if data["accounts"] >= 1_000_000 and "load_s" in data:
            add(
                f"import {data['rows']:,} rows ({data['loader']}) (s)",
                "about 60",
                data["load_s"],
                ".0f",
                data["load_s"] <= 1.5 * TARGETS["import_s"]
                and data["loader"] == "modelconfigctl import",
            )
        if data["accounts"] >= 1_000_000 and "revert_s" in data:
            add(
                f"revert the import of {data['rows']:,} rows (s)",
                "about 60",
                data["revert_s"],
                ".0f",
                data["revert_s"] <= 1.5 * TARGETS["import_s"],
            )
    for size in sorted(by_size):
        r = by_size[size].get("resolver")
        if not r:
            continue
        for mode in ("all", "on_demand"):
            for q in ("p50", "p99"):
                ratio = r[mode][f"x_rpc_{q}"]
                add(
                    f"resolve() ({mode}) / ResolveForAccount RPC, {q}, at {size:,}",
                    f">= {TARGETS['resolver_x']:.0f}x",
                    ratio,
                    ".0f",
                    ratio >= TARGETS["resolver_x"] and r[mode]["same_answers"],
                )
        visible = r["all"]["visible_ms"]
        add(
            f"a write visible in the resolver, p50 (ms), at {size:,}",
            f"<= {TARGETS['visible_p50_ms']:.0f}",
            visible["p50_ms"],
            ".1f",
            visible["p50_ms"] <= TARGETS["visible_p50_ms"],
        )
        add(
            f"a write visible in the resolver, worst (ms), at {size:,}",
            f"<= {TARGETS['visible_max_ms']:.0f}",
            visible["max_ms"],
            ".1f",
            visible["max_ms"] <= TARGETS["visible_max_ms"],
        )
    postgres = results.get("replicas", {}).get("postgres")
    if postgres:
        for key, label, limit in (
            ("p50_ms", "p50", TARGETS["visible_p50_ms"]),
            ("max_ms", "worst", TARGETS["visible_max_ms"]),
        ):
            add(
                f"a write on one daemon served by another, PostgreSQL, {label} (ms)",
                f"<= {limit:.0f}",
                postgres[key],
                ".1f",
                postgres[key] <= limit,
            )
    return rows


def live_section(results: dict) -> list[str]:
    """In-process resolution against the RPC, and how soon writes reach resolvers and replicas."""
    sized = [size for size in results["sizes"] if size.get("resolver")]
    replicas = results.get("replicas", {})
    if not sized and not replicas:
        return []
    lines = [
        "",
        "## Resolving in-process (LocalResolver) and propagation",
        "",
        "`ResolveForAccount` through the Python client (one call after another, on daemon w1) "
        "against `modelconfig.LocalResolver.resolve()` in the same process, per call "
        "(`time.perf_counter_ns` around each call, so its own cost is included), over a sample "
        "of up to 1,000 accounts with overrides, cycled; the first pass over the sample (cache "
        "misses; on demand, one ResolveForAccounts call each) is reported apart. Memory: the "
        "growth of the benchmark process's RSS while the resolver is loaded. Answers are "
        "compared with the RPC's for 50 accounts. Visible: from a SetModel's acknowledgment "
        "until `wait_for_revision` returns in the resolver.",
        "",
        "| accounts | path | p50 µs | p99 µs | vs RPC p50 / p99 | first pass p50 / p99 µs "
        "| load s | RSS MB | accounts held | same answers | visible p50 / worst ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for size in sized:
        r = size["resolver"]
        rpc = r["rpc"]
        lines.append(
            f"| {size['accounts']:,} | ResolveForAccount RPC | {rpc['p50_us']:.0f} | "
            f"{rpc['p99_us']:.0f} | 1x | - | - | - | - | - | - |"
        )
        for mode in ("all", "on_demand"):
            m = r[mode]
            visible = m.get("visible_ms")
            lines.append(
                f"| {size['accounts']:,} | resolve(), {mode.replace('_', ' ')} | "
                f"{m['p50_us']:.2f} | {m['p99_us']:.2f} | "
                f"**{m['x_rpc_p50']:.0f}x** / **{m['x_rpc_p99']:.0f}x** | "
                f"{m['first_call']['p50_us']:.1f} / {m['first_call']['p99_us']:.0f} | "
                f"{m['load_s']:.2f} | {m['rss_mb']:.0f} | {m['accounts_held']:,} | "
                f"{'yes' if m['same_answers'] else '**NO**'} | "
                + (f"{visible['p50_ms']:.1f} / {visible['max_ms']:.1f} |" if visible else "- |")
            )
    if replicas:
        lines += [
            "",
            "A write acknowledged by one daemon, until another daemon on the same database "
            "delivers it on its change feed (WatchChanges): on SQLite the other daemon learns "
            "by its revision poll (every 0.05 s by default on SQLite: that is the bound), on "
            "PostgreSQL by LISTEN/NOTIFY on commit (the poll, every 0.5 s, stays as a safety "
            "net).",
            "",
            "| database | writes | p50 ms | worst ms |",
            "|---|---:|---:|---:|",
        ]
        for engine in ("sqlite", "postgres"):
            lag = replicas.get(engine)
            if lag:
                lines.append(
                    f"| {engine} | {lag['writes']} | {lag['p50_ms']:.1f} | {lag['max_ms']:.1f} |"
                )
        if replicas.get("postgres_note"):
            lines.append(f"\nPostgreSQL {replicas['postgres_note']}")
    return lines


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results["sizes"], key=lambda s: s["accounts"])
    xs = [s["accounts"] for s in sizes]
    nan = float("nan")

    def figures(name: str, key: str) -> list[float]:
        return [s["servers"].get(name, {}).get(key) or nan for s in sizes]

    def label_points(axis, ys: list[float], color: str, dy: int) -> None:
        for x, y in zip(xs, ys, strict=True):
            if y == y:  # not nan
                axis.annotate(
                    f"{y:.0f}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(7, dy),
                    fontsize=8,
                    color=color,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
                )

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    limit = [s.get("limit_req_s") or nan for s in sizes]
    left.plot(xs, limit, "k--", marker="s", label="zero-work limit (faster of threaded, aio)")
    label_points(left, limit, "black", 6)
    left.plot(xs, [0.9 * v for v in limit], ":", color="grey", label="0.90 x limit (target)")
    for name, marker in (("zero threaded", "^"), ("zero aio", "v")):
        left.plot(
            xs,
            figures(name, "req_s"),
            marker=marker,
            linestyle="none",
            color="grey",
            alpha=0.6,
            label=f"{name} server",
        )
    for name, color, dy in (("daemon w1", "tab:blue", -12), ("daemon w2", "tab:orange", 6)):
        ys = figures(name, "req_s")
        if any(y == y for y in ys):
            left.plot(xs, ys, marker="o", color=color, label=f"{name} ResolveForAccount")
            label_points(left, ys, color, dy)
        ys = figures(f"{name} {SECURED}", "req_s")
        if any(y == y for y in ys):
            left.plot(
                xs,
                ys,
                marker="o",
                markerfacecolor="none",
                linestyle="--",
                color=color,
                label=f"{name} with tokens and metrics on",
            )
        ys = figures(f"{name} {TLS}", "req_s")
        if any(y == y for y in ys):
            left.plot(
                xs,
                ys,
                marker="D",
                markerfacecolor="none",
                linestyle=":",
                color=color,
                label=f"{name} serving TLS",
            )
    margin = (xs[0] / 4, xs[-1] * 4)
    left.set(
        xscale="log",
        xlim=margin,
        xlabel="accounts with overrides",
        ylabel="requests/s",
        title="ResolveForAccount throughput (h2load -c 8 -m 8)",
    )
    tops = [
        y
        for s in sizes
        for y in (s.get("limit_req_s") or 0, *(v.get("req_s", 0) for v in s["servers"].values()))
    ]
    left.set_ylim(bottom=0, top=max(tops, default=1) * 1.12)
    left.legend(fontsize=8, loc="lower left")
    left.grid(alpha=0.3)

    right.axhline(TARGETS["rss_mb"], color="red", linestyle=":", label="400 MB target")
    for name, color in (("daemon w1", "tab:blue"), ("daemon w2", "tab:orange")):
        ys = figures(name, "rss_mb")
        if any(y == y for y in ys):
            right.plot(xs, ys, marker="o", color=color, label=f"{name} RSS (all processes)")
            label_points(right, ys, color, 4)
            if name != "daemon w1":
                pss = figures(name, "pss_mb")
                right.plot(
                    xs,
                    pss,
                    marker="x",
                    linestyle="--",
                    color=color,
                    label=f"{name} Pss (shared pages split)",
                )
    right.set(
        xscale="log",
        xlim=margin,
        xlabel="accounts with overrides",
        ylabel="MB",
        title="daemon memory after load",
    )
    right.set_ylim(bottom=0, top=max([450, *(y for y in figures("daemon w2", "rss_mb") if y == y)]))
    right.legend(fontsize=8, loc="upper left")
    right.grid(alpha=0.3)
    m = results["machine"]
    figure.suptitle(
        f"modelconfig on {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
        f"Python {m['python']}, grpcio {m['grpcio']} ({results['started']})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- main --------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark modelconfigd against a zero-work "
        "grpcio server (see bench/README.md)."
    )
    parser.add_argument(
        "--sizes",
        type=_ints,
        default=[1_000, 1_000_000],
        help="accounts with overrides, comma separated (default 1000,1000000)",
    )
    parser.add_argument(
        "--workers",
        type=_ints,
        default=[1, 2],
        help="daemon worker counts to measure (default 1,2)",
    )
    parser.add_argument(
        "--tokens-metrics-workers",
        type=_ints,
        default=[1, 2],
        help="of those, the worker counts also measured with a tokens file and metrics on, "
        "against the same daemon with both off (default 1,2; '' for none)",
    )
    parser.add_argument(
        "--tls-workers",
        type=_ints,
        default=[1],
        help="of those, the worker counts also measured serving TLS with a generated "
        "certificate, against the same daemon in plaintext (default 1; '' for none)",
    )
    # Five shorter rounds rather than three long ones: the same 60,000 calls per server, and a
    # median that one disturbed round (a noisy neighbour on a shared host) does not move.
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=12_000, help="per single-call run")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument(
        "--pairs",
        type=int,
        default=30,
        help="short runs of each tokens+metrics twin against its daemon, back to back",
    )
    parser.add_argument("--pair-requests", type=int, default=4_000, help="per paired run")
    parser.add_argument(
        "--resolver-calls",
        type=int,
        default=200_000,
        help="resolve() calls timed per LocalResolver mode (0: no in-process section)",
    )
    parser.add_argument("--resolver-rpc-calls", type=int, default=3_000)
    parser.add_argument(
        "--lag-writes", type=int, default=40, help="writes timed to another daemon (0: none)"
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batch-requests", type=int, default=2_000, help="per batch run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams a connection")
    parser.add_argument(
        "--zero-threads",
        type=int,
        default=None,
        help="threaded zero-work server's pool (default: the daemon's RPC threads setting)",
    )
    parser.add_argument("--writes", type=int, default=5, help="SetModel calls timed under load")
    parser.add_argument("--loader", choices=("auto", "ctl", "rpc", "setmodel"), default="auto")
    parser.add_argument("--import-timeout", type=float, default=300.0)
    parser.add_argument("--serving-timeout", type=float, default=90.0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.zero_threads is None:
        # The same pool size as the daemon under test (its default, or MODELCONFIG_THREADS).
        from modelconfigd import config

        args.zero_threads = config.parse([]).threads
    if args.rounds < 1 or args.requests < 1 or not 1 <= args.batch_size <= 1000:
        parser.error("rounds and requests must be positive, batch size 1..1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not shutil.which("h2load"):
        print("h2load not found: apt-get install -y nghttp2-client", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C, so every `finally` below stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    times_at_start, own_at_start = cpu_times(), os.times()
    workdir = Path(tempfile.mkdtemp(prefix="modelconfig-bench-"))
    procs = Processes()
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": [],
        "sizes": [],
        "notes": [],
    }
    log(f"machine: {results['machine']}")
    log(f"work directory {workdir}")
    failed = False
    try:
        pki = make_pki(workdir / "tls") if args.tls_workers else None
        workers_ok = daemon_has_workers_option()
        if not workers_ok and any(w > 1 for w in args.workers):
            results["notes"].append(
                "modelconfigd has no --workers option yet: only workers=1 measured"
            )
        for accounts in sorted(args.sizes):
            try:
                data = prepare(procs, workdir, accounts, args)
            except Exception as exc:
                failed = True
                note = f"{accounts:,} accounts NOT MEASURED: preparing the database failed: {exc}"
                log(note)
                results["notes"].append(note)
                results["data"].append({"accounts": accounts, "notes": []})
                continue
            results["data"].append(data)
            try:
                results["sizes"].append(bench_size(procs, workdir, data, args, workers_ok, pki))
            except Exception as exc:
                failed = True
                note = f"{accounts:,} accounts: benchmark failed: {type(exc).__name__}: {exc}"
                log(note)
                results["notes"].append(note)
            for leftover in workdir.glob(Path(data["db"]).name + "*"):
                leftover.unlink()  # the database and its -wal, -shm files
        if args.lag_writes:
            try:
                results["replicas"] = replica_lags(procs, workdir, args)
            except Exception as exc:
                failed = True
                note = f"replica propagation: failed: {type(exc).__name__}: {exc}"
                log(note)
                results["notes"].append(note)
    finally:
        procs.stop_all()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["runtime_s"] = time.monotonic() - started
    results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results["machine"]["steal_pct"] = round(steal_pct(times_at_start), 1)
    results["machine"]["other_work_pct"] = round(other_work_pct(times_at_start, own_at_start), 1)
    results["targets"] = targets(results)
    for size in results["sizes"]:
        for s in size.get("servers", {}).values():
            failed |= not s["ok"] or not s.get("checks", {}).get("ok", True)
        for b in size.get("batch", {}).values():
            failed |= not b["ok"]
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = report(results)
    (args.out / "results.md").write_text(markdown)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    if results["sizes"]:
        chart(results, args.out / "throughput.png")
    print()
    print(markdown)
    log(f"wrote {args.out}/results.md, results.json, throughput.png in {results['runtime_s']:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
