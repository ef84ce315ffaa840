"""Files across two real replicas on one PostgreSQL database and one S3 bucket (tests/replicas.py): a file uploaded
through A downloads byte-exact through B and is an object in the bucket; deleting it through B removes it for A
and from the bucket; a file the code wrote in a thread through A downloads through B; and the thread's next run,
driven by B, finds that file in /mnt/data although its sandbox was made by A (B carries the files over).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.replicas import client_of, replica, until
from tests.run_helpers import ask
from tests.s3_server import S3Server, new_bucket_name
from tests.scripted_model import ScriptedModel, Turn

pytestmark = [pytest.mark.postgres, pytest.mark.s3, pytest.mark.docker]


@pytest.fixture
def pair(pg_url: str, s3_server: S3Server, model: ScriptedModel,
         tmp_path: Path) -> Iterator[tuple[Server, Server, str]]:
    bucket = new_bucket_name()
    env = s3_server.env(bucket)
    with replica(tmp_path / "a", pg_url, model, **env) as a, replica(tmp_path / "b", pg_url, model, **env) as b:
        yield a, b, bucket


def test_an_upload_through_a_downloads_through_b_and_a_delete_through_b_reaches_a(
        pair: tuple[Server, Server, str], s3_server: S3Server) -> None:
    a, b, bucket = pair
    data = os.urandom(3 << 20)
    uploaded = client_of(a).files.create(file=("random.bin", data), purpose="assistants")
    assert client_of(b).files.content(uploaded.id).read() == data
    assert f"files/{uploaded.id}" in s3_server.keys(bucket)
    assert client_of(b).files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client_of(a).files.content(uploaded.id)
    assert f"files/{uploaded.id}" not in s3_server.keys(bucket)


def code_run(client: OpenAI, assistant: str, thread: str, model: ScriptedModel, code: str) -> str:
    """A run whose model asks for `code` once, then answers; the tool's output as the model saw it."""
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": code}))]), Turn(text="Done."))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert run.status == "completed", run.last_error
    return str(model.requests[-1]["messages"][-1]["content"])


def test_a_file_code_wrote_through_a_downloads_through_b_and_b_finds_it_in_the_thread(
        pair: tuple[Server, Server, str], model: ScriptedModel) -> None:
    a, b, _ = pair
    through_a, through_b = client_of(a), client_of(b)
    model.turns.clear()
    assistant, thread = ask(through_a, "Save a table.", tools=[{"type": "code_interpreter"}])
    code_run(through_a, assistant, thread, model,
             "import os\nos.makedirs('/mnt/data/out', exist_ok=True)\n"
             "open('/mnt/data/out/table.csv', 'w').write('month,sales\\nMay,7\\n')")
    [generated] = [f for f in through_b.files.list(purpose="assistants_output").data if f.filename == "table.csv"]
    assert through_b.files.content(generated.id).read() == b"month,sales\nMay,7\n"
    # The next run on the thread is driven by B, which did not make the thread's sandbox.
    through_b.beta.threads.messages.create(thread, role="user", content="Read it back.")
    seen = code_run(through_b, assistant, thread, model, "print(open('/mnt/data/out/table.csv').read())")
    assert "May,7" in seen
    # A's sandbox, no longer the thread's, goes within a sweep (every lease).
    until(lambda: httpx.get(f"{a.base_url}/health").json()["engine"]["sandboxes"] == 0, 60,
          "A kept the sandbox the thread moved away from")
    # Found again as the same container file, not exported a second time as a new artifact.
    assert [f.filename for f in through_b.files.list(purpose="assistants_output").data].count("table.csv") == 1
