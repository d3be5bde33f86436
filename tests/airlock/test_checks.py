"""The airlock's automatic checks (airlock/checks.py): every rule, failing and passing."""

from __future__ import annotations

import doctest
import importlib
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import airlock.checks
from airlock.checks import CheckResult, check_file, column_role, is_nhs_number, worst
from sde import sdc
from sde.sdc.config import SDCConfig

RULES = SDCConfig()
VALID = "9990000018"  # 999 000 001 with its check digit 8
INVALID = "9990000017"  # the same nine digits, a wrong check digit
LEADING_ZERO = "0123456789"  # check digit 9: a CSV reader reads it as 123456789
NO_CHECK_DIGIT = "9991234560"  # 999123456 has no valid check digit (it would be 10)


def csv(text: str) -> bytes:
    return text.strip().encode() + b"\n"


def entry(result: CheckResult, uid: str) -> dict:
    assert result.report is not None
    return result.report["results"][uid]


def rules_of(result: CheckResult) -> set[str]:
    return {f["rule"] for f in result.flags}


@pytest.mark.parametrize(
    "module",
    ["", ".base", ".identifiers", ".readers", ".tables", ".binary", ".report"],
)
def test_doctests(module: str) -> None:
    assert doctest.testmod(importlib.import_module(f"airlock.checks{module}")).failed == 0


# ---------------------------------------------------------------- NHS numbers


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (VALID, True),
        ("999 000 0018", True),  # spaced 3-3-4
        ("999-000-0018", True),
        (" 9990000018 ", True),
        (LEADING_ZERO, True),
        ("9990000085", True),
        (INVALID, False),  # wrong check digit
        (NO_CHECK_DIGIT, False),  # check digit would be 10: never issued
        ("999 0000018", False),  # not 3-3-4
        ("999 000-0018", True),  # mixed separators: read the same by anyone
        ("999.000.0018", True),
        ("999\u00a0000\u00a00018", True),  # no-break spaces
        ("\uff19\uff19\uff19\uff10\uff10\uff10\uff10\uff10\uff11\uff18", True),  # fullwidth
        ("999\u200b000\u200b0018", True),  # zero-width spaces
        ("999.0000018", False),  # a decimal, not 3-3-4
        ("0.9990000018", False),
        ("999000001", False),  # nine digits
        ("99900000181", False),  # eleven digits
        ("999000001a", False),
    ],
)
def test_nhs_number_shape_and_check_digit(text: str, valid: bool) -> None:
    assert is_nhs_number(text) is valid


@pytest.mark.parametrize(
    ("name", "body", "blocked"),
    [
        ("notes.txt", f"patient {VALID} seen", True),
        ("notes.txt", "patient 999 000 0018 seen", True),
        ("notes.txt", f"patient {INVALID} seen", False),
        ("notes.txt", f"id 1{VALID} and {VALID}1 and 0.{VALID}", False),  # inside numbers
        ("notes.txt", "nothing here", False),
        ("readme.md", f"| id |\n|---|\n| {VALID} |", True),
        ("page.html", f"<td>{VALID}</td>", True),
        ("figure.svg", f"<svg><text>{VALID}</text><path d='M 1.{VALID} 2'/></svg>", True),
        ("figure.svg", "<svg><path d='M 1.9990000018 2'/></svg>", False),  # a decimal
        ("model.json", json.dumps({"coef": 1.5, "note": f"nhs {VALID}"}), True),
        ("model.json", json.dumps({"coef": 1.5, "n": 120}), False),
    ],
)
def test_text_files_are_none_unless_they_hold_nhs_numbers(
    name: str, body: str, blocked: bool
) -> None:
    result = check_file(name, body.encode(), RULES)
    if blocked:
        assert result.status == "fail"
        assert result.blocking
        assert name in result.blocking[0]
        assert all(VALID not in r and "0018" not in r for r in result.blocking)  # never echoed
        assert result.flags[0]["rule"] == "nhs-number"
        assert result.flags[0]["row"] >= 1
    else:
        assert result == CheckResult("none", None, (), ())


def test_line_number_of_an_nhs_number_in_text() -> None:
    result = check_file("log.txt", f"a\nb\nid {VALID}\n".encode(), RULES)
    assert [f["row"] for f in result.flags] == [3]


@pytest.mark.parametrize("name", ["figure.png", "paper.pdf"])
def test_binary_outputs_without_text_are_not_checked(name: str) -> None:
    assert check_file(name, b"\x89PNG\r\n\x1a\n" + bytes(64), RULES) == (
        CheckResult("none", None, (), ())
    )


# ---------------------------------------------------------------- identifiers


