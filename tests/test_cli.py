"""The guard command, run as a real process: output, --json, exit codes, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import media

FOUND, ERROR = 1, 2


def run(home, *args, check_code=None):
    env = {**os.environ, "GUARD_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "guard", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)
    if check_code is not None:
        assert proc.returncode == check_code, (proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory, reference_files):
    home = tmp_path_factory.mktemp("cli-store")
    out = run(home, "ingest", reference_files[1], "--title", "Finals game 7", "--owner", "nba",
              "--policy", "cut", "--min-seconds", "6", "--json", check_code=0)
    ref = json.loads(out.stdout)[0]
    return home, ref


def test_ingest_registers_with_policy(cli_store):
    home, ref = cli_store
    assert (ref["title"], ref["owner"], ref["policy"], ref["min_seconds"]) == ("Finals game 7", "nba", "cut", 6.0)
    listed = json.loads(run(home, "refs", "list", "--json", check_code=0).stdout)
    assert [r["id"] for r in listed] == [ref["id"]]
    shown = json.loads(run(home, "refs", "show", ref["id"], check_code=0).stdout)
    assert shown == listed[0]


def test_scan_folder_reports_copies_and_exit_code(cli_store, tmp_path):
    home, ref = cli_store
    folder = tmp_path / "uploads" / "day1"
    folder.mkdir(parents=True)
    media.make_copy(folder / "pirate.mp4", 1, 10.0, 15.0, before=5.0)
    media.make_copy(tmp_path / "uploads" / "clean.mkv", 2, 0.0, 10.0)  # reference 2 is not registered
    (tmp_path / "uploads" / "notes.txt").write_text("not scanned: not a media suffix")

    proc = run(home, "scan", tmp_path / "uploads", "--json", check_code=FOUND)
    report = json.loads(proc.stdout)
    by_name = {os.path.basename(r["path"]): r for r in report["results"]}
    assert sorted(by_name) == ["clean.mkv", "pirate.mp4"] and report["errors"] == []
    assert by_name["clean.mkv"]["matches"] == []
    (match,) = by_name["pirate.mp4"]["matches"]
    assert match["reference_id"] == ref["id"] and match["reference_title"] == "Finals game 7"
    assert match["query_start"] == pytest.approx(5.0, abs=1.0)
    assert match["reference_start"] == pytest.approx(10.0, abs=1.0)

    human = run(home, "scan", folder / "pirate.mp4", check_code=FOUND).stdout
    assert "1 copy found" in human and "Finals game 7" in human
    assert "no copy found" in run(home, "scan", tmp_path / "uploads" / "clean.mkv", check_code=0).stdout


def test_scan_with_a_bad_file_reports_it_and_still_scans_the_rest(cli_store, tmp_path):
    home, _ = cli_store
    good = media.make_copy(tmp_path / "ok.mp4", 3, 0.0, 6.0)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 1000)
    proc = run(home, "scan", good, bad, "--json", check_code=ERROR)
    report = json.loads(proc.stdout)
    assert [r["path"] for r in report["results"]] == [str(good)]
    assert report["errors"][0]["path"] == str(bad) and "cannot be opened" in report["errors"][0]["error"]


@pytest.mark.parametrize("args,message", [
    (("refs", "show", "999"), "reference 999 not found"),
    (("refs", "rm", "999"), "reference 999 not found"),
    (("export", "999", "-o", "x.json"), "reference 999 not found"),
    (("scan", "/nonexistent/file.mp4"), "no such file"),
])
def test_errors_are_one_line_with_error_exit_code(cli_store, args, message):
    home, _ = cli_store
    before = run(home, "refs", "list", "--json").stdout
    proc = run(home, *args, check_code=ERROR)
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert run(home, "refs", "list", "--json").stdout == before


def test_export_import_and_remove(cli_store, tmp_path):
    home, ref = cli_store
    target = tmp_path / "game7.gfp.json.gz"
    run(home, "export", ref["id"], "-o", target, check_code=0)
    other = tmp_path / "platform"
    out = run(other, "import", target, "--owner", "nba", "--policy", "flag", check_code=0).stdout
    assert "Finals game 7" in out
    imported = json.loads(run(other, "refs", "list", "--json", check_code=0).stdout)
    assert len(imported) == 1 and imported[0]["frames"] == ref["frames"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "guard-fingerprint", "format_version": 1}')
    proc = run(other, "import", broken, check_code=ERROR)
    assert str(broken) in proc.stderr and "malformed" in proc.stderr
    run(other, "refs", "rm", imported[0]["id"], check_code=0)
    assert json.loads(run(other, "refs", "list", "--json").stdout) == []


def test_help_documents_exit_codes_and_examples(tmp_path):
    text = run(tmp_path, "scan", "--help", check_code=0).stdout
    assert "Exit code 0: nothing found; 1: a copy was found; 2:" in text
    assert "guard scan upload.mp4" in run(tmp_path, "scan", "--help").stdout
    assert "guard ingest" in run(tmp_path, "--help", check_code=0).stdout


def test_demo_finds_the_copy(tmp_path):
    proc = run(tmp_path / "demo-store", "demo", "--json", check_code=0)
    report = json.loads(proc.stdout)
    (match,) = report["scan"]["matches"]
    expected = report["expected"]
    assert match["query_start"] == pytest.approx(expected["query_start"], abs=1.0)
    assert match["query_end"] == pytest.approx(expected["query_end"], abs=1.0)
    assert match["reference_start"] == pytest.approx(expected["reference_start"], abs=1.0)
    again = json.loads(run(tmp_path / "demo-store", "demo", "--json", check_code=0).stdout)
    assert again["reference"]["id"] == report["reference"]["id"]  # registered once, reused
