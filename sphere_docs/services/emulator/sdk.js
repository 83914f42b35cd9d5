/* Sphere Engine Containers emulator: an emulated JavaScript SDK (no dependencies).
 *
 * Served at /static/sdk/sdk.min.js by `sphere-docs emulator`.  It keeps the
 * vendor loader's `SE` object (and its `SE.ready`) and adds:
 *   SE.workspace(dataId)   the workspace object of the element with that data-id;
 *                          renders it the first time; null when there is none
 *   SE.create(dataId, el)  render `el` (a div with data-workspace) under dataId
 * On load every `.se-workspace[data-workspace]` and `[data-id][data-workspace]`
 * element is rendered.  Rendering asks GET <emulator>/workspace/<id>/check?token=
 * (JSON); when the workspace needs a token and data-workspace-token is missing
 * or wrong (or the workspace is gone) a refusal message is shown in the div,
 * otherwise an <iframe> of <emulator>/workspace/<id>?token= fills the div.
 *
 * Workspace object: destroy(), events.subscribe(name, fn), events.unsubscribe(name, fn),
 * enterFullScreen(), exitFullScreen() (only with data-features="fullscreenmode",
 * which also adds a toggle button), getFileContent(path), getStageStream(stage, stream).
 * Callbacks get {event, data}.  Events: "fileContent" {path, content},
 * "stageStream" {stage, stream, content}, and emulator-only lifecycle events
 * "loaded" {workspace_id} (iframe loaded), "refused" {workspace_id, reason},
 * "fullScreen" {enabled}, "destroyed" {workspace_id}.
 * The element gets data-se-state = checking | ready | refused.
 */
