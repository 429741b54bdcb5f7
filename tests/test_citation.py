"""CITATION.cff: a CFF 1.2 file with kpvp as the software (an entity as its author) and the
paper as `preferred-citation`, authors as the paper lists them. The full schema check is the
command in README.md's "Citation and licence" (`cffconvert --validate`)."""
import pathlib
import re

import pytest

yaml = pytest.importorskip("yaml")

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The paper's authors in its order (shared/papers/kpvp_paper.txt, NeurIPS 2019).
PAPER_AUTHORS = [("Kim", "Yunji"), ("Nam", "Seonghyeon"), ("Cho", "In"), ("Kim", "Seon Joo")]


@pytest.fixture(scope="module")
def cff():
    with open(ROOT / "CITATION.cff", encoding="utf-8") as f:
        return yaml.safe_load(f)


def check_authors(authors, where):
    """CFF: a non-empty list of persons (family-names/given-names) or entities (name)."""
    assert isinstance(authors, list) and authors, f"{where}: authors must be a non-empty list"
    for author in authors:
        assert isinstance(author, dict), f"{where}: an author must be a mapping, got {author!r}"
        person = {"family-names", "given-names"} & set(author)
        assert person or author.get("name"), f"{where}: {author} is no person nor entity"
        assert all(isinstance(v, str) and v.strip() for v in author.values()), author


def test_the_software_entry_has_the_required_cff_keys(cff):
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title"):
        assert isinstance(cff[key], str) and cff[key].strip(), key
    assert cff.get("type", "software") == "software"
    check_authors(cff["authors"], "software")
    assert cff["authors"] == [{"name": "kpvp contributors"}]  # the project, not the paper's
    setup = (ROOT / "setup.py").read_text()
    assert f'version="{cff["version"]}"' in setup  # one version for the package and citation
    assert cff["license"] == "Apache-2.0" and "Apache License" in (ROOT / "LICENSE").read_text()


def test_the_preferred_citation_is_the_paper(cff):
    paper = cff["preferred-citation"]
    assert paper["type"] == "conference-paper"
    assert paper["title"] == ("Unsupervised Keypoint Learning for Guiding Class-Conditional "
                              "Video Prediction")
    check_authors(paper["authors"], "preferred-citation")
    assert [(a["family-names"], a["given-names"]) for a in paper["authors"]] == PAPER_AUTHORS
    assert paper["year"] == 2019 and isinstance(paper["volume"], int)
    assert paper["start"] < paper["end"]
    for identifier in paper.get("identifiers", []):
        assert identifier["type"] in ("doi", "url", "swh", "other"), identifier


def test_the_readme_bibtex_names_the_same_paper_authors():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"author\s*=\s*\{(.+?)\},", readme)
    assert match, "README.md has no BibTeX author line"
    names = [tuple(part.strip() for part in n.split(",")) for n in match.group(1).split(" and ")]
    assert names == PAPER_AUTHORS
