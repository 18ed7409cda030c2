// The message template editor: shows the fieldset of the chosen editor and keeps a live preview of the
// email next to the form. The server renders the draft in the template sandbox (sample data) and answers
// JSON; the HTML goes into a sandboxed frame (no script, no navigation). No inline code, no CDN.
"use strict";
(function () {
  function start() {
    const preview = document.querySelector(".template-editor__preview");
    const form = preview && preview.closest("form");
    if (!form) return;
    const frame = preview.querySelector(".template-editor__html");
    const subject = preview.querySelector(".template-editor__subject strong");
    const text = preview.querySelector(".template-editor__text");
    const errors = preview.querySelector(".template-editor__errors");
    const state = preview.querySelector(".template-editor__state");
    const blocks = form.querySelector("fieldset.template-editor-blocks");
    const raw = form.querySelector("fieldset.template-editor-html");
    let generated = null;
    let handEdited = false;
    let timer = null;
    let sequence = 0;

    function editor() {
      const chosen = form.querySelector("input[name='editor']:checked");
      return chosen ? chosen.value : "html";
    }

    function showEditor() {
      const simple = editor() === "blocks";
      if (blocks) blocks.hidden = !simple;
      if (raw) raw.hidden = simple;
    }

    async function refresh() {
      const mine = ++sequence;
      state.textContent = "updating…";
      let answer;
      try {
        const response = await fetch(preview.dataset.previewUrl, {
          method: "POST",
          body: new FormData(form),
          credentials: "same-origin",
          headers: { "Accept": "application/json" },
        });
        if (!response.ok) throw new Error(String(response.status));
        answer = await response.json();
      } catch (error) {
        if (mine === sequence) state.textContent = "preview unavailable (" + error.message + ")";
        return;
      }
      if (mine !== sequence) return;  // a newer request is on its way
      generated = answer;
      subject.textContent = answer.subject;
      frame.srcdoc = answer.html || "<p style='font-family:sans-serif;color:#57606a'>No HTML part: the email is plain text only.</p>";
      text.textContent = answer.text;
      errors.replaceChildren(...answer.errors.map(function (message) {
        const item = document.createElement("li");
        item.textContent = message;
        return item;
      }));
      errors.hidden = answer.errors.length === 0;
      state.textContent = answer.errors.length ? "" : "up to date";
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 300);
    }

    form.addEventListener("input", later);
    form.addEventListener("change", function (event) {
      if (event.target.name === "editor") {
        // Switching to HTML starts from what the simple editor makes now, unless the HTML fields were
        // edited by hand on this page.
        if (editor() === "html" && generated && !handEdited) {
          form.querySelector("textarea[name='body_text']").value = generated.body_text;
          form.querySelector("textarea[name='body_html']").value = generated.body_html;
        }
        showEditor();
      }
      later();
    });
    if (raw) raw.addEventListener("input", function () { handEdited = true; });
    preview.hidden = false;
    showEditor();
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