@pytest.mark.parametrize(
    ("column", "blocked"),
    [
        ("person_id", True),
        ("PersonID", True),
        ("provider_person_id", True),
        ("patient_id", True),
        ("nhs_number", True),
        ("NHSNumber", True),
        ("NHS No", True),
        ("person_source_value", True),
        ("condition_source_value", True),
        ("chi", True),
        ("mrn", True),
        ("n_persons", False),
        ("person_count", False),
        ("patients", False),
        ("chin", False),
        ("sex", False),
    ],
)
def test_identifier_column_names_block(column: str, blocked: bool) -> None:
    result = check_file("t.csv", csv(f"{column},n\n1,20\n2,30"), RULES)
    if blocked:
        assert result.status == "fail"
        assert result.blocking == (f"t.csv: column {column!r} is named like a person identifier",)
        assert {"row": None, "column": column, "rule": "identifier"}.items() <= (
            result.flags[0].items()
        )
    else:
        assert not result.blocking
        assert "identifier" not in rules_of(result)


@pytest.mark.parametrize(
    ("values", "blocked"),
    [
        ([VALID, "9990000085"], True),  # as text
        (["999 000 0018", "999 673 1553"], True),  # spaced
        ([int(VALID), 9990000085], True),  # read as integers
        ([LEADING_ZERO, "9990000085"], True),  # the leading zero is lost by the reader
        ([INVALID, "9990000086"], False),  # check digits wrong
        ([NO_CHECK_DIGIT, INVALID], False),
        # a code column: one value in eleven passes the check by chance; half are needed
        (["1234567890", "1234567891", "1234567892", "1234567893", "1234567894"], False),
    ],
)
def test_columns_of_nhs_numbers_block(values: list, blocked: bool) -> None:
    frame = pd.DataFrame({"ref": values, "n": [20] * len(values)})
    result = check_file("t.csv", frame.to_csv(index=False).encode(), RULES)
    assert bool(result.blocking) is blocked
    if blocked:
        assert result.status == "fail"
        assert "t.csv: column 'ref' holds NHS numbers" in result.blocking[0]
        assert all(VALID not in r for r in result.blocking)


def test_an_nhs_number_in_a_text_cell_or_a_column_name_blocks() -> None:
    text = check_file("t.csv", csv(f"note,n\nseen {VALID} today,20\nfine,30"), RULES)
    assert text.blocking == (
        "t.csv: column 'note' holds NHS numbers (a text value holds an NHS number)",
    )
    header = check_file("t.csv", csv(f"ward,{VALID}\nA,20"), RULES)
    assert header.blocking == ("t.csv: a column name holds an NHS number",)


@pytest.mark.parametrize(
    "values",
    [
        np.array([int(VALID), 9990000085]),
        pd.Categorical([VALID, "9990000085"]),
        np.array([float(VALID), 9990000085.0]),
    ],
)
def test_identifier_in_parquet_blocks(values: object) -> None:
    frame = pd.DataFrame({"ref": values, "n": [12, 15]})
    result = check_file("t.parquet", frame.to_parquet(), RULES)
    assert result.status == "fail"
    assert result.blocking == (
        "t.parquet: column 'ref' holds NHS numbers (2 values are NHS numbers)",
    )


# ---------------------------------------------------------------- small counts


@pytest.mark.parametrize(
    ("column", "integer", "role"),
    [
        ("n", True, "count"),
        ("count", True, "count"),
        ("n_patients", True, "count"),
        ("deaths", True, "count"),
        ("A", True, "count"),  # a wide crosstab's category
        ("2019", True, "count"),
        ("ward", True, "count"),  # the cautious guess for an unhelpful name
        ("year", True, "label"),
        ("age", True, "label"),
        ("ward_code", True, "label"),
        ("imd_decile", True, "label"),
        ("Unnamed: 0", True, "label"),
        ("mean_age", True, "statistic"),
        ("pct", True, "statistic"),
        ("rate_per_1000", False, "statistic"),
        ("bmi", False, "statistic"),
    ],
)
def test_column_roles(column: str, integer: bool, role: str) -> None:
    assert column_role(column, integer=integer) == role


def test_small_count_fails_with_the_cell_flagged() -> None:
    result = check_file("t.csv", csv("sex,ward,n\nF,A,12\nF,B,3\nM,A,25\nM,B,40"), RULES)
    assert result.status == "fail"
    assert not result.blocking
    assert result.flags == (
        {
            "row": 1,
            "column": "n",
            "rule": "threshold",
            "reason": "t.csv: row 1, column n: a count below 10",
        },
    )
    report = entry(result, "t.csv")
    assert report["files"][0]["sdc"]["cells"]["threshold"] == [[1, 2]]
    assert report["outcome"]["n"] == {"0": "ok", "1": "threshold; ", "2": "ok", "3": "ok"}
    assert report["rules"]["threshold"]["status"] == "fail"


def test_counts_at_or_above_the_threshold_pass() -> None:
    result = check_file("t.csv", csv("sex,ward,n\nF,A,10\nF,B,11\nM,A,250\nM,B,40"), RULES)
    assert (result.status, result.flags, result.blocking) == ("pass", (), ())
    assert entry(result, "t.csv")["summary"] == "pass"


def test_the_projects_threshold_applies() -> None:
    data = csv("sex,n\nF,7\nM,40")
    assert check_file("t.csv", data, RULES).status == "fail"
    assert check_file("t.csv", data, SDCConfig(threshold=5)).status == "pass"
    assert check_file("t.csv", csv("sex,n\nF,12\nM,40"), SDCConfig(threshold=20)).status == ("fail")


