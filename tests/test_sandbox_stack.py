"""The analysis stack a data analyst reaches for is in the sandbox, imported only when a cell asks for it."""

from __future__ import annotations

import pytest
from openai import OpenAI

from tests.conftest import logs, run

pytestmark = pytest.mark.docker

STACK = ["numpy", "pandas", "scipy", "sklearn", "statsmodels.api", "pyarrow", "polars", "duckdb", "plotly.express",
         "bs4", "pypdf", "matplotlib", "seaborn", "sympy", "openpyxl", "docx", "pptx", "reportlab"]


def test_the_analysis_stack_imports_and_works(client: OpenAI, container: str) -> None:
    imports = run(client, container, f"import importlib\nfor name in {STACK!r}:\n    importlib.import_module(name)\n"
                                     "print('ok')")
    assert imports["status"] == "completed" and logs(imports) == "ok\n", imports
    parquet = run(client, container, """
import pandas as pd, polars as pl, duckdb, statsmodels.formula.api as smf
frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [2.1, 3.9, 6.2, 7.8]})
frame.to_parquet("/mnt/data/points.parquet")
back = pd.read_parquet("/mnt/data/points.parquet")
[(total,)] = duckdb.sql("SELECT SUM(y) FROM '/mnt/data/points.parquet'").fetchall()
slope = smf.ols("y ~ x", data=back).fit().params["x"]
print(len(pl.read_parquet("/mnt/data/points.parquet")), round(total, 1), round(slope, 2))
""")
    assert logs(parquet) == "4 20.0 1.94\n", parquet  # least squares: slope 1.94
    pip = run(client, container, "import subprocess, sys\n"
                                 "print(subprocess.run([sys.executable, '-m', 'pip', '--version'], "
                                 "capture_output=True, text=True).stdout.split()[0])")
    assert logs(pip) == "pip\n", pip


def test_a_fresh_kernel_has_not_imported_the_heavy_packages(client: OpenAI, container: str) -> None:
    # pyarrow is not on the list: pandas 3 imports it with itself when it is installed.
    loaded = run(client, container, "import sys\nprint(sorted(m for m in ('polars', 'duckdb', 'statsmodels', "
                                    "'plotly', 'sklearn', 'bs4', 'pypdf') if m in sys.modules))")
    assert logs(loaded) == "[]\n"


def test_cells_keep_their_asserts_and_docstrings_while_the_libraries_drop_theirs(client: OpenAI,
                                                                                   container: str) -> None:
    # The kernel runs under -OO to keep installed docstrings out of memory; a model's own code must not notice.
    check = run(client, container, '''
import json, subprocess, sys
def documented():
    """kept"""
try:
    assert False, "asserts run"
except AssertionError as error:
    caught = str(error)
child = subprocess.run([sys.executable, "-c", "assert False"], capture_output=True).returncode
print(sys.flags.optimize, json.dumps.__doc__ is None, documented.__doc__, caught, child)
''')
    assert logs(check) == "2 True kept asserts run 1\n", check
    module = run(client, container, """
open("/mnt/data/helper.py", "w").write('def check():\\n    "helper kept"\\n    assert False, "module asserts run"\\n')
import helper
try:
    helper.check()
except AssertionError as error:
    print(helper.check.__doc__, error)
""")
    assert logs(module) == "helper kept module asserts run\n", module
    future = run(client, container, "from __future__ import annotations\ndef typed(x: Undefined) -> None: ...")
    assert future["status"] == "completed", future
    later = run(client, container, "def later(x: AlsoUndefined) -> None: ...\nprint(later.__annotations__['x'])")
    assert logs(later) == "AlsoUndefined\n", later
