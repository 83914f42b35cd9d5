/* sphere-docs: the activation script of lazy workspace embeds.
 *
 * Source of ../sphere-docs-lazy.js (the minified copy html.page_assets(lazy=True)
 * inlines into pages with lazy embeds); rebuild it with ./build.sh after an edit.
 * Script + CSS must stay within 2 KB + 64 B gzip (tests/test_page_assets.py).
 *
 * Markup (html.lazy_placeholder):
 *   <div class="sphere-workspace sphere-workspace--lazy" data-sphere-lazy data-project data-page
 *        data-name data-endpoint [data-launch (default click)] [data-features]>
 *     [<div class="sphere-workspace__caption">]
 *     <div class="sphere-workspace__placeholder">
 *       <button class="sphere-workspace__start">  <p class="sphere-workspace__status" role="status" aria-live="polite">
 *     <div class="se-workspace sphere-workspace__frame" data-id hidden>
 *
 * Flow: on click (launch=click), when scrolled near (visible) or at once (load), POST
 * {project_id, page, name, claim?} to data-endpoint (protocol: sphere_docs/services/endpoint/app.py),
 * fill data-workspace / data-workspace-token / data-features on the .se-workspace element and
 * render it with SE.ready(() => SE.workspace(id) || SE.create(id, el)).  The wrapper's
 * data-sphere-state (starting | ready | failed) drives the CSS; the status line announces it.
 *
 * The claim the endpoint signs is kept in localStorage per project+page+name, so a reader
 * who reloads or comes back gets the same workspace; a claim the endpoint refuses
 * (claim_expired, claim_invalid) is dropped and the request repeated without it.
 *
 * 429 busy (the endpoint's cap on creates in flight, a burst of readers) is retried by the
 * page itself after Retry-After plus up to a second of jitter, at most RETRIES times, the
 * embed staying "starting"; then, and for every other error (including the rate and budget
 * 429s, whose waits are long), the reader gets the message and a Try again button.
 *
 * Instant/SPA navigation (Material's document$, else a MutationObserver): embeds that left
 * the page are destroyed (SDK destroy()), new ones are activated.  Build-mode embeds are
 * rendered through the SDK too (SE.workspace returns the object the SDK already made on a
 * normal load), because after an instant navigation nothing else would render them.
 */
