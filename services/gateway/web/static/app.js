// Cogwheel's pages: the playground, live predictions and the dashboard. Plain JavaScript, same origin only.
"use strict";

(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function config(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  async function call(method, url, body, isForm) {
    const headers = { "Accept": "application/json", "X-CSRF-Token": csrf };
    if (body !== undefined && !isForm) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : (isForm ? body : JSON.stringify(body)),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    return { ok: response.ok, status: response.status, data };
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // Output rendering, by what the value is.

  const IMAGE = /\.(png|jpe?g|gif|webp|bmp|svg)(\?|$)/i;
  const AUDIO = /\.(wav|mp3|ogg|flac|m4a|aac)(\?|$)/i;
  const VIDEO = /\.(mp4|webm|mov|mkv)(\?|$)/i;

  function isFileUrl(value) {
    return typeof value === "string" && (value.startsWith(location.origin + "/v1/") || value.startsWith("data:"));
  }

  function renderFile(url) {
    const name = decodeURIComponent(url.split("/").pop().split("?")[0] || "file");
    if (IMAGE.test(url) || url.startsWith("data:image/")) {
      return el("figure", { class: "media" }, el("img", { src: url, alt: name, loading: "lazy" }),
        el("figcaption", {}, el("a", { href: url, download: name, text: name })));
    }
    if (AUDIO.test(url)) return el("figure", { class: "media" }, el("audio", { src: url, controls: "" }), el("figcaption", { text: name }));
    if (VIDEO.test(url)) return el("figure", { class: "media" }, el("video", { src: url, controls: "" }), el("figcaption", { text: name }));
    return el("p", {}, el("a", { href: url, download: name, class: "download", text: "Download " + name }));
  }

  function renderValue(value, kind) {
    if (value === null || value === undefined) return el("p", { class: "muted", text: "No output yet." });
    if (Array.isArray(value)) {
      if (kind === "stream" && value.every((item) => typeof item === "string" && !isFileUrl(item))) {
        return el("div", { class: "text-output", text: value.join("") });
      }
      if (value.every((item) => typeof item === "string" && !isFileUrl(item))) {
        return el("div", { class: "text-output", text: value.join(kind === "iterator" ? "" : "\n") });
      }
      const list = el("div", { class: "output-list" });
      value.forEach((item) => list.append(renderValue(item, "value")));
      return list;
    }
    if (isFileUrl(value)) return renderFile(value);
    if (typeof value === "string") return el("div", { class: "text-output", text: value });
    if (typeof value === "object") {
      const box = el("div", {});
      box.append(el("pre", { class: "json", text: JSON.stringify(value, null, 2) }));
      for (const item of Object.values(value)) if (isFileUrl(item)) box.append(renderFile(item));
      return box;
    }
    return el("div", { class: "text-output", text: String(value) });
  }

  function formatSeconds(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
    return seconds < 60 ? seconds.toFixed(2) + " s" : Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
  }

  // A prediction shown live: polled until it ends, its stream read as it grows.

  class LivePrediction {
    constructor(nodes, outputKind, terminal) {
      this.nodes = nodes;
      this.outputKind = outputKind;
      this.terminal = new Set(terminal);
      this.streamText = null;
      this.source = null;
      this.timer = null;
      this.ticker = null;
      this.prediction = null;
    }

    show(prediction) {
      this.prediction = prediction;
      const { status, output, logs, error } = prediction;
      const ended = this.terminal.has(status);
      const statusNode = this.nodes.status;
      statusNode.textContent = status;
      statusNode.dataset.status = status;
      if (this.nodes.logs) this.nodes.logs.textContent = logs || "";
      if (this.nodes.cancel) this.nodes.cancel.hidden = ended;
      if (this.nodes.error) {
        this.nodes.error.hidden = !error;
        this.nodes.error.textContent = error ? "Error: " + error : "";
      }
      if (prediction.data_removed) {
        this.nodes.output.replaceChildren(el("p", { class: "muted", text: "The output data was deleted." }));
      } else if (this.streamText !== null && !ended) {
        // The stream is ahead of the polled output: keep showing what it delivered.
        if (!this.streamText) this.nodes.output.replaceChildren(el("p", { class: "muted working", text: "Running…" }));
      } else if (output !== null && output !== undefined) {
        this.streamText = null;
        this.nodes.output.replaceChildren(renderValue(output, this.outputKind));
      } else if (ended) {
        this.nodes.output.replaceChildren(el("p", { class: "muted", text: status === "succeeded" ? "No output." : "No output (" + status + ")." }));
      } else {
        this.nodes.output.replaceChildren(el("p", { class: "muted working", text: status === "starting" ? "Starting…" : "Running…" }));
      }
      this.updateTime();
      if (ended) this.stop();
    }

    updateTime() {
      const p = this.prediction;
      if (!p || !this.nodes.runtime) return;
      if (p.metrics && p.metrics.predict_time !== undefined) {
        this.nodes.runtime.textContent = "Ran for " + formatSeconds(p.metrics.predict_time);
      } else if (!this.terminal.has(p.status)) {
        const since = Date.parse(p.started_at || p.created_at);
        this.nodes.runtime.textContent = (p.started_at ? "Running for " : "Waiting for ") + formatSeconds((Date.now() - since) / 1000);
      } else {
        this.nodes.runtime.textContent = "";
      }
    }

    follow(prediction) {
      this.stop();
      this.streamText = null;
      this.show(prediction);
      if (this.terminal.has(prediction.status)) return;
      const stream = prediction.urls && prediction.urls.stream;
      if (stream && window.EventSource) {
        // Use the URL exactly as the prediction gives it: it may carry its own access token.
        this.source = new EventSource(stream);
        this.streamText = "";
        this.source.addEventListener("output", (event) => {
          if (this.terminal.has(this.prediction.status)) return;
          this.streamText += event.data;
          this.nodes.output.replaceChildren(el("div", { class: "text-output streaming", text: this.streamText }));
        });
        this.source.addEventListener("done", () => this.closeStream());
        this.source.addEventListener("error", () => this.closeStream());
      }
      const poll = async () => {
        const answer = await call("GET", "/web/api/predictions/" + encodeURIComponent(prediction.id));
        if (answer.ok) this.show(answer.data);
        if (this.prediction && !this.terminal.has(this.prediction.status)) this.timer = setTimeout(poll, 700);
      };
      this.timer = setTimeout(poll, 400);
      this.ticker = setInterval(() => this.updateTime(), 100);
    }

    closeStream() {
      if (this.source) { this.source.close(); this.source = null; }
    }

    stop() {
      this.closeStream();
      if (this.timer) { clearTimeout(this.timer); this.timer = null; }
      if (this.ticker) { clearInterval(this.ticker); this.ticker = null; }
    }
  }

  async function cancelPrediction(id, button) {
    button.disabled = true;
    const answer = await call("POST", "/web/api/predictions/" + encodeURIComponent(id) + "/cancel", {});
    button.disabled = false;
    return answer;
  }

  // The playground.

  function fieldValue(field) {
    const node = document.getElementById("input-" + field.name);
    if (!node) return { skip: true };
    if (field.kind === "checkbox") return { value: node.checked };
    if (field.kind === "file" || (field.kind === "list" && field.files)) {
      const files = Array.from(node.files || []);
      if (files.length) return { files };
      const url = document.getElementById("input-" + field.name + "-url");
      return url && url.value.trim() ? { value: url.value.trim() } : { skip: true };
    }
    const raw = node.value;
    if (raw.trim() === "") return { skip: true };
    if (field.kind === "number" || field.kind === "range" || (field.kind === "select" && field.type !== "string")) {
      const number = Number(raw);
      return { value: raw.trim() !== "" && !isNaN(number) ? number : raw };
    }
    if (field.kind === "list") {
      const items = raw.split("\n").map((line) => line.trim()).filter((line) => line !== "");
      const numeric = field.item_type === "integer" || field.item_type === "number";
      return { value: items.map((item) => (numeric && !isNaN(Number(item)) ? Number(item) : item)) };
    }
    if (field.kind === "json") {
      try { return { value: JSON.parse(raw) }; } catch (_) { return { value: raw }; }
    }
    return { value: raw };
  }

  function snippetInput(fields) {
    const input = {};
    for (const field of fields) {
      const got = fieldValue(field);
      if (got.skip) continue;
      if (field.kind === "secret") {
        // Never print a secret on the page: the snippet names what to put there instead.
        input[field.name] = "<your " + field.name + ">";
        continue;
      }
      input[field.name] = got.files ? (field.kind === "list" ? got.files.map(() => "https://example.com/your-file") : "https://example.com/your-file") : got.value;
    }
    return input;
  }

  function pythonLiteral(value, indent) {
    const pad = " ".repeat(indent);
    if (value === true) return "True";
    if (value === false) return "False";
    if (value === null) return "None";
    if (Array.isArray(value)) return "[" + value.map((item) => pythonLiteral(item, indent)).join(", ") + "]";
    if (typeof value === "object") {
      const entries = Object.entries(value).map(([k, v]) => pad + "    " + JSON.stringify(k) + ": " + pythonLiteral(v, indent + 4));
      return entries.length ? "{\n" + entries.join(",\n") + ",\n" + pad + "}" : "{}";
    }
    return JSON.stringify(value);
  }

  function renderSnippets(settings) {
    const input = snippetInput(settings.fields);
    const ref = settings.latest ? settings.model : settings.model + ":" + settings.version;
    const json = JSON.stringify(input, null, 2);
    const python = 'import replicate\n\n# REPLICATE_BASE_URL=' + settings.origin + ' and REPLICATE_API_TOKEN in the environment\n' +
      'output = replicate.run(\n    "' + ref + '",\n    input=' + pythonLiteral(input, 4) + ",\n)\nprint(output)\n";
    const javascript = 'import Replicate from "replicate";\n\nconst replicate = new Replicate({ baseUrl: "' + settings.origin + '/v1" });\n' +
      "const output = await replicate.run(\"" + ref + "\", {\n  input: " + json.replace(/\n/g, "\n  ") + ",\n});\nconsole.log(output);\n";
    const body = JSON.stringify({ version: settings.model + ":" + settings.version, input }).replace(/'/g, "'\\''");
    const curl = "curl -s -X POST \\\n  -H \"Authorization: Bearer $REPLICATE_API_TOKEN\" \\\n  -H 'Content-Type: application/json' \\\n  -H 'Prefer: wait' \\\n  -d '" +
      body + "' \\\n  " + settings.origin + "/v1/predictions\n";
    document.getElementById("snippet-python").textContent = python;
    document.getElementById("snippet-javascript").textContent = javascript;
    document.getElementById("snippet-curl").textContent = curl;
  }

  function setupTabs() {
    const tabs = Array.from(document.querySelectorAll('[role="tablist"] button[role="tab"]'));
    const select = (tab) => {
      for (const other of tabs) {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        other.tabIndex = selected ? 0 : -1;
        document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
      }
    };
    tabs.forEach((tab, index) => {
      tab.tabIndex = index === 0 ? 0 : -1;
      tab.addEventListener("click", () => select(tab));
      tab.addEventListener("keydown", (event) => {
        const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        const next = tabs[(index + step + tabs.length) % tabs.length];
        select(next);
        next.focus();
      });
    });
  }

  function clearErrors(form) {
    form.querySelectorAll(".field-error").forEach((node) => { node.hidden = true; node.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
    const banner = document.getElementById("form-error");
    banner.hidden = true;
    banner.textContent = "";
  }

  function fieldOfProblem(problem, names) {
    const field = String(problem.field || "").replace(/^input\.?/, "").split(".")[0];
    if (field && names.has(field)) return field;
    const required = /^(\S+) is required$/.exec(problem.description || "");
    if (required && names.has(required[1])) return required[1];
    const extra = /^Additional property (\S+) is not allowed$/.exec(problem.description || "");
    if (extra && names.has(extra[1])) return extra[1];
    return null;
  }

  function showProblems(form, answer, fields) {
    const names = new Set(fields.map((field) => field.name));
    const problems = (answer.data && answer.data.invalid_fields) || [];
    const unplaced = [];
    let first = null;
    for (const problem of problems) {
      const name = fieldOfProblem(problem, names);
      if (!name) { unplaced.push(problem.description); continue; }
      const node = document.getElementById("error-" + name);
      node.textContent = (node.textContent ? node.textContent + " " : "") + problem.description;
      node.hidden = false;
      const control = document.getElementById("input-" + name);
      control.setAttribute("aria-invalid", "true");
      first = first || control;
    }
    if (!problems.length || unplaced.length) {
      const banner = document.getElementById("form-error");
      const detail = unplaced.length ? unplaced.join("; ") : (answer.data && (answer.data.detail || answer.data.title)) || "The request failed (" + answer.status + ").";
      banner.textContent = detail;
      banner.hidden = false;
    }
    if (first) first.focus();
  }

  async function uploadFiles(files) {
    const urls = [];
    for (const file of files) {
      const form = new FormData();
      form.append("content", file, file.name);
      const answer = await call("POST", "/web/api/files", form, true);
      if (!answer.ok) throw answer;
      urls.push(answer.data.urls.get);
    }
    return urls;
  }

  function setupPlayground() {
    const settings = config("playground-config");
    const form = document.getElementById("playground");
    if (!settings || !form) return;
    setupTabs();
    for (const field of settings.fields) {
      if (field.kind !== "range") continue;
      const slider = document.getElementById("input-" + field.name + "-range");
      const box = document.getElementById("input-" + field.name);
      slider.addEventListener("input", () => { box.value = slider.value; renderSnippets(settings); });
      box.addEventListener("input", () => { if (box.value !== "") slider.value = box.value; });
    }
    form.addEventListener("input", () => renderSnippets(settings));
    form.addEventListener("change", () => renderSnippets(settings));
    form.addEventListener("reset", () => setTimeout(() => { clearErrors(form); renderSnippets(settings); }, 0));
    renderSnippets(settings);

    const live = new LivePrediction({
      status: document.getElementById("status"),
      output: document.getElementById("output"),
      logs: document.getElementById("logs"),
      runtime: document.getElementById("runtime"),
      cancel: document.getElementById("cancel"),
    }, settings.output, settings.terminal);
    const permalink = document.getElementById("permalink");
    const runButton = document.getElementById("run");
    document.getElementById("cancel").addEventListener("click", async (event) => {
      if (!live.prediction) return;
      const answer = await cancelPrediction(live.prediction.id, event.currentTarget);
      if (answer.ok) live.show(answer.data);
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      runButton.disabled = true;
      runButton.textContent = "Running…";
      try {
        const input = {};
        for (const field of settings.fields) {
          const got = fieldValue(field);
          if (got.skip) continue;
          if (got.files) {
            const urls = await uploadFiles(got.files);
            input[field.name] = field.kind === "list" ? urls : urls[0];
          } else {
            input[field.name] = got.value;
          }
        }
        const url = "/web/api/models/" + settings.model + "/predictions";
        const answer = await call("POST", url, { input, version: settings.version });
        if (!answer.ok) { showProblems(form, answer, settings.fields); return; }
        permalink.href = "/p/" + encodeURIComponent(answer.data.id);
        permalink.hidden = false;
        live.follow(answer.data);
      } catch (failure) {
        showProblems(form, failure && failure.status ? failure : { status: 0, data: { detail: String(failure) } }, settings.fields);
      } finally {
        runButton.disabled = false;
        runButton.textContent = "Run";
      }
    });
  }

  // The prediction page.

  function setupPredictionPage() {
    const settings = config("prediction-config");
    if (!settings) return;
    document.querySelectorAll("dd.value[data-json]").forEach((node) => {
      node.replaceChildren(renderValue(JSON.parse(node.dataset.json), "value"));
    });
    const model = settings.prediction.urls && settings.prediction.urls.stream ? "stream" : "value";
    const live = new LivePrediction({
      status: document.getElementById("status"),
      output: document.getElementById("output"),
      logs: document.getElementById("logs"),
      runtime: document.getElementById("runtime"),
      cancel: settings.owner ? document.getElementById("cancel") : null,
      error: document.getElementById("prediction-error"),
    }, model, settings.terminal);
    const refreshTimings = () => {
      const p = live.prediction;
      document.getElementById("started-at").textContent = localTime(p.started_at);
      document.getElementById("completed-at").textContent = localTime(p.completed_at);
      document.getElementById("predict-time").textContent = p.metrics && p.metrics.predict_time !== undefined ? p.metrics.predict_time.toFixed(2) + " s" : "—";
    };
    const show = live.show.bind(live);
    live.show = (prediction) => { show(prediction); refreshTimings(); };
    live.follow(settings.prediction);

    const cancel = document.getElementById("cancel");
    if (cancel && settings.owner) {
      cancel.addEventListener("click", async () => {
        const answer = await cancelPrediction(settings.prediction.id, cancel);
        if (answer.ok) live.show(answer.data);
      });
    }
    const share = document.getElementById("share");
    if (share) {
      share.addEventListener("click", async () => {
        const shared = share.getAttribute("aria-pressed") !== "true";
        const answer = await call("POST", "/web/api/predictions/" + encodeURIComponent(settings.prediction.id) + "/share", { shared });
        if (!answer.ok) return;
        share.setAttribute("aria-pressed", String(answer.data.shared));
        share.textContent = answer.data.shared ? "Stop sharing" : "Share";
        document.getElementById("share-note").hidden = !answer.data.shared;
      });
    }
    const remove = document.getElementById("remove-data");
    if (remove) {
      remove.addEventListener("click", async () => {
        if (!window.confirm("Delete this prediction's input, output files and logs? This cannot be undone.")) return;
        const answer = await call("POST", "/web/api/predictions/" + encodeURIComponent(settings.prediction.id) + "/remove", {});
        if (answer.ok) {
          remove.disabled = true;
          live.show(answer.data);
          document.querySelectorAll("dl.inputs dd.value").forEach((node) => node.replaceChildren(el("span", { class: "muted", text: "removed" })));
        } else {
          const box = document.getElementById("prediction-error");
          box.textContent = (answer.data && answer.data.detail) || "Could not delete the data.";
          box.hidden = false;
        }
      });
    }
  }

  // The dashboard: rows refresh while anything runs; running ones can be canceled.

  function setupDashboard() {
    const settings = config("dashboard-config");
    const body = document.getElementById("prediction-rows");
    if (!settings || !body) return;
    const terminal = new Set(settings.terminal);

    const row = (p) => {
      const actions = el("td", { class: "row-actions" });
      if (!terminal.has(p.status)) {
        const button = el("button", { type: "button", class: "danger small", text: "Cancel", "aria-label": "Cancel " + p.id });
        button.addEventListener("click", async () => { await cancelPrediction(p.id, button); refresh(); });
        actions.append(button);
      }
      const time = p.metrics && p.metrics.predict_time !== undefined ? formatSeconds(p.metrics.predict_time) : "—";
      // data-label: each cell's column name, shown beside it where a phone stacks the row (app.css).
      return el("tr", { "data-id": p.id },
        el("td", { "data-label": "Prediction" }, el("a", { href: "/p/" + encodeURIComponent(p.id) }, el("code", { text: p.id.slice(0, 10) }))),
        el("td", { "data-label": "Model" }, el("a", { href: "/" + p.model, text: p.model })),
        el("td", { "data-label": "Source", text: p.source }),
        el("td", { "data-label": "Status" }, el("span", { class: "status", "data-status": p.status, text: p.status })),
        el("td", { "data-label": "Run time", text: time }),
        el("td", { "data-label": "Created" }, el("time", { datetime: p.created_at, text: p.created_at })),
        actions);
    };

    let timer = null;
    async function refresh() {
      if (timer) { clearTimeout(timer); timer = null; }
      const answer = await call("GET", "/web/api/predictions");
      if (answer.ok) {
        const rows = answer.data.results.map(row);
        if (rows.length) { body.replaceChildren(...rows); localTimes(body); }
      }
      timer = setTimeout(refresh, answer.ok && answer.data.results.some((p) => !terminal.has(p.status)) ? 1000 : 4000);
    }
    refresh();
  }

  // Timestamps in the reader's own time zone and format.
  function localTime(value) {
    const when = value ? new Date(value) : null;
    return when && !isNaN(when) ? when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" }) : "—";
  }

  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach((node) => {
      const when = new Date(node.getAttribute("datetime"));
      if (isNaN(when)) return;
      node.title = node.getAttribute("datetime");
      node.textContent = localTime(node.getAttribute("datetime"));
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes();
    setupPlayground();
    setupPredictionPage();
    setupDashboard();
  });
})();
