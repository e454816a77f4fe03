"""The guard command, run as a real process: output, --json, exit codes, errors."""

from __future__ import annotations

import json
import os
import re
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


@pytest.mark.slow  # five guard processes: about 9 s
def test_ingest_and_import_take_a_match_policy(tmp_path, reference_files):
    home = tmp_path / "home"
    out = run(home, "ingest", reference_files[2], "--match", "video", "--json", check_code=0)
    ref = json.loads(out.stdout)[0]
    assert ref["match"] == "video"
    run(home, "export", ref["id"], "-o", tmp_path / "ref.json", check_code=0)
    assert json.loads((tmp_path / "ref.json").read_text())["match"] == "video"
    run(home, "import", tmp_path / "ref.json", "--match", "audio", check_code=0)
    listed = json.loads(run(home, "refs", "list", "--json", check_code=0).stdout)
    assert [r["match"] for r in listed] == ["video", "audio"]
    assert run(home, "ingest", reference_files[2], "--match", "smell").returncode == 2


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_live_demo_catches_the_restream_with_its_delay(tmp_path):
    proc = run(tmp_path / "demo-store", "demo", "--live", check_code=0)
    lines = proc.stdout.splitlines()
    (line,) = [line for line in lines if line.startswith("incident ")]
    reported = float(re.search(r"delay (-?[\d.]+) s \(published ([\d.]+) s later\)", line).group(1))
    published = float(re.search(r"published ([\d.]+) s later", line).group(1))
    assert "live reference" in line and "guard demo: live league final" in line
    assert reported == pytest.approx(published, abs=1.0)
    assert any(line.startswith("live reference") and " ended: " in line for line in lines), proc.stdout

    report = json.loads(run(tmp_path / "demo-store", "demo", "--live", "--json", check_code=0).stdout)
    (incident,) = report["incidents"]
    assert report["reference"]["live_status"] == "ended"
    assert incident["reference_id"] == report["reference"]["id"]  # a fresh store: the new feed only
    assert incident["delay"] == pytest.approx(report["publisher_offset_s"], abs=1.0)


# -- hostile import files and control characters in output (issue 16) ----------------------------

def _synthetic_fingerprint(frames: int = 40, fps: float = 4.0):
    """A fingerprint of the default signal with random codes: no video needed."""
    import numpy as np

    from guard.models import Fingerprint

    codes = np.random.default_rng(frames).integers(0, 256, (frames, 32), dtype=np.uint8)
    return Fingerprint("mhash16", 1, 256, fps, frames / fps, np.arange(frames) / fps, codes)


def _export_text(title: str = "Finals game 7") -> str:
    from guard import exchange

    return exchange.dumps(_synthetic_fingerprint(), title).decode()


def _run_measured(home, *args, timeout: float = 60.0) -> tuple[int, str, int]:
    """Run guard; return its exit code, stderr and peak resident memory in bytes. A run that
    outlives ``timeout`` (an import blocked on a FIFO) is killed and fails the test."""
    import signal
    import time

    env = {**os.environ, "GUARD_HOME": str(home)}
    err_path = f"{home}.stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "guard", *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            pytest.fail(f"guard {' '.join(map(str, args))} still running after {timeout} s")
        time.sleep(0.05)
    with open(err_path, encoding="utf-8") as err:
        return proc.returncode, err.read(), usage.ru_maxrss * 1024


@pytest.mark.slow
def test_import_refuses_hostile_files_with_exit_2(tmp_path):
    home = tmp_path / "store"
    valid = _export_text()
    assert valid.count('"duration": 10.0') == 1
    texts = {
        "nan.json": (valid.replace('"duration": 10.0', '"duration": NaN'), "numbers must be finite"),
        "inf.json": (valid.replace('"duration": 10.0', '"duration": Infinity'), "numbers must be finite"),
        "huge.json": (valid.replace('"duration": 10.0', '"duration": 1e308'), "'duration' must be between 0 and"),
        "deep.json": ("[" * 200_000, "JSON nested too deeply"),
        "dict-title.json": (_export_text().replace('"Finals game 7"', '{"a": 1}'), "invalid title (must be a string"),
        "escape-title.json": (_export_text("a\x1b[2J\r\nb"), "invalid title (must not contain control characters)"),
    }
    cases = []
    for name, (text, message) in texts.items():
        (tmp_path / name).write_text(text)
        cases.append((tmp_path / name, message))
    fifo = tmp_path / "feed.json"
    os.mkfifo(fifo)
    (tmp_path / "folder").mkdir()
    cases += [(fifo, "is a FIFO, not a regular file"), ("/dev/zero", "is a character device, not a regular file")]
    for path, message in cases:
        code, stderr, _ = _run_measured(home, "import", path)
        assert code == ERROR and f"error: {path}: " in stderr and message in stderr, (path, stderr)
        assert len(stderr.strip().splitlines()) == 1
    assert "is a directory" in run(home, "import", tmp_path / "folder", check_code=ERROR).stderr
    (tmp_path / "ok.json").write_text(valid)
    proc = run(home, "import", tmp_path / "ok.json", "--title", "a\x1bb", check_code=ERROR)
    assert "must not contain control characters" in proc.stderr
    assert json.loads(run(home, "refs", "list", "--json", check_code=0).stdout) == []
    assert "Finals game 7" in run(home, "import", tmp_path / "ok.json", check_code=0).stdout


