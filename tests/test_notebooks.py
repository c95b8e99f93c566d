"""The example notebooks run from top to bottom (papermill, kernel from this venv)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_theophylline_notebook_runs_with_small_draws(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's platformdirs DeprecationWarning
    import nbformat
    import papermill
    out = tmp_path / "out"
    executed = tmp_path / "01_theophylline.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "01_theophylline.ipynb"),
        str(executed),
        parameters={"draws": 100, "tune": 100, "chains": 2, "seed": 3,
                    "model_file": str(ROOT / "models" / "theophylline.toml"), "out_dir": str(out)},
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
