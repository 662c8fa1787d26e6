"""Provider and router overhead against raw httpx on the same local server, same run.

A scripted OpenAI-compatible server on a local socket answers every request. Three pairs, each
interleaved so load on the machine hits both sides alike:

- chat: `OpenAICompatibleProvider.chat` against ``httpx.Client.post`` + ``json.loads`` of the
  same answer (the anchor); the ratio is what translation, retries and limits cost.
- router: `Router.chat` with a two-candidate alias (first answers) against the provider alone.
- stream: a 2,000-delta stream through ``chat(stream=True)`` against ``iter_lines`` +
  ``json.loads`` of every event (the anchor).

Run: PYTHONPATH=src:. python benchmarks/agent_providers.py [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import httpx

from mosaic_agent import AgentConfig, Message, OpenAICompatibleProvider, Router
from tests.agent._servers import OpenAIServer

MESSAGES = [Message.system("Be brief."), Message.user("Hello")]
BODY = {
    "model": "m1",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(
    name: str, n: int, ours: Callable[[], object], anchor: Callable[[], object], push: Callable[[], None]
) -> dict:
    mine, theirs = [], []
    for _ in range(n):
        push()
        mine.append(timed(ours))
        push()
        theirs.append(timed(anchor))
    ours_ms, anchor_ms = statistics.median(mine) * 1000, statistics.median(theirs) * 1000
    return {
        "case": name,
        "ours_median_ms": round(ours_ms, 3),
        "anchor_median_ms": round(anchor_ms, 3),
        "ratio": round(ours_ms / anchor_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    results = []
    with OpenAIServer() as server:
        text = server.text("Hello there, how can I help?")
        long_stream = server.stream_text([f"tok{i} " for i in range(2000)])
        with OpenAICompatibleProvider("local", server.base_url) as provider, httpx.Client() as raw:
            url = server.base_url + "/chat/completions"
            results.append(
                compare(
                    "chat",
                    args.requests,
                    lambda: provider.chat(MESSAGES, model="m1"),
                    lambda: json.loads(raw.post(url, json=BODY).content),
                    lambda: server.push(text),
                )
            )
            config = AgentConfig.from_dict(
                {
                    "providers": {
                        "local": {"type": "openai", "base_url": server.base_url, "models": ["m1", "m2"]}
                    },
                    "routing": {"aliases": {"default": ["local/m1", "local/m2"]}},
                }
            )
            with Router.from_config(config, env={}) as router:
                results.append(
                    compare(
                        "router",
                        args.requests,
                        lambda: router.chat(MESSAGES, model="default"),
                        lambda: provider.chat(MESSAGES, model="m1"),
                        lambda: server.push(text),
                    )
                )

            def raw_stream() -> None:
                with raw.stream("POST", url, json={**BODY, "stream": True}) as response:
                    for line in response.iter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            json.loads(line[6:])

            results.append(
                compare(
                    "stream 2000 deltas",
                    max(10, args.requests // 10),
                    lambda: list(provider.chat(MESSAGES, model="m1", stream=True)),
                    raw_stream,
                    lambda: server.push(long_stream),
                )
            )
    for row in results:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