def test_import_of_a_gzip_bomb_stops_at_the_limit(tmp_path):
    import gzip

    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(bytes(1024**2)) * 1024)  # 1 GiB of zeros in about 1 MB
    code, stderr, peak = _run_measured(tmp_path / "store", "import", bomb)
    assert code == ERROR and stderr.strip() == f"error: {bomb}: decompresses to more than the limit of {256 * 1024**2} bytes"
    assert peak < 700 * 1024**2, peak  # the limit and the interpreter, never the gigabyte


def test_tables_escape_control_characters(tmp_path):
    import re

    from guard.config import Settings
    from guard.service import Guard

    home = tmp_path / "store"
    title = "Finals\x1b[2J\x1b[31m\r\n   99  forged row\u202e"
    with Guard(Settings(home=home)) as guard:  # stored by an older guard that did not check titles
        ref = guard.register(_synthetic_fingerprint(), title=title, owner="nba\x9b2J", source="test")
        guard.keys.create("rights_holder", "nba\x9b2J", label="bot\x1b]0;owned\x07\r\nx")
    unsafe = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]")
    listed = run(home, "refs", "list", check_code=0).stdout
    assert listed.count("\n") == 1 and not unsafe.search(listed)
    assert "Finals\\x1b[2J\\x1b[31m\\x0d\\x0a   99  fo" in listed and "nba\\x9b2J" in listed
    keys = run(home, "keys", "list", check_code=0).stdout
    assert keys.count("\n") == 1 and not unsafe.search(keys) and "bot\\x1b]0;owned\\x07\\x0d\\x0ax" in keys
    assert json.loads(run(home, "refs", "show", ref.id, check_code=0).stdout)["title"] == title  # JSON keeps it exact
    removed = run(home, "refs", "rm", ref.id, check_code=0).stdout
    assert removed.count("\n") == 1 and not unsafe.search(removed) and "forged row\\u202e" in removed


# -- issue 16: paths that are no media file, clock rounding, ingest warnings ---------------------


@pytest.mark.parametrize("command,kind,message", [
    ("scan", "fifo", "is a FIFO"), ("ingest", "fifo", "is a FIFO"),
    ("scan", "device", "is a character device"), ("ingest", "device", "is a character device"),
    ("ingest", "directory", "is a directory"),  # scan walks a directory's media files instead
])
def test_a_fifo_device_or_directory_is_named_for_what_it_is(tmp_path, command, kind, message):
    path = {"fifo": tmp_path / "pipe.mp4", "device": "/dev/null", "directory": tmp_path / "folder"}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes to it: opening it would hang the command
    elif kind == "directory":
        path.mkdir()
    env = {**os.environ, "GUARD_HOME": str(tmp_path / "store")}
    proc = subprocess.run([sys.executable, "-m", "guard", command, str(path)], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == ERROR, (proc.stdout, proc.stderr)
    assert f"{path}: {message}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("seconds,shown", [
    (119.98, "2:00.0"), (59.96, "1:00.0"), (3599.99, "60:00.0"), (59.94, "0:59.9"), (0.0, "0:00.0"),
])
def test_times_round_before_splitting_minutes(seconds, shown):
    from guard.cli import _clock

    assert _clock(seconds) == shown


def test_ingest_prints_what_will_not_be_matchable(tmp_path):
    import itertools

    from guard_synth import broadcast as synth

    picture = next(iter(media.reference_frames(5, fps=10, start=3.0, seconds=0.1)))
    still = synth.make_video(tmp_path / "still.mp4", itertools.repeat(picture, 80), 10)
    human = run(tmp_path / "store", "ingest", still, check_code=0).stdout
    assert "registered" in human and "warning: its picture barely changes" in human
    (ref,) = json.loads(run(tmp_path / "store", "ingest", still, "--json", check_code=0).stdout)
    assert len(ref["warnings"]) == 1 and "barely changes" in ref["warnings"][0]


@pytest.mark.slow
def test_ingest_reports_footage_another_owner_registered(tmp_path, reference_files):
    """A broadcaster's version of the league's footage: the ingest says whose reference it overlaps."""
    from guard_synth import broadcast as synth

    home = tmp_path / "store"
    run(home, "ingest", reference_files[1], "--title", "League feed", "--owner", "league", check_code=0)
    version = media.make_copy(tmp_path / "tv.mp4", 1, 0.0, 20.0, lambda f: synth.logo(f, "bl", 0.1, seed=3),
                              bit_rate=400_000)
    out = run(home, "ingest", version, "--title", "TV version", "--owner", "broadcaster", check_code=0).stdout
    assert "overlap:" in out and "League feed" in out and "league" in out
    listed = json.loads(run(home, "ingest", version, "--title", "again", "--owner", "league", "--json",
                            check_code=0).stdout)
    assert [o["owner"] for o in listed[0]["overlaps"]] == ["broadcaster"], "the owner's own references are no overlap"