def test_zeros_are_for_review_when_disclosive() -> None:
    data = csv("sex,n\nF,0\nM,40")
    result = check_file("t.csv", data, RULES)
    assert (result.status, rules_of(result)) == ("review", {"zeros"})
    assert check_file("t.csv", data, SDCConfig(zeros_are_disclosive=False)).status == "pass"


def test_label_columns_with_small_numbers_are_not_counts() -> None:
    data = csv("year,age,imd_decile,n\n2019,3,1,20\n2020,4,2,30")
    result = check_file("t.csv", data, RULES)
    assert result.status == "pass"
    assert entry(result, "t.csv")["properties"]["columns"] == {
        "year": "label",
        "age": "label",
        "imd_decile": "label",
        "n": "count",
    }


def test_wide_crosstab_with_index_column_and_redaction_marks() -> None:
    data = csv(",sex,A,B\n0,F,<5,20\n1,M,*,31")
    result = check_file("t.csv", data, RULES)
    assert result.status == "pass"  # marks are not numbers; the row index is a label
    small = check_file("t.csv", csv("sex,A,B\nF,4,20\nM,15,31"), RULES)
    assert [(f["row"], f["column"]) for f in small.flags] == [(0, "A")]


def test_multi_header_csv_from_a_multiindex_is_still_checked() -> None:
    frame = pd.DataFrame(
        [[12, 3], [40, 25]],
        index=pd.Index(["F", "M"], name="sex"),
        columns=pd.MultiIndex.from_tuples([("ward", "A"), ("ward", "B")]),
    )
    result = check_file("t.csv", frame.to_csv().encode(), RULES)
    assert result.status == "fail"
    assert [f["rule"] for f in result.flags] == ["threshold"]


def test_thousands_separators_are_read_as_counts() -> None:
    result = check_file("t.csv", b'sex,n\nF,"1,234"\nM,7\nX,\nY,"12,345,678"\n', RULES)
    assert [(f["row"], f["rule"]) for f in result.flags] == [(1, "threshold")]
    assert entry(result, "t.csv")["properties"]["columns"]["n"] == "count"


def test_semicolon_separated_csv() -> None:
    assert check_file("t.csv", csv("sex;n\nF;3\nM;40"), RULES).status == "fail"


def test_a_table_of_labels_only_is_for_review() -> None:
    result = check_file("t.csv", csv("code,description\nE11,diabetes\nI10,hypertension"), RULES)
    assert result.status == "review"
    assert any("no count or value" in c for c in entry(result, "t.csv")["comments"])


# ---------------------------------------------------------------- dominance


def test_values_beside_counts_need_review() -> None:
    result = check_file("t.csv", csv("sex,n,mean_bmi\nF,40,27.5\nM,35,28.1"), RULES)
    assert result.status == "review"
    assert result.flags[0] | {"reason": ""} == {
        "row": None,
        "column": "mean_bmi",
        "rule": "dominance",
        "reason": "",
    }
    report = entry(result, "t.csv")
    assert report["rules"]["dominance"]["columns"] == ["mean_bmi"]
    assert any("dominance" in c and "record-level" in c for c in report["comments"])


def test_small_count_beside_values_still_fails() -> None:
    result = check_file("t.csv", csv("sex,n,mean_bmi\nF,4,27.5\nM,35,28.1"), RULES)
    assert result.status == "fail"
    assert rules_of(result) == {"threshold", "dominance"}


# ---------------------------------------------------------------- other table formats


def test_parquet_is_checked() -> None:
    frame = pd.DataFrame({"sex": ["F", "M"], "n": [3, 40]})
    assert check_file("t.parquet", frame.to_parquet(), RULES).status == "fail"
    frame["n"] = [30, 40]
    assert check_file("t.parquet", frame.to_parquet(), RULES).status == "pass"


@pytest.mark.parametrize(
    "doc",
    [
        [{"sex": "F", "n": 3}, {"sex": "M", "n": 40}],  # records
        {"columns": ["sex", "n"], "data": [["F", 3], ["M", 40]]},  # split
        {"sex": ["F", "M"], "n": [3, 40]},  # lists
        {"sex": {"0": "F", "1": "M"}, "n": {"0": 3, "1": 40}},  # pandas' default
    ],
)
def test_json_tables_are_checked(doc: object) -> None:
    result = check_file("t.json", json.dumps(doc).encode(), RULES)
    assert result.status == "fail"
    assert rules_of(result) == {"threshold"}


