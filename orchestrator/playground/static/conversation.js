// One thread on the page: its messages and run steps in order, a run streamed in as its events come (no
// reload), the run's status in words, a Cancel button while it is live, and a form for the caller's
// function outputs when the run requires action.

import { api, listAll, stream } from "./api.js";
import { el, image, markdown, mergeStepDelta, textPart, toolStep } from "./render.js";

const INCLUDE = "step_details.tool_calls[*].file_search.results[*].content";
const LIVE = new Set(["queued", "in_progress", "cancelling", "requires_action"]);

function statusWords(run) {
  switch (run.status) {
    case "queued": return "Run queued.";
    case "in_progress": return "Running…";
    case "requires_action": return "The run is waiting for your function outputs.";
    case "cancelling": return "Cancelling…";
    case "cancelled": return "Run cancelled.";
    case "completed": return "Run completed.";
    case "expired": return "Run expired: no outputs came in time.";
    case "incomplete": return `Run incomplete: ${run.incomplete_details?.reason || "stopped early"}.`;
    case "failed": return `Run failed: ${run.last_error?.message || "no reason given"}`;
    default: return `Run ${run.status}.`;
  }
}

export class Conversation {
  constructor({ log, status, cancel, onLive }) {
    Object.assign(this, { log, status, cancel, onLive });
    this.threadId = null;
    this.run = null;
    this.nodes = new Map(); // message and step id -> { object, node }
    this.passages = new Map(); // file id -> a passage file_search returned from it
    cancel.addEventListener("click", () => this.cancelRun());
  }

  clear(threadId = null) {
    this.threadId = threadId;
    this.run = null;
    this.cancelAsked = false;
    this.nodes.clear();
    this.log.replaceChildren();
    this.status.textContent = "";
    this.setLive(false);
  }

  setLive(live) {
    this.cancel.hidden = !live;
    this.onLive(live);
  }

  /** The thread as stored: messages in order, each run's tool steps before its reply. Returns its runs. */
  async load(threadId) {
    this.clear(threadId);
    const [messages, runs] = await Promise.all([
      listAll(`/threads/${threadId}/messages`), listAll(`/threads/${threadId}/runs`)]);
    const byId = new Map(messages.map((message) => [message.id, message]));
    const shown = new Set();
    for (const message of messages) {
      if (shown.has(message.id)) continue;
      const run = message.run_id && runs.find((r) => r.id === message.run_id);
      if (!run || shown.has(run.id)) {
        this.showMessage(message);
        shown.add(message.id);
        continue;
      }
      shown.add(run.id);
      const steps = await listAll(`/threads/${threadId}/runs/${run.id}/steps`, { "include[]": INCLUDE });
      for (const step of steps) {
        if (step.type === "tool_calls") this.showStep(step);
        const id = step.step_details.message_creation?.message_id;
        if (id && byId.has(id) && !shown.has(id)) {
          this.showMessage(byId.get(id));
          shown.add(id);
        }
      }
    }
    const last = runs[runs.length - 1];
    if (last) this.showRun(last);
    return runs;
  }

  async send(text, assistantId, onThread) {
    if (!this.threadId) {
      const thread = await api("/threads", { method: "POST", json: {} });
      this.threadId = thread.id;
      onThread(thread.id);
    }
    this.showMessage({ id: `local-${Date.now()}`, role: "user", content: [{ type: "text", text: { value: text, annotations: [] } }] });
    const query = new URLSearchParams({ "include[]": INCLUDE });
    // Until the new run is created, Cancel must not reach the thread's previous run.
    this.run = null;
    this.cancelAsked = false;
    this.setLive(true);
    this.status.textContent = "Starting the run…";
    await this.follow(`/threads/${this.threadId}/runs?${query}`, {
      assistant_id: assistantId, additional_messages: [{ role: "user", content: text }] });
  }

  async follow(path, body) {
    try {
      await stream(path, body, (name, data) => this.apply(name, data));
    } finally {
      // A stream that broke off mid-run leaves the run live: Cancel stays offered.
      this.setLive(Boolean(this.run && LIVE.has(this.run.status)));
    }
  }

