"""Every train script is up to date with tools/make_train_scripts.py and its flags parse."""
import glob
import os
import shlex

import pytest

from e2e_common import ROOT

SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "train_scripts", "*", "*.sh")))


def train_kd_argv(path):
    text = open(path).read()
    body = text[text.index("ARGS=(\n") + len("ARGS=(\n"):text.index("\n)\n")]
    body = body.replace('"$DATA"', "data/x").replace("${MASK_TOKENS:-", "").replace(".pth}", ".pth")
    assert '"${ARGS[@]}" "$@" --preflight-only' in text and 'train_kd.py "${ARGS[@]}" "$@"' in text
    return shlex.split(body)


def test_scripts_match_the_recipe_table(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("mts", os.path.join(ROOT, "tools", "make_train_scripts.py"))
    mts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mts)
    written = mts.main(str(tmp_path))
    for path, text in written.items():
        committed = os.path.join(ROOT, "train_scripts", os.path.relpath(path, str(tmp_path)))
        assert os.path.isfile(committed), "run python tools/make_train_scripts.py (%s missing)" % committed
        assert open(committed).read() == text, "run python tools/make_train_scripts.py (%s stale)" % committed


@pytest.mark.parametrize("path", SCRIPTS, ids=[os.path.relpath(p, ROOT) for p in SCRIPTS])
def test_script_flags_parse(path):
    import train_kd
    args = train_kd.parse_args(train_kd_argv(path))
    assert args.batch_size == 16 and args.max_iterations >= 10000


def test_quickstart_exists():
    assert os.path.isfile(os.path.join(ROOT, "train_scripts", "quickstart.sh"))