def _xlsx(cells: list[list[str]]) -> bytes:
    """A minimal workbook with inline strings (no openpyxl needed to build it)."""
    rows = "".join(
        f'<row r="{i + 1}">'
        + "".join(f'<c t="inlineStr"><is><t>{v}</t></is></c>' for v in row)
        + "</row>"
        for i, row in enumerate(cells)
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
        book.writestr(
            "xl/worksheets/sheet1.xml", f"<worksheet><sheetData>{rows}</sheetData></worksheet>"
        )
    return out.getvalue()


def test_xlsx_is_read_as_tables() -> None:
    out = io.BytesIO()
    pd.DataFrame({"sex": ["F", "M"], "n": [3, 40]}).to_excel(out, index=False)
    assert check_file("t.xlsx", out.getvalue(), RULES).status == "fail"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("t.csv", bytes(range(0, 256, 2)) * 8, "binary"),
        ("t.csv", b"a,b\n1,2\n3,4,5,6\n", "not a well-formed CSV"),
        ("t.csv", b"\n\n", "no table"),
        ("t.csv", b"\xff\xfe\x81\x8d\x8f\x90\x9d", "not text"),
        ("t.parquet", b"PAR1 this is not parquet PAR1", "not a readable Parquet"),
        ("t.parquet", pd.DataFrame({"n": [1]}).to_parquet()[:40], "not a readable Parquet"),
        ("t.xlsx", b"PK\x03\x04 truncated", "xlsx"),
    ],
)
def test_bad_bytes_are_for_review_never_an_exception(name: str, data: bytes, why: str) -> None:
    result = check_file(name, data, RULES)
    assert result.status == "review"
    assert not result.blocking
    report = entry(result, name)
    assert why in report["exception"]
    assert result.flags[0]["rule"] == "unreadable"


def test_json_that_is_not_json_is_text() -> None:
    assert check_file("t.json", b"{not json", RULES).status == "none"
    assert check_file("t.json", f"{{not json {VALID}".encode(), RULES).status == "fail"


def test_an_unreadable_csv_is_still_scanned_for_nhs_numbers() -> None:
    result = check_file("t.csv", f"a,b\n{VALID},2\n3,4,5,6\n".encode(), RULES)
    assert result.status == "fail"
    assert result.blocking


def test_an_unexpected_error_blocks_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(airlock.checks, "_examine", boom)
    result = check_file("t.csv", csv("sex,n\nF,40"), RULES)
    assert result.status == "fail"  # fail closed: identifiers were not ruled out
    assert "RuntimeError" in entry(result, "t.csv")["exception"]
    assert len(result.blocking) == 1
    assert "fail closed" in result.blocking[0]
    assert result.flags[0]["rule"] == "incomplete"


# ---------------------------------------------------------------- notebook reports


def _notebook(tmp_path: Path, protection: str, ward_c: float = 0.1) -> dict[str, bytes]:
    """What ``CheckedTable.write()`` writes for a crosstab, as companion files."""
    rng = np.random.default_rng(1)
    records = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], 400),
            "ward": rng.choice(["A", "B", "C"], 400, p=[0.9 - ward_c, 0.1, ward_c]),
        }
    )
    table = sdc.crosstab(records.sex, records.ward, protection=protection)
    table.write(tmp_path)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    files["output_0.csv.txt"] = (tmp_path / "checksums" / "output_0.csv.txt").read_bytes()
    return files


def test_a_notebook_report_that_passes_is_recognised(tmp_path: Path) -> None:
    files = _notebook(tmp_path, "suppress")
    data = files.pop("output_0.csv")
    result = check_file("output_0.csv", data, RULES, companions=files)
    assert result.status == "pass"
    report = entry(result, "output_0.csv")
    assert report["notebook"] | {"summary": ""} == {
        "recognised": True,
        "report": "results.json",
        "output": "output_0",
        "status": "pass",
        "summary": "",
        "protection": "suppression",
        "tool": "SDE Workbench output checking",
        "checksum_verified": True,
    }
    assert any("recognised the notebook's report" in c for c in report["comments"])
    # the report itself, sent alongside, is not a table
    assert check_file("results.json", files["results.json"], RULES).status == "none"


def test_a_renamed_table_is_recognised_by_its_checksum(tmp_path: Path) -> None:
    files = _notebook(tmp_path, "suppress")
    data = files.pop("output_0.csv")
    result = check_file("admissions by ward.csv", data, RULES, companions=files)
    assert entry(result, "admissions by ward.csv")["notebook"]["checksum_verified"]
    del files["output_0.csv.txt"]
    unnamed = check_file("admissions by ward.csv", data, RULES, companions=files)
    assert not entry(unnamed, "admissions by ward.csv")["notebook"]["recognised"]


def test_a_notebook_report_that_fails_makes_the_file_fail(tmp_path: Path) -> None:
    files = _notebook(tmp_path, "suppress", ward_c=0.01)
    data = files.pop("output_0.csv")
    assert json.loads(files["results.json"])["results"]["output_0"]["status"] == "fail"
    result = check_file("output_0.csv", data, RULES, companions=files)
    assert result.status == "fail"
    assert entry(result, "output_0.csv")["notebook"]["status"] == "fail"


def test_a_passing_notebook_report_cannot_hide_our_findings(tmp_path: Path) -> None:
    files = _notebook(tmp_path, "suppress")
    files.pop("output_0.csv")
    forged = csv("sex,A,B,C\nF,93,86,3\nM,97,83,25")
    result = check_file("output_0.csv", forged, RULES, companions=files)
    assert result.status == "fail"
    assert not entry(result, "output_0.csv")["notebook"]["checksum_verified"]


