// The page's only way out: the server's public /v1 API, with the key the user typed (kept in this tab's
// session storage only), JSON in and out, Server-Sent Events read from a POST, and files fetched as blobs
// (an <img> or a download link cannot send the Authorization header itself).

const KEY = "toolshed.apiKey";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = body?.error?.message || message;
  } catch {
    // not JSON: the status line says enough
  }
  return new ApiError(response.status, message);
}

/** A /v1 call: `json` is sent as the body, `form` as multipart; the answer's JSON is returned. */
export async function api(path, { method = "GET", json, form } = {}) {
  const init = { method, headers: headers(json ? { "Content-Type": "application/json" } : {}) };
  if (json) init.body = JSON.stringify(json);
  if (form) init.body = form;
  const response = await fetch(`/v1${path}`, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** Every item of a list endpoint, oldest first (paged by `after`). */
export async function listAll(path, query = {}) {
  const items = [];
  let after = null;
  for (;;) {
    const params = new URLSearchParams({ ...query, limit: "100", order: "asc" });
    if (after) params.set("after", after);
    const page = await api(`${path}?${params}`);
    items.push(...page.data);
    if (!page.has_more || page.data.length === 0) return items;
    after = page.data[page.data.length - 1].id;
  }
}

function frames(buffer) {
  const parts = buffer.split("\n\n");
  return { complete: parts.slice(0, -1), rest: parts[parts.length - 1] };
}

function parseFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  const text = data.join("\n");
  if (text === "[DONE]" || text === "") return { event, data: null };
  return { event, data: JSON.parse(text) };
}

/** POST `json` to a streaming endpoint and hand each event to `onEvent(name, data)` until the stream ends. */
export async function stream(path, json, onEvent) {
  const response = await fetch(`/v1${path}`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...json, stream: true }),
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = (buffer + value).replace(/\r\n/g, "\n");
    const { complete, rest } = frames(buffer);
    buffer = rest;
    for (const frame of complete) {
      const { event, data } = parseFrame(frame);
      if (event === "done") return;
      onEvent(event, data);
    }
  }
}

const blobs = new Map();

/** An object URL for a stored file's bytes, fetched once per page. */
export function fileUrl(fileId) {
  if (!blobs.has(fileId)) {
    blobs.set(fileId, fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, { headers: headers() })
      .then(async (response) => {
        if (!response.ok) throw await failure(response);
        return URL.createObjectURL(await response.blob());
      })
      .catch((error) => {
        blobs.delete(fileId); // a failed fetch may succeed later (e.g. once a key is given)
        throw error;
      }));
  }
  return blobs.get(fileId);
}

/** Save a stored file under `name`, as a download of its exact bytes. */
export async function download(fileId, name) {
  const link = document.createElement("a");
  link.href = await fileUrl(fileId);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
}
