"""Latency from a centre thread publishing a state to WebSocket clients receiving it (target: p99 < 50 ms).

A full-size state (5,479 bus voltages, 5,483 branch loadings, as the demo grid) is published from a
worker thread, as the centre does, through the real app (hub, uvicorn, WebSocket) to ``--clients``
clients in this process; latency is measured per message and client on one clock (perf_counter_ns).

    .venv/bin/python benchmarks/bench_api_stream.py [--messages 300] [--rate 20] [--clients 2]
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import uvicorn
from websockets.sync.client import connect

from gridmesh.api import Hub, StateView, create_app
from gridmesh.api.ports import Centre, Listener, SiteSummary
from gridmesh.security.tokens import Role, TokenStore

N_BUSES = 5_479
N_BRANCHES = 5_483


def state(i: int, rng: np.random.Generator) -> StateView:
    """A demo-sized state; ``substation_p_kw`` carries the message number."""
    return StateView(
        time=datetime.now(UTC),
        v_pu=[round(float(v), 4) for v in rng.normal(1.0, 0.02, N_BUSES)],
        loading_pct=[round(float(v), 1) for v in rng.uniform(0, 110, N_BRANCHES)],
        substation_p_kw=float(i),
        substation_q_kvar=0.0,
        sites=[
            SiteSummary(site=f"mg-{k}", import_kw=10.0, soc_pct=50.0, renewable_share_pct=40.0, islanded=False)
            for k in range(4)
        ],
    )


def receive(url: str, token: str, count: int, arrived: dict[int, int], ready: threading.Event) -> None:
    with connect(url, max_size=None) as ws:
        ws.send(json.dumps({"token": token}))
        ws.recv()  # hello
        ready.set()
        for _ in range(count):
            text = ws.recv()
            t = time.perf_counter_ns()
            arrived[int(json.loads(text)["data"]["substation_p_kw"])] = t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="states per second")
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()

    hub = Hub()
    listeners: list[Listener] = []

    def subscribe(listener: Listener) -> Callable[[], None]:
        listeners.append(listener)
        return lambda: None

    centre = cast(Centre, SimpleNamespace(subscribe=subscribe))  # only the push path is exercised
    with tempfile.TemporaryDirectory() as folder:
        store = TokenStore(Path(folder) / "tokens.json")
        token = store.create(Role.VIEWER, "bench")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        server = uvicorn.Server(uvicorn.Config(create_app(centre, store, hub=hub), log_level="warning"))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/api/v1/stream"

        arrivals: list[dict[int, int]] = [{} for _ in range(args.clients)]
        readies = [threading.Event() for _ in range(args.clients)]
        clients = [
            threading.Thread(target=receive, args=(url, token, args.messages, arrivals[k], readies[k]))
            for k in range(args.clients)
        ]
        for c in clients:
            c.start()
        for r in readies:
            r.wait(30)
        rng = np.random.default_rng(1)
        states = [state(i, rng) for i in range(args.messages)]
        sent: dict[int, int] = {}
        publish_ms: list[float] = []
        for i, s in enumerate(states):
            t0 = time.perf_counter_ns()
            sent[i] = t0
            for listener in listeners:
                listener(s)
            publish_ms.append((time.perf_counter_ns() - t0) / 1e6)
            time.sleep(max(0.0, 1.0 / args.rate - (time.perf_counter_ns() - t0) / 1e9))
        for c in clients:
            c.join(60)
        server.should_exit = True

    latencies = np.array([(t - sent[i]) / 1e6 for a in arrivals for i, t in a.items()])
    size_kb = len(states[0].model_dump_json()) / 1024
    print(
        f"{args.messages} states of {size_kb:.0f} KiB at {args.rate:g}/s to {args.clients} client(s); "
        f"received {len(latencies)}/{args.messages * args.clients}"
    )
    print(
        f"publish (serialise + hand-off, in the centre's thread): p50 {np.percentile(publish_ms, 50):.2f} ms, "
        f"p99 {np.percentile(publish_ms, 99):.2f} ms"
    )
    print(
        f"publish → WebSocket client: p50 {np.percentile(latencies, 50):.2f} ms, "
        f"p99 {np.percentile(latencies, 99):.2f} ms, max {latencies.max():.2f} ms"
    )


if __name__ == "__main__":
    main()