def test_a_rounded_notebook_table_turns_small_counts_into_review(tmp_path: Path) -> None:
    # midpoint-6 publishes a true 11 (which passes) as 9: below the threshold as written
    records = pd.DataFrame(
        {
            "sex": ["F"] * 31 + ["M"] * 40,
            "ward": ["C"] * 11 + ["A"] * 20 + ["A"] * 20 + ["C"] * 20,
        }
    )
    table = sdc.crosstab(records.sex, records.ward, protection="midpoint-6")
    assert table.status == "pass"
    table.write(tmp_path)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    data = files.pop("output_0.csv")
    assert check_file("output_0.csv", data, RULES).status == "fail"  # alone: 9 < 10
    result = check_file("output_0.csv", data, RULES, companions=files)
    assert result.status == "review"
    assert result.flags[0]["rule"] == "threshold"
    assert any("rounded" in c for c in entry(result, "output_0.csv")["comments"])


@pytest.mark.parametrize(
    "companion",
    [b"{broken", b"[]", b'{"results": []}', b'{"results": {"x": {"files": "no"}}}'],
)
def test_malformed_companions_are_ignored(companion: bytes) -> None:
    result = check_file("t.csv", csv("sex,n\nF,40"), RULES, companions={"r.json": companion})
    assert result.status == "pass"


# ---------------------------------------------------------------- differencing

EARLIER = csv("sex,ward,n\nF,A,40\nF,B,30\nM,A,50\nM,B,60")


def test_a_small_difference_from_an_earlier_release_is_for_review() -> None:
    new = csv("sex,ward,n\nF,A,43\nF,B,30\nM,A,50\nM,B,60")
    result = check_file("t.csv", new, RULES, earlier=[("2025-q1.csv", EARLIER)])
    assert result.status == "review"
    assert [(f["row"], f["column"], f["rule"]) for f in result.flags] == [(0, "n", "differencing")]
    finding = entry(result, "t.csv")["differencing"][0]
    assert finding == {
        "cell": [0, 2],
        "release": "2025-q1.csv",
        "earlier_cell": [0, 2],
        "difference": 3,
    }


def test_a_large_difference_or_the_same_table_passes() -> None:
    big = csv("sex,ward,n\nF,A,80\nF,B,30\nM,A,50\nM,B,60")
    for new in (big, EARLIER):
        assert check_file("t.csv", new, RULES, earlier=[("q1.csv", EARLIER)]).status == "pass"


def test_a_total_and_a_subgroup_are_compared() -> None:
    total = csv("sex,n\nF,70\nM,110")
    subgroup = csv("sex,ward,n\nF,A,66\nM,A,50")
    result = check_file("t.csv", subgroup, RULES, earlier=[("totals.csv", total)])
    assert result.status == "review"
    assert [f["row"] for f in result.flags] == [0]


def test_other_measures_and_unreadable_releases_are_not_compared() -> None:
    other = csv("sex,ward,deaths\nF,A,43\nF,B,30\nM,A,50\nM,B,60")
    earlier = [("q1.csv", other), ("broken.parquet", b"nope")]
    assert check_file("t.csv", EARLIER, RULES, earlier=earlier).status == "pass"


def test_large_tables_compare_identical_categories() -> None:
    codes = np.arange(3000)
    old = pd.DataFrame({"practice_code": codes, "n": 100, "deaths": 50})
    new = old.assign(n=np.where(codes == 7, 104, 100))
    result = check_file(
        "t.csv",
        new.to_csv(index=False).encode(),
        RULES,
        earlier=[("old.csv", old.to_csv(index=False).encode())],
    )
    assert result.status == "review"
    assert [f["row"] for f in result.flags] == [7]
    assert any("identical categories only" in c for c in entry(result, "t.csv")["comments"])


# ---------------------------------------------------------------- report and speed


def test_report_has_the_acro_shape_of_sde_sdc(tmp_path: Path) -> None:
    ours = check_file("t.csv", csv("sex,n\nF,3\nM,40"), RULES).report
    assert ours is not None
    theirs = json.loads(_notebook(tmp_path, "suppress")["results.json"])
    assert ours.keys() == theirs.keys()
    assert ours["version"] == theirs["version"]
    assert set(theirs["results"]["output_0"]) <= set(ours["results"]["t.csv"])
    json.dumps(ours)  # JSON-ready


def test_worst_status() -> None:
    assert worst("pass", "fail", "review") == "fail"
    assert worst("pass", "review") == "review"
    assert worst("pass") == "pass"


def test_many_flags_are_capped_but_counted() -> None:
    frame = pd.DataFrame({"group": [f"g{i}" for i in range(3000)], "n": 3})
    result = check_file("t.csv", frame.to_csv(index=False).encode(), RULES)
    assert result.status == "fail"
    assert len(result.flags) == airlock.checks.MAX_LISTED + 1  # the last one says how many
    assert "3000 counts below 10" in result.flags[-1]["reason"]


