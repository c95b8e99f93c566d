"""The example notebooks run from top to bottom (papermill, kernel from this venv)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # runs the whole notebook
def test_theophylline_notebook_runs_with_small_draws(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's platformdirs DeprecationWarning
    import nbformat
    import papermill

    out = tmp_path / "out"
    executed = tmp_path / "01_theophylline.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "01_theophylline.ipynb"),
        str(executed),
        parameters={
            "draws": 100,
            "tune": 100,
            "chains": 2,
            "seed": 3,
            "model_file": str(ROOT / "models" / "theophylline.toml"),
            "out_dir": str(out),
        },
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
        log_output=False,
    )
    report = out / "nuts" / "report.html"
    assert report.is_file()
    assert report.read_text().count('src="data:image/png;base64,') >= 8
    for name in ("prior", "nuts", "laplace"):
        assert (out / name / "fit.nc").is_file()
    cells = nbformat.read(executed, as_version=4).cells
    images = [o for c in cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 8
    errors = [o for c in cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.slow  # runs the whole notebook
def test_prior_sensitivity_notebook_runs_with_small_draws(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    import nbformat
    import papermill

    out = tmp_path / "out"
    executed = tmp_path / "02_prior_sensitivity.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "02_prior_sensitivity.ipynb"),
        str(executed),
        parameters={
            "draws": 100,
            "tune": 100,
            "chains": 2,
            "seed": 1,
            "workers": 1,
            "model_file": str(ROOT / "models" / "theophylline.toml"),
            "out_dir": str(out),
        },
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
        log_output=False,
    )
    study = out / "study"
    for name in ("psense.csv", "variants.csv", "compilations.csv", "forest.png", "report.html"):
        assert (study / name).is_file(), name
    cells = nbformat.read(executed, as_version=4).cells
    errors = [o for c in cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 1  # the forest plot
    text = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    assert "theta_CL" in text and "-> prior-data conflict" in text


@pytest.mark.slow  # fits every model of the library (compiles the ODE models on a cold cache)
def test_model_library_notebook_fits_every_bundled_model(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    import nbformat
    import papermill

    out = tmp_path / "out"
    executed = tmp_path / "03_model_library.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "03_model_library.ipynb"),
        str(executed),
        parameters={"method": "focei", "models_dir": str(ROOT / "models"), "out_dir": str(out)},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
        log_output=False,
    )
    datasets = ("oral_mm", "pk_emax", "indirect_response", "friberg", "warfarin_turnover")
    for name in datasets:
        assert (out / name / "fit.json").is_file(), name
    cells = nbformat.read(executed, as_version=4).cells
    errors = [o for c in cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    assert text.count("converged True") == len(datasets), text
