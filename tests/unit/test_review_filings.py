"""Review fields as real EDGAR filings write them (issue 21, item 3). Effective dates: the defined term
wins, filing footers and other agreements' dates do not, and dates as PDF extraction leaves them still
parse. Governing law: a title-cased clause is not read on past the place.

Excerpts (whitespace joined, otherwise unchanged) of CUAD v1 contracts (Hendrycks et al., NeurIPS 2021;
SEC EDGAR exhibits), CC BY 4.0, named beside each; the AECI sentence is written after the filing the
issue quotes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES
from workers.engines.review.dates import find_dates
from workers.engines.review.fields import agreement_date, effective_date, governing_law, parties

# TodosMedicalLtd_20190328_20-F_EX-4.10_11587157_EX-4.10_Marketing Agreement_ Reseller Agreement.txt
RESELLER_PREAMBLE = (
    'Exhibit 4.10 MARKETING AND RESELLER AGREEMENT (the "Agreement") THIS AGREEMENT is made and entered '
    'into this 20t h day of December 2018 (the "Effective Date"), by and between Todos Medical Ltd., a '
    'corporation organized and existing under the laws of the State of Israel, with an address at 1 '
    'Hamada St., Rehovot, Israel ("To'
)
# the same contract, a page end: its footer carries the filing date
RESELLER_PAGE_END = (
    's outside of the Territory. This Section 1.2 is a fundamental provision of this Agreement. 1.3 '
    'Subject to Section 1.4 below, Todos shall not market, distribute, or sell the Products, whether '
    'directly or indirectly, to customers inside of the Territory in any manner other than through the '
    'Reseller. Source: TODOS MEDICAL LTD., 20-F, 3/28/2019 1.4 Notwithstanding the grant of exclusivity '
    "to the Reseller, nothing herein shall derogate from Todos's right to distribute the Products in the "
    'Territ'
)
# InmodeLtd_20190729_F-1A_EX-10.9_11743243_EX-10.9_Manufacturing Agreement.txt
INMODE = (
    'MANUFACTURING AGREEMENT This Turn - Key Manufacturing Agreement (the "Agreement") is effective as '
    'of the 1.4.2011 (the "Effective Date") by and between: INVASIX LTD., with a principal place of '
    'business at Tavor Building, Shaar Yo'
)
# SteelVaultCorp_20081224_10-K_EX-10.16_3074935_EX-10.16_Affiliate Agreement.txt
STEELVAULT = (
    'This Agreement is made this 1s t day of October 2008, (the "Effective Date"), by and between '
    'Equidata, Inc., a corporation organized under the laws of Virginia with its principal place of '
    'business a'
)
# MJBIOTECH,INC_12_06_2018-EX-99.01-JOINT VENTURE AGREEMENT.txt
MJ = (
    'THIS JOINT VENTURE AGREEMENT (the "Agreement") made and entered into this 27th day of November 2018 '
    '(the "Execution Date"), BETWEEN: MJ Syndicated, Inc. a Florida Corporation of _____________________'
)
AECI = ("This Amendment (the \"Amendment\") shall be effective as of the date it is executed by IBM on August 3, "
        "2001 (the \"AECI\"). The Agreement was made on the 20th day of November, 2018 (the \"Effective Date\").")


def _effective(text: str) -> str | None:
    found = effective_date(text, agreement_date(text))
    return found.iso if found else None


def test_split_ordinals_and_dotted_dates_parse() -> None:
    assert [d.iso for d in find_dates("this 20t h day of December 2018 and the 1s t day of October 2008")] == \
        ["2018-12-20", "2008-10-01"]
    assert [d.iso for d in find_dates("effective as of the 1.4.2011 (the")] == ["2011-04-01"]


def test_the_defined_effective_date_wins_over_a_filing_footer() -> None:
    assert _effective(RESELLER_PREAMBLE + " " + RESELLER_PAGE_END) == "2018-12-20"
    assert _effective(INMODE) == "2011-04-01"
    assert _effective(STEELVAULT) == "2008-10-01"


def test_a_footer_date_is_never_the_effective_date() -> None:
    assert _effective(RESELLER_PAGE_END + " This Agreement shall be effective as of the Effective Date.") is None


def test_another_agreements_defined_date_is_not_the_effective_date() -> None:
    assert _effective(AECI) == "2018-11-20"


def test_the_contracts_own_execution_date_is_its_effective_date_when_none_is_defined() -> None:
    assert _effective(MJ) == "2018-11-27"


def test_governing_law_stops_at_the_place_in_title_case() -> None:
    clause = ("This Agreement Shall Be Governed By And Construed In Accordance With The Laws Of The Commonwealth Of "
              "Pennsylvania Without Giving Effect To Any Choice Or Conflict Of Law Provision Or Rule.")
    assert governing_law([clause]) == "Pennsylvania"
    assert governing_law(["governed by the laws of the People's Republic of China."]) == "People's Republic of China"


PREAMBLES = [json.loads(line) for line in (FIXTURES / "cuad" / "party_preambles.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("row", PREAMBLES, ids=[r["source"][:24] for r in PREAMBLES])
def test_both_parties_are_found_past_a_cover_title_or_in_a_party_list(row: dict) -> None:
    assert [p["name"] for p in parties(row["text"])] == row["parties"]