def test_100k_row_csv(capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    frame = pd.DataFrame(
        {
            "region": rng.choice(["North", "South", "East", "West"], n),
            "practice_code": rng.integers(10**5, 10**6, n),
            "year": rng.integers(2015, 2025, n),
            "sex": rng.choice(["F", "M"], n),
            "n": rng.integers(10, 500, n),
            "mean_age": rng.normal(50, 10, n).round(2),
        }
    )
    data = frame.to_csv(index=False).encode()
    started = time.perf_counter()
    result = check_file("big.csv", data, RULES)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    check_file("big.csv", data, RULES)
    warm = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n100k-row CSV ({len(data) / 1e6:.1f} MB): {cold:.2f} s first, {warm:.2f} s again")
    assert result.status == "review"  # mean_age cannot be checked without the records
    assert not result.blocking
    assert rules_of(result) == {"dominance"}


@pytest.mark.parametrize("kind", ["csv", "parquet", "xlsx", "json", "txt", "svg", "png"])
def test_random_bytes_never_raise(kind: str) -> None:
    rng = np.random.default_rng(7)
    for size in (1, 17, 500, 5000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        result = check_file(f"t.{kind}", data, RULES)
        assert result.status in ("none", "review", "fail")
        assert (result.report is None) == (result.status == "none")


# ---------------------------------------------------------------- red-team holes, closed

NHS = ("9434765919", "9990000018", "4010232137")
FULLWIDTH = "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("t.csv", "person_id,nhs_number,n\n1,9434765919,50\n9,1,60\n2,x,70\n3," + FULLWIDTH),
        ("t.txt", "patient 9434765919\nref " + FULLWIDTH + "\n"),
    ],
)
def test_unicode_digits_never_switch_the_checks_off(name: str, text: str) -> None:
    result = check_file(name, text.encode(), RULES)
    assert result.status == "fail"
    assert result.blocking
    assert all("could not complete" not in r for r in result.blocking)


def test_fullwidth_nhs_numbers_are_nhs_numbers() -> None:
    wide = "".join(chr(0xFF10 + int(c)) for c in VALID)
    result = check_file("t.csv", f"ref,n\n{wide},20\n".encode(), RULES)
    assert result.blocking == ("t.csv: column 'ref' holds NHS numbers (1 value is an NHS number)",)


@pytest.mark.parametrize(
    ("column", "blocked"),
    [
        ("personid", True),
        ("PATIENTID", True),
        ("person_id_2", True),
        ("person_ids", True),
        ("patient_id_hashed", True),
        ("PatientIdHashed", True),
        ("patient_study_id", True),
        ("hashed_patient_id", True),
        ("nhsno", True),
        ("NHS Number", True),
        ("chi_number", True),
        ("provider_id", True),
        ("care_site_id", True),
        ("CareSiteId", True),
        ("subject_key", True),
        ("participant_ref", True),
        ("pseudonym", True),
        ("patid", True),
        ("hospital_number", True),
        ("n_person_id", True),  # a count named after the key: rename it n_persons
        ("period", False),
        ("episode_id", False),
        ("number_of_patients", False),
        ("patients_seen", False),
        ("hospital_id", False),
        ("chi_square", False),
        ("subject_area", False),
        ("provider_specialty", False),
        ("nhs_region", False),
        ("concept_id", False),
    ],
)
def test_identifier_names_are_matched_by_words(column: str, blocked: bool) -> None:
    result = check_file("t.csv", csv(f"{column},n\n1,20\n2,30"), RULES)
    assert ("identifier" in rules_of(result)) is blocked
    assert bool(result.blocking) is blocked


def test_a_kept_parquet_index_is_checked_as_columns() -> None:
    frame = pd.DataFrame(
        {"person_id": [101, 102, 103], "nhs_number": list(NHS), "n": [50, 60, 70]}
    ).set_index(["person_id", "nhs_number"])
    result = check_file("t.parquet", frame.to_parquet(), RULES)
    assert set(result.blocking) == {
        "t.parquet: column 'person_id' is named like a person identifier",
        "t.parquet: column 'nhs_number' is named like a person identifier",
        "t.parquet: column 'nhs_number' holds NHS numbers (3 values are NHS numbers)",
    }
    unnamed = pd.DataFrame({"n": [50, 60, 70]}, index=[int(v) for v in NHS])
    assert check_file("t.parquet", unnamed.to_parquet(), RULES).blocking
    plain = pd.DataFrame({"sex": ["F", "M"], "n": [30, 40]})
    assert check_file("t.parquet", plain.to_parquet(), RULES).status == "pass"


