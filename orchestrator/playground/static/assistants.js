// The assistant list and its form: create, edit (Name, Instructions, Model, the two hosted-tool switches,
// files to attach) and delete, all through /v1/assistants, /v1/files and /v1/vector_stores.

import { api, listAll } from "./api.js";
import { el } from "./render.js";

export class Assistants {
  constructor({ list, form, models, attached, onChoose }) {
    Object.assign(this, { list, form, models, attached, onChoose });
    this.all = [];
    this.current = null;
    this.touched = false; // set once the user works on the form: loading must not then switch it
    this.fields = form.elements;
  }

  async loadModels() {
    const listed = await api("/models");
    this.models.replaceChildren(...listed.data.map((model) => el("option", { value: model.id })));
    this.defaultModel = listed.data[0]?.id || "";
    if (!this.current && !this.fields.model.value) this.fields.model.value = this.defaultModel;
  }

  async refresh() {
    this.all = (await listAll("/assistants")).reverse(); // newest first, as they were made
    this.list.replaceChildren(...this.all.map((assistant) => {
      const button = el("button", { type: "button", "data-id": assistant.id, "aria-pressed": String(assistant.id === this.current?.id),
        text: assistant.name || assistant.id });
      button.addEventListener("click", () => this.choose(assistant));
      return el("li", {}, button);
    }));
  }

  choose(assistant) {
    this.current = assistant;
    const tools = new Set((assistant?.tools || []).map((tool) => tool.type));
    this.fields.name.value = assistant?.name || "";
    this.fields.instructions.value = assistant?.instructions || "";
    this.fields.model.value = assistant?.model || this.defaultModel || "";
    this.fields.code_interpreter.checked = tools.has("code_interpreter");
    this.fields.file_search.checked = tools.has("file_search");
    this.fields.files.value = "";
    this.fields.delete.disabled = !assistant;
    this.showAttached(assistant);
    for (const button of this.list.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.id === assistant?.id));
    }
    this.onChoose(assistant);
  }

  chooseId(id) {
    const found = this.all.find((assistant) => assistant.id === id);
    if (found) this.choose(found);
  }

  async showAttached(assistant) {
    const ids = assistant?.tool_resources?.code_interpreter?.file_ids || [];
    const stores = assistant?.tool_resources?.file_search?.vector_store_ids || [];
    const names = await Promise.all(ids.map((id) => api(`/files/${id}`).then((f) => f.filename, () => id)));
    this.attached.replaceChildren(...names.map((name) => el("li", { text: `${name} (Code Interpreter)` })),
      ...stores.map((id) => el("li", { text: `vector store ${id} (File search)` })));
  }

  async upload(files) {
    const uploaded = [];
    for (const file of files) {
      const form = new FormData();
      form.append("purpose", "assistants");
      form.append("file", file, file.name);
      uploaded.push((await api("/files", { method: "POST", form })).id);
    }
    return uploaded;
  }

  /** The tool_resources after adding `fileIds`: to Code Interpreter, and to the file_search store (made if none). */
  async resources(fileIds, codeInterpreter, fileSearch) {
    const had = this.current?.tool_resources || {};
    const codeFiles = [...(had.code_interpreter?.file_ids || [])];
    let stores = [...(had.file_search?.vector_store_ids || [])];
    if (codeInterpreter) codeFiles.push(...fileIds);
    if (fileSearch && fileIds.length) {
      if (stores.length) {
        await api(`/vector_stores/${stores[0]}/file_batches`, { method: "POST", json: { file_ids: fileIds } });
      } else {
        const name = this.fields.name.value || "playground";
        stores = [(await api("/vector_stores", { method: "POST", json: { name, file_ids: fileIds } })).id];
      }
    }
    return { code_interpreter: { file_ids: codeFiles }, file_search: { vector_store_ids: stores } };
  }

  async save() {
    const codeInterpreter = this.fields.code_interpreter.checked;
    const fileSearch = this.fields.file_search.checked;
    const fileIds = await this.upload(this.fields.files.files);
    const body = {
      name: this.fields.name.value || null,
      instructions: this.fields.instructions.value || null,
      model: this.fields.model.value,
      tools: [...(codeInterpreter ? [{ type: "code_interpreter" }] : []), ...(fileSearch ? [{ type: "file_search" }] : []),
        ...(this.current?.tools || []).filter((tool) => tool.type === "function")],
      tool_resources: await this.resources(fileIds, codeInterpreter, fileSearch),
    };
    const path = this.current ? `/assistants/${this.current.id}` : "/assistants";
    const saved = await api(path, { method: "POST", json: body });
    await this.refresh();
    this.choose(saved);
    return saved;
  }

  async remove() {
    if (!this.current) return;
    await api(`/assistants/${this.current.id}`, { method: "DELETE" });
    this.choose(null);
    await this.refresh();
  }
}
