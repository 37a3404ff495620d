"""Command-line errors of record / reprocess / export: one line, exit code 2, nothing lost."""

from __future__ import annotations

import numpy as np

from lorentz_live.cli import main
from lorentz_live.record import SessionWriter


def test_record_refuses_an_existing_session(tmp_path, capsys) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "keep.txt").write_text("data")
    assert main(["record", "--source", "tcp://127.0.0.1:9", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "exists; a recording never overwrites a session" in err
    assert (tmp_path / "s" / "keep.txt").read_text() == "data"


def test_record_needs_an_input_and_reprocess_a_session(tmp_path, capsys) -> None:
    assert main(["record", "--out", str(tmp_path / "new")]) == 2
    assert "give --source" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert main(["reprocess", str(tmp_path), "--out", str(tmp_path / "again")]) == 2
    assert "not a session" in capsys.readouterr().err


def test_record_key_errors_name_the_flag_and_create_nothing(tmp_path, capsys) -> None:
    out = str(tmp_path / "new")
    key = tmp_path / "bridge.key"
    key.write_text("not a key")
    source = ["--source", "tcp://127.0.0.1:9"]
    assert main(["record", *source, "--results-curve-key", str(key), "--out", out]) == 2
    assert "--results-curve-key needs --results" in capsys.readouterr().err
    assert main(["record", *source, "--curve-server-key", str(key), "--out", out]) == 2
    assert "bridge.key" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_export_errors_name_the_problem(tmp_path, capsys) -> None:
    with SessionWriter(tmp_path / "s") as writer:
        writer.add_frame(np.zeros((8, 8), "<u2"), {"seq": 0, "timestamp_ns": 0})
    assert main(["export", str(tmp_path / "s")]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "s"), "--tiff", str(tmp_path / "t")]) == 2
    assert "holds no reconstructions" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nowhere"), "--tiff", str(tmp_path / "t")]) == 2
    assert "is not a session" in capsys.readouterr().err