def _xlsx_with_title() -> bytes:
    out = io.BytesIO()
    with pd.ExcelWriter(out) as book:
        pd.DataFrame({"person_id": [101, 102], "n": [50, 60]}).to_excel(
            book, sheet_name="s", index=False, startrow=2
        )
        book.sheets["s"]["A1"] = "Cohort extract"
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("t.csv", b"Cohort extract, March 2025\nperson_id,n\n101,50\n102,60\n"),
        ("t.csv", b"Cohort extract\n\nperson_id,n\n101,50\n102,60\n"),
        ("t.csv", b"Cohort extract\nprepared by ada;2025\n\nperson_id,n,x\n101,50\n"),  # unreadable
        ("t.xlsx", None),
    ],
)
def test_a_header_below_a_title_is_found(name: str, data: bytes | None) -> None:
    result = check_file(name, data if data is not None else _xlsx_with_title(), RULES)
    assert result.status == "fail"
    assert any("person_id" in r for r in result.blocking)


def test_data_rows_naming_an_identifier_beside_numbers_are_not_headers() -> None:
    result = check_file("t.csv", csv("variable,missing_pct\nperson_id,0\nage,1.5"), RULES)
    assert not result.blocking


def test_nhs_numbers_diluted_with_decoys_are_found() -> None:
    decoys = ["9434765910", "9990000011", "4010232130", "1234567890"]
    data = "ref,n\n" + "".join(f"{v},50\n" for v in (*NHS, *decoys))
    assert check_file("t.csv", data.encode(), RULES).blocking


def test_one_nhs_number_in_a_key_column_blocks_but_not_in_a_code_column() -> None:
    rng = np.random.default_rng(3)
    codes = [str(c) for c in rng.integers(10**9, 10**10, 40)]
    codes = [c for c in codes if not is_nhs_number(c)][:30]
    for column, blocked in (("episode_id", True), ("ref", True), ("product_code", False)):
        values = [*codes, VALID]
        frame = pd.DataFrame({column: values, "n": [20] * len(values)})
        result = check_file("t.csv", frame.to_csv(index=False).encode(), RULES)
        assert bool(result.blocking) is blocked, column


def test_random_ten_digit_codes_are_rarely_taken_for_nhs_numbers() -> None:
    """The false-alarm rate of ``above_chance`` on columns of random codes."""
    from airlock.checks.tables import above_chance

    rng = np.random.default_rng(11)
    for n, most in ((1, 0.1), (2, 0.035), (7, 0.026), (20, 0.026), (100, 0.026), (1000, 0.026)):
        valid = rng.binomial(n, 1 / 11, 20_000)
        rate = np.mean([above_chance(int(v), n) for v in valid])
        assert rate <= most, (n, rate)


@pytest.mark.parametrize(
    "shape",
    [
        lambda v: f"{v[:3]}\u00a0{v[3:6]}\u00a0{v[6:]}",
        lambda v: f"{v[:3]} {v[3:6]}-{v[6:]}",
        lambda v: f"{v[:3]}.{v[3:6]}.{v[6:]}",
        lambda v: f"{v[:3]}\u2013{v[3:6]}\u2013{v[6:]}",
        lambda v: f"{v[:3]}\u200b{v[3:6]}{v[6:]}",
        lambda v: f"NHS{v}",
        lambda v: f"id_{v}",
        lambda v: f"-{v}",
        lambda v: f"#{v}",
    ],
)
def test_nhs_numbers_in_other_shapes_are_found(shape: object) -> None:
    data = "ref,n\n" + "".join(f"{shape(v)},50\n" for v in NHS)  # type: ignore[operator]
    result = check_file("t.csv", data.encode(), RULES)
    assert result.blocking
    text = check_file("t.txt", " ".join(shape(v) for v in NHS).encode(), RULES)  # type: ignore[operator]
    assert text.blocking


@pytest.mark.parametrize(
    "body",
    [
        "sha256 " + "ab" * 3 + VALID + "cd" * 24,  # inside a hash
        f"v1.{VALID}",  # a decimal
        "counts\n120\n135\n1500\n",  # numbers on separate lines
        "pi 3.1415926535 and 31415.9265358",
    ],
)
def test_ten_digit_runs_that_are_not_numbers_of_a_person(body: str) -> None:
    assert check_file("t.txt", body.encode(), RULES) == CheckResult("none", None, (), ())


def _png(*chunks: tuple[bytes, bytes]) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    body = b"".join(chunk(k, b) for k, b in chunks)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + body
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "chunk",
    [
        (b"tEXt", b"Comment\x00ids " + VALID.encode()),
        (b"zTXt", b"Comment\x00\x00" + __import__("zlib").compress(VALID.encode())),
        (b"iTXt", b"Comment\x00\x01\x00en\x00\x00" + __import__("zlib").compress(VALID.encode())),
        (b"iTXt", b"Comment\x00\x00\x00\x00\x00person_id,n\n"),
        (b"prIV", b"x " + VALID.encode()),
    ],
)
def test_text_inside_a_png_is_checked(chunk: tuple[bytes, bytes]) -> None:
    result = check_file("f.png", _png(chunk), RULES)
    assert result.status == "fail"
    assert result.blocking
    assert all(VALID not in r for r in result.blocking)
    assert check_file("f.png", _png((b"tEXt", b"Software\x00matplotlib 3.9")), RULES).status == (
        "none"
    )


