"""The public surface: what `import tuneloop` offers, and that it stays light."""

import inspect
import subprocess
import sys

import tuneloop


def test_all_lists_every_public_member_and_nothing_else() -> None:
    # Subpackages become attributes once imported anywhere; they are not exports.
    public = {
        name
        for name in dir(tuneloop)
        if not name.startswith("_") and not inspect.ismodule(getattr(tuneloop, name))
    }
    assert set(tuneloop.__all__) - {"__version__"} == public
    for name in tuneloop.__all__:
        assert getattr(tuneloop, name) is not None


def test_import_does_not_pull_in_the_server_stack() -> None:
    code = (
        "import sys, tuneloop; "
        "heavy = [m for m in ('fastapi', 'sqlalchemy', 'scipy', 'uvicorn', 'numpy', 'alembic') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_every_exception_is_a_tuneloop_error() -> None:
    for name in tuneloop.__all__:
        member = getattr(tuneloop, name)
        if isinstance(member, type) and issubclass(member, Exception):
            assert issubclass(member, tuneloop.TuneloopError), name
