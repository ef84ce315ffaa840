"""The seed flows as code written for openai==1.2.3 (November 2023) runs them, for tests/test_assistants_v1.py.

Run by that SDK's own Python (build/openai-v1, `make test` installs it): `python flows.py <flow> '<json args>'`
with OPENAI_BASE_URL and OPENAI_API_KEY set. Prints one JSON object of what the SDK parsed, class names
included, so the test can see that 1.2.3's own models took each answer as the right type."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import openai
from openai import OpenAI

assert openai.__version__ == "1.2.3", openai.__version__
# 1.2.3 reads no OPENAI_BASE_URL of its own: the seeds' code pointed at Toolshed by base_url, as then.
client = OpenAI(base_url=os.environ["OPENAI_BASE_URL"], max_retries=0, timeout=120)


def upload(path: str) -> Any:
    """The seeds' `files.create(file=open(...), purpose="assistants")`, with the file closed after."""
    with open(path, "rb") as file:
        return client.files.create(file=file, purpose="assistants")


def wait(thread_id: str, run_id: str) -> Any:
    """The cookbook's loop: poll while the run is queued or in progress."""
    deadline = time.monotonic() + 300
    run = client.beta.threads.runs.retrieve(thread_id=thread_id, run_id=run_id)
    while run.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, run
        time.sleep(0.3)
        run = client.beta.threads.runs.retrieve(thread_id=thread_id, run_id=run_id)
    return run


def text_of(message: Any) -> dict[str, Any]:
    part = message.content[0]
    return {"class": type(part).__name__, "value": part.text.value, "file_ids": message.file_ids,
            "annotations": [{"class": type(a).__name__, "type": a.type, "text": a.text, "start": a.start_index,
                             "end": a.end_index,
                             **({"file_id": a.file_citation.file_id, "quote": a.file_citation.quote}
                                if a.type == "file_citation" else {"file_id": a.file_path.file_id})}
                            for a in part.text.annotations]}


