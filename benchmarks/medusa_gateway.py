"""The gateway's overhead: a proxied ``GET /admin/customer-groups`` against Medusa directly.

Against a real Medusa 2.21.2 (the test harness starts one unless ``--base-url`` and
``--api-key`` name a running one), ``groupwire medusa gateway`` runs as its own process (the
real command, uvicorn, one shared keep-alive client). The same request is sent ``--requests``
times to Medusa directly and through the gateway, interleaved (so both see the same Medusa,
the same load and the same machine), one at a time over a keep-alive connection each; then
``--concurrency`` clients at once. Prints p50/p99 of each path and their ratios.

    uv run python benchmarks/medusa_gateway.py --requests 500
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.medusa.harness import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per path")
    parser.add_argument("--concurrency", type=int, default=8, help="clients in the second run")
    parser.add_argument("--groups", type=int, default=20, help="groups in the listed page")
    parser.add_argument("--base-url", help="a running Medusa's URL (else the harness starts one)")
    parser.add_argument("--api-key", help="its secret API key (used when no --jwt is given)")
    parser.add_argument(
        "--jwt",
        help="an admin user's token: Medusa checks a secret key with scrypt on every request "
        "(about 100 ms of CPU here), a JWT costs it next to nothing, so the gateway's share shows",
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.base_url:
            base_url, api_key, jwt = args.base_url, args.api_key, args.jwt
        else:
            from tests.medusa.harness import running_medusa

            print("starting Medusa (the test harness)...", flush=True)
            medusa = stack.enter_context(running_medusa(tmp / "medusa"))
            base_url, api_key, jwt = medusa.base_url, medusa.api_key, medusa.jwt
        auth: httpx.Auth = BearerAuth(jwt) if jwt else httpx.BasicAuth(api_key, "")
        print(f"authenticating with {'a JWT' if jwt else 'a secret API key'}")
        with httpx.Client(base_url=base_url, auth=auth) as setup:
            for index in range(args.groups):
                setup.post(
                    "/admin/customer-groups", json={"name": f"Bench {time.time_ns()} {index}"}
                ).raise_for_status()
        gateway_url = stack.enter_context(gateway_process(base_url, tmp))
        path, params = "/admin/customer-groups", {"limit": str(args.groups)}

        direct = httpx.Client(base_url=base_url, auth=auth)
        proxied = httpx.Client(base_url=gateway_url, auth=auth)
        stack.callback(direct.close)
        stack.callback(proxied.close)
        for _ in range(50):  # warm up both paths (connections, Medusa's caches)
            same_answer(direct.get(path, params=params), proxied.get(path, params=params))
        times: dict[str, list[float]] = {"direct": [], "gateway": []}
        for _ in range(args.requests):
            for name, client in (("direct", direct), ("gateway", proxied)):
                started = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                times[name].append(time.perf_counter() - started)
        size = len(direct.get(path, params=params).content)
        print(f"GET {path}?limit={args.groups} ({size:,} bytes), {args.requests} requests each")
        report(times)

        concurrent = {
            name: run_concurrently(url, auth, path, params, args.requests, args.concurrency)
            for name, url in (("direct", base_url), ("gateway", gateway_url))
        }
        print(f"\n{args.concurrency} concurrent clients, {args.requests} requests each path")
        report({name: latencies for name, (latencies, _) in concurrent.items()})
        rates = {name: rate for name, (_, rate) in concurrent.items()}
        print(
            f"throughput: direct {rates['direct']:.0f}/s, gateway {rates['gateway']:.0f}/s "
            f"(gateway/direct {rates['gateway'] / rates['direct']:.2f}x)"
        )


def same_answer(direct: httpx.Response, proxied: httpx.Response) -> None:
    if direct.status_code != 200 or proxied.status_code != 200:
        raise SystemExit(f"unexpected answers: {direct.status_code} / {proxied.status_code}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(times: dict[str, list[float]]) -> None:
    figures = {
        name: (percentile(values, 0.5), percentile(values, 0.99), statistics.fmean(values))
        for name, values in times.items()
    }
    for name, (p50, p99, mean) in figures.items():
        print(
            f"  {name:8} p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"
            f"  mean {mean * 1000:7.2f} ms"
        )
    (d50, d99, _), (g50, g99, _) = figures["direct"], figures["gateway"]
    print(
        f"  gateway/direct: p50 {g50 / d50:.2f}x (+{(g50 - d50) * 1000:.2f} ms), "
        f"p99 {g99 / d99:.2f}x (+{(g99 - d99) * 1000:.2f} ms)"
    )


def run_concurrently(
    url: str,
    auth: httpx.Auth,
    path: str,
    params: dict[str, str],
    requests: int,
    concurrency: int,
) -> tuple[list[float], float]:
    share = max(1, requests // concurrency)

    def client_run(_: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, auth=auth) as client:
            for _ in range(share):
                started = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client_run, range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies = [value for result in results for value in result]
    return latencies, len(latencies) / elapsed


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class gateway_process:
    """``groupwire medusa gateway`` as a child process, stopped with SIGTERM."""

    def __init__(self, upstream: str, tmp: Path) -> None:
        self.upstream = upstream
        self.tmp = tmp
        self.port = free_port()

    def __enter__(self) -> str:
        command = [
            *(sys.executable, "-m", "groupwire.cli"),
            *("--db", f"sqlite:///{self.tmp / 'groupwire.db'}"),
            *("medusa", "gateway", "--upstream", self.upstream, "--port", str(self.port)),
            *("--log-level", "warning"),
        ]
        self.log = (self.tmp / "gateway.log").open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
        )
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", timeout=2)
                return url
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        "the gateway did not start: " + (self.tmp / "gateway.log").read_text()
                    ) from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


if __name__ == "__main__":
    main()
