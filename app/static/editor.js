/* The policy editor: checks the text as the owner types (debounced POST to the page's check
   endpoint, with the anti-CSRF token) and shows the diagnostics beside the line numbers.
   Without this script the form still works: Save checks on the server. */
(function () {
  "use strict";
  var form = document.getElementById("policy-form");
  if (!form) { return; }
  var text = form.querySelector("textarea[name=text]");
  var gutter = document.getElementById("gutter");
  var list = document.getElementById("diagnostics");
  var status = document.getElementById("check-status");
  var token = form.querySelector("input[name=csrf_token]").value;
  var url = form.getAttribute("data-check-url");
  var timer = null;
  var sequence = 0;
  var marks = {};

  function lineCount() { return text.value.split("\n").length; }

  function resize() { text.rows = Math.max(14, lineCount() + 1); }

  function drawGutter() {
    var n = lineCount();
    var frag = document.createDocumentFragment();
    for (var i = 1; i <= n; i++) {
      var span = document.createElement("span");
      span.id = "L" + i;
      span.textContent = String(i);
      if (marks[i]) { span.className = marks[i]; }
      frag.appendChild(span);
    }
    gutter.replaceChildren(frag);
  }

  function item(d, kind) {
    var li = document.createElement("li");
    li.className = kind;
    var where = document.createElement(d.line ? "a" : "span");
    where.className = "where";
    if (d.line) {
      where.href = "#L" + d.line;
      where.textContent = "Line " + d.line + (d.column ? ", column " + d.column : "");
      where.addEventListener("click", function (event) { event.preventDefault(); goTo(d.line, d.column); });
    } else {
      where.textContent = kind === "error" ? "Error" : "Warning";
    }
    li.appendChild(where);
    li.appendChild(document.createTextNode(d.message + " "));
    var code = document.createElement("code");
    code.textContent = d.code;
    li.appendChild(code);
    if (d.hint) {
      var help = document.createElement("span");
      help.className = "help";
      help.textContent = d.hint;
      li.appendChild(help);
    }
    return li;
  }

  function show(body) {
    marks = {};
    (body.warnings || []).forEach(function (d) { if (d.line) { marks[d.line] = "warning"; } });
    (body.errors || []).forEach(function (d) { if (d.line) { marks[d.line] = "error"; } });
    drawGutter();
    var frag = document.createDocumentFragment();
    (body.errors || []).forEach(function (d) { frag.appendChild(item(d, "error")); });
    (body.warnings || []).forEach(function (d) { frag.appendChild(item(d, "warning")); });
    list.replaceChildren(frag);
    var errors = (body.errors || []).length;
    var warnings = (body.warnings || []).length;
    if (errors) {
      status.textContent = errors + " error" + (errors === 1 ? "" : "s") + ": this text cannot be saved yet.";
      status.className = "check-status bad";
    } else {
      status.textContent = "Checks clean" + (warnings ? " (" + warnings + " warning" + (warnings === 1 ? "" : "s") + ")" : "") + ".";
      status.className = "check-status ok";
    }
  }

  function check() {
    var mine = ++sequence;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ text: text.value })
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (body) {
      if (mine === sequence) { show(body); }
    }).catch(function () {
      if (mine === sequence) {
        status.textContent = "Could not check right now; Save will check the text.";
        status.className = "check-status";
      }
    });
  }

  function goTo(line, column) {
    var lines = text.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
    var end = start + (lines[line - 1] || "").length;
    text.focus();
    text.setSelectionRange(column ? Math.min(start + column - 1, end) : start, end);
    var target = document.getElementById("L" + line);
    if (target) { target.scrollIntoView({ block: "center" }); }
  }

  text.addEventListener("input", function () {
    resize();
    drawGutter();
    status.textContent = "Checking…";
    status.className = "check-status";
    clearTimeout(timer);
    timer = setTimeout(check, 350);
  });
  list.addEventListener("click", function (event) {
    var link = event.target.closest("a.where");
    if (!link) { return; }
    var m = /^#L(\d+)$/.exec(link.getAttribute("href") || "");
    if (m) { event.preventDefault(); goTo(parseInt(m[1], 10), 0); }
  });

  resize();
  var hash = /^#L(\d+)$/.exec(window.location.hash);
  if (hash) { goTo(parseInt(hash[1], 10), 0); }
  check();
}());
