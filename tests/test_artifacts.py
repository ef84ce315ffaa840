"""Generated files and figures reach the user: detected on the server after every execution, never guessed."""

from __future__ import annotations

import hashlib
import json
import time

import openai
import pytest
from openai import OpenAI

from tests.conftest import EXPORT_LIMIT, Evidence, logs, run

pytestmark = pytest.mark.docker

DIGESTS = """
import hashlib, json, pathlib
def digests(*names):
    print(json.dumps({n: hashlib.sha256(pathlib.Path('/mnt/data', n).read_bytes()).hexdigest() for n in names}))
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big")


def test_every_written_file_becomes_a_container_file_and_a_file(client: OpenAI) -> None:
    uploaded = client.files.create(file=("sales.csv", b"region,amount\nnorth,10\nsouth,32\nnorth,5\n"),
                                   purpose="assistants")
    container = client.containers.create(name="artifacts", file_ids=[uploaded.id]).id
    try:
        code = DIGESTS + """
import os, pandas as pd
from PIL import Image
df = pd.read_csv('/mnt/data/sales.csv')
os.makedirs('/mnt/data/reports/2026', exist_ok=True)
df.groupby('region').sum().to_csv('/mnt/data/reports/2026/summary.csv')
df.to_excel('/mnt/data/table.xlsx', index=False)
Image.new('RGB', (64, 32), (200, 30, 30)).save('/mnt/data/red.png')
digests('reports/2026/summary.csv', 'table.xlsx', 'red.png')
"""
        execution = run(client, container, code)
        assert execution["status"] == "completed", execution
        in_sandbox = json.loads(logs(execution))
        files = {f["path"]: f for f in execution["files"]}
        # The input was not changed, so it is not an artifact; the three outputs are, subfolder included.
        assert sorted(files) == ["/mnt/data/red.png", "/mnt/data/reports/2026/summary.csv", "/mnt/data/table.xlsx"]
        for path, entry in files.items():
            name = path.removeprefix("/mnt/data/")
            exported = client.files.content(entry["file_id"]).read()
            assert sha(exported) == in_sandbox[name] and entry["bytes"] == len(exported)
            meta = client.files.retrieve(entry["file_id"])
            assert (meta.purpose, meta.filename) == ("assistants_output", name.rsplit("/", 1)[-1])
            cfile = client.containers.files.retrieve(entry["container_file_id"], container_id=container)
            assert (cfile.path, cfile.source, cfile.bytes) == (path, "assistant", len(exported))
            assert sha(client.containers.files.content.retrieve(cfile.id, container_id=container).read()) \
                == in_sandbox[name]
        listed = {f.path: f.source for f in client.containers.files.list(container_id=container)}
        assert listed == {"/mnt/data/sales.csv": "user", **{p: "assistant" for p in files}}
    finally:
        client.containers.delete(container)


def test_binary_formats_are_exported_byte_for_byte(client: OpenAI, container: str) -> None:
    code = DIGESTS + """
import zipfile, docx, matplotlib.pyplot as plt
with zipfile.ZipFile('/mnt/data/bundle.zip', 'w') as z:
    z.writestr('a.txt', 'hello' * 1000)
d = docx.Document(); d.add_paragraph('quarterly report'); d.save('/mnt/data/report.docx')
fig = plt.figure(); plt.plot([1, 2, 3]); fig.savefig('/mnt/data/chart.pdf'); plt.close(fig)
open('/mnt/data/noise.bin', 'wb').write(bytes(range(256)) * 100)
digests('bundle.zip', 'report.docx', 'chart.pdf', 'noise.bin')
"""
    execution = run(client, container, code)
    in_sandbox = json.loads(logs(execution))
    exported = {f["path"].removeprefix("/mnt/data/"): client.files.content(f["file_id"]).read()
                for f in execution["files"]}
    assert {name: sha(data) for name, data in exported.items()} == in_sandbox
    assert exported["chart.pdf"].startswith(b"%PDF") and exported["bundle.zip"].startswith(b"PK")


def test_three_figures_in_one_cell_arrive_in_order(client: OpenAI, container: str) -> None:
    code = """