def call_of(call: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {"class": type(call).__name__, "type": call.type, "id": call.id}
    if call.type == "code_interpreter":
        shown["input"] = call.code_interpreter.input
        shown["outputs"] = [{"class": type(o).__name__, "type": o.type,
                             **({"logs": o.logs} if o.type == "logs" else {"file_id": o.image.file_id})}
                            for o in call.code_interpreter.outputs]
    elif call.type == "function":
        shown.update(name=call.function.name, arguments=call.function.arguments, output=call.function.output)
    return shown


def steps_of(thread_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every step, oldest first, through 1.2.3's auto-pagination (it asks again until a page is empty)."""
    steps = list(client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc", limit=1))
    return [{"class": type(s).__name__, "type": s.type, "status": s.status,
             "details": type(s.step_details).__name__,
             "calls": [call_of(c) for c in getattr(s.step_details, "tool_calls", [])]} for s in steps]


def math_tutor(_: dict[str, Any]) -> dict[str, Any]:
    assistant = client.beta.assistants.create(
        name="Math Tutor", instructions="You are a personal math tutor. Write and run code to answer math questions.",
        tools=[{"type": "code_interpreter"}], model="gpt-4-1106-preview")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="I need to solve the equation `3x + 11 = 14`. Can you help me?")
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id,
                                          instructions="Please address the user as Jane Doe.")
    run = wait(thread.id, run.id)
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc", after=message.id)
    return {"assistant": assistant.id, "assistant_class": type(assistant).__name__, "thread": thread.id,
            "run": run.id, "status": run.status, "instructions": run.instructions,
            "run_tools": [t.type for t in run.tools],
            "answers": [text_of(m) for m in messages.data], "steps": steps_of(thread.id, run.id)}


def update(args: dict[str, Any]) -> dict[str, Any]:
    uploaded = upload(args["path"])
    assistant = client.beta.assistants.update(args["assistant"], tools=[{"type": "code_interpreter"},
                                                                        {"type": "retrieval"}],
                                              file_ids=[uploaded.id])
    listed = list(client.beta.assistants.files.list(assistant_id=assistant.id, limit=1))
    return {"file": uploaded.id, "file_status": uploaded.status, "tools": [t.type for t in assistant.tools],
            "tool_classes": [type(t).__name__ for t in assistant.tools], "file_ids": assistant.file_ids,
            "listed": [(f.id, f.assistant_id, type(f).__name__) for f in listed],
            "retrieved": client.beta.assistants.retrieve(assistant.id).file_ids}


def create_and_run(args: dict[str, Any]) -> dict[str, Any]:
    run = client.beta.threads.create_and_run(assistant_id=args["assistant"], thread={
        "messages": [{"role": "user", "content": args["content"]}]})
    run = wait(run.thread_id, run.id)
    messages = client.beta.threads.messages.list(thread_id=run.thread_id)
    return {"status": run.status, "thread": run.thread_id, "file_ids": run.file_ids,
            "answers": [text_of(m) for m in messages.data if m.role == "assistant"]}


def retrieval(args: dict[str, Any]) -> dict[str, Any]:
    uploaded = upload(args["path"])
    assistant = client.beta.assistants.create(instructions="Answer from the handbook.", model="gpt-4-1106-preview",
                                              tools=[{"type": "retrieval"}], file_ids=[uploaded.id])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": args["question"]}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    run = wait(thread.id, run.id)
    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    return {"file": uploaded.id, "assistant": assistant.id, "thread": thread.id, "run": run.id,
            "status": run.status, "last_error": str(run.last_error), "file_ids": run.file_ids,
            "answer": text_of(answer), "steps": steps_of(thread.id, run.id),
            "files": [f.id for f in client.beta.assistants.files.list(assistant_id=assistant.id)]}


def message_files(args: dict[str, Any]) -> dict[str, Any]:
    uploaded = upload(args["path"])
    assistant = client.beta.assistants.create(model="gpt-4-1106-preview", tools=[{"type": "code_interpreter"}],
                                              instructions="You are a data analyst.")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread_id=thread.id, role="user", content=args["content"],
                                                  file_ids=[uploaded.id])
    listed = client.beta.threads.messages.files.list(message.id, thread_id=thread.id)
    one = client.beta.threads.messages.files.retrieve(uploaded.id, thread_id=thread.id, message_id=message.id)
    run = wait(thread.id, client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id).id)
    answer = text_of(client.beta.threads.messages.list(thread_id=thread.id).data[0])
    links = [a["file_id"] for a in answer["annotations"] if a["type"] == "file_path"]
    return {"file": uploaded.id, "thread": thread.id, "message_file_ids": message.file_ids,
            "listed": [(f.id, f.message_id, type(f).__name__) for f in listed], "retrieved": one.id,
            "status": run.status, "answer": answer,
            "downloads": [client.files.retrieve_content(file_id) for file_id in links],
            "bytes": [client.files.content(file_id).content.decode() for file_id in links]}


def quiz(_: dict[str, Any]) -> dict[str, Any]:
    display_quiz = {"name": "display_quiz", "description": "Displays a quiz to the student and returns the answers.",
                    "parameters": {"type": "object", "properties": {"title": {"type": "string"}},
                                   "required": ["title"]}}
    assistant = client.beta.assistants.create(name="Quiz", model="gpt-4-1106-preview", instructions="Quiz the student.",
                                              tools=[{"type": "function", "function": display_quiz}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Make a quiz with one question."}])
    run = wait(thread.id, client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id).id)
    waiting = run.status
    [call] = run.required_action.submit_tool_outputs.tool_calls
    submitted = client.beta.threads.runs.submit_tool_outputs(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "I don't know."}])
    run = wait(thread.id, run.id)
    return {"waiting": waiting, "call": [call.function.name, call.function.arguments], "submitted": submitted.status,
            "status": run.status, "steps": steps_of(thread.id, run.id),
            "answer": text_of(client.beta.threads.messages.list(thread_id=thread.id).data[0])}


if __name__ == "__main__":
    flow = {f.__name__: f for f in (math_tutor, update, create_and_run, retrieval, message_files, quiz)}[sys.argv[1]]
    print(json.dumps(flow(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})))
