// The page's wiring: the API key field, the address (/playground or /playground/threads/{id}), the assistant
// form, and the conversation. Every failure is said in words in the page's alert line.

import { ApiError, apiKey, setApiKey } from "./api.js";
import { Assistants } from "./assistants.js";
import { Conversation } from "./conversation.js";

const $ = (id) => document.getElementById(id);
const notice = $("notice");

function say(error) {
  notice.textContent = error instanceof ApiError && error.status === 401
    ? "This server needs an API key: enter it in the API key field."
    : `Error: ${error.message}`;
  if (error instanceof ApiError && error.status === 401) $("api-key").focus();
}

function threadInAddress() {
  const match = /^\/playground\/threads\/([^/]+)$/.exec(location.pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

const conversation = new Conversation({
  log: $("conversation"), status: $("run-status"), cancel: $("cancel"),
  onLive: (live) => { $("run").disabled = live; },
});
const assistants = new Assistants({
  list: $("assistant-list"), form: $("assistant-form"), models: $("model-list"), attached: $("attached"),
  onChoose: (assistant) => { $("chosen").textContent = assistant ? `with ${assistant.name || assistant.id}` : ""; },
});

async function showThread() {
  const threadId = threadInAddress();
  if (!threadId) {
    conversation.clear();
    return;
  }
  const runs = await conversation.load(threadId);
  const last = runs[runs.length - 1];
  if (last) assistants.chooseId(last.assistant_id);
}

async function start() {
  notice.textContent = "";
  try {
    await assistants.loadModels();
    await assistants.refresh();
    // The newest assistant is offered, unless the user has already started on the form while this loaded.
    if (!assistants.current && !assistants.touched && assistants.all.length) assistants.choose(assistants.all[0]);
    await showThread();
  } catch (error) {
    say(error);
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey($("api-key").value.trim());
  start();
});

$("assistant-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  notice.textContent = "";
  const button = $("save");
  button.disabled = true;
  try {
    const saved = await assistants.save();
    notice.textContent = `Saved ${saved.name || saved.id}.`;
  } catch (error) {
    say(error);
  } finally {
    button.disabled = false;
  }
});

$("assistant-form").addEventListener("input", () => { assistants.touched = true; });

$("new-assistant").addEventListener("click", () => {
  assistants.touched = true;
  assistants.choose(null);
  $("name").focus();
});

$("delete").addEventListener("click", () => assistants.remove().catch(say));

$("new-thread").addEventListener("click", () => {
  history.pushState({}, "", "/playground");
  conversation.clear();
  $("message").focus();
});

$("message-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  if (!assistants.current) {
    notice.textContent = "Save or choose an assistant first.";
    return;
  }
  notice.textContent = "";
  $("message").value = "";
  try {
    await conversation.send(text, assistants.current.id, (threadId) => {
      // The address names the thread from its first run on, so it can be shared and reloaded.
      history.pushState({}, "", `/playground/threads/${encodeURIComponent(threadId)}`);
    });
  } catch (error) {
    say(error);
  }
});

$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("message-form").requestSubmit();
});

window.addEventListener("popstate", () => showThread().catch(say));

$("api-key").value = apiKey();
start();