(function (win, doc) {
  if (win.sphereDocs) return win.sphereDocs(); // inlined twice (or re-run by a SPA): just rescan

  var UNREACHABLE = "The workspace service could not be reached. Check your connection and try again.";
  var RETRIES = 8; // busy answers retried by the page before it offers Try again
  var active = []; // wrappers initialised on the current page
  var debounce;

  function part(box, name) {
    return box.querySelector(name ? ".sphere-workspace__" + name : ".se-workspace");
  }

  function attr(el, name) {
    return el.getAttribute("data-" + name); // null when absent
  }

  function setAttr(el, name, value) {
    if (value) el.setAttribute("data-" + name, value);
  }

  // claim(box) reads, claim(box, value) stores, claim(box, 0) forgets; storage may be disabled
  // (then nothing is kept, and a read gives undefined).
  function claim(box, value) {
    var key = "sphere-docs:" + attr(box, "project") + ":" + attr(box, "page") + ":" + attr(box, "name");
    try {
      return value ? localStorage.setItem(key, value)
        : value === 0 ? localStorage.removeItem(key) : localStorage.getItem(key);
    } catch (e) {}
  }

  function report(box, state, text) {
    var button = part(box, "start");
    if (!button) return; // a build-mode embed: no placeholder to update
    box.setAttribute("data-sphere-state", state);
    part(box, "status").textContent = text;
    // aria-disabled, not disabled: a disabled button would drop the keyboard focus
    button.setAttribute("aria-disabled", state == "starting");
    if (state == "failed") {
      part(box).hidden = true;
      button.textContent = "Try again";
    }
  }

  function waitText(seconds) {
    return " Try again in " + (seconds < 90 ? seconds + " second" + (seconds > 1 ? "s." : ".")
      : Math.ceil(seconds / 60) + " minutes.");
  }

  function render(box, frame) {
    var id = attr(frame, "id");
    function show() {
      var SE = win.SE;
      if (!SE || !SE.workspace) return report(box, "failed", UNREACHABLE); // the SDK did not load
      box.sdWs = SE.workspace(id) || SE.create(id, frame);
      report(box, "ready", "Workspace ready.");
      if (box.contains(doc.activeElement)) {
        frame.tabIndex = -1; // the button is hidden now: keep keyboard users where they were
        frame.focus();
      }
    }
    if (win.SE && win.SE.ready) win.SE.ready(show);
    else show();
  }

  function request(box, proof, tries) {
    var frame = part(box);
    var body = { project_id: attr(box, "project"), page: attr(box, "page"), name: attr(box, "name") };
    if (proof) body.claim = proof;
    fetch(attr(box, "endpoint"), {
      method: "POST", // no cookies: cross-origin fetch omits them by default
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(Object).then(function (answer) {
        answer = answer || {};
        if (response.ok && answer.workspace_id) {
          claim(box, answer.claim);
          setAttr(frame, "workspace", answer.workspace_id);
          setAttr(frame, "workspace-token", answer.workspace_token);
          setAttr(frame, "features", attr(box, "features"));
          frame.hidden = false;
          return render(box, frame);
        }
        if (proof && /^claim_/.test(answer.code)) return request(box, claim(box, 0), tries);
        var wait = answer.retry_after; // whole seconds, on every 429 of the endpoint
        if (answer.code == "busy" && tries < RETRIES) {
          report(box, "starting", "Starting your workspace\u2026 (busy, retrying)");
          return setTimeout(function () {
            if (box.sdOn) request(box, proof, tries + 1); // unless the embed left the page meanwhile
          }, (wait + Math.random()) * 1000);
        }
        report(box, "failed",
          (answer.message || "The workspace could not be started (error " + response.status + ").") +
          (wait ? waitText(wait) : ""));
      });
    }, function () {
      report(box, "failed", UNREACHABLE);
    });
  }

  function start(box) {
    if (/^(starting|ready)$/.test(attr(box, "sphere-state"))) return;
    report(box, "starting", "Starting your workspace\u2026");
    request(box, claim(box), 0);
  }

  function activate(box) {
    var launch = attr(box, "launch");
    var Observer = win.IntersectionObserver;
    box.sdOn = active.push(box);
    if (attr(box, "sphere-mode") == "build") return render(box, part(box)); // after instant navigation
    part(box, "start").onclick = function () {
      start(box);
    };
    if (launch == "load" || (launch == "visible" && !Observer)) {
      start(box);
    } else if (launch == "visible") {
      box.sdIo = new Observer(function (entries) {
        if (entries[0].isIntersecting) {
          box.sdIo.disconnect();
          start(box);
        }
      }, { rootMargin: "200px" });
      box.sdIo.observe(box);
    }
  }

  function scan() {
    active = active.filter(function (box) {
      if (doc.body.contains(box)) return true;
      if (box.sdIo) box.sdIo.disconnect();
      if (box.sdWs && box.sdWs.destroy) box.sdWs.destroy();
      box.sdOn = 0;
      return false;
    });
    var boxes = doc.querySelectorAll("[data-sphere-lazy],[data-sphere-mode=build]");
    for (var i = 0; i < boxes.length; i++) {
      if (!boxes[i].sdOn) activate(boxes[i]);
    }
  }

  function watch() {
    scan();
    if (win.document$) {
      win.document$.subscribe(scan); // Material for MkDocs: emits after every instant navigation
    } else {
      new MutationObserver(function () {
        clearTimeout(debounce);
        debounce = setTimeout(scan, 50);
      }).observe(doc.body, { childList: true, subtree: true });
    }
  }

  win.sphereDocs = scan;
  if (doc.readyState == "loading") doc.addEventListener("DOMContentLoaded", watch);
  else watch();
})(window, document);