(function (w, d) {
  "use strict";
  var SE = w.SE || (w.SE = []);
  if (SE.__emulator) { return; }

  var script = d.currentScript || d.getElementById("sphere-engine-jssdk");
  var base = "";
  if (script && script.src) {
    base = script.src.replace(/\/static\/sdk\/sdk(\.min)?\.js([?#].*)?$/, "");
  } else if (w.SE_BASE) {
    base = (w.SE_HTTPS === false ? "http" : "https") + "://" + w.SE_BASE;
  }

  var ID_RE = /^[0-9a-f]{32}$/;
  var STAGES = ["init", "build", "run", "test", "post"];
  var STREAMS = ["output", "error"];
  var registry = {};
  var autoCount = 0;

  var CSS = [
    ".se-emulator-host{position:relative;overflow:hidden;box-sizing:border-box;min-height:120px}",
    ".se-emulator-host>iframe{display:block;width:100%;height:100%;border:0;margin:0}",
    ".se-emulator-status,.se-emulator-refusal{box-sizing:border-box;height:100%;display:flex;",
    "flex-direction:column;justify-content:center;align-items:center;text-align:center;padding:1.5em;",
    "font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif}",
    ".se-emulator-status{color:#5b6270;background:#f4f5f7}",
    ".se-emulator-refusal{color:#7a1520;background:#fff1f2;border:2px solid #e5484d;border-radius:6px}",
    ".se-emulator-refusal strong{font-size:1.1em;margin-bottom:.3em}",
    ".se-emulator-refusal p{margin:0;max-width:40em}",
    ".se-emulator-fs-button{position:absolute;bottom:10px;right:10px;z-index:2;cursor:pointer;",
    "font:13px/1 system-ui,sans-serif;padding:6px 10px;border-radius:5px;border:1px solid #8a8f98;",
    "background:rgba(255,255,255,.92);color:#1f2430}",
    ".se-emulator-fullscreen{position:fixed!important;inset:0!important;width:100vw!important;",
    "height:100vh!important;max-width:none!important;z-index:2147483000!important;background:#fff;margin:0!important;",
    "border:0!important;border-radius:0!important}",
    "@media (prefers-color-scheme:dark){.se-emulator-status{color:#b6bcc8;background:#1d2129}",
    ".se-emulator-refusal{color:#ffd7da;background:#3b1217;border-color:#e5484d}",
    ".se-emulator-fs-button{background:rgba(30,33,40,.92);color:#e8eaee}.se-emulator-fullscreen{background:#15181e}}"
  ].join("");

  function injectStyle() {
    if (d.getElementById("se-emulator-style")) { return; }
    var style = d.createElement("style");
    style.id = "se-emulator-style";
    style.textContent = CSS;
    (d.head || d.documentElement).appendChild(style);
  }

  function findById(dataId) {
    var all = d.querySelectorAll("[data-id]");
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-id") === dataId) { return all[i]; }
    }
    return null;
  }

  function later(fn) { setTimeout(fn, 0); }

  function Workspace(dataId, el) {
    var subscribers = {};
    this.id = dataId;
    this.element = el;
    this.workspaceId = el.getAttribute("data-workspace") || "";
    this.features = (el.getAttribute("data-features") || "").split(/[\s,]+/).filter(Boolean);
    this.state = "checking";
    this.destroyed = false;
    this.fullScreen = false;
    this.events = {
      subscribe: function (name, fn) {
        if (typeof fn !== "function") { return; }
        (subscribers[name] = subscribers[name] || []).push(fn);
      },
      unsubscribe: function (name, fn) {
        var list = subscribers[name] || [];
        for (var i = list.length - 1; i >= 0; i--) {
          if (list[i] === fn) { list.splice(i, 1); }
        }
      }
    };
    this._emit = function (name, data) {
      var list = (subscribers[name] || []).slice();
      for (var i = 0; i < list.length; i++) {
        try { list[i]({event: name, data: data}); } catch (err) { later(function () { throw err; }); }
      }
    };
    el.__seWorkspace = this;
    render(this);
  }

  Workspace.prototype.hasFeature = function (name) {
    return this.features.indexOf(name) !== -1;
  };

  Workspace.prototype.destroy = function () {
    if (this.destroyed) { return; }
    if (this.fullScreen) { this.exitFullScreen(); }
    this.destroyed = true;
    var el = this.element;
    el.innerHTML = "";
    el.classList.remove("se-emulator-host");
    el.removeAttribute("data-se-state");
    if (el.__seWorkspace === this) { el.__seWorkspace = null; }
    if (registry[this.id] === this) { delete registry[this.id]; }
    this._emit("destroyed", {workspace_id: this.workspaceId});
  };

  Workspace.prototype.enterFullScreen = function () {
    if (!this.hasFeature("fullscreenmode") || this.destroyed || this.fullScreen) { return false; }
    this.fullScreen = true;
    this.element.classList.add("se-emulator-fullscreen");
    syncButton(this);
    this._emit("fullScreen", {enabled: true});
    return true;
  };

  Workspace.prototype.exitFullScreen = function () {
    if (!this.fullScreen) { return false; }
    this.fullScreen = false;
    this.element.classList.remove("se-emulator-fullscreen");
    syncButton(this);
    this._emit("fullScreen", {enabled: false});
    return true;
  };

  Workspace.prototype.getFileContent = function (path) {
    var self = this;
    var data = {
      path: String(path),
      content: "# " + path + "\n\nEmulated content of " + path + " in workspace " + this.workspaceId + ".\n"
    };
    later(function () { self._emit("fileContent", data); });
    return typeof Promise === "function" ? Promise.resolve(data) : undefined;
  };

  Workspace.prototype.getStageStream = function (stage, stream) {
    var self = this;
    stage = String(stage); stream = String(stream || "output");
    var ok = STAGES.indexOf(stage) !== -1 && STREAMS.indexOf(stream) !== -1;
    var data = {
      stage: stage, stream: stream,
      content: ok ? (stream === "output" ? "emulated " + stage + " output\n" : "") : null,
      error: ok ? null : "unknown stage or stream (stages: " + STAGES.join(", ") +
        "; streams: " + STREAMS.join(", ") + ")"
    };
    later(function () { self._emit("stageStream", data); });
    return typeof Promise === "function" ? Promise.resolve(data) : undefined;
  };

  function syncButton(ws) {
    var button = ws._button;
    if (!button) { return; }
    button.textContent = ws.fullScreen ? "Exit full screen" : "Full screen";
    button.setAttribute("aria-pressed", ws.fullScreen ? "true" : "false");
  }

  function setState(ws, state) {
    ws.state = state;
    ws.element.setAttribute("data-se-state", state);
  }

  function refuse(ws, reason) {
    setState(ws, "refused");
    var box = d.createElement("div");
    box.className = "se-emulator-refusal";
    box.setAttribute("role", "alert");
    var title = d.createElement("strong");
    title.textContent = "Workspace refused";
    var text = d.createElement("p");
    text.textContent = reason;
    box.appendChild(title);
    box.appendChild(text);
    ws.element.innerHTML = "";
    ws.element.appendChild(box);
    ws._emit("refused", {workspace_id: ws.workspaceId, reason: reason});
  }

  function show(ws, query) {
    var el = ws.element;
    el.innerHTML = "";
    var frame = d.createElement("iframe");
    frame.src = base + "/workspace/" + ws.workspaceId + query;
    frame.title = "Sphere Engine workspace";
    frame.setAttribute("allow", "clipboard-read; clipboard-write; fullscreen");
    frame.addEventListener("load", function () {
      if (ws.destroyed) { return; }
      setState(ws, "ready");
      ws._emit("loaded", {workspace_id: ws.workspaceId});
    });
    el.appendChild(frame);
    if (ws.hasFeature("fullscreenmode")) {
      var button = d.createElement("button");
      button.type = "button";
      button.className = "se-emulator-fs-button";
      button.addEventListener("click", function () {
        if (ws.fullScreen) { ws.exitFullScreen(); } else { ws.enterFullScreen(); }
      });
      ws._button = button;
      syncButton(ws);
      el.appendChild(button);
    }
  }

  function render(ws) {
    var el = ws.element;
    injectStyle();
    el.classList.add("se-emulator-host");
    setState(ws, "checking");
    el.innerHTML = '<div class="se-emulator-status">Connecting to the workspace\u2026</div>';
    if (!ID_RE.test(ws.workspaceId)) {
      later(function () { refuse(ws, "The element has no valid data-workspace (a 32-character workspace id)."); });
      return;
    }
    var token = el.getAttribute("data-workspace-token") || "";
    var query = token ? "?token=" + encodeURIComponent(token) : "";
    fetch(base + "/workspace/" + ws.workspaceId + "/check" + query, {credentials: "omit"})
      .then(function (response) { return response.json(); })
      .then(function (info) {
        if (ws.destroyed) { return; }
        if (info && info.ok) { show(ws, query); } else { refuse(ws, (info && info.reason) || "Refused."); }
      })
      .catch(function () {
        if (!ws.destroyed) { refuse(ws, "The workspace service at " + base + " could not be reached."); }
      });
  }

  function attached(ws) {
    return ws && !ws.destroyed && d.documentElement.contains(ws.element);
  }

  SE.workspace = function (dataId) {
    dataId = String(dataId);
    var ws = registry[dataId];
    if (attached(ws)) { return ws; }
    var el = findById(dataId);
    if (!el || !el.getAttribute("data-workspace")) { return null; }
    if (ws) { ws.destroy(); }
    return (registry[dataId] = new Workspace(dataId, el));
  };

  SE.create = function (dataId, el) {
    dataId = String(dataId);
    el = el || findById(dataId);
    if (!el) { return null; }
    var ws = registry[dataId];
    if (attached(ws) && ws.element === el && ws.workspaceId === el.getAttribute("data-workspace")) {
      return ws;
    }
    if (ws) { ws.destroy(); }
    if (el.__seWorkspace) { el.__seWorkspace.destroy(); }
    if (!el.getAttribute("data-id")) { el.setAttribute("data-id", dataId); }
    return (registry[dataId] = new Workspace(dataId, el));
  };

  if (typeof SE.ready !== "function") {
    SE.ready = function (f) {
      if (d.readyState !== "loading" && d.readyState !== "interactive") { f(); }
      else { w.addEventListener("load", f); }
    };
  }

  function autoRender() {
    var els = d.querySelectorAll(".se-workspace[data-workspace], [data-id][data-workspace]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (el.__seWorkspace && !el.__seWorkspace.destroyed) { continue; }
      var dataId = el.getAttribute("data-id") || "se-workspace-" + (++autoCount);
      if (attached(registry[dataId])) { continue; }
      registry[dataId] = new Workspace(dataId, el);
    }
  }

  SE.__emulator = true;
  SE.version = "emulator";
  SE.base = base;

  // Functions queued on the placeholder array before the SDK arrived.
  var queued = SE.length ? Array.prototype.splice.call(SE, 0, SE.length) : [];
  function boot() {
    autoRender();
    for (var i = 0; i < queued.length; i++) {
      if (typeof queued[i] === "function") { queued[i](); }
    }
  }
  if (d.readyState === "loading") { d.addEventListener("DOMContentLoaded", boot); } else { boot(); }
}(window, document));
