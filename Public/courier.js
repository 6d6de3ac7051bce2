// Courier console: confirmations, file-to-textarea, and upload progress. Forms work without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("a[data-back]").forEach(function (a) {
    a.addEventListener("click", function (e) { if (history.length > 1) { e.preventDefault(); history.back(); } });
  });

  // The form asks before it acts, or the button that was pressed does (approve / reject); a
  // release task form asks its own question when the release is official (it reaches everyone).
  function official(form) { return !!form.querySelector("input[name=type][value=official]:checked"); }
  var asking = Array.prototype.slice.call(document.querySelectorAll("form[data-confirm], form[data-confirm-official]"));
  document.querySelectorAll("button[data-confirm]").forEach(function (b) {
    if (b.form && asking.indexOf(b.form) < 0) asking.push(b.form);
  });
  asking.forEach(function (form) {
    form.addEventListener("submit", function (e) {
      // A preview changes nothing: only the button that acts asks first.
      if (e.submitter && e.submitter.name === "preview") return;
      // A button that needs a field (reject needs a comment) says so before asking anything.
      var needs = e.submitter && e.submitter.dataset.requires;
      if (needs) {
        var field = form.querySelector("[name=" + needs + "]");
        var old = document.getElementById("error-" + needs);
        if (field && field.value.trim() === "") {
          e.preventDefault();
          var p = old || document.createElement("p");
          p.className = "field-error";
          p.id = "error-" + needs;
          p.textContent = e.submitter.dataset.requiresMessage;
          if (!old) field.insertAdjacentElement("afterend", p);
          field.focus();
          return;
        }
      }
      var question = (e.submitter && e.submitter.dataset.confirm) || (official(form) && form.dataset.confirmOfficial) || form.dataset.confirm;
      if (question && !window.confirm(question)) e.preventDefault();
    });
  });

  // Grayscale settings are off while an official release is chosen: greyed, and not sent with
  // the release itself. A preview sends them, so they are still there when grayscale is chosen
  // again (the server does not judge a preview).
  document.querySelectorAll("form").forEach(function (form) {
    var types = form.querySelectorAll("input[name=type]");
    if (!form.querySelector("fieldset[data-grayscale]") || !types.length) return;
    function sync() {
      var off = official(form);
      form.querySelectorAll("fieldset[data-grayscale]").forEach(function (f) { f.disabled = off; });
    }
    types.forEach(function (t) { t.addEventListener("change", sync); });
    form.addEventListener("submit", function (e) {
      if (e.submitter && e.submitter.name === "preview") {
        form.querySelectorAll("fieldset[data-grayscale]").forEach(function (f) { f.disabled = false; });
      }
    });
    sync();
  });

  // The task form shows the fields of the chosen grayscale mode only (all are sent, so a
  // preview or a refusal loses nothing).
  document.querySelectorAll("form").forEach(function (form) {
    var modes = form.querySelectorAll("input[name=mode]");
    if (!modes.length) return;
    function show() {
      var chosen = form.querySelector("input[name=mode]:checked");
      form.querySelectorAll("[data-mode]").forEach(function (box) { box.hidden = !chosen || box.dataset.mode !== chosen.value; });
    }
    modes.forEach(function (m) { m.addEventListener("change", show); });
    show();
  });

  // The end time is UTC: say what that is where the user is.
  var end = document.getElementById("endTime");
  var local = document.getElementById("endTime-local");
  if (end && local) {
    var say = function () {
      var t = end.value ? new Date(end.value + "Z") : null;
      local.hidden = !t || isNaN(t);
      if (!local.hidden) local.textContent = end.value.replace("T", " ") + " UTC is " + t.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) + " where you are.";
    };
    end.addEventListener("input", say);
    say();
  }

  // A network rule offers the network types as choices; the text box keeps the values sent.
  document.querySelectorAll("[data-choices-for]").forEach(function (box) {
    var input = document.getElementById(box.dataset.choicesFor);
    var select = document.getElementById(box.dataset.choicesFor.replace("ruleValues", "ruleField"));
    if (!input || !select) return;
    var boxes = box.querySelectorAll("input[type=checkbox]");
    function fromText() {
      var have = input.value.split(",").map(function (v) { return v.trim().toUpperCase(); });
      boxes.forEach(function (b) { b.checked = have.indexOf(b.value) >= 0; });
    }
    function toText() {
      input.value = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).map(function (b) { return b.value; }).join(", ");
    }
    function sync() {
      var on = select.value === box.dataset.field;
      box.hidden = !on;
      input.hidden = on;
      if (on) fromText();
    }
    boxes.forEach(function (b) { b.addEventListener("change", toText); });
    select.addEventListener("change", sync);
    sync();
  });

  document.querySelectorAll("input[type=file][data-fill]").forEach(function (input) {
    input.addEventListener("change", function () {
      var target = document.getElementById(input.dataset.fill);
      if (!input.files.length || !target) return;
      var reader = new FileReader();
      reader.onload = function () {
        target.value = reader.result;
        if (!("count" in input.dataset)) return;
        // Say how many values the file holds (duplicates are dropped when saved).
        var count = reader.result.split(/[\r\n,]+/).filter(function (v) { return v.trim() !== ""; }).length;
        var note = document.getElementById(input.id + "-count") || document.createElement("p");
        note.id = input.id + "-count";
        note.className = "hint";
        note.textContent = count + " values read from " + input.files[0].name + ".";
        input.insertAdjacentElement("afterend", note);
      };
      reader.readAsText(input.files[0]);
    });
  });

  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    var sending = false;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (sending) return;   // a double click sends once
      var file = form.querySelector("input[type=file]");
      var max = parseInt(form.dataset.maxBytes, 10);
      var old = document.getElementById("error-file-size");
      if (old) old.remove();
      // One file or several (batch import): their sizes count together.
      var total = 0;
      if (file) for (var i = 0; i < file.files.length; i++) total += file.files[i].size;
      if (total > max) {
        var p = document.createElement("p");
        p.className = "field-error";
        p.id = "error-file-size";
        p.textContent = (file.files.length > 1 ? "The files are " : "The file is ") + Math.round(total / 1048576) +
          " MB; the limit is " + Math.round(max / 1048576) + " MB.";
        file.insertAdjacentElement("afterend", p);
        return;
      }
      sending = true;
      var box = form.querySelector(".progress");
      var bar = document.getElementById("upload-progress");
      var status = document.getElementById("upload-status");
      var button = form.querySelector("button[type=submit]");
      box.hidden = false;
      button.disabled = true;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (ev) {
        if (!ev.lengthComputable) return;
        var pct = Math.floor(ev.loaded * 100 / ev.total);
        bar.value = pct;
        status.textContent = pct < 100 ? "Uploading… " + pct + "%" : (form.dataset.checking || "Checking and signing the package…");
      });
      xhr.addEventListener("load", function () {
        if (xhr.responseURL && xhr.responseURL !== form.action) {
          window.location.assign(xhr.responseURL);   // followed the redirect to the new package
          return;
        }
        document.open();
        document.write(xhr.responseText);            // the form again, with the errors next to the fields
        document.close();
        window.scrollTo(0, 0);                       // where the summary of what to correct is
      });
      xhr.addEventListener("error", function () {
        sending = false;
        button.disabled = false;
        status.textContent = "The upload failed: the connection was lost. Try again.";
      });
      xhr.send(new FormData(form));
    });
  });
});
