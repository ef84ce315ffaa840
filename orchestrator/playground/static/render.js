// How the objects of a conversation look: Markdown text (sanitised, so a reply cannot inject script or load
// anything), its annotations as download links (file_path) and numbered footnotes (file_citation), images,
// and each tool call of a run step with its code, its output and its results.

import { marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.mjs";
import { download, fileUrl } from "./api.js";

// Images in a reply come as image_file parts; a Markdown image could name any host, so none is rendered.
const PURIFY = { FORBID_TAGS: ["img", "style", "form", "input", "button"], FORBID_ATTR: ["style"] };

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child != null));
  return node;
}

export function markdown(text) {
  const box = el("div", { class: "markdown" });
  box.innerHTML = DOMPurify.sanitize(marked.parse(text), PURIFY);
  return box;
}

function basename(path) {
  return decodeURIComponent(path.split("/").pop() || path);
}

function citedName(marker) {
  const name = /†([^】]*)】/.exec(marker);
  return name ? name[1] : null;
}

/**
 * The text with each annotation's span (code-point indices, as the server counts) replaced by a Markdown link
 * to a placeholder the rendered links are then wired to.
 */
function withPlaceholders(value, annotations) {
  const chars = Array.from(value);
  const ordered = [...annotations].sort((a, b) => a.start_index - b.start_index);
  const notes = [];
  const pieces = [];
  let at = 0;
  for (const [n, annotation] of ordered.entries()) {
    if (annotation.start_index < at) continue; // overlapping spans: the first one wins
    const before = chars.slice(at, annotation.start_index).join("");
    pieces.push(before);
    const inLink = (pieces.join("")).endsWith("](");
    if (annotation.type === "file_path") {
      const target = `#pg-file-${n}`;
      pieces.push(inLink ? target : `[${basename(annotation.text)}](${target})`);
    } else {
      notes.push(annotation);
      pieces.push(inLink ? `#pg-cite-${notes.length}` : `[[${notes.length}]](#pg-cite-${notes.length})`);
    }
    at = annotation.end_index;
  }
  pieces.push(chars.slice(at).join(""));
  return { text: pieces.join(""), ordered, notes };
}

/**
 * A text content part: Markdown with its file links and footnotes. `passages(fileId)` gives a passage to
 * quote when an annotation carries none (from the run's file_search results).
 */
export function textPart(part, { id, passages = () => null } = {}) {
  const { value, annotations = [] } = part.text;
  const { text, ordered, notes } = withPlaceholders(value, annotations);
  const box = markdown(text);
  for (const link of box.querySelectorAll('a[href^="#pg-file-"]')) {
    const annotation = ordered[Number(link.getAttribute("href").slice(9))];
    const name = basename(annotation.text);
    link.setAttribute("href", "#");
    link.setAttribute("download", name);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      download(annotation.file_path.file_id, name);
    });
  }
  for (const link of box.querySelectorAll('a[href^="#pg-cite-"]')) {
    const n = link.getAttribute("href").slice(9);
    link.setAttribute("href", `#${id}-note-${n}`);
    link.setAttribute("aria-label", `Source ${n}`);
    link.classList.add("cite");
  }
  if (notes.length) box.append(footnotes(notes, id, passages));
  return box;
}

function footnotes(notes, id, passages) {
  const list = el("ol", { class: "footnotes", "aria-label": "Sources" });
  for (const [index, note] of notes.entries()) {
    const cited = note.file_citation || {};
    const name = citedName(note.text) || cited.file_id;
    const quote = cited.quote || passages(cited.file_id);
    list.append(el("li", { id: `${id}-note-${index + 1}` }, el("cite", { text: name }),
      quote ? el("blockquote", { text: quote }) : null));
  }
  return list;
}

export function image(fileId, label) {
  const img = el("img", { alt: label, class: "figure" });
  fileUrl(fileId).then((url) => { img.src = url; }, () => { img.alt = `${label} (could not be loaded)`; });
  return img;
}

function codeCall(call) {
  const ci = call.code_interpreter || {};
  const box = el("figure", { class: "call", "aria-label": "Code Interpreter" },
    el("figcaption", { text: "Code Interpreter" }), el("pre", { class: "code" }, el("code", { text: ci.input || "" })));
  for (const output of ci.outputs || []) {
    if (output.type === "logs") box.append(el("pre", { class: "output", "aria-label": "Output", text: output.logs }));
    if (output.type === "image") box.append(image(output.image.file_id, "Figure from the code"));
  }
  return box;
}

function searchCall(call) {
  const results = call.file_search?.results || [];
  const names = [...new Set(results.map((result) => result.file_name))];
  return el("figure", { class: "call", "aria-label": "File search" }, el("figcaption", { text: "File search" }),
    el("p", { text: results.length ? `Found passages in ${names.join(", ")}.` : "Searching the files…" }));
}

function functionCall(call) {
  const fn = call.function || {};
  return el("figure", { class: "call", "aria-label": `Function ${fn.name}` },
    el("figcaption", { text: `Function ${fn.name || ""}` }), el("pre", { class: "code" }, el("code", { text: fn.arguments || "" })),
    fn.output != null ? el("pre", { class: "output", "aria-label": "Output", text: fn.output }) : null);
}

/** One tool_calls step: each of its calls, as far as it has come. */
export function toolStep(step) {
  const box = el("div", { class: "step" });
  for (const call of step.step_details.tool_calls || []) {
    if (call.type === "code_interpreter") box.append(codeCall(call));
    else if (call.type === "file_search") box.append(searchCall(call));
    else if (call.type === "function") box.append(functionCall(call));
  }
  return box;
}

/** A step.delta's tool-call fragments added to the step's snapshot (strings appended, outputs added). */
export function mergeStepDelta(step, delta) {
  const calls = step.step_details.tool_calls || (step.step_details.tool_calls = []);
  for (const piece of delta.step_details?.tool_calls || []) {
    const call = calls[piece.index] || (calls[piece.index] = { id: piece.id, type: piece.type });
    if (piece.code_interpreter) {
      const ci = call.code_interpreter || (call.code_interpreter = { input: "", outputs: [] });
      ci.input += piece.code_interpreter.input || "";
      ci.outputs.push(...(piece.code_interpreter.outputs || []));
    }
    if (piece.function) {
      const fn = call.function || (call.function = { name: "", arguments: "", output: null });
      fn.name = piece.function.name || fn.name;
      fn.arguments += piece.function.arguments || "";
    }
    if (piece.file_search) call.file_search = { ...call.file_search, ...piece.file_search };
  }
}