import matplotlib.pyplot as plt
plt.figure(figsize=(2, 2), dpi=100); plt.plot([1, 2])
plt.show()
print('between')
plt.figure(figsize=(5, 2), dpi=100); plt.bar([1, 2], [3, 4])
plt.figure(figsize=(8, 2), dpi=100); plt.scatter([1, 2], [2, 1])
"""
    execution = run(client, container, code)
    kinds = [o["type"] for o in execution["outputs"]]
    assert kinds == ["image", "logs", "image", "image"], execution["outputs"]
    widths = [png_width(client.files.content(o["image"]["file_id"]).read())
              for o in execution["outputs"] if o["type"] == "image"]
    # The inline backend trims figures tightly, so widths are near 200/500/800 px, not equal.
    assert widths == sorted(widths) and widths[1] - widths[0] > 150 and widths[2] - widths[1] > 150, widths
    assert execution["files"] == []  # figures are outputs, not files under /mnt/data


def test_changed_files_are_exported_again_and_deleted_ones_disappear(client: OpenAI, container: str) -> None:
    first = run(client, container, "open('/mnt/data/log.txt', 'w').write('one'); open('/mnt/data/t.txt', 'w')")
    assert {f["path"] for f in first["files"]} == {"/mnt/data/log.txt", "/mnt/data/t.txt"}
    assert run(client, container, "x = 1")["files"] == []
    second = run(client, container, "open('/mnt/data/log.txt', 'a').write(' two'); import os; "
                                    "os.remove('/mnt/data/t.txt')")
    [changed] = second["files"]
    original = next(f for f in first["files"] if f["path"] == "/mnt/data/log.txt")
    assert changed["container_file_id"] == original["container_file_id"]  # same path, same container file
    assert changed["file_id"] != original["file_id"]
    assert client.files.content(changed["file_id"]).read() == b"one two"
    assert client.files.content(original["file_id"]).read() == b"one"  # the earlier output is kept
    assert [f.path for f in client.containers.files.list(container_id=container)] == ["/mnt/data/log.txt"]


def test_changes_are_found_among_more_files_than_the_loops_own_look_covers(client: OpenAI, container: str) -> None:
    # After a cell, the server first looks at up to 32 entries itself and leaves bigger folders to a thread; a
    # change must be found whichever of the two answers.
    made = run(client, container, "for i in range(40): open(f'/mnt/data/f{i:02}.txt', 'w').write(str(i))")
    assert len(made["files"]) == 40
    assert run(client, container, "x = 1")["files"] == []
    [last] = run(client, container, "open('/mnt/data/f39.txt', 'a').write('!')")["files"]
    assert last["path"] == "/mnt/data/f39.txt"
    assert run(client, container, "import os\nfor i in range(35): os.remove(f'/mnt/data/f{i:02}.txt')")["files"] == []
    assert run(client, container, "x = 2")["files"] == []
    [edited] = run(client, container, "open('/mnt/data/f36.txt', 'w').write('36!')")["files"]
    assert edited["path"] == "/mnt/data/f36.txt" and client.files.content(edited["file_id"]).read() == b"36!"
    [renamed] = run(client, container, "import os; os.rename('/mnt/data/f37.txt', '/mnt/data/g37.txt')")["files"]
    assert renamed["path"] == "/mnt/data/g37.txt"
    assert sorted(f.path for f in client.containers.files.list(container_id=container)) == [
        "/mnt/data/f35.txt", "/mnt/data/f36.txt", "/mnt/data/f38.txt", "/mnt/data/f39.txt", "/mnt/data/g37.txt"]


def test_files_written_before_an_error_are_still_exported(client: OpenAI, container: str) -> None:
    execution = run(client, container, "open('/mnt/data/partial.csv', 'w').write('a\\n1\\n'); 1/0")
    assert execution["status"] == "failed"
    assert [f["path"] for f in execution["files"]] == ["/mnt/data/partial.csv"]


def test_a_file_too_large_to_export_is_reported_and_still_downloadable(client: OpenAI, container: str) -> None:
    size = EXPORT_LIMIT + 1000
    execution = run(client, container, f"open('/mnt/data/big.bin', 'wb').write(b'x' * {size})")
    [entry] = execution["files"]
    assert entry["file_id"] is None and "export limit" in entry["error"] and entry["bytes"] == size
    content = client.containers.files.content.retrieve(entry["container_file_id"], container_id=container).read()
    assert len(content) == size


@pytest.mark.attack("hostile files: symlinks, FIFOs, a file swapped for a link")
def test_links_fifos_and_swaps_in_mnt_data_never_reach_the_host(client: OpenAI, container: str,
                                                                evidence: Evidence) -> None:
    code = """
import os
os.symlink('/etc/hostname', '/mnt/data/hostname-link')
os.symlink('/etc', '/mnt/data/etc-link')
os.mkfifo('/mnt/data/pipe')
open('/mnt/data/real.txt', 'w').write('fine')
"""
    execution = run(client, container, code, timeout=30)
    assert execution["status"] == "completed"
    assert [f["path"] for f in execution["files"]] == ["/mnt/data/real.txt"]
    [record] = client.containers.files.list(container_id=container).data
    # Swap the registered file for a link to a host path after the execution has been collected.
    run(client, container, "import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 0.5; rm /mnt/data/real.txt; "
                           "ln -s /etc/shadow /mnt/data/real.txt'])")
    time.sleep(1.5)
    with pytest.raises(openai.NotFoundError):
        client.containers.files.content.retrieve(record.id, container_id=container).read()
    assert logs(run(client, container, "print(os.path.islink('/mnt/data/real.txt'))")) == "True\n"
    evidence("only the regular file exported; the swapped link is a 404")
