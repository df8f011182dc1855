"""A run dir has one owner at a time: a .lock with the owner's pid, refused while it lives, taken over after."""

import os
import subprocess
import sys
import time

from tests.conftest import REPO, assert_one_error, run_main


def check_args(data_dir, run):
    return [f"data.root={data_dir / 'phantom'}", "data.image_size=64", f"hydra.run.dir={run}"]


def test_a_run_dir_owned_by_a_live_process_is_refused(data_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(f"{owner.pid}\n")
        before = {p.name: p.read_bytes() for p in run.iterdir()}
        result = run_main("tumorseg.check", *check_args(data_dir, run))
        assert_one_error(result, f"is in use by process {owner.pid}")
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    finally:
        owner.kill()
        owner.wait()
    # its owner is dead now: the lock is taken over, and released at the end
    result = run_main("tumorseg.check", *check_args(data_dir, run))
    assert result.returncode == 0, result.stderr[-1000:]
    assert not (run / ".lock").exists()


def test_two_launches_in_one_second_get_two_run_dirs(data_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [sys.executable, "-m", "tumorseg.check", f"data.root={data_dir / 'phantom'}", "data.image_size=64",
            f"paths.log_dir={tmp_path}"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    started = time.time()
    assert all(p.wait(timeout=120) == 0 for p in procs), [p.stderr.read()[-500:] for p in procs]
    runs = [d for d in (tmp_path / "check").glob("*/*") if d.is_dir()]
    assert len(runs) == 2, runs
    assert time.time() - started < 120