def test_a_png_text_bomb_is_blocked() -> None:
    import zlib

    bomb = zlib.compress(b"0" * 60_000_000, 9)
    result = check_file("f.png", _png((b"zTXt", b"Comment\x00\x00" + bomb)), RULES)
    assert result.status == "fail"
    assert "inflates beyond" in result.blocking[0]


def _pdf(stream: bytes, *, flate: bool = False, extra: bytes = b"") -> bytes:
    import zlib

    body = zlib.compress(stream) if flate else stream
    head = b"<< /Length %d%s >>" % (len(body), b" /Filter /FlateDecode" if flate else b"")
    return (
        b"%PDF-1.4\n1 0 obj\n"
        + head
        + b"\nstream\n"
        + body
        + b"\nendstream\nendobj\n"
        + extra
        + b"xref\n0 2\n0000000000 65535 f \n"
        + VALID.encode()
        + b" 00000 n \ntrailer << /Size 2 >>\nstartxref\n9\n%%EOF\n"
    )


@pytest.mark.parametrize("flate", [False, True])
def test_text_inside_a_pdf_is_checked(flate: bool) -> None:
    shown = b"BT /F1 12 Tf 72 712 Td [(943)-20(4765919)] TJ ET"
    result = check_file("p.pdf", _pdf(shown, flate=flate), RULES)
    assert result.status == "fail"
    assert result.blocking
    info = _pdf(b"BT (hello) Tj ET", extra=b"2 0 obj << /Title (" + VALID.encode() + b") >>\n")
    assert check_file("p.pdf", info, RULES).blocking
    hexed = _pdf(b"BT <" + VALID.encode().hex().encode() + b"> Tj ET", flate=flate)
    assert check_file("p.pdf", hexed, RULES).blocking
    # an xref offset and separately shown cells are not numbers of a person
    cells = b"BT (120) Tj 0 -14 Td (135) Tj 0 -14 Td (1500) Tj ET"
    assert check_file("p.pdf", _pdf(cells, flate=flate), RULES).status == "none"


def test_a_pdf_stream_bomb_is_blocked() -> None:
    result = check_file("p.pdf", _pdf(b" " * 60_000_000, flate=True), RULES)
    assert result.status == "fail"
    assert "inflates beyond" in result.blocking[0]


@pytest.mark.parametrize(
    "doc",
    [
        {"rows": [{"person_id": 101, "n": 50}, {"person_id": 102, "n": 60}]},
        [{"person_id": 101, "n": 50, "tags": ["a"]}],
        {"a": {"b": [{"c": {"PatientID": 1}}]}},
        {"schema": {"fields": [{"name": "nhs_number"}]}, "data": []},
        {"columns": ["sex", "n"], "data": [["F", 30]], "extra": {"person_ids": [1, 2]}},
        {"note": "\\u0039" + VALID[1:]},
    ],
)
def test_nested_json_is_walked(doc: object) -> None:
    text = json.dumps(doc).replace("\\\\u0039", "\\u0039")
    result = check_file("t.json", text.encode(), RULES)
    assert result.status == "fail"
    assert result.blocking


@pytest.mark.parametrize(
    ("name", "body", "blocked"),
    [
        ("t.md", "| person_id | n |\n|---|---|\n| 1 | 20 |\n", True),
        ("t.html", "<table><tr><th>Person ID</th><th>n</th></tr></table>", True),
        ("t.txt", "   person_id   n\n0        101  50\n", True),
        ("t.txt", "We linked the records on person_id, then on age.\n", False),
        ("t.md", "SELECT person_id, COUNT(*) AS n FROM visits\n", False),
        ("t.md", 'df = df[["person_id", "n"]]\n', False),
        ("t.txt", "how it was made", False),
    ],
)
def test_identifier_headers_in_text(name: str, body: str, blocked: bool) -> None:
    result = check_file(name, body.encode(), RULES)
    assert bool(result.blocking) is blocked


def test_a_parquet_bomb_is_refused_before_it_is_decoded() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 3_000_000
    table = pa.table({"n": pa.array([50], pa.int64()).take(pa.array([0] * rows))})
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    result = check_file("b.parquet", out.getvalue(), RULES)
    assert result.status == "fail"
    assert result.flags[0]["rule"] == "incomplete"
    assert "3,000,000 rows" in result.blocking[0]
    # and as an earlier release it is skipped, never decoded
    assert check_file("t.csv", csv("sex,n\nF,40"), RULES, earlier=[("b.parquet", out.getvalue())])


def test_an_xlsx_bomb_is_refused_before_it_is_opened() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/worksheets/sheet1.xml", "<worksheet>" + " " * 30_000_000 + "</worksheet>")
    result = check_file("b.xlsx", out.getvalue(), RULES)
    assert result.status == "fail"
    assert result.flags[0]["rule"] == "incomplete"


def test_a_broken_parquet_file_is_still_scanned() -> None:
    frame = pd.DataFrame({"ref": list(NHS), "n": [50, 60, 70]})
    data = frame.to_parquet(compression=None)
    broken = data[: len(data) // 2]
    result = check_file("t.parquet", broken, RULES)
    assert result.status == "fail"
    assert result.blocking
