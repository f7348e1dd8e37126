// The approval page of `luminaguard serve`: Red steps to approve, and questions tools ask
// (MCP elicitation) to answer. Plain script, no build step.
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
  let questions = []; // pending questions, as GET /v1/questions lists them
  let shown = null; // the request whose card is open
  let asking = null; // the question whose card is open
  let controls = []; // the inputs of that question's form: [{ field, node }]
  let runId = null; // the run drawn
  let stream = null; // the AbortController of the event stream
  let lastEvent = null; // the id of the last event read (to resume after a reconnect)
  let mayReconcile = true; // false once the server said this token may not (403)
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
    mayReconcile = true; // another token may
    $("reconcile-message").textContent = "";
    await Promise.all([loadApprovals(), loadQuestions(), loadRuns(), loadSource()]);
    follow();
    route();
  }

  // A link to one card (what a notification sends): #/approvals/RUN/STEP or
  // #/questions/RUN/QUESTION.
  const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
  const CARDS = new Map([["approvals", (run, id) => openCard(run, id)],
    ["questions", (run, id) => openQuestion(run, id)]]);
  function route() {
    const parts = location.hash.split("/");
    const open = CARDS.get(parts[1]);
    if (parts.length !== 4 || parts[0] !== "#" || !open || !token) return;
    let run, id;
    try {
      [run, id] = [decodeURIComponent(parts[2]), decodeURIComponent(parts[3])];
    } catch (e) {
      return; // not a link we made
    }
    if (NAME.test(run) && NAME.test(id)) open(run, id);
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
        loadApprovals(); loadQuestions(); loadRuns(); loadSource(); if (runId) loadRun(runId);
        if (asking) openQuestion(asking.run_id, asking.question_id, true);
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
    if (kind.startsWith("gitops.")) { // the reconciler's (its run_id ":gitops" is no run)
      later("source", loadSource, 100);
      return;
    }
    if (kind.startsWith("approval.") || kind.startsWith("step.")) later("approvals", loadApprovals, 100);
    if (kind.startsWith("run.")) later("runs", loadRuns, 100);
    if (runId === null && kind.startsWith("run.")) runId = event.run_id;
    if (event.run_id === runId) later("run", () => loadRun(runId), 100);
    if (shown && event.run_id === shown.run_id && event.step_id === shown.step_id) {
      later("card", () => openCard(shown.run_id, shown.step_id, true), 100);
    }
    if (kind.startsWith("question.")) later("questions", loadQuestions, 100);
    if (kind.startsWith("question.") && asking && event.run_id === asking.run_id) {
      later("question", () => asking && openQuestion(asking.run_id, asking.question_id, true), 100);
    }
  }

  // --- the queue -----------------------------------------------------------------------
  // One queue: Red steps waiting for approval and questions waiting for an answer, oldest
  // first. Each list is fetched on its own events; either redraws the whole queue.
  async function loadApprovals() {
    const reply = await guarded(() => api("GET", "/v1/approvals"));
    if (!reply || !reply.ok) return;
    approvals = reply.data.approvals;
    drawQueue();
  }

  async function loadQuestions() {
    const reply = await guarded(() => api("GET", "/v1/questions"));
    if (!reply || !reply.ok) return;
    questions = reply.data.questions;
    drawQueue();
  }

  function drawQueue() {
    const rows = approvals.map((r) => [Number(r.requested), approvalRow(r)])
      .concat(questions.map((q) => [Number(q.asked), questionRow(q)]))
      .sort((a, b) => a[0] - b[0]);
    const list = $("queue");
    clear(list);
    for (const [, button] of rows) {
      const item = el("li");
      item.append(button);
      list.append(item);
    }
    $("queue-count").textContent = String(rows.length);
    $("queue-empty").hidden = rows.length > 0;
    markQueue();
    tick();
  }

  function approvalRow(request) {
    const button = el("button", null, "request approval");
    button.type = "button";
    button.dataset.kind = "approval";
    button.dataset.run = request.run_id;
    button.dataset.step = request.step_id;
    const title = el("strong", request.run_id + " / " + request.step_id);
    title.prepend(el("span", "approval", "kind"));
    button.append(title);
    button.append(el("span", (request.card && request.card.action) || "", "sub"));
    button.append(timeLeft(request.expires));
    button.addEventListener("click", () => openCard(request.run_id, request.step_id));
    return button;
  }

  function questionRow(question) {
    const button = el("button", null, "request question");
    button.type = "button";
    button.dataset.kind = "question";
    button.dataset.run = question.run_id;
    button.dataset.question = question.question_id;
    const title = el("strong", visible(question.server));
    title.prepend(el("span", "question", "kind question"));
    button.append(title);
    button.append(el("span", question.run_id + " / " + (question.step_id || "several steps"), "sub"));
    const age = el("span", "", "sub age");
    age.dataset.asked = question.asked;
    button.append(age, timeLeft(question.expires));
    button.addEventListener("click", () => openQuestion(question.run_id, question.question_id));
    return button;
  }

  function timeLeft(expires) {
    const node = el("span", "", "sub left");
    node.dataset.expires = expires;
    return node;
  }

  function markQueue() { // the row of the open card
    for (const button of document.querySelectorAll("#queue button")) {
      const open = button.dataset.kind === "question"
        ? asking !== null && asking.run_id === button.dataset.run
          && asking.question_id === button.dataset.question
        : shown !== null && shown.run_id === button.dataset.run
          && shown.step_id === button.dataset.step;
      button.classList.toggle("selected", open);
    }
  }

  function left(expires) {
    const seconds = Math.floor(expires - Date.now() / 1000);
    if (seconds <= 0) return "expired";
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
    if (d) return d + "d " + h + "h left";
    const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s left";
  }

  function ago(since) {
    const seconds = Math.max(0, Math.floor(Date.now() / 1000 - since));
    if (seconds < 60) return "asked " + seconds + "s ago";
    if (seconds < 3600) return "asked " + Math.floor(seconds / 60) + "m ago";
    return "asked " + Math.floor(seconds / 3600) + "h ago";
  }

  function tick() {
    for (const node of document.querySelectorAll("#queue .left")) {
      node.textContent = left(Number(node.dataset.expires));
    }
    for (const node of document.querySelectorAll("#queue .age")) {
      node.textContent = ago(Number(node.dataset.asked));
    }
    if (shown && shown.state === "pending") $("card-time").textContent = left(shown.expires);
    if (asking && asking.state === "pending") $("question-time").textContent = left(asking.expires);
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
    asking = null; // one card at a time
    $("question").hidden = true;
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
    markQueue();
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

  // --- a question's card: the server's message and a form built from its fields ---------
  // The message, titles, descriptions and choices are the server's (hostile): text only.
  async function openQuestion(run, id, refreshing) {
    const path = "/v1/questions/" + part(run) + "/" + part(id);
    const reply = await guarded(() => api("GET", path));
    if (!reply) return;
    if (!reply.ok) {
      if (!refreshing) say((reply.data && reply.data.error) || "no question", "error");
      return;
    }
    const question = reply.data;
    const same = asking && asking.run_id === run && asking.question_id === id;
    asking = question;
    shown = null; // one card at a time
    $("card").hidden = true;
    $("question").hidden = false;
    $("question-server").textContent = visible(question.server);
    $("question-run").textContent = question.run_id;
    $("question-step").textContent = question.step_id || "several steps";
    $("question-state").textContent = question.state + (question.who ? " by " + question.who : "");
    $("question-time").textContent = question.state === "pending" ? left(question.expires) : "";
    $("question-message").textContent = visible(question.message);
    if (!same) { // a refresh keeps what the person typed
      drawForm(question.fields);
      $("question-reason").value = "";
      if (!refreshing) say("", "");
    }
    const pending = question.state === "pending";
    $("question-fields").disabled = !pending;
    $("answer").disabled = !pending;
    $("decline").disabled = !pending;
    markQueue();
    if (runId !== run) { runId = run; loadRun(run); markRuns(); }
  }

  function drawForm(fields) {
    const box = $("question-fields");
    clear(box);
    controls = fields.map((field, index) => {
      const id = "question-field-" + index;
      const node = control(field, id);
      box.append(fieldRow(field, id, node));
      return { field, node };
    });
  }

  function fieldRow(field, id, node) {
    const row = el("div", null, "field");
    row.dataset.field = field.name;
    const label = el("label", visible(field.title || field.name), "name");
    if (field.kind !== "choices") label.htmlFor = id;
    if (field.title && field.title !== field.name) label.append(el("code", " " + field.name, "muted"));
    if (field.required) {
      const mark = el("span", " *", "required");
      mark.title = "required";
      label.append(mark);
    }
    row.append(label, node);
    const hint = [field.description, bounds(field)].filter(Boolean).map(visible).join(" — ");
    if (hint) row.append(el("span", hint, "hint"));
    return row;
  }

  function bounds(field) { // what the form accepts, in words
    const low = field.minimum, high = field.maximum;
    const unit = { string: " characters", choices: " choices" }[field.kind] || "";
    if (low !== null && high !== null) return "from " + low + " to " + high + unit;
    if (low !== null) return "at least " + low + unit;
    if (high !== null) return "at most " + high + unit;
    if (field.required) return "required";
    return field.kind === "boolean" ? "optional: not answered until ticked or unticked" : "optional";
  }

  function control(field, id) {
    const make = { string: textInput, number: numberInput, integer: numberInput,
      boolean: checkbox, choice: select, choices: checkboxes }[field.kind];
    const node = make(field);
    node.id = id;
    return node;
  }

  function textInput(field) {
    const input = el("input");
    input.type = "text";
    input.spellcheck = false;
    if (field.maximum !== null) input.maxLength = field.maximum;
    if (field.minimum !== null) input.minLength = field.minimum;
    if (typeof field.default === "string") input.value = field.default;
    input.required = field.required;
    return input;
  }

  function numberInput(field) {
    const input = el("input");
    input.type = "number";
    input.step = field.kind === "integer" ? "1" : "any";
    if (field.minimum !== null) input.min = String(field.minimum);
    if (field.maximum !== null) input.max = String(field.maximum);
    if (typeof field.default === "number") input.value = String(field.default);
    input.required = field.required;
    return input;
  }

  function checkbox(field) { // an optional one starts unanswered (indeterminate): omitted
    const input = el("input");
    input.type = "checkbox";
    input.checked = field.default === true;
    input.indeterminate = !field.required && typeof field.default !== "boolean";
    return input;
  }

  function select(field) {
    const node = el("select");
    node.append(el("option", field.required ? "— choose —" : "— no answer —"));
    node.firstChild.value = "";
    for (const choice of field.choices) {
      const option = el("option", visible(choice));
      option.value = choice;
      node.append(option);
    }
    node.value = typeof field.default === "string" ? field.default : "";
    node.required = field.required;
    return node;
  }

  function checkboxes(field) {
    const group = el("div", null, "choices");
    group.setAttribute("role", "group");
    const chosen = Array.isArray(field.default) ? field.default : [];
    for (const choice of field.choices) {
      const input = el("input");
      input.type = "checkbox";
      input.value = choice;
      input.checked = chosen.includes(choice);
      const label = el("label");
      label.append(input, " " + visible(choice));
      group.append(label);
    }
    return group;
  }

  // The answer typed as the form asks: numbers as numbers, booleans as booleans; a field
  // left empty is omitted (the server says which required one is missing).
  function answers() {
    const content = {};
    for (const { field, node } of controls) {
      const value = valueOf(field, node);
      if (value !== undefined) content[field.name] = value;
    }
    return content;
  }

  function valueOf(field, node) {
    if (field.kind === "boolean") return node.indeterminate ? undefined : node.checked;
    if (field.kind === "choices") {
      const chosen = [...node.querySelectorAll("input:checked")].map((input) => input.value);
      return chosen.length || field.required ? chosen : undefined;
    }
    if (node.validity && node.validity.badInput) {
      throw new Error(field.name + ": not a " + field.kind);
    }
    if (node.value === "") return undefined;
    return field.kind === "number" || field.kind === "integer" ? Number(node.value) : node.value;
  }

  function say(text, kind) {
    const node = $("question-error");
    node.textContent = text;
    node.className = kind;
    for (const row of document.querySelectorAll("#question-fields .field")) {
      row.classList.toggle("invalid", kind === "error" && text.startsWith(row.dataset.field + ":"));
    }
  }

  async function answerQuestion() {
    if (!asking) return;
    let content;
    try {
      content = answers();
    } catch (e) {
      say(e.message, "error");
      return;
    }
    await respond(asking, "answer", { content });
  }

  async function declineQuestion() {
    if (!asking) return;
    const reason = $("question-reason").value.trim();
    await respond(asking, "decline", { reason: reason || null });
  }

  async function respond(question, verb, body) {
    const path = "/v1/questions/" + part(question.run_id) + "/" + part(question.question_id) + "/" + verb;
    const answered = await guarded(() => api("POST", path, body));
    if (!answered) return;
    if (answered.ok) say(answered.data.state + " by " + answered.data.by, "ok");
    else say((answered.data && answered.data.error) || "refused: " + answered.status, "error");
    await Promise.all([loadQuestions(), openQuestion(question.run_id, question.question_id, true)]);
  }

  // --- the source the server follows (GitOps) -------------------------------------------
  // Its URL, reasons and files are the source's text (anyone who can commit): text only.
  const CONDITIONS = ["Ready", "Reconciling", "Stalled", "Drifted"];

  async function loadSource() {
    const reply = await guarded(() => api("GET", "/v1/gitops"));
    if (!reply) return;
    if (!reply.ok) {
      $("source-box").hidden = true;
      $("source-condition").hidden = true;
      $("source-none").hidden = false;
      $("source-none").textContent = "The source cannot be read: "
        + ((reply.data && reply.data.error) || "refused: " + reply.status);
      return;
    }
    drawSource(reply.data);
  }

  function badge(node, condition) { // a coloured badge; an unknown condition stays grey
    const known = CONDITIONS.includes(condition) ? condition : "";
    node.textContent = String(condition);
    node.className = "condition" + (known ? " " + known.toLowerCase() : "");
    node.dataset.condition = String(condition);
    return node;
  }

  function short(revision) { // "sha256:6a61e4…" (a folder's) or a commit: 12 hex digits
    return revision ? String(revision).replace(/^[a-z0-9]+:/, "").slice(0, 12) : "";
  }

  function revisionCode(node, revision, none) {
    node.textContent = revision ? short(revision) : none;
    node.title = revision ? String(revision) : "";
    node.dataset.revision = revision ? String(revision) : "";
  }

  function drawSource(status) {
    const source = status.source;
    $("source-none").hidden = source !== null;
    $("source-none").textContent = source === null
      ? "This server follows no source: start it with serve --source PATH|URL to apply one." : "";
    $("source-box").hidden = source === null;
    $("source-condition").hidden = source === null;
    if (source === null) return;
    badge($("source-condition"), source.condition);
    $("source-url").textContent = visible(source.url);
    revisionCode($("source-revision"), source.revision, "nothing applied yet");
    const other = source.attempted && source.attempted !== source.revision;
    $("source-attempted-label").hidden = !other;
    $("source-attempted-box").hidden = !other;
    revisionCode($("source-attempted"), other ? source.attempted : null, "");
    revisionCode($("source-policies"), status.policies_revision, "none");
    $("source-updated").textContent = source.updated
      ? new Date(Number(source.updated) * 1000).toLocaleString() : "";
    const reason = source.reason || "";
    $("source-reason-box").hidden = reason === "";
    $("source-reason-title").textContent = source.condition === "Stalled"
      ? "Why it is stalled (the last good revision stays applied)" : "Reason";
    $("source-reason").textContent = visible(reason);
    $("reconcile").hidden = !mayReconcile;
    drawObjects(status.objects);
  }

  function drawObjects(objects) {
    const body = document.querySelector("#objects tbody");
    clear(body);
    const sorted = objects.slice().sort((a, b) =>
      (a.kind + "/" + a.name).localeCompare(b.kind + "/" + b.name));
    for (const item of sorted) {
      const row = el("tr");
      row.dataset.kind = item.kind;
      row.dataset.name = item.name;
      const name = el("td");
      name.append(el("span", item.kind, "object-kind"), el("strong", item.name));
      const condition = el("td");
      condition.append(badge(el("span"), item.condition));
      const revision = el("td", null, "revision");
      const code = el("code");
      revisionCode(code, item.revision, "");
      revision.append(code);
      row.append(name, condition, revision, el("td", visible(item.path)),
        el("td", visible(item.reason || ""), "reason"));
      body.append(row);
    }
    $("objects").hidden = objects.length === 0;
    $("objects-empty").hidden = objects.length > 0;
  }

  function reconcileSaid(text, kind) {
    const node = $("reconcile-message");
    node.textContent = text;
    node.className = kind;
  }

  async function reconcile() {
    $("reconcile").disabled = true;
    try {
      const reply = await guarded(() => api("POST", "/v1/gitops/reconcile"));
      if (!reply) return;
      if (reply.ok) {
        reconcileSaid("A pass has started: what it applies shows here.", "ok");
        drawSource(reply.data);
      } else if (reply.status === 403) {
        mayReconcile = false;
        $("reconcile").hidden = true;
        reconcileSaid("Only an admin's token may reconcile; this one may look.", "note");
      } else if (reply.status === 409) {
        reconcileSaid("This server follows no source, so there is nothing to reconcile.", "note");
        loadSource();
      } else {
        reconcileSaid((reply.data && reply.data.error) || "refused: " + reply.status, "error");
      }
    } finally {
      $("reconcile").disabled = false;
    }
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
  $("card-close").addEventListener("click", () => { shown = null; $("card").hidden = true; markQueue(); });
  $("answer").addEventListener("click", answerQuestion);
  $("reconcile").addEventListener("click", reconcile);
  $("decline").addEventListener("click", declineQuestion);
  $("question-close").addEventListener("click", () => {
    asking = null; controls = []; $("question").hidden = true; markQueue();
  });
  $("question-form").addEventListener("submit", (event) => event.preventDefault());
  window.addEventListener("hashchange", route);
  setInterval(tick, 1000);
  if (token) signIn(token); else showLogin("");
})();
