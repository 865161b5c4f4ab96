"""What rules and patients cite is the primary publication, never a copy of it.

A governance committee accepts the journal article, the guideline or the payer's own page;
a mirror, a copy site, a summary page or an AI summary is not a source. The hosts that only
copy or summarise are listed, each with what it is, in tests/data/non_primary_hosts.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from engine.evaluation.aid import DecisionAid
from engine.model.knowledge import Source

DENY_LIST = Path(__file__).parent / "data" / "non_primary_hosts.yaml"
NON_PRIMARY: dict[str, str] = yaml.safe_load(DENY_LIST.read_text(encoding="utf-8"))["hosts"]


def non_primary_host(url: str) -> str | None:
    """The listed host `url` is on (itself or a subdomain of it), or None."""
    host = (urlsplit(url).hostname or "").lower()
    return next((h for h in NON_PRIMARY if host == h or host.endswith("." + h)), None)


def cited_by_the_rulebook(aid: DecisionAid) -> dict[str, list[str]]:
    """Source id -> what in the rulebook cites it (rules, parameters, profiles)."""
    book = aid.rulebook
    citing: dict[str, list[str]] = {}
    for where, ids in [
        *((f"rule {r.id}", r.sources) for r in book.rules if r.active),
        *((f"parameter {p.id}", p.sources) for p in book.parameters.values()),
        *((f"profile {p.id}", p.sources) for p in book.profiles.values()),
    ]:
        for source_id in ids:
            citing.setdefault(source_id, []).append(where)
    return citing


def copies_cited(sources: Mapping[str, Source], citing: Mapping[str, list[str]]) -> list[str]:
    """Each source on a listed host that the rulebook cites or patients may see, with why and by whom."""
    return sorted(
        f"{s.id} ({s.url}, {NON_PRIMARY[host]}): " + (", ".join(citing.get(s.id, [])[:3]) or "shown to patients")
        for s in sources.values()
        if (s.for_patients or s.id in citing) and (host := non_primary_host(s.url))
    )


def test_no_source_cited_by_the_rulebook_or_shown_to_patients_is_a_copy(aid: DecisionAid) -> None:
    offending = copies_cited(aid.knowledge.sources, cited_by_the_rulebook(aid))
    assert not offending, "cite the primary publication instead:\n" + "\n".join(offending)


@pytest.mark.parametrize("kind", ["guideline", "internal"])
def test_a_cited_source_pointed_at_a_mirror_is_caught_whatever_its_kind(aid: DecisionAid, kind: str) -> None:
    """The check is live: the first source a rule cites, moved to an UpToDate mirror, is reported,
    even when its kind keeps it off the patient's page (a rule still rests on it)."""
    citing = cited_by_the_rulebook(aid)
    cited = next(sid for sid in sorted(citing) if any(w.startswith("rule ") for w in citing[sid]))
    moved = aid.knowledge.sources[cited].model_copy(
        update={"url": "https://www.medilib.ir/uptodate/show/1", "kind": kind}
    )
    offending = copies_cited({**aid.knowledge.sources, cited: moved}, citing)
    assert [o.split(" ")[0] for o in offending] == [cited]


def test_no_rule_rests_on_an_ai_generated_summary(aid: DecisionAid) -> None:
    citing = cited_by_the_rulebook(aid)
    used = sorted(
        f"{s.id} cited by {', '.join(citing[s.id])}"
        for s in aid.knowledge.sources.values()
        if s.kind == "ai_summary" and s.id in citing
    )
    assert not used, "\n".join(used)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://medilib.ir/uptodate/show/144053", "medilib.ir"),
        ("https://www.medilib.ir/uptodate/show/108918", "medilib.ir"),
        ("https://stage.medifind.com/articles/publication/76469397", "medifind.com"),
        ("https://accessanesthesiology.mhmedical.com/content.aspx?bookid=1158", "mhmedical.com"),
        ("https://oncology.medicinematters.com/cancer-pain/treatment/x/12218622", "medicinematters.com"),
        ("https://en.wikipedia.org/wiki/Epidural_steroid_injection", "wikipedia.org"),
        ("https://doi.org/10.1097/AAP.0000000000000700", None),
        ("https://www.nice.org.uk/guidance/ng59", None),
        ("https://notmedscape.com/page", None),
        ("", None),
    ],
    ids=lambda v: v or "none",
)
def test_the_host_check_matches_listed_hosts_and_their_subdomains_only(url: str, host: str | None) -> None:
    assert non_primary_host(url) == host
