// The approval page of `luminaguard serve`. Plain script, no build step.
// Every string that comes from a run is set with textContent (never as HTML). The token
// is kept in sessionStorage and sent in the Authorization header (never a cookie), so
// another site cannot make this browser act on the server (CSRF).
"use strict";

(function () {
  const KEY = "luminaguard.token";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(KEY);
  let approvals = []; // pending requests, as GET /v1/approvals lists them
  let shown = null; // the request whose card is open
  let runId = null; // the run drawn
  let stream = null; // the AbortController of the event stream
  let lastEvent = null; // the id of the last event read (to resume after a reconnect)
  const timers = {};

  function later(name, fn, ms) { // coalesce bursts of events into one refresh
    if (timers[name]) return;
    timers[name] = setTimeout(() => { timers[name] = null; fn(); }, ms);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // What a run put in a text, shown as the server's `visible` shows it: control and format
  // characters (bidi overrides, zero-width characters) escaped, never obeyed. Newlines and
  // tabs stay: a command or JSON may span lines.
  const INVISIBLE = /[^\n\t\P{Cc}]|[\p{Cf}\p{Cs}\p{Cn}\p{Zl}\p{Zp}]/gu;
  function visible(text) {
    return String(text).replace(INVISIBLE, (c) => {
      const code = c.codePointAt(0);
      return code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0")
        : code < 0x10000 ? "\\u" + code.toString(16).padStart(4, "0")
        : "\\U" + code.toString(16).padStart(8, "0");
    });
  }

  function part(text) {
    return encodeURIComponent(text);
  }

  class Unauthorized extends Error {}

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + token };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (response.status === 401) throw new Unauthorized((data && data.error) || "unauthorized");
    return { status: response.status, ok: response.ok, data };
  }

  // --- signing in and out ------------------------------------------------------------
  function showLogin(message) {
    if (stream) stream.abort();
    stream = null;
    token = null;
    sessionStorage.removeItem(KEY);
    $("app").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    $("connection").textContent = "signed out";
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  async function signIn(candidate) {
    token = candidate;
    try {
      const reply = await api("GET", "/v1/approvals");
      if (!reply.ok) {
        showLogin((reply.data && reply.data.error) || "refused: " + reply.status);
        return;
      }
    } catch (e) {
      showLogin(e instanceof Unauthorized ? "that token is not valid here" : String(e));
      return;
    }
    sessionStorage.setItem(KEY, candidate);
    $("login").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    await Promise.all([loadApprovals(), loadRuns()]);
    follow();
    route();
  }

  // A link to one card (what a notification sends): #/approvals/RUN/STEP.
  const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
  function route() {
    const parts = location.hash.split("/");
    if (parts.length !== 4 || parts[0] !== "#" || parts[1] !== "approvals" || !token) return;
    let run, step;
    try {
      [run, step] = [decodeURIComponent(parts[2]), decodeURIComponent(parts[3])];
    } catch (e) {
      return; // not a link we made
    }
    if (NAME.test(run) && NAME.test(step)) openCard(run, step);
  }

  // --- the event stream (fetch + ReadableStream: EventSource cannot send headers) ---
  async function follow() {
    if (stream) stream.abort();
    const controller = new AbortController();
    stream = controller;
    let wait = 500;
    while (stream === controller && token) {
      try {
        const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
        if (lastEvent !== null) headers["Last-Event-ID"] = lastEvent;
        const response = await fetch("/v1/events", {
          headers, cache: "no-store", credentials: "omit", signal: controller.signal,
        });
        if (response.status === 401) { showLogin("the token is no longer valid"); return; }
        if (!response.ok || !response.body) throw new Error("event stream: " + response.status);
        $("connection").textContent = "live";
        wait = 500;
        // read again once the stream is open: what changed before it is in the answers,
        // what changes after it comes as events (the server counts from the request)
        loadApprovals(); loadRuns(); if (runId) loadRun(runId);
        await read(response.body);
      } catch (e) {
        if (controller.signal.aborted) return;
      }
      if (stream !== controller) return;
      $("connection").textContent = "reconnecting";
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 10000);
    }
  }

  async function read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let frame = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (frame.data !== undefined) dispatch(frame);
          frame = {};
        } else if (!line.startsWith(":")) { // a line starting with ':' is a comment
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          frame[name] = name === "data" && frame.data !== undefined ? frame.data + "\n" + value : value;
        }
      }
    }
  }

  function dispatch(frame) {
    if (frame.id !== undefined) lastEvent = frame.id;
    let event;
    try { event = JSON.parse(frame.data); } catch (e) { return; }
    const kind = String(event.event || frame.event || "");
    if (kind.startsWith("approval.") || kind.startsWith("step.")) later("approvals", loadApprovals, 100);
    if (kind.startsWith("run.")) later("runs", loadRuns, 100);
    if (runId === null && kind.startsWith("run.")) runId = event.run_id;
    if (event.run_id === runId) later("run", () => loadRun(runId), 100);
    if (shown && event.run_id === shown.run_id && event.step_id === shown.step_id) {
      later("card", () => openCard(shown.run_id, shown.step_id, true), 100);
    }
  }

  // --- the queue -----------------------------------------------------------------------
  async function loadApprovals() {
    const reply = await guarded(() => api("GET", "/v1/approvals"));
    if (!reply || !reply.ok) return;
    approvals = reply.data.approvals;
    const list = $("queue");
    clear(list);
    for (const request of approvals) {
      const button = el("button", null, "request");
      button.type = "button";
      button.dataset.run = request.run_id;
      button.dataset.step = request.step_id;
      if (shown && shown.run_id === request.run_id && shown.step_id === request.step_id) {
        button.classList.add("selected");
      }
      button.append(el("strong", request.run_id + " / " + request.step_id));
      button.append(el("span", (request.card && request.card.action) || "", "sub"));
      button.append(el("span", "", "sub left"));
      button.querySelector(".left").dataset.expires = request.expires;
      button.addEventListener("click", () => openCard(request.run_id, request.step_id));
      const item = el("li");
      item.append(button);
      list.append(item);
    }
    $("queue-count").textContent = String(approvals.length);
    $("queue-empty").hidden = approvals.length > 0;
    tick();
  }

  function left(expires) {
    const seconds = Math.floor(expires - Date.now() / 1000);
    if (seconds <= 0) return "expired";
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
    if (d) return d + "d " + h + "h left";
    const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s left";
  }

  function tick() {
    for (const node of document.querySelectorAll("#queue .left")) {
      node.textContent = left(Number(node.dataset.expires));
    }
    if (shown && shown.state === "pending") $("card-time").textContent = left(shown.expires);
  }

  // --- the card ------------------------------------------------------------------------
  async function openCard(run, step, refreshing) {
    const reply = await guarded(() => api("GET", "/v1/approvals/" + part(run) + "/" + part(step)));
    if (!reply) return;
    if (!reply.ok) {
      if (!refreshing) message((reply.data && reply.data.error) || "no card", "error");
      return;
    }
    const request = reply.data;
    const same = shown && shown.run_id === run && shown.step_id === step
      && shown.action_hash === request.action_hash;
    shown = request;
    const card = request.card || {};
    $("card").hidden = false;
    $("card-run").textContent = request.run_id;
    $("card-step").textContent = request.step_id;
    $("card-agent").textContent = card.agent || "";
    $("card-action").textContent = card.action || "";
    $("card-rule").textContent = (card.policy || "") + " / " + (card.rule || "")
      + (card.rule_source ? " (" + card.rule_source + ")" : "");
    $("card-reason").textContent = card.reason || "";
    $("card-approvers").textContent = (card.approvers && card.approvers.length)
      ? card.approvers.join(", ") : "anyone with an approver's token";
    const several = Number(request.min_approvals) > 1;
    $("card-approvals-label").hidden = !several;
    $("card-approvals").hidden = !several;
    $("card-approvals").textContent = several ? approvalsSoFar(request) : "";
    $("card-state").textContent = request.state
      + (request.approver ? " by " + request.approver : "")
      + (request.reason ? ": " + request.reason : "");
    $("card-time").textContent = request.state === "pending" ? left(request.expires) : "";
    $("card-hash").textContent = request.action_hash;
    const args = card.arguments || {};
    const command = card.kind !== "call" && typeof args.command === "string";
    $("card-command-box").hidden = !command;
    $("card-command").textContent = command ? visible(args.command) : "";
    $("card-arguments").textContent = visible(JSON.stringify(args, null, 2));
    showDiff(card.diff);
    const pending = request.state === "pending";
    $("approve").disabled = !pending;
    $("deny").disabled = !pending;
    if (!same) { $("decision-reason").value = ""; if (!refreshing) message("", ""); }
    for (const button of document.querySelectorAll("#queue button")) {
      button.classList.toggle("selected", button.dataset.run === run && button.dataset.step === step);
    }
    if (runId !== run) { runId = run; loadRun(run); markRuns(); }
  }

  function approvalsSoFar(request) { // "1 of 2 (alice)"
    const names = Array.isArray(request.approved_by) ? request.approved_by.map(String) : [];
    return names.length + " of " + request.min_approvals
      + (names.length ? " (" + names.join(", ") + ")" : "");
  }

  function showDiff(diff) {
    const box = $("card-diff");
    clear(box);
    $("card-diff-box").hidden = typeof diff !== "string";
    if (typeof diff !== "string") return;
    const lines = diff.split("\n");
    if (lines[lines.length - 1] === "") lines.pop(); // the newline ending the last line
    for (const line of lines) {
      let kind = "";
      if (line.startsWith("+") && !line.startsWith("+++")) kind = "add";
      else if (line.startsWith("-") && !line.startsWith("---")) kind = "del";
      else if (line.startsWith("@@")) kind = "hunk";
      box.append(el("span", line + "\n", kind));
    }
  }

  function message(text, kind) {
    const node = $("decision-message");
    node.textContent = text;
    node.className = kind;
  }

  async function decide(verdict) {
    if (!shown) return;
    const reason = $("decision-reason").value.trim();
    if (verdict === "deny" && !reason) {
      message("A deny needs a reason.", "error");
      $("decision-reason").focus();
      return;
    }
    const request = shown;
    const path = "/v1/approvals/" + part(request.run_id) + "/" + part(request.step_id) + "/" + verdict;
    const body = { action_hash: request.action_hash, reason: reason || null };
    const reply = await guarded(() => api("POST", path, body));
    if (!reply) return;
    if (reply.ok && reply.data.verdict === "counted") { // the request stays pending
      message(request.step_id + " approval by " + reply.data.by + " counted: "
        + reply.data.needed + " more needed", "ok");
    } else if (reply.ok) {
      message(request.step_id + " " + reply.data.verdict + " by " + reply.data.by, "ok");
    } else {
      message((reply.data && reply.data.error) || "refused: " + reply.status, "error");
    }
    await Promise.all([loadApprovals(), openCard(request.run_id, request.step_id, true)]);
  }

  // --- runs and the DAG ----------------------------------------------------------------
  async function loadRuns() {
    const reply = await guarded(() => api("GET", "/v1/runs"));
    if (!reply || !reply.ok) return;
    const runs = reply.data.runs;
    const list = $("runs");
    clear(list);
    for (const run of runs.slice().reverse()) {
      const button = el("button", null, "run");
      button.type = "button";
      button.dataset.run = run.id;
      button.append(el("strong", run.id));
      button.append(el("span", run.workload + ": " + run.state, "sub"));
      button.addEventListener("click", () => { runId = run.id; markRuns(); loadRun(run.id); });
      const item = el("li");
      item.append(button);
      list.append(item);
    }
    if (runId === null && runs.length) runId = runs[runs.length - 1].id;
    markRuns();
    if (runId !== null) loadRun(runId);
  }

  function markRuns() {
    for (const button of document.querySelectorAll("#runs button")) {
      button.classList.toggle("selected", button.dataset.run === runId);
    }
  }

  async function loadRun(id) {
    const reply = await guarded(() => api("GET", "/v1/runs/" + part(id)));
    if (!reply || !reply.ok || id !== runId) return;
    const run = reply.data;
    $("run").hidden = false;
    $("run-id").textContent = run.id;
    $("run-state").textContent = run.state;
    $("run-workload").textContent = "workload " + run.workload + ", backend " + run.backend;
    draw(run);
    table(run);
  }

  function layers(steps) {
    const byId = new Map(steps.map((s) => [s.step_id, s]));
    const depth = new Map();
    const visit = (step, seen) => {
      if (depth.has(step.step_id)) return depth.get(step.step_id);
      if (seen.has(step.step_id)) return 0; // a cycle cannot be in a plan; stay finite anyway
      seen.add(step.step_id);
      let d = 0;
      for (const need of step.needs || []) {
        const other = byId.get(need);
        if (other) d = Math.max(d, visit(other, seen) + 1);
      }
      depth.set(step.step_id, d);
      return d;
    };
    for (const step of steps) visit(step, new Set());
    return depth;
  }

  function draw(run) {
    const W = 170, H = 46, GX = 50, GY = 18, PAD = 10;
    const steps = run.steps;
    const depth = layers(steps);
    const rows = new Map();
    const at = new Map();
    for (const step of steps) {
      const d = depth.get(step.step_id);
      const row = rows.get(d) || 0;
      rows.set(d, row + 1);
      at.set(step.step_id, { x: PAD + d * (W + GX), y: PAD + row * (H + GY) });
    }
    const columns = Math.max(1, ...[...depth.values()].map((d) => d + 1));
    const height = Math.max(1, ...rows.values());
    const root = $("dag");
    clear(root);
    root.setAttribute("width", PAD * 2 + columns * W + (columns - 1) * GX);
    root.setAttribute("height", PAD * 2 + height * H + (height - 1) * GY);
    for (const step of steps) {
      const to = at.get(step.step_id);
      for (const need of step.needs || []) {
        const from = at.get(need);
        if (!from) continue;
        const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
        const path = svg("path", {
          class: "edge",
          d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}`,
        });
        root.append(path);
      }
    }
    for (const step of steps) {
      const { x, y } = at.get(step.step_id);
      const risk = ["green", "red", "runtime"].includes(step.risk) ? step.risk : "runtime";
      const group = svg("g", { class: `node risk-${risk} state-${cssName(step.state)}` });
      group.dataset.step = step.step_id;
      group.dataset.state = step.state;
      group.dataset.risk = risk;
      group.append(svg("rect", { x, y, width: W, height: H, rx: 6 }));
      const name = svg("text", { x: x + 8, y: y + 18 });
      name.textContent = clip(step.step_id, 22);
      const state = svg("text", { x: x + 8, y: y + 36, class: "state" });
      state.textContent = step.state.replace("_", " ") + " · " + risk;
      const title = svg("title");
      title.textContent = step.step_id + ": " + step.state + ", " + risk
        + (step.needs.length ? " (needs " + step.needs.join(", ") + ")" : "");
      group.append(title, name, state);
      if (risk === "red" || step.state === "awaiting_approval") {
        group.classList.add("clickable");
        group.addEventListener("click", () => openCard(run.id, step.step_id));
      }
      root.append(group);
    }
  }

  function cssName(text) {
    return String(text).replace(/[^a-z_]/g, "");
  }

  function clip(text, n) {
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function table(run) {
    const body = document.querySelector("#steps tbody");
    clear(body);
    for (const step of run.steps) {
      const row = el("tr");
      row.dataset.step = step.step_id;
      row.append(el("td", step.step_id), el("td", step.state), el("td", step.risk));
      const cell = el("td");
      const outputs = step.outputs || {};
      const text = [outputs.stdout, outputs.stderr, step.error]
        .filter((t) => typeof t === "string" && t !== "").join("\n");
      const shownText = text || (Object.keys(outputs).length ? JSON.stringify(outputs) : "");
      if (shownText) cell.append(el("pre", visible(shownText), "output"));
      row.append(cell);
      body.append(row);
    }
  }

  async function guarded(call) {
    try {
      return await call();
    } catch (e) {
      if (e instanceof Unauthorized) showLogin("the token is no longer valid");
      return null;
    }
  }

  // --- start ---------------------------------------------------------------------------
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const candidate = $("token").value.trim();
    $("token").value = "";
    if (candidate) signIn(candidate);
  });
  $("sign-out").addEventListener("click", () => showLogin(""));
  $("approve").addEventListener("click", () => decide("approve"));
  $("deny").addEventListener("click", () => decide("deny"));
  $("card-close").addEventListener("click", () => { shown = null; $("card").hidden = true; });
  window.addEventListener("hashchange", route);
  setInterval(tick, 1000);
  if (token) signIn(token); else showLogin("");
})();