  apply(name, data) {
    if (name === "error") {
      this.status.textContent = `Error: ${data?.error?.message || data?.message || "the stream failed"}`;
    } else if (name.startsWith("thread.run.step.")) {
      this.applyStep(name, data);
    } else if (name.startsWith("thread.message.")) {
      this.applyMessage(name, data);
    } else if (name.startsWith("thread.run.")) {
      this.showRun(data);
    }
  }

  applyStep(name, data) {
    if (data.object === "thread.run.step.delta") {
      const entry = this.nodes.get(data.id);
      if (!entry) return;
      mergeStepDelta(entry.object, data.delta);
      this.showStep(entry.object);
    } else if (data.type === "tool_calls") {
      this.showStep(data);
    }
  }

  applyMessage(name, data) {
    if (data.object === "thread.message.delta") {
      const entry = this.nodes.get(data.id);
      if (!entry) return;
      for (const piece of data.delta.content || []) {
        const part = entry.object.content[piece.index] || (entry.object.content[piece.index] = { ...piece, text: { value: "", annotations: [] } });
        if (piece.type === "text") part.text.value += piece.text?.value || "";
      }
      this.showMessage(entry.object, true);
    } else {
      this.showMessage(data, name !== "thread.message.completed");
    }
  }

  place(id, object, node) {
    const entry = this.nodes.get(id);
    if (entry) entry.node.replaceWith(node);
    else this.log.append(node);
    this.nodes.set(id, { object, node });
  }

  showStep(step) {
    for (const call of step.step_details.tool_calls || []) {
      for (const result of call.file_search?.results || []) {
        const passage = result.content?.[0]?.text;
        if (passage && !this.passages.has(result.file_id)) this.passages.set(result.file_id, passage);
      }
    }
    this.place(step.id, step, toolStep(step));
  }

  /** A message; while `streaming`, its text is shown as it has come so far, without annotations. */
  showMessage(message, streaming = false) {
    const who = message.role === "user" ? "You" : "Assistant";
    const node = el("article", { class: `message ${message.role}`, "aria-label": `${who} said` },
      el("h3", { text: who }));
    for (const part of message.content || []) {
      if (part.type === "text") {
        node.append(streaming ? markdown(part.text.value)
          : textPart(part, { id: message.id, passages: (fileId) => this.passages.get(fileId) }));
      } else if (part.type === "image_file") {
        node.append(image(part.image_file.file_id, "Figure from the assistant"));
      }
    }
    this.place(message.id, structuredClone(message), node);
  }

  showRun(run) {
    this.run = run;
    this.status.textContent = statusWords(run);
    if (run.status === "requires_action") this.askOutputs(run);
    this.setLive(LIVE.has(run.status));
    // Cancel pressed while the run was being created is sent as soon as the run has an id.
    if (this.cancelAsked && LIVE.has(run.status) && run.status !== "cancelling") {
      this.cancelAsked = false;
      this.cancelRun();
    }
  }

  askOutputs(run) {
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    const form = el("form", { class: "outputs", "aria-label": "Function outputs" });
    for (const call of calls) {
      const id = `output-${call.id}`;
      form.append(el("label", { for: id, text: `Output of ${call.function.name}(${call.function.arguments})` }),
        el("textarea", { id, rows: 2 }));
    }
    form.append(el("button", { type: "submit", text: "Submit outputs" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const outputs = calls.map((call) => ({ tool_call_id: call.id, output: form.querySelector(`#output-${CSS.escape(call.id)}`).value }));
      form.remove();
      this.setLive(true);
      this.follow(`/threads/${run.thread_id}/runs/${run.id}/submit_tool_outputs`, { tool_outputs: outputs })
        .catch((error) => { this.status.textContent = `Error: ${error.message}`; });
    });
    this.log.append(form);
    form.querySelector("textarea").focus();
  }

  async cancelRun() {
    if (!this.run) {
      this.cancelAsked = true;
      this.status.textContent = "Cancelling…";
      return;
    }
    try {
      this.showRun(await api(`/threads/${this.run.thread_id}/runs/${this.run.id}/cancel`, { method: "POST", json: {} }));
    } catch (error) {
      this.status.textContent = `Error: ${error.message}`;
    }
  }
}
