"""What a message may carry that JSON allows but no worker can handle: deep nesting, NUL, lone
surrogates.

Why these three: each passes the published JSON Schemas, and each used to take a whole message down
instead of one document.

- **Nesting.** Python's ``json``, ``pickle`` (Celery hands a prefork child its task by pickling
  it) and ``repr`` recurse once per level: a ``metadata`` nested 700 levels deep killed the worker
  process with ``RecursionError ... while pickling``, and the message, restored on restart, killed
  every worker that took it next. :func:`json_depth` measures depth without recursing, so the
  transport can refuse such a message before Celery touches it.
- **NUL** (``\\u0000``): PostgreSQL refuses it in ``text`` and ``jsonb``; SQLite keeps it. Refusing
  it on both keeps one behaviour per document whatever the database.
- **Lone surrogates** (``\\ud800``): valid JSON escapes, yet not Unicode text: encoding them to
  UTF-8 raises ``UnicodeEncodeError`` in every database driver.

The checks walk the value with an explicit stack (never recursion) and stop at the first problem,
which they describe with escapes only (``ascii()``), so the reason itself is always storable.
"""

from __future__ import annotations

from typing import Any

#: Deepest JSON nesting a message may have (its whole body: ``[args, kwargs, embed]`` is 2 levels,
#: ``documents[i].metadata`` starts at 5). Far below Python's recursion limit (1000) and far above
#: any real metadata; the JSON Schemas cannot express depth, so it is documented beside them.
MAX_JSON_DEPTH = 64


def json_depth(value: Any, stop_at: int = MAX_JSON_DEPTH + 1) -> int:
    """The nesting depth of a decoded JSON value (a scalar is 0, ``[]`` is 1), counting no further
    than ``stop_at``: a caller asking "deeper than the limit?" does not walk the rest."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest >= stop_at:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


#: Deepest a document of ``documents`` may nest, itself included (it sits 3 levels down in the body:
#: the body list, kwargs, the documents list), so that its ``metadata`` keeps the body within
#: :data:`MAX_JSON_DEPTH`.
DOCUMENT_MAX_DEPTH = MAX_JSON_DEPTH - 3
#: The key of the stand-in the transport puts in place of a document nested deeper than
#: :data:`DOCUMENT_MAX_DEPTH` (``{DEEP_DOCUMENT: {"position": i, "depth": n}, "id": ...}``): the
#: message goes on with it, shallow enough for Celery, and the document fails alone with
#: ``too_deeply_nested`` (``docqueue.schema.split_documents``).
DEEP_DOCUMENT = "docqueue:too_deeply_nested"


def deep_document_stand_in(document: Any, position: int) -> dict[str, Any] | None:
    """The stand-in for ``document`` if it nests deeper than :data:`DOCUMENT_MAX_DEPTH`, else None."""
    if json_depth(document) <= DOCUMENT_MAX_DEPTH:
        return None
    stand_in: dict[str, Any] = {DEEP_DOCUMENT: {"position": position,
                                                "depth": json_depth(document, stop_at=2**31)}}
    doc_id = document.get("id") if isinstance(document, dict) else None
    if isinstance(doc_id, str):
        stand_in["id"] = doc_id
    return stand_in


def deep_document_reason(item: Any) -> str | None:
    """Why a stand-in's document failed, or None when ``item`` is not a stand-in."""
    mark = item.get(DEEP_DOCUMENT) if isinstance(item, dict) else None
    if not isinstance(mark, dict) or not isinstance(mark.get("depth"), int):
        return None
    return (f"the document nests JSON {mark['depth']} levels deep (its metadata included); at most "
            f"{DOCUMENT_MAX_DEPTH} are accepted")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as it is (NUL, a lone surrogate), or None."""
    nul = text.find("\x00")
    if nul >= 0:
        return f"a NUL character (\\u0000) at offset {nul}, which PostgreSQL cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"a lone surrogate {text[e.start]!a} at offset {e.start}: not Unicode text, it cannot "
                "be encoded as UTF-8")
    return None


def value_problem(value: Any, where: str) -> str | None:
    """The first string (or object key) inside a JSON value that cannot be stored, said with its
    path (``metadata.author``), or None."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return f"{path}: {problem}"
        elif isinstance(item, dict):
            for key, child in item.items():
                key_text = str(key)
                problem = text_problem(key_text)
                if problem:
                    return f"{path}: a key holds {problem}"
                stack.append((child, f"{path}.{key_text}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def storable_text(text: str) -> str:
    """``text`` with NUL and lone surrogates written as escapes: for reasons and logs that quote an
    input (never for a document's own text, which is kept or refused, not changed)."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")
