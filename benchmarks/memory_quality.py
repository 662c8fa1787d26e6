"""Retrieval quality: recall@k of hashing vs the offline semantic model vs hybrid, on paraphrases.

Run:  PYTHONPATH=src python benchmarks/memory_quality.py [--json]

A small labelled set written for this benchmark: three users with 16 facts each, and for
every fact one query that paraphrases it without sharing a content word (no two content
words share their first five letters; the script checks this and stops if one does).
Each user also holds the same 32 distractor facts, so a user has 48 insights and a random
ranking finds the right one in the top 5 about 10% of the time.

Everything goes through the public API on SQLite: `open_memory(store, embedder)`,
`insights.add_many`, `insights.search(query, user_id=..., mode=...)`. Rows: the keyword
mode (FTS5, the same for every embedder), then vector and hybrid search with the lexical
`HashingEmbedder` and with `MiniLMEmbedder` (the ``semantic`` extra; left out, with a
note, when it is not installed). ``hybrid-nostop`` is a diagnostic: hybrid search with the
query's own embedding (``vector=``) but English stopwords dropped from the text that goes to
keyword search, to show what the keyword half's noise costs: FTS5 matches any query word,
"a" and "is" included.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mosaic_storage as ms
from mosaic_memory import Embedder, HashingEmbedder, Memory, open_memory

# user -> [(fact, a query that paraphrases it)]
LABELLED: dict[str, list[tuple[str, str]]] = {
    "ada": [
        ("Ada is allergic to peanuts", "What food gives her a dangerous reaction?"),
        ("Ada works as a backend engineer at a fintech startup", "What is her job?"),
        ("Ada owns a golden retriever named Biscuit", "Does she have a dog?"),
        ("Ada prefers short answers with code examples", "How concise should replies to her be?"),
        (
            "Ada is training for the Berlin marathon in September",
            "Which long-distance race is she preparing for?",
        ),
        ("Ada drinks green tea and never coffee", "What hot beverage does she like in the morning?"),
        ("Ada's sister Maya lives in Toronto", "Where does her sibling reside?"),
        ("Ada is learning Japanese on weekends", "Which foreign language is she studying?"),
        (
            "Ada has a meeting with her manager every Monday at 9am",
            "When is the weekly one-on-one with her boss?",
        ),
        ("Ada uses a standing desk because of back pain", "Why does she avoid sitting while at work?"),
        ("Ada is vegetarian", "Does she eat meat?"),
        ("Ada's favourite programming language is Rust", "What does she most enjoy writing software in?"),
        ("Ada rents a flat in Lisbon", "In which city is her apartment?"),
        ("Ada plays the cello in an amateur orchestra", "Which stringed instrument does she perform with?"),
        ("Ada wants to buy an electric car next year", "What vehicle is she saving up for?"),
        ("Ada sleeps badly when she drinks wine", "What does alcohol do to her rest at night?"),
    ],
    "ben": [
        ("Ben retired after thirty years of teaching history", "What subject did he give lessons in?"),
        ("Ben grows tomatoes and courgettes in his allotment", "Which vegetables come from his plot?"),
        ("Ben has type 2 diabetes and watches his sugar intake", "Which chronic illness does he manage?"),
        ("Ben's grandson Leo turns seven in May", "When is the youngest boy in the family celebrating?"),
        ("Ben is hard of hearing and prefers written messages", "Should I phone him or text him?"),
        ("Ben volunteers at the local library on Thursdays", "Where does he help out unpaid each week?"),
        ("Ben takes blood pressure pills every morning", "What medication is part of his daily routine?"),
        ("Ben supports Liverpool football club", "Which soccer team is he a fan of?"),
        ("Ben is afraid of flying and travels by train", "Does he get on aeroplanes?"),
        ("Ben's wife Margaret passed away in 2019", "Is he a widower?"),
        ("Ben reads crime novels before bed", "What kind of books does he enjoy in the evening?"),
        ("Ben does not own a smartphone", "What kind of mobile device does he carry?"),
        ("Ben bakes sourdough bread every Sunday", "What does he make in the oven at the weekend?"),
        ("Ben's knee replacement surgery is scheduled for March", "When is his joint operation?"),
        ("Ben likes classical music, especially Bach", "Which composer does he enjoy listening to?"),
        ("Ben keeps chickens in his back garden", "Does he raise any poultry?"),
    ],
    "chloe": [
        ("Chloe is a second-year medical student in Edinburgh", "What is she studying at university?"),
        (
            "Chloe is planning a backpacking trip through Vietnam in July",
            "Where is she travelling this summer?",
        ),
        ("Chloe is lactose intolerant", "Can she have milk or cheese?"),
        ("Chloe works part-time as a barista", "What's her side job in a cafe?"),
        ("Chloe is scared of spiders", "Which creepy crawly gives her a phobia?"),
        ("Chloe climbs at a bouldering gym three times a week", "Which sport does she do indoors on walls?"),
        ("Chloe's exams finish on the 14th of June", "When is her last test of the term?"),
        ("Chloe shares a flat with two friends", "Who are her housemates?"),
        ("Chloe has asthma and carries an inhaler", "What breathing condition does she have?"),
        ("Chloe wants to specialise in paediatrics", "Which field does she aim for, caring for kids?"),
        ("Chloe prefers to be contacted by email, not phone", "What is the best way to reach her?"),
        ("Chloe is saving money for a new laptop", "What computer purchase is she putting cash aside for?"),
        ("Chloe's favourite film is Spirited Away", "Which movie does she love most?"),
        ("Chloe volunteers at an animal shelter", "Where does she help with rescued pets?"),
        ("Chloe speaks fluent French and Spanish", "Which languages can she talk in?"),
        ("Chloe gets migraines when she skips meals", "What triggers her headaches?"),
    ],
}

# Stored for every user too: plausible insights that answer none of the queries.
DISTRACTORS = [
    "Has a dentist appointment next month",
    "Recently switched to a new mobile carrier",
    "Watched a documentary about whales last week",
    "Likes sunny weather more than snow",
    "Keeps a paper diary",
    "Was born in the spring",
    "Finds open-plan offices noisy",
    "Prefers the window seat on buses",
    "Bought a new winter coat in November",
    "Enjoys board games with friends",
    "Uses a dark theme in every app",
    "Is trying to drink more water",
    "Once visited Iceland",
    "Collects vintage postcards",
    "Does not like horror films",
    "Has a library card but rarely uses it",
    "Got a parking ticket last month",
    "Writes shopping lists on the fridge",
    "Prefers stairs over lifts",
    "Takes photos of sunsets",
    "Has two houseplants that keep dying",
    "Wears glasses for reading",
    "Likes spicy food",
    "Listens to podcasts about history of science",
    "Is left-handed",
    "Recently repainted the kitchen",
    "Tends to wake up early",
    "Bought a bicycle but seldom rides it",
    "Enjoys crossword puzzles",
    "Has never been skiing",
    "Is a member of a book club",
    "Prefers video calls to voice calls",
]

# Not split(): ruff would have the list spelled out one word a line.
STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """a an the and or not no of in on at to for by with from as is are was be been has have had
        does do did what which who whom when where why how her his him she he they them their it its
        this that there any each every some can could should would will i me my our we you your most
        more than then into over out up about after before one""",
    )
)
WORD = re.compile(r"[a-z0-9]+")
K_VALUES = (1, 5)


def content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower().replace("'s", "")) if len(w) >= 3 and w not in STOPWORDS}


def shared_words(fact: str, query: str) -> list[tuple[str, str]]:
    """Content words of the query whose first five letters are those of a content word of the fact."""
    return [(f, q) for f in content_words(fact) for q in content_words(query) if f[:5] == q[:5]]


def check_labels() -> None:
    problems = [
        (user, fact, query, pairs)
        for user, items in LABELLED.items()
        for fact, query in items
        if (pairs := shared_words(fact, query))
    ]
    for user, fact, query, pairs in problems:
        print(f"labelled set: {user}: {query!r} shares {pairs} with {fact!r}", file=sys.stderr)
    if problems:
        raise SystemExit("the labelled set must paraphrase its facts without shared key words")


def without_stopwords(query: str) -> str:
    return " ".join(w for w in WORD.findall(query.lower()) if w not in STOPWORDS)


def search(mem: Memory, embedder: Embedder, query: str, user: str, mode: str) -> list[str]:
    """Ids of the top 10; mode ``hybrid-nostop`` is hybrid whose keyword half gets no stopwords."""
    if mode == "hybrid-nostop":
        # The query's own embedding; only the keyword half sees the shortened text.
        vector = embedder.embed([query])[0]
        hits = mem.insights.search(without_stopwords(query), user_id=user, mode="hybrid", vector=vector)
    else:
        hits = mem.insights.search(query, user_id=user, mode=mode, limit=10)  # type: ignore[arg-type]
    return [hit.id for hit in hits[:10]]


def evaluate(embedder: Embedder, modes: list[str], workdir: Path) -> dict[str, dict[str, float]]:
    """Recall@1, recall@5 and MRR (over the top 10) of each mode, with ``embedder``, on SQLite."""
    store = ms.open_store(f"sqlite:///{workdir / embedder.name.replace('/', '_')}.db")
    ms.upgrade(store)
    ranks: dict[str, list[int | None]] = {mode: [] for mode in modes}
    latencies: dict[str, list[float]] = {mode: [] for mode in modes}
    with store, open_memory(store, embedder) as mem:
        for user, items in LABELLED.items():
            ids = mem.insights.add_many([fact for fact, _ in items] + DISTRACTORS, user_id=user)
            assert len(set(ids)) == len(items) + len(DISTRACTORS), "dedupe merged two facts"
            for (_, query), wanted in zip(items, ids, strict=False):
                for mode in modes:
                    start = time.perf_counter()
                    found = search(mem, embedder, query, user, mode)
                    latencies[mode].append(time.perf_counter() - start)
                    ranks[mode].append(found.index(wanted) + 1 if wanted in found else None)
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        got = ranks[mode]
        row = {f"recall@{k}": sum(1 for r in got if r is not None and r <= k) / len(got) for k in K_VALUES}
        row["mrr@10"] = sum(1.0 / r for r in got if r is not None) / len(got)
        row["p50_ms"] = float(np.percentile(latencies[mode], 50) * 1000)
        out[mode] = row
    return out


def semantic_embedder() -> Embedder | None:
    try:
        from mosaic_memory import MiniLMEmbedder

        return MiniLMEmbedder()
    except ms.MissingExtraError as err:
        print(f"note: no semantic rows: {err}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads for MiniLM (1 is far faster on a machine whose cores are busy)",
    )
    args = parser.parse_args()
    check_labels()
    queries = sum(len(items) for items in LABELLED.values())
    per_user = len(DISTRACTORS) + len(next(iter(LABELLED.values())))

    rows: list[tuple[str, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="mosaic-quality-") as tmp:
        hashing = evaluate(HashingEmbedder(), ["keyword", "vector", "hybrid", "hybrid-nostop"], Path(tmp))
        rows.append(("-", "keyword (FTS5)", hashing["keyword"]))
        rows.append(("hashing-v1", "vector", hashing["vector"]))
        rows.append(("hashing-v1", "hybrid", hashing["hybrid"]))
        rows.append(("hashing-v1", "hybrid-nostop", hashing["hybrid-nostop"]))
        semantic = semantic_embedder()
        if semantic is not None:
            if args.torch_threads:
                import torch

                torch.set_num_threads(args.torch_threads)
            started = time.perf_counter()
            semantic.embed(["warm up"])
            load_s = time.perf_counter() - started
            scores = evaluate(semantic, ["vector", "hybrid", "hybrid-nostop"], Path(tmp))
            rows.append(("all-MiniLM-L6-v2", "vector", scores["vector"]))
            rows.append(("all-MiniLM-L6-v2", "hybrid", scores["hybrid"]))
            rows.append(("all-MiniLM-L6-v2", "hybrid-nostop", scores["hybrid-nostop"]))
            print(f"(MiniLM model load: {load_s:.1f} s)", file=sys.stderr)

    if args.json:
        print(json.dumps([{"embedder": e, "mode": m, **r} for e, m, r in rows], indent=2))
        return
    print(
        f"{queries} paraphrased queries over {len(LABELLED)} users x {per_user} insights "
        f"({per_user - len(DISTRACTORS)} labelled + {len(DISTRACTORS)} distractors each), SQLite"
    )
    print(f"{'embedder':<18} {'mode':<15} {'recall@1':>9} {'recall@5':>9} {'MRR@10':>7} {'p50 ms':>7}")
    for embedder, mode, r in rows:
        print(
            f"{embedder:<18} {mode:<15} {r['recall@1']:>9.3f} {r['recall@5']:>9.3f} "
            f"{r['mrr@10']:>7.3f} {r['p50_ms']:>7.2f}"
        )


if __name__ == "__main__":
    main()
